/**
 * kill -9 on the way back: the daemon stops itself like `kill -9` at each
 * named crash point of the fallback, the rollback and `finish`
 * (SQLITE2PG_CRASH_AT), each on a source of its own; `sqlite2pg run` started
 * again finishes the job the state asks for — the request survives the
 * crash — and SQLite equals PostgreSQL value for value. Then the same at the
 * third applied batch while an application keeps writing to PostgreSQL.
 */
import Database from "better-sqlite3";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { FROZEN_MESSAGE, ROLLBACK_FROZEN_MESSAGE } from "../../src/db/frozen.js";
import { cleanup } from "../helpers/db.js";
import { runCli, waitFor } from "../helpers/daemon.js";
import {
  daemonLogs,
  expectEqual,
  expectRolledBack,
  fallbackDaemon,
  type FallbackSource,
  fallbackSource,
  PgWriter,
  pendingInPg,
  pgWrites,
  phaseOf,
  waitPhase,
} from "../helpers/fallback.js";

const live: { sources: FallbackSource[]; writers: PgWriter[]; clients: pg.Client[] } = { sources: [], writers: [], clients: [] };
afterEach(async () => {
  for (const w of live.writers.splice(0)) await w.stop();
  for (const c of live.clients.splice(0)) await c.end().catch(() => undefined);
  for (const s of live.sources.splice(0)) for (const d of s.daemons) d.kill("SIGKILL");
  await cleanup();
});

async function source(): Promise<FallbackSource> {
  const s = await fallbackSource({ rows: 200 });
  live.sources.push(s);
  return s;
}

function cli(s: FallbackSource, args: string[]) {
  return runCli([...args, "--sqlite", s.path, "--pg", s.url], 120_000, { env: { SQLITE2PG_FALLBACK: "true" } });
}

/** The application's write to the SQLite file: its id, or the error it was refused with. */
function sqliteWrite(path: string): { id: number } | { error: string } {
  const db = new Database(path);
  try {
    db.pragma("busy_timeout = 10000");
    return { id: Number(db.prepare("INSERT INTO log VALUES (-1, 'the application, on SQLite')").run().lastInsertRowid) };
  } catch (e) {
    return { error: (e as Error).message };
  } finally {
    db.close();
  }
}

/** The application's write to PostgreSQL: null when it committed, else the error. */
async function pgWrite(s: FallbackSource, round: number): Promise<string | null> {
  try {
    await s.client.query("BEGIN");
    await pgWrites(s.client, round);
    await s.client.query("COMMIT");
    return null;
  } catch (e) {
    await s.client.query("ROLLBACK");
    return (e as Error).message;
  }
}

type Request = "rollback" | "finish";
const POINTS: { point: string; request: Request; pgFrozen: boolean | null; sqliteTakesWrites: boolean }[] = [
  // The apply's batch written in SQLite, not yet acknowledged in PostgreSQL: in the fallback or in the rollback's catch-up or drain.
  { point: "fallback-applied", request: "rollback", pgFrozen: null, sqliteTakesWrites: false },
  { point: "rollback-frozen", request: "rollback", pgFrozen: true, sqliteTakesWrites: false },
  { point: "rollback-draining", request: "rollback", pgFrozen: true, sqliteTakesWrites: false },
  { point: "rollback-committed", request: "rollback", pgFrozen: true, sqliteTakesWrites: false },
  { point: "rollback-unfrozen", request: "rollback", pgFrozen: true, sqliteTakesWrites: true },
  { point: "finishing", request: "finish", pgFrozen: false, sqliteTakesWrites: false },
];

describe("kill -9 on the way back", () => {
  for (const { point, request, pgFrozen, sqliteTakesWrites } of POINTS) {
    it(`at ${point} (${request} requested): \`run\` again finishes the ${request}, SQLite equals PostgreSQL`, async () => {
      const s = await source();
      const d1 = fallbackDaemon(s, `crash at ${point}`, { args: ["--cutover"], env: { SQLITE2PG_CRASH_AT: point } });
      await waitPhase(s, d1, "fallback");
      // The application's transaction is open while the request is made: its changes are
      // there to apply whatever the daemon does first, and the rollback's freeze waits for it.
      const app = new pg.Client({ connectionString: s.url });
      live.clients.push(app);
      await app.connect();
      await app.query("BEGIN");
      await pgWrites(app, 1, true);
      await pgWrites(app, 2);
      const asked = await cli(s, [request]);
      expect(asked.code, asked.stderr + daemonLogs(s)).toBe(0);
      expect(asked.stdout).toMatch(/requested; the daemon is notified/);
      await app.query("COMMIT");
      const died = await d1.waitExit(60_000);
      expect(died, daemonLogs(s)).toEqual({ code: null, signal: "SIGKILL" });
      expect(d1.logged(`sqlite2pg crash point ${point} (pass 1)`), daemonLogs(s)).toHaveLength(1);
      // The request is in the state (the rollback's commit replaces it with the phase rolled-back).
      const where = (await s.client.query("SELECT phase, rollback_requested_at IS NOT NULL AS rb, finish_requested_at IS NOT NULL AS fin FROM sqlite2pg.state"))
        .rows[0];
      if (request === "finish") expect(where, `state after the crash at ${point}`).toMatchObject({ phase: "fallback", fin: true });
      else if (where.phase === "rolled-back") expect(["rollback-committed", "rollback-unfrozen"]).toContain(point);
      else expect(where, `state after the crash at ${point}`).toMatchObject({ rb: true });

      // At fallback-applied the batch is in SQLite but still pending in PostgreSQL: the restart applies it again.
      if (point === "fallback-applied") expect(await pendingInPg(s.client)).toBeGreaterThan(0);

      // While no daemon runs: PostgreSQL takes the application's writes until the rollback froze it …
      const late = await pgWrite(s, 3);
      if (pgFrozen === true) expect(late).toContain(ROLLBACK_FROZEN_MESSAGE);
      if (pgFrozen === false) expect(late).toBeNull();
      if (late !== null) expect(late).toContain(ROLLBACK_FROZEN_MESSAGE);
      // … and SQLite only once the rollback unfroze it.
      const app2 = sqliteWrite(s.path);
      if (sqliteTakesWrites) expect(app2).toHaveProperty("id");
      else expect(app2).toEqual({ error: expect.stringContaining(FROZEN_MESSAGE) });

      const d2 = fallbackDaemon(s, "restart");
      expect(await d2.waitExit(60_000), daemonLogs(s)).toEqual({ code: 0, signal: null });
      expect(await phaseOf(s.client)).toBe(request === "rollback" ? "rolled-back" : "done");
      if ("id" in app2) {
        // The application's write on SQLite after the unfreeze is kept, and captured for a later attempt.
        const db = new Database(s.path);
        expect(db.prepare("SELECT msg FROM log WHERE rowid = ?").get(app2.id)).toEqual({ msg: "the application, on SQLite" });
        expect((db.prepare("SELECT count(*) AS n FROM _sqlite2pg_changes WHERE tbl = 'log'").get() as { n: number }).n).toBeGreaterThan(0);
        db.prepare("DELETE FROM log WHERE rowid = ?").run(app2.id);
        db.close();
      }
      await expectEqual(s);
      if (request === "rollback") await expectRolledBack(s);
      else expect(await pendingInPg(s.client)).toBeNull();
      // Every change applied is counted, those `finish` itself applied too.
      expect(Number((await s.client.query("SELECT fallback_applied AS n FROM sqlite2pg.state")).rows[0].n)).toBeGreaterThan(0);
    });
  }

  it("a restart after --max-freeze undoes the rollback's freeze (PostgreSQL takes writes again), and a new attempt rolls back", async () => {
    const s = await source();
    const d1 = fallbackDaemon(s, "crash at rollback-frozen", { args: ["--cutover"], env: { SQLITE2PG_CRASH_AT: "rollback-frozen" } });
    await waitPhase(s, d1, "fallback");
    expect(await pgWrite(s, 1)).toBeNull();
    const asked = await cli(s, ["rollback"]);
    expect(asked.code, asked.stderr + daemonLogs(s)).toBe(0);
    expect((await d1.waitExit(60_000))?.signal, daemonLogs(s)).toBe("SIGKILL");
    expect(await phaseOf(s.client)).toBe("rolling-back");
    expect(await pgWrite(s, 2)).toContain(ROLLBACK_FROZEN_MESSAGE);
    // The application keeps trying; the restart comes once PostgreSQL has been frozen longer than its --max-freeze.
    const w = new PgWriter(s.url, { from: 3000 });
    live.writers.push(w);
    await waitFor("a freeze older than --max-freeze", 30_000, async () => {
      const r = await s.client.query("SELECT now() - rollback_frozen_at > interval '3.5 seconds' AS old FROM sqlite2pg.state");
      return r.rows[0].old === true;
    });
    const d2 = fallbackDaemon(s, "restart with --max-freeze 3", { maxFreezeS: 3 });
    expect(await d2.waitExit(90_000), daemonLogs(s)).toEqual({ code: 0, signal: null });
    const undone = d2.logged("rollback attempt 1 undone");
    expect(undone, daemonLogs(s)).toHaveLength(1);
    expect(undone[0]).toContain("--max-freeze (3000 ms) reached while draining");
    expect(d2.logged("rolled back: SQLite holds the data again")).toHaveLength(1);
    await w.stop();
    expect(w.errors).toEqual([]);
    expect(w.refused).toBeGreaterThan(0);
    expect(w.deadlocks).toBe(0);
    expect(d2.logged("deadlock")).toEqual([]);
    await expectEqual(s); // what the writer committed between the two attempts is in SQLite too
    await expectRolledBack(s);
  });

  it("at the third applied batch while the application keeps writing to PostgreSQL: the restart catches up, and a rollback loses nothing", async () => {
    const s = await source();
    const d1 = fallbackDaemon(s, "crash at fallback-applied, pass 3", {
      args: ["--cutover", "--batch-size", "5"],
      env: { SQLITE2PG_CRASH_AT: "fallback-applied", SQLITE2PG_CRASH_AFTER: "3" },
    });
    await waitPhase(s, d1, "fallback");
    const w = new PgWriter(s.url, { truncateEvery: 6 });
    live.writers.push(w);
    const died = await d1.waitExit(60_000);
    expect(died, daemonLogs(s)).toEqual({ code: null, signal: "SIGKILL" });
    expect(d1.logged("sqlite2pg crash point fallback-applied (pass 3)")).toHaveLength(1);
    await w.more(15); // the backlog grows while no daemon runs
    const d2 = fallbackDaemon(s, "restart");
    await w.more(15);
    const rb = await cli(s, ["rollback", "--wait", "--validate", "full"]);
    expect(rb.code, rb.stderr + daemonLogs(s)).toBe(0);
    expect(rb.stdout).toMatch(/validation \(full\): equal/);
    expect(await d2.waitExit(60_000), daemonLogs(s)).toEqual({ code: 0, signal: null });
    await w.stop();
    expect(w.errors).toEqual([]);
    expect(w.deadlocks).toBe(0);
    expect(w.rounds).toBeGreaterThanOrEqual(30);
    await expectEqual(s);
    await expectRolledBack(s);
  });
});
