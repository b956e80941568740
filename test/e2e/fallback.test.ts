/**
 * The way back with real processes: after the cutover `sqlite2pg run` stays
 * up in phase fallback, applying every write the application makes in
 * PostgreSQL to the SQLite file; `sqlite2pg finish` ends it (exit 0, phase
 * done); `sqlite2pg rollback` (with a daemon running, by SIGUSR1, or with
 * none: in process) gives SQLite back to the application with PostgreSQL
 * frozen; after a rollback a later attempt starts afresh.
 */
import Database from "better-sqlite3";
import { existsSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { FROZEN_MESSAGE } from "../../src/db/frozen.js";
import { freePort } from "../../src/postgres/embedded.js";
import { markerPath, rollbackMarkerPath } from "../../src/sqlite/freeze.js";
import { cleanup } from "../helpers/db.js";
import { cliStatus, type Daemon, runCli, waitFor } from "../helpers/daemon.js";
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
  waitApplied,
  waitPhase,
} from "../helpers/fallback.js";

const live: { sources: FallbackSource[]; writers: PgWriter[] } = { sources: [], writers: [] };
afterEach(async () => {
  for (const w of live.writers.splice(0)) await w.stop();
  for (const s of live.sources.splice(0)) for (const d of s.daemons) d.kill("SIGKILL");
  await cleanup();
});

async function source(rows?: number): Promise<FallbackSource> {
  const s = await fallbackSource({ rows });
  live.sources.push(s);
  return s;
}

function writer(s: FallbackSource, truncateEvery: number, from?: number): PgWriter {
  const w = new PgWriter(s.url, { truncateEvery, from });
  live.writers.push(w);
  return w;
}

/** `sqlite2pg <args> --sqlite … --pg …` with the way back on. */
function cli(s: FallbackSource, args: string[]) {
  return runCli([...args, "--sqlite", s.path, "--pg", s.url], 150_000, { env: { SQLITE2PG_FALLBACK: "true" } });
}

async function exits0(s: FallbackSource, d: Daemon): Promise<void> {
  expect(await d.waitExit(60_000), daemonLogs(s)).toEqual({ code: 0, signal: null });
}

/** The application's write to the SQLite file, refused while it is frozen. */
function sqliteWrite(path: string): void {
  const db = new Database(path);
  try {
    db.pragma("busy_timeout = 10000");
    db.prepare("INSERT INTO log VALUES (-1, 'the application, on SQLite')").run();
  } finally {
    db.close();
  }
}

describe("the fallback with real processes", () => {
  it("stays up after the cutover (SIGUSR2), applies every write made in PostgreSQL, reports its lag, and `finish` ends it", async () => {
    const s = await source();
    const port = await freePort();
    const d = fallbackDaemon(s, "run", { args: ["--listen", `127.0.0.1:${port}`] });
    await waitPhase(s, d, "streaming");
    d.kill("SIGUSR2");
    await waitPhase(s, d, "fallback");
    expect(existsSync(markerPath(s.path))).toBe(true);
    expect(() => sqliteWrite(s.path)).toThrow(FROZEN_MESSAGE); // the application writes to PostgreSQL now

    const w0 = writer(s, 7);
    await w0.more(20);
    await w0.stop();
    expect(w0.errors).toEqual([]);
    // Paused (SIGSTOP), the daemon applies nothing: the writes wait in PostgreSQL, and `status` counts them.
    // No TRUNCATE meanwhile: a stop inside a fallback turn leaves its snapshot open, and TRUNCATE's lock would wait for it.
    d.kill("SIGSTOP");
    const paused = writer(s, 0, 20_000);
    try {
      await paused.more(5);
      await paused.stop();
      const st = await cliStatus(s.path, s.url);
      expect(st.phase).toBe("fallback");
      expect(st.fallback!.lag_changes).toBeGreaterThan(0);
      expect(st.fallback!.lag_seconds).toBeGreaterThan(0);
    } finally {
      d.kill("SIGCONT");
    }
    expect(paused.errors).toEqual([]);
    const w = writer(s, 7, 40_000);
    const metrics = await waitFor("the fallback's lag on /metrics", 30_000, async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return /^sqlite2pg_fallback_lag_changes \d+$/m.test(text) && /^sqlite2pg_fallback_lag_seconds [\d.e+-]+$/m.test(text) ? text : false;
    });
    expect(metrics).toMatch(/^sqlite2pg_phase\{phase="fallback"\} 1$/m);
    await w.more(10);
    await w.stop();
    expect(w.errors).toEqual([]);
    await waitApplied(s, d);
    const st = await cliStatus(s.path, s.url);
    expect(st.fallback).toMatchObject({ lag_changes: 0, lag_seconds: 0, rollback_requested_at: null });
    expect(st.fallback!.applied).toBeGreaterThan(0);
    await expectEqual(s);

    // More writes, then `finish`: the last of them reach SQLite before the capture goes.
    for (let i = 0; i < 5; i++) await pgWrites(s.client, 90_000 + i, i === 2);
    const fin = await cli(s, ["finish", "--wait", "--timeout", "120"]);
    expect(fin.code, fin.stderr + daemonLogs(s)).toBe(0);
    expect(fin.stdout).toMatch(/Finished: \d+ change\(s\) were applied to SQLite during the fallback/);
    await exits0(s, d);
    expect(await phaseOf(s.client)).toBe("done");
    expect(await pendingInPg(s.client)).toBeNull();
    const triggers = await s.client.query("SELECT tgname FROM pg_trigger WHERE tgname LIKE '\\_sqlite2pg%' AND NOT tgisinternal");
    expect(triggers.rows).toEqual([]);
    await expectEqual(s);
    // SQLite stays frozen as the last copy; PostgreSQL is the database.
    expect(() => sqliteWrite(s.path)).toThrow(FROZEN_MESSAGE);
    await s.client.query("INSERT INTO log VALUES (1, 'PostgreSQL only, after finish')");
    expect((await cli(s, ["rollback"])).stderr).toMatch(/the fallback was finished/);
  });

  it("`finish` while the application keeps writing to PostgreSQL: every write made before it reaches SQLite, none is refused", async () => {
    const s = await source();
    const d = fallbackDaemon(s, "run", { args: ["--cutover"] });
    await waitPhase(s, d, "fallback");
    const w = writer(s, 5);
    await w.more(30);
    const before = [...w.committed];
    const fin = await cli(s, ["finish", "--wait"]);
    expect(fin.code, fin.stderr + daemonLogs(s)).toBe(0);
    await exits0(s, d);
    await w.more(10); // PostgreSQL is the database: the writer goes on
    await w.stop();
    expect(w.errors).toEqual([]);
    expect(w.deadlocks).toBe(0);
    expect(w.refused).toBe(0);
    expect(d.logged("deadlock")).toEqual([]);
    expect(await pendingInPg(s.client)).toBeNull();
    const db = new Database(s.path, { readonly: true });
    const emails = new Set((db.prepare("SELECT email FROM accounts").all() as { email: string }[]).map((r) => r.email));
    db.close();
    const missing: string[] = [];
    for (const r of before) for (const e of [`r${r}a@x`, `r${r}b@x`]) if (!emails.has(e)) missing.push(e);
    expect(missing).toEqual([]);
  });

  it("`sqlite2pg rollback --wait --validate full` against a running daemon, under a writer: SQLite takes over, PostgreSQL frozen", async () => {
    const s = await source();
    const d = fallbackDaemon(s, "run");
    await waitPhase(s, d, "streaming");
    const cut = await cli(s, ["cutover", "--wait", "--timeout", "120"]);
    expect(cut.code, cut.stderr + daemonLogs(s)).toBe(0);
    expect(cut.stdout).toMatch(/Cut over: .*validation \(full\): equal/);
    expect(await phaseOf(s.client)).toBe("fallback");
    const w = writer(s, 5);
    await w.more(20);
    const rb = await cli(s, ["rollback", "--wait", "--validate", "full", "--timeout", "120"]);
    expect(rb.code, rb.stderr + daemonLogs(s)).toBe(0);
    expect(rb.stdout).toMatch(/Rolled back: PostgreSQL was frozen [\d.]+ ms; validation \(full\): equal; SQLite takes the application's writes again/);
    await exits0(s, d);
    // The writer went on until PostgreSQL refused it: nothing it committed is missing in SQLite.
    await waitFor("the writer refused by PostgreSQL's freeze", 30_000, () => w.refused > 0);
    await w.stop();
    expect(w.errors).toEqual([]);
    expect(w.deadlocks).toBe(0);
    expect(d.logged("deadlock")).toEqual([]);
    await expectEqual(s);
    await expectRolledBack(s);
    expect(existsSync(rollbackMarkerPath(s.path))).toBe(true);
    expect(existsSync(markerPath(s.path))).toBe(false);
    const st = await cliStatus(s.path, s.url);
    expect(st.fallback).toMatchObject({ rollback_validation: { ok: true, mode: "full" } });
    expect(st.fallback!.rollback_freeze_ms).toBeGreaterThan(0);
  });

  it("a rollback whose validation finds a difference is undone: PostgreSQL takes writes again, and the fallback goes on after a restart", async () => {
    const s = await source();
    const d = fallbackDaemon(s, "run", { args: ["--cutover"] });
    await waitPhase(s, d, "fallback");
    await pgWrites(s.client, 1);
    await waitApplied(s, d);
    // A row the capture does not see (its triggers skipped for this session): SQLite cannot have it.
    await s.client.query("BEGIN");
    await s.client.query("SET LOCAL session_replication_role = replica");
    await s.client.query("INSERT INTO log VALUES (77, 'not captured')");
    await s.client.query("COMMIT");
    const rb = await cli(s, ["rollback", "--wait"]);
    expect(rb.code, rb.stderr + daemonLogs(s)).toBe(1);
    expect(rb.stderr).toMatch(/ROLLBACK_REFUSED.*found differences in log/);
    expect(await d.waitExit(60_000), daemonLogs(s)).toEqual({ code: 1, signal: null });
    expect(d.logged("rollback undone after")).toHaveLength(1);
    // Nothing was lost: PostgreSQL takes writes again, SQLite stays frozen, and a restart keeps following PostgreSQL.
    expect(await phaseOf(s.client)).toBe("fallback");
    expect((await s.client.query("SELECT rollback_requested_at FROM sqlite2pg.state")).rows[0].rollback_requested_at).toBeNull();
    expect(() => sqliteWrite(s.path)).toThrow(FROZEN_MESSAGE);
    const again = fallbackDaemon(s, "again");
    await pgWrites(s.client, 2, true); // the TRUNCATE copies the keyless table whole: the stray row is gone on both sides
    await waitPhase(s, again, "fallback");
    await waitApplied(s, again);
    await expectEqual(s);
    const fin = await cli(s, ["finish", "--wait"]);
    expect(fin.code, fin.stderr + daemonLogs(s)).toBe(0);
    await exits0(s, again);
  });

  it("SIGUSR1 to the daemon rolls back the same way", async () => {
    const s = await source();
    const d = fallbackDaemon(s, "run", { args: ["--cutover"] });
    await waitPhase(s, d, "fallback");
    const w = writer(s, 4);
    await w.more(20);
    d.kill("SIGUSR1");
    await exits0(s, d);
    expect(d.logged("rollback request recorded in the state")).toHaveLength(1);
    await w.stop();
    expect(w.errors).toEqual([]);
    expect(w.deadlocks).toBe(0);
    expect(d.logged("deadlock")).toEqual([]);
    await expectEqual(s);
    await expectRolledBack(s);
  });

  it("`sqlite2pg rollback` with no daemon running carries it out in process; then `init --drop-existing` and `run` start a later attempt", async () => {
    const s = await source();
    const d = fallbackDaemon(s, "run", { args: ["--cutover"] });
    await waitPhase(s, d, "fallback");
    for (let i = 0; i < 5; i++) await pgWrites(s.client, i, i === 3);
    await waitApplied(s, d);
    d.kill("SIGTERM");
    await exits0(s, d);
    expect(await phaseOf(s.client)).toBe("fallback"); // stopped, not finished: the way back stays open
    for (let i = 5; i < 10; i++) await pgWrites(s.client, i, i === 7); // written while no daemon runs
    const rb = await cli(s, ["rollback"]);
    expect(rb.code, rb.stderr).toBe(0);
    expect(rb.stdout).toMatch(/No daemon is running: carrying out the rollback in this process/);
    expect(rb.stdout).toMatch(/Rolled back: .*validation \(counts\): equal/);
    await expectEqual(s);
    await expectRolledBack(s);

    // A later attempt: the application writes to SQLite, the migration starts afresh.
    sqliteWrite(s.path);
    expect(await cliStatus(s.path, s.url)).toMatchObject({ phase: "rolled-back", file_problem: null, lag_changes: 0 });
    const early = await cli(s, ["cutover"]);
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(/rolled back to SQLite[\s\S]*init --drop-existing/);
    const init = await cli(s, ["init", "--drop-existing"]);
    expect(init.code, init.stderr).toBe(0);
    expect(await phaseOf(s.client)).toBe("new");
    const again = fallbackDaemon(s, "again");
    await waitPhase(s, again, "streaming");
    sqliteWrite(s.path);
    await waitFor("streaming caught up", 60_000, async () => (await cliStatus(s.path, s.url)).lag_changes === 0);
    await expectEqual(s);
    again.kill("SIGUSR2");
    await waitPhase(s, again, "fallback");
    expect(existsSync(markerPath(s.path))).toBe(true);
    expect(existsSync(rollbackMarkerPath(s.path))).toBe(false); // the earlier rollback's marker no longer speaks for the file
    for (let i = 10; i < 13; i++) await pgWrites(s.client, i);
    const fin = await cli(s, ["finish", "--wait"]);
    expect(fin.code, fin.stderr + daemonLogs(s)).toBe(0);
    await exits0(s, again);
    expect(await phaseOf(s.client)).toBe("done");
    await expectEqual(s);
  });
});
