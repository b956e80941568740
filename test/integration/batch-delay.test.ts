/**
 * The wait between batches while streaming (ReplicatorOptions.batchDelayMs,
 * `--batch-delay-ms`): a steady stream of commits is applied in batches that
 * gather that long's changes, Postgres still ends exact, and neither a stop
 * nor a cutover ever waits for the delay to run out.
 */
import type Database from "better-sqlite3";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { Phase } from "../../src/replication/phase.js";
import { compareDatabases } from "../helpers/compare.js";
import { cleanup } from "../helpers/db.js";
import { waitFor } from "../helpers/daemon.js";
import { liveSource, stopReplicators } from "../helpers/source.js";

afterEach(async () => {
  await stopReplicators();
  await cleanup();
});

const SCHEMA = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL, n INTEGER NOT NULL);";
const SEED = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200) INSERT INTO t (v, n) SELECT 'row ' || i, i FROM s;";

/** `n` single-row commits (autocommit), as an application makes them. */
function updates(app: Database.Database, n: number, from = 0): void {
  const up = app.prepare("UPDATE t SET n = n + 1, v = ? WHERE id = ?");
  for (let i = 0; i < n; i++) up.run(`v${from + i}`, 1 + ((from + i) % 200));
}

/** A streaming daemon, run by its own loop, counting the changes of each batch it commits. */
async function streaming(batchDelayMs: number) {
  const batches: number[] = [];
  const s = await liveSource(SCHEMA, {
    rows: SEED,
    options: { pollIntervalMs: 20, watch: true, batchSize: 10_000, batchDelayMs, events: { applied: (n) => batches.push(n) } },
  });
  const running = s.rep.run();
  await waitFor("streaming", 60_000, () => s.rep.live().phase === Phase.streaming);
  batches.length = 0; // the snapshot's and catch-up's batches are not what is measured
  return { ...s, running, batches };
}

/**
 * A daemon waiting a minute between batches, in that wait: one lone change
 * applied at once (the daemon was idle), then `n` more commits held by it.
 */
async function holding(n: number) {
  const s = await streaming(60_000);
  updates(s.db, 1);
  await waitFor("the lone change applied", 30_000, () => s.rep.live().lag_changes === 0);
  expect(s.batches).toEqual([1]);
  updates(s.db, n, 1);
  await sleep(300);
  expect(s.rep.live().lag_changes).toBe(n);
  expect(s.batches).toEqual([1]);
  return s;
}

/** Whether `p` settles within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true), sleep(ms).then(() => false)]);
}

describe("the wait between batches while streaming", () => {
  it("gathers a steady stream of commits into batches at most one per delay, and Postgres ends exact", async () => {
    const DELAY = 400;
    const s = await streaming(DELAY);
    const t0 = performance.now();
    // 30 bursts of 10 commits, 20 ms apart: a steady stream, never idle for long.
    for (let b = 0; b < 30; b++) {
      updates(s.db, 10, b * 10);
      await sleep(20);
    }
    await waitFor("lag 0", 60_000, () => s.rep.live().lag_changes === 0);
    const elapsed = performance.now() - t0;
    s.rep.requestStop();
    await s.running;
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
    // Every commit applied, in batches that each waited the delay after the one before:
    // at most one per DELAY ms of the run (a slower machine only makes the run longer).
    expect(s.batches.reduce((a, n) => a + n, 0)).toBe(300);
    expect(s.batches.length).toBeLessThanOrEqual(Math.ceil(elapsed / DELAY) + 1);
    // and a batch gathered more than one burst.
    expect(Math.max(...s.batches)).toBeGreaterThan(10);
  });

  it("applies a change that comes alone at once, then holds the next ones for the delay; a stop does not wait for it", async () => {
    // The daemon was idle: the lone change is applied as soon as its commit is seen; the next
    // commits wait for the delay (a minute here), still not applied a while later.
    const s = await holding(5);
    // A stop ends the wait: the loop returns long before the minute is up.
    s.rep.requestStop();
    expect(await settlesWithin(s.running, 20_000)).toBe(true);
  });

  it("follows a new setting at once (SIGHUP): a wait under the old one ends, and the held changes are applied", async () => {
    const s = await holding(4);
    s.rep.configure({ batchDelayMs: 0 });
    await waitFor("the held changes applied", 30_000, () => s.rep.live().lag_changes === 0);
    s.rep.requestStop();
    await s.running;
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
  });

  it("starts a cutover asked for during the wait at once, with every change applied", async () => {
    const s = await holding(7);
    await s.rep.requestCutover();
    // Cut over well before the minute's delay is up: the request ended the wait.
    await waitFor("the cutover", 30_000, () => s.rep.current.phase === Phase.cutOver || s.rep.current.phase === Phase.fallback);
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
    s.rep.requestStop();
    await s.running;
  });
});
