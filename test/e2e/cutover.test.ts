/**
 * The cutover with real processes: a daemon (`sqlite2pg run`) and an
 * application writing at ≥ 500 writes/s. After the cutover every write
 * SQLite acknowledged is in Postgres and every write attempted during the
 * freeze failed with the freeze message; a crash at each step of the
 * cutover, then a restart, finishes the job.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { existsSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { Daemon, LedgerWriter, runCli, waitFor } from "../helpers/daemon.js";
import { FROZEN_MESSAGE } from "../../src/db/frozen.js";
import { markerPath } from "../../src/sqlite/freeze.js";

const children: { kill(): void }[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) c.kill();
  await cleanup();
});

const SCHEMA = `
  CREATE TABLE ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, token TEXT NOT NULL UNIQUE, amount REAL, note TEXT);
  CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, total INTEGER NOT NULL);
  CREATE TABLE events (at INTEGER, what TEXT);
`;

/** The CLI, through the shared helper, with its output as this file's tests read it. */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string; err: string }> {
  const r = await runCli(args, 120_000, { env });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

function daemon(args: string[], env: NodeJS.ProcessEnv = {}) {
  const d = new Daemon("run", args, env);
  children.push({ kill: () => d.kill("SIGKILL") });
  return { p: d.proc, exited: d.exited, log: () => d.log() };
}

function writer(path: string, rate: number): LedgerWriter {
  const w = new LedgerWriter(path, rate);
  children.push(w);
  return w;
}

async function setup(rows = 2000) {
  const dir = tempDir();
  const path = sqliteFrom(dir, SCHEMA);
  const db = new Database(path);
  db.transaction(() => {
    for (let i = 1; i <= 10; i++) db.prepare("INSERT INTO counters VALUES (?, 0, 0)").run(i);
    for (let i = 0; i < rows; i++) db.prepare("INSERT INTO ledger (token, amount) VALUES (?, ?)").run(`seed${i}`, i / 3);
    db.prepare("DELETE FROM ledger WHERE id > ?").run(rows - 5); // sqlite_sequence ahead of max(id)
  })();
  db.close();
  const { url, client } = await freshDatabase();
  const init = await cli(["init", "--sqlite", path, "--pg", url]);
  expect(init.code, init.err).toBe(0);
  return { path, url, client };
}

async function phase(client: import("pg").Client): Promise<string> {
  return (await client.query("SELECT phase FROM sqlite2pg.state")).rows[0]?.phase;
}

describe("cutover", () => {
  it("under a writer at 500+ writes/s: acknowledged writes all arrive, writes during the freeze fail with the freeze message", async () => {
    const s = await setup();
    const d = daemon(["--sqlite", s.path, "--pg", s.url, "--poll-ms", "50", "--validate", "full"]);
    await waitFor("streaming", 30_000, async () => (await phase(s.client)) === "streaming", 50);
    const w = writer(s.path, 600);
    await sleep(1500);
    const cut = await cli(["cutover", "--sqlite", s.path, "--pg", s.url, "--wait", "--timeout", "60"]);
    expect(cut.code, cut.err + d.log()).toBe(0);
    expect(cut.out).toMatch(/validation \(full\): equal/);
    await sleep(300); // the writer keeps trying against the frozen file
    const outcomes = await w.stop();
    expect(await d.exited).toEqual({ code: 0, signal: null });

    const ok = outcomes.filter((o) => o.ok);
    const failed = outcomes.filter((o) => !o.ok);
    expect(ok.length).toBeGreaterThan(500);
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((o) => o.error!.includes(FROZEN_MESSAGE))).toBe(true); // every refused write says why
    // Once refused, always refused: no write succeeded after the first refusal.
    expect(Math.max(...ok.map((o) => o.op))).toBeLessThan(Math.min(...failed.map((o) => o.op)));
    // Postgres holds exactly what SQLite acknowledged: every ledger token once, counters equal.
    const cmp = await compareDatabases(s.path, s.client);
    expect(cmp.differences).toEqual([]);
    // Each acknowledged write added exactly 1 to one counter: none lost, none applied twice.
    const sum = (await s.client.query("SELECT sum(n)::int AS n FROM counters")).rows[0].n;
    expect(sum).toBe(ok.length);
    const state = (await s.client.query("SELECT phase, freeze_ms, validation FROM sqlite2pg.state")).rows[0];
    expect(state.phase).toBe("done");
    expect(state.validation.ok).toBe(true);
    expect(state.freeze_ms).toBeGreaterThan(0);
    const marker = JSON.parse(readFileSync(markerPath(s.path), "utf8"));
    expect(marker.validation.ok).toBe(true);
    // Sequences continue past sqlite_sequence.
    const seq = (new Database(s.path, { readonly: true }).prepare("SELECT seq FROM sqlite_sequence WHERE name = 'ledger'").get() as { seq: number }).seq;
    const next = (await s.client.query("INSERT INTO ledger (token) VALUES ('after') RETURNING id")).rows[0].id;
    expect(Number(next)).toBe(seq + 1);
  });

  for (const step of ["before-freeze", "after-freeze", "draining", "before-commit", "after-commit"]) {
    it(`a crash at ${step}, then a restart, finishes the cutover exactly`, async () => {
      const s = await setup(500);
      const d1 = daemon(["--sqlite", s.path, "--pg", s.url, "--poll-ms", "50", "--batch-size", "20", "--cutover"], { SQLITE2PG_CRASH_AT: step });
      const w = writer(s.path, 300);
      const first = await d1.exited;
      expect(first.signal, d1.log()).toBe("SIGKILL");
      await sleep(200);
      const outcomes = await w.stop();
      const frozen = existsSync(s.path) && outcomes.some((o) => !o.ok);
      if (step !== "before-freeze") expect(frozen).toBe(true); // durable: frozen although the daemon died
      const d2 = daemon(["--sqlite", s.path, "--pg", s.url, "--poll-ms", "50", "--validate", "full"]);
      const second = await d2.exited;
      expect(second, d2.log()).toEqual({ code: 0, signal: null });
      expect(await phase(s.client)).toBe("done");
      const cmp = await compareDatabases(s.path, s.client);
      expect(cmp.differences).toEqual([]);
      expect(outcomes.filter((o) => !o.ok).every((o) => o.error!.includes(FROZEN_MESSAGE))).toBe(true);
    });
  }

  it("unfreeze aborts a cutover Postgres has not committed; after the commit it is refused", async () => {
    const s = await setup(100);
    const d1 = daemon(["--sqlite", s.path, "--pg", s.url, "--poll-ms", "50", "--cutover"], { SQLITE2PG_CRASH_AT: "after-freeze" });
    expect((await d1.exited).signal).toBe("SIGKILL");
    const un = await cli(["unfreeze", "--sqlite", s.path, "--pg", s.url]);
    expect(un.code, un.err).toBe(0);
    const db = new Database(s.path);
    db.prepare("INSERT INTO events VALUES (1, 'after unfreeze')").run(); // SQLite takes writes again
    db.close();
    expect(await phase(s.client)).toBe("streaming");
    const d2 = daemon(["--sqlite", s.path, "--pg", s.url, "--poll-ms", "50", "--cutover"]);
    expect(await d2.exited).toEqual({ code: 0, signal: null });
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
    const again = await cli(["unfreeze", "--sqlite", s.path, "--pg", s.url]);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/stays frozen for good/);
  });
});

describe("cutover asked for early", () => {
  it("is queued until caught up, status says so, and then runs", async () => {
    const s = await setup(3000);
    const asked = await cli(["cutover", "--sqlite", s.path, "--pg", s.url]);
    expect(asked.code, asked.err).toBe(0);
    expect(asked.out).toMatch(/phase new: queued until caught up/);
    const st = await cli(["status", "--sqlite", s.path, "--pg", s.url, "--json"]);
    expect(JSON.parse(st.out).cutover).toMatchObject({ note: "queued until caught up", frozen_at: null });
    const d = daemon(["--sqlite", s.path, "--pg", s.url, "--poll-ms", "50", "--chunk-rows", "500"]);
    expect(await d.exited, d.log()).toEqual({ code: 0, signal: null });
    expect(d.log()).toMatch(/"phase":"snapshot"/);
    const after = JSON.parse((await cli(["status", "--sqlite", s.path, "--pg", s.url, "--json"])).out);
    expect(after.phase).toBe("done");
    expect(after.cutover.freeze_ms).toBeGreaterThan(0);
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
  });
});

describe("operation", () => {
  it("serves /metrics, /healthz and /status, and never shows the password", async () => {
    const s = await setup(200);
    const u = new URL(s.url);
    const secret = "Secr3t-pw-" + Math.random().toString(36).slice(2);
    u.password = u.password || secret; // trust auth here ignores it; the embedded server has its own
    const pgUrl = u.toString();
    const pw = decodeURIComponent(u.password);
    const { freePort } = await import("../../src/postgres/embedded.js");
    const port = await freePort();
    const d = daemon(["--sqlite", s.path, "--pg", pgUrl, "--poll-ms", "50", "--listen", `127.0.0.1:${port}`, "--max-lag", "5", "--verbose"]);
    await waitFor("streaming", 30_000, async () => (await phase(s.client)) === "streaming", 50);
    await sleep(300);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^sqlite2pg_lag_changes \d+$/m);
    expect(metrics).toMatch(/^sqlite2pg_lag_seconds [\d.e-]+$/m);
    expect(metrics).toMatch(/^sqlite2pg_phase\{phase="streaming"\} 1$/m);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, phase: "streaming" });
    const status = await (await fetch(`http://127.0.0.1:${port}/status`)).text();
    const cliStatus = await cli(["status", "--sqlite", s.path, "--pg", pgUrl, "--json"]);
    const bad = await cli(["migrate", "--sqlite", s.path, "--pg", pgUrl.replace(/:\d+\//, ":1/")]); // unreachable: the error names the server
    expect(bad.code).toBe(4);
    d.p.kill("SIGTERM");
    expect(await d.exited).toEqual({ code: 0, signal: null });
    for (const text of [metrics, status, cliStatus.out, cliStatus.err, d.log(), bad.err]) expect(text).not.toContain(pw);
    expect(bad.err).toMatch(/\*\*\*/);
  });
});

describe("validate", () => {
  it("finds the keys of rows that differ, by ranges, and exits 1", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, r REAL); CREATE TABLE k (a TEXT, b INTEGER);");
    const db = new Database(path);
    db.transaction(() => {
      for (let i = 1; i <= 5000; i++) db.prepare("INSERT INTO t VALUES (?, ?, ?)").run(i, `v${i}`, i / 7);
      for (let i = 1; i <= 50; i++) db.prepare("INSERT INTO k VALUES (?, ?)").run("x", i);
    })();
    db.close();
    const { url, client } = await freshDatabase();
    expect((await cli(["migrate", "--sqlite", path, "--pg", url])).code).toBe(0);
    const same = await cli(["validate", "--sqlite", path, "--pg", url, "--full"]);
    expect(same.code, same.err).toBe(0);
    expect(same.out).toMatch(/Equal \(full\): 5050 rows/);
    await client.query("UPDATE t SET r = r + 1e-12 WHERE id = 1234"); // one bit of one double
    await client.query("DELETE FROM t WHERE id = 4000");
    await client.query("INSERT INTO t VALUES (9000, 'extra', 0)");
    await client.query("UPDATE k SET b = 99 WHERE b = 7");
    const diff = await cli(["validate", "--sqlite", path, "--pg", url, "--full", "--json"]);
    expect(diff.code, diff.out + diff.err).toBe(1);
    const report = JSON.parse(diff.out);
    const t = report.tables.find((x: { table: string }) => x.table === "t");
    expect(t.differences).toEqual(
      expect.arrayContaining([
        { key: "id=1234", kind: "values differ" },
        { key: "id=4000", kind: "missing in postgres" },
        { key: "id=9000", kind: "extra in postgres" },
      ]),
    );
    expect(t.differences).toHaveLength(3);
    const k = report.tables.find((x: { table: string }) => x.table === "k");
    expect(k).toMatchObject({ digest: "differs", sqlite_rows: 50, pg_rows: 50 });
    await client.query("DELETE FROM t WHERE id = 10");
    const counts = await cli(["validate", "--sqlite", path, "--pg", url]);
    expect(counts.code).toBe(1); // counts alone see a missing row
    expect(counts.out).toMatch(/!! +t +SQLite 5000 rows, Postgres 4999/);
  });
});
