/**
 * PostgreSQL itself restarted under a streaming daemon (not just its
 * connections killed): a server of this test's own, stopped for two seconds
 * and started again while the application keeps writing to SQLite. The
 * daemon must stay up, retry, and converge value for value.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import pg from "pg";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cleanup, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { Daemon, LedgerWriter, runCli } from "../helpers/daemon.js";
import { freePort, startEmbeddedPostgres, type EmbeddedServer } from "../../src/postgres/embedded.js";

const children: { kill(): void }[] = [];
let server: EmbeddedServer | null = null;
afterEach(async () => {
  for (const c of children.splice(0)) c.kill();
  await server?.stop({ removeData: true }).catch(() => undefined);
  server = null;
  await cleanup();
});

async function cli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await runCli(args);
  return { code: r.code, out: r.stdout, err: r.stderr };
}

async function lag(path: string, url: string): Promise<{ phase: string; lag_changes: number } | null> {
  const r = await cli(["status", "--sqlite", path, "--pg", url, "--json"]);
  return r.code === 0 ? JSON.parse(r.out) : null;
}

describe("PostgreSQL restarted under the daemon", () => {
  it("keeps the daemon up, and it converges exactly once the server is back", async () => {
    const dir = tempDir();
    const port = await freePort();
    const pgdir = join(dir, "pg");
    server = await startEmbeddedPostgres(pgdir, { port, trust: true });
    const url = server.url;
    const path = sqliteFrom(
      dir,
      `
      CREATE TABLE ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, token TEXT NOT NULL UNIQUE, amount REAL, note TEXT);
      CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, total INTEGER NOT NULL);
      INSERT INTO counters VALUES (1, 0, 0), (2, 0, 0), (3, 0, 0);
    `,
    );
    expect((await cli(["init", "--sqlite", path, "--pg", url])).code).toBe(0);
    const daemon = new Daemon("run", ["--sqlite", path, "--pg", url, "--poll-ms", "100"]);
    children.push({ kill: () => daemon.kill("SIGKILL") });
    for (let i = 0; i < 100 && (await lag(path, url))?.phase !== "streaming"; i++) await sleep(100);
    const writer = new LedgerWriter(path, 300);
    children.push(writer);
    await sleep(1000);

    await server.stop(); // the server goes away under the daemon…
    await sleep(2000);
    expect(daemon.alive, daemon.log().slice(-2000)).toBe(true); // …which keeps running
    server = await startEmbeddedPostgres(pgdir, { port, trust: true }); // same data, same port
    await sleep(1000);
    await writer.stop();

    let caughtUp = false;
    for (let i = 0; i < 150 && !caughtUp; i++) {
      const s = await lag(path, url);
      caughtUp = s?.phase === "streaming" && s.lag_changes === 0;
      if (!caughtUp) await sleep(100);
    }
    expect(caughtUp, daemon.log().slice(-2000)).toBe(true);
    expect(daemon.log()).toMatch(/apply failed; will retry/);
    expect(daemon.log()).toMatch(/recovered/);
    daemon.kill("SIGTERM");
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const cmp = await compareDatabases(path, client);
      expect(cmp.differences).toEqual([]);
      const db = new Database(path, { readonly: true });
      const acked = (db.prepare("SELECT sum(n) AS n FROM counters").get() as { n: number }).n;
      db.close();
      expect(acked).toBeGreaterThan(300); // the writer wrote throughout, while the server was down too
    } finally {
      await client.end();
    }
  });
});
