/**
 * A rollback under steady load: an application process writing through the
 * library's SwitchingDatabase (test/fixtures/switching-writer.mjs: several
 * writers, each numbering its rows 1, 2, 3 …) while a real daemon process
 * cuts over (SIGUSR2), follows PostgreSQL in the fallback, and rolls back
 * (`sqlite2pg rollback --wait`). Every acknowledged write is in SQLite once,
 * each writer's in the order it made them, none is lost or doubled, and
 * PostgreSQL, frozen at the rollback's commit, equals SQLite as it was then.
 */
import Database from "better-sqlite3";
import { type ChildProcess, spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { compareDatabases } from "../helpers/compare.js";
import { Daemon, Fatal, runCli, waitFor } from "../helpers/daemon.js";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";

const ROOT = resolve(__dirname, "../..");
const ENTRY = join(ROOT, "dist/index.js");
const WRITER = join(ROOT, "test/fixtures/switching-writer.mjs");
const WRITERS = 4;

const live: { daemons: Daemon[]; procs: ChildProcess[] } = { daemons: [], procs: [] };
afterEach(async () => {
  for (const d of live.daemons.splice(0)) d.kill("SIGKILL");
  for (const p of live.procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  await cleanup();
});

type Event =
  | { ev: "ready" | "stopped" }
  | { ev: "switch"; to: string }
  | { ev: "ack"; w: number; seq: number }
  | { ev: "error"; w: number; seq: number; name: string; message: string };

/** The application process and what it reported so far. */
class App {
  readonly proc: ChildProcess;
  readonly events: Event[] = [];
  private partial = "";
  private err = "";
  readonly exited: Promise<number | null>;

  constructor(sqlite: string, pgUrl: string) {
    this.proc = spawn(process.execPath, [WRITER, ENTRY, sqlite, pgUrl, String(WRITERS)], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    live.procs.push(this.proc);
    this.proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
      const lines = (this.partial + d).split("\n");
      this.partial = lines.pop()!;
      for (const l of lines) if (l) this.events.push(JSON.parse(l) as Event);
    });
    this.proc.stderr!.setEncoding("utf8").on("data", (d: string) => {
      this.err = (this.err + d).slice(-4000);
    });
    this.exited = new Promise((res) => this.proc.on("exit", (code) => res(code)));
  }

  get acks(): { w: number; seq: number }[] {
    return this.events.filter((e): e is { ev: "ack"; w: number; seq: number } => e.ev === "ack");
  }

  get errors(): Event[] {
    return this.events.filter((e) => e.ev === "error");
  }

  get switches(): string[] {
    return this.events.flatMap((e) => (e.ev === "switch" ? [e.to] : []));
  }

  describe(): string {
    return `--- application (pid ${this.proc.pid}, exit ${this.proc.exitCode}): ${this.acks.length} acks, errors ${JSON.stringify(this.errors.slice(0, 3))}\n  stderr: ${this.err}`;
  }

  /** Wait for `n` more acknowledged writes (failing at once when the process ends or reports an error). */
  async more(n: number, what: string): Promise<void> {
    const want = this.acks.length + n;
    await waitFor(what, 60_000, () => {
      if (this.errors.length || this.proc.exitCode !== null) throw new Fatal(this.describe());
      return this.acks.length >= want;
    });
  }
}

describe("a rollback under steady load from an application using SwitchingDatabase", () => {
  it("loses no acknowledged write, doubles none, keeps each writer's order, and leaves PostgreSQL equal to SQLite at the rollback's commit", async () => {
    const dir = tempDir();
    const path = sqliteFrom(
      dir,
      `CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, writer INTEGER NOT NULL, seq INTEGER NOT NULL, note TEXT);
       INSERT INTO events (writer, seq, note) VALUES (-1, 1, 'seed'), (-1, 2, 'seed'), (-1, 3, 'seed');`,
    );
    const { url, client } = await freshDatabase();
    const init = await runCli(["init", "--sqlite", path, "--pg", url]);
    expect(init.code, init.stderr).toBe(0);
    const d = Daemon.start("run", { sqlite: path, pg: url, pollMs: 50, batchSize: 200, args: ["--max-freeze", "60"], env: { SQLITE2PG_FALLBACK: "true" } });
    live.daemons.push(d);
    const phase = async () => (await client.query("SELECT phase FROM sqlite2pg.state")).rows[0]?.phase as string;
    const waitPhase = (p: string) =>
      waitFor(`phase ${p}`, 60_000, async () => {
        if (!d.alive) throw new Fatal(d.describe(60));
        return (await phase()) === p;
      });
    await waitPhase("streaming");

    const app = new App(path, url);
    await app.more(50, "writes on SQLite");
    d.kill("SIGUSR2");
    await waitPhase("fallback");
    await waitFor("the application on PostgreSQL", 60_000, () => app.switches.includes("postgres"));
    await app.more(100, "writes on PostgreSQL");
    const rb = await runCli(["rollback", "--sqlite", path, "--pg", url, "--wait", "--validate", "full"], 120_000, { env: { SQLITE2PG_FALLBACK: "true" } });
    expect(rb.code, rb.stderr + d.describe(60)).toBe(0);
    expect(rb.stdout).toMatch(/validation \(full\): equal/);
    expect(await d.waitExit(60_000), d.describe(60)).toEqual({ code: 0, signal: null });
    await waitFor("the application back on SQLite", 60_000, () => app.switches.includes("sqlite"));
    await app.more(50, "writes on SQLite again");
    app.proc.kill("SIGTERM");
    expect(await app.exited, app.describe()).toBe(0);
    expect(app.events.at(-1)).toEqual({ ev: "stopped" });
    expect(app.errors).toEqual([]);
    expect(app.switches).toEqual(["postgres", "sqlite"]);

    // Every acknowledged write once in SQLite, each writer's in order (ids grow with its numbers), nothing unacknowledged.
    const db = new Database(path, { readonly: true });
    const rows = db.prepare("SELECT id, writer, seq, note FROM events WHERE writer >= 0 ORDER BY id").all() as {
      id: number;
      writer: number;
      seq: number;
      note: string;
    }[];
    db.close();
    for (let w = 0; w < WRITERS; w++) {
      const acked = app.acks.filter((a) => a.w === w).map((a) => a.seq);
      expect(acked.length, `writer ${w}`).toBeGreaterThan(10);
      expect(acked, `writer ${w}'s acknowledgements`).toEqual(acked.map((_, i) => i + 1));
      const mine = rows.filter((r) => r.writer === w);
      expect(
        mine.map((r) => r.seq),
        `writer ${w}'s rows in SQLite, by id`,
      ).toEqual(acked);
      expect(mine.map((r) => r.note)).toEqual(acked.map((n) => (w % 2 === 1 ? `tx ${w}/${n}` : `w ${w}/${n}`)));
    }
    expect(rows).toHaveLength(app.acks.length);

    // PostgreSQL refuses writes since the rollback's commit; SQLite took the application's writes after it with ids past
    // every id PostgreSQL handed out. SQLite without those rows is PostgreSQL, value for value.
    const pgLast = Number(
      (
        await client.query(
          "SELECT greatest(coalesce(last_value, 0), (SELECT max(id) FROM events)) AS v FROM pg_sequences WHERE format('%I.%I', schemaname, sequencename) = pg_get_serial_sequence('public.events', 'id')",
        )
      ).rows[0].v,
    );
    const after = rows.filter((r) => r.id > pgLast);
    expect(after.length).toBeGreaterThanOrEqual(50);
    const atCommit = join(dir, "at-commit.db");
    const file = new Database(path, { readonly: true });
    file.prepare("VACUUM INTO ?").run(atCommit);
    file.close();
    const copy = new Database(atCommit);
    copy.prepare("DELETE FROM events WHERE id > ?").run(pgLast);
    copy.close();
    const cmp = await compareDatabases(atCommit, client);
    expect(cmp.differences).toEqual([]);
    expect(cmp.rows).toBe(rows.length - after.length + 3);
  }, 180_000);
});
