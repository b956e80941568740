/**
 * The daemon checkpoints the application's WAL before the application's own
 * commits would (checkpoint.ts): the application here never checkpoints
 * (`wal_autocheckpoint = 0`), so every frame the WAL loses is the daemon's
 * doing, and what Postgres holds stays exact throughout.
 */
import Database from "better-sqlite3";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/observe/logger.js";
import { WalCheckpointer } from "../../src/replication/checkpoint.js";
import { readWalFrames, walFrames } from "../../src/sqlite/wal-index.js";
import { watchWal } from "../../src/replication/wal-watch.js";
import { Phase } from "../../src/replication/phase.js";
import { cleanup, sqliteFrom, tempDir } from "../helpers/db.js";
import { waitFor } from "../helpers/daemon.js";
import { liveSource, stopReplicators } from "../helpers/source.js";

afterEach(async () => {
  await stopReplicators();
  await cleanup();
});

const SCHEMA = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL, n INTEGER NOT NULL);";
const SEED = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1000) INSERT INTO t (v, n) SELECT 'row ' || i, i FROM s;";

/** An application connection that leaves every checkpoint to others. */
function application(path: string): Database.Database {
  const app = new Database(path);
  app.pragma("journal_mode = WAL");
  app.pragma("synchronous = NORMAL");
  app.pragma("wal_autocheckpoint = 0");
  return app;
}

/** `n` single-row commits (autocommit), as an application makes them. */
function updates(app: Database.Database, n: number, from = 0): void {
  const up = app.prepare("UPDATE t SET n = n + 1, v = ? WHERE id = ?");
  for (let i = 0; i < n; i++) up.run(`v${from + i}`, 1 + ((from + i) % 1000));
}

describe("the WAL's frame count, read from the -shm header", () => {
  it("is what SQLite reports, and nothing for a header that is not one", () => {
    const path = sqliteFrom(tempDir(), SCHEMA);
    const app = application(path);
    app.exec(SEED);
    updates(app, 40);
    const seen = readWalFrames(`${path}-shm`)!;
    // SQLite's own count: the frames in the WAL a checkpoint reports.
    const other = new Database(path);
    const [r] = other.pragma("wal_checkpoint(PASSIVE)") as { log: number; checkpointed: number }[];
    expect(seen.frames).toBe(r!.log);
    expect(readWalFrames(`${path}-shm`)).toEqual({ frames: r!.log, backfilled: r!.checkpointed });
    expect(seen.frames).toBeGreaterThanOrEqual(40);
    expect(walFrames(Buffer.alloc(100))).toBeNull();
    expect(readWalFrames(`${path}-not-there-shm`)).toBeNull();
  });
});

describe("watchWal", () => {
  it("calls back after each commit, and never while nothing is written", async () => {
    const path = sqliteFrom(tempDir(), SCHEMA);
    const app = application(path);
    app.exec(SEED);
    let nudges = 0;
    const w = watchWal(path, () => nudges++, 5);
    try {
      await sleep(100);
      expect(nudges).toBe(0);
      for (let round = 1; round <= 3; round++) {
        updates(app, 1, round);
        await waitFor(`a nudge after commit ${round}`, 10_000, () => nudges >= round, 5);
        // The commit is over: the header no longer changes (a read torn by the commit's own write could have counted once more).
        await sleep(30);
        const seen = nudges;
        await sleep(60);
        expect(nudges).toBe(seen);
      }
    } finally {
      w.close();
      app.close();
    }
  });
});

describe("WalCheckpointer", () => {
  it("checkpoints once the threshold's frames wait, and the application's next commit starts the WAL over", () => {
    const path = sqliteFrom(tempDir(), SCHEMA);
    const app = application(path);
    app.exec(SEED);
    app.pragma("wal_checkpoint(TRUNCATE)");
    const daemon = new Database(path);
    const cp = new WalCheckpointer(`${path}-shm`, 500, silentLogger());
    updates(app, 300);
    expect(readWalFrames(`${path}-shm`)!.frames).toBeLessThan(500);
    expect(cp.maybe(daemon)).toBeNull();
    updates(app, 300, 300);
    const before = readWalFrames(`${path}-shm`)!;
    expect(before.frames).toBeGreaterThanOrEqual(500);
    const done = cp.maybe(daemon)!;
    expect(done).toMatchObject({ busy: false, frames: before.frames, copied: before.frames });
    expect(readWalFrames(`${path}-shm`)).toEqual({ frames: before.frames, backfilled: before.frames });
    // Everything is in the database file: nothing more is due.
    expect(cp.maybe(daemon)).toBeNull();
    updates(app, 1, 600);
    expect(readWalFrames(`${path}-shm`)!.frames).toBeLessThan(5);
    expect(cp.checkpoints).toBe(1);
    // 0: the application's own business.
    cp.frames = 0;
    updates(app, 600, 601);
    expect(cp.maybe(daemon)).toBeNull();
    expect(app.prepare("SELECT sum(n) FROM t").pluck().get()).toBe(500500 + 1201);
  });

  it("does nothing for a file in another journal mode", () => {
    const dir = tempDir();
    const path = `${dir}/rollback.db`;
    const db = new Database(path);
    db.exec(SCHEMA);
    db.exec(SEED);
    const cp = new WalCheckpointer(`${path}-shm`, 1, silentLogger());
    expect(cp.maybe(db)).toBeNull();
  });
});

describe("the daemon", () => {
  it("checkpoints the application's WAL when asked by hand, and not once the cutover has frozen SQLite", async () => {
    const reported: number[] = [];
    const s = await liveSource(SCHEMA, { rows: SEED, options: { checkpointFrames: 1, events: { checkpoint: (frames) => reported.push(frames) } } });
    s.db.close();
    const app = application(s.path);
    await s.exact();
    updates(app, 700);
    expect(readWalFrames(`${s.path}-shm`)!.frames).toBeGreaterThanOrEqual(700);
    const r = s.rep.checkpointWal()!;
    expect(r.copied).toBeGreaterThan(0);
    expect(reported).toEqual([r.copied]);
    updates(app, 1, 700);
    expect(readWalFrames(`${s.path}-shm`)!.frames).toBeLessThan(5);
    await s.exact();
    expect(s.rep.checkpoints.checkpoints).toBe(1);
    app.close();
    // After the cutover the application writes PostgreSQL; SQLite is frozen (and, on the way back, written by the daemon alone).
    await s.rep.cutoverNow();
    expect([Phase.cutOver, Phase.fallback]).toContain(s.rep.current.phase);
    const waiting = readWalFrames(`${s.path}-shm`)!;
    expect(waiting.frames - waiting.backfilled).toBeGreaterThanOrEqual(1);
    expect(s.rep.checkpointWal()).toBeNull();
    expect(s.rep.checkpoints.checkpoints).toBe(1);
  });

  it("keeps the WAL short while streaming an application that never checkpoints and pauses between bursts, and Postgres exact", async () => {
    const frames = async (checkpointFrames: number) => {
      const s = await liveSource(SCHEMA, { rows: SEED, options: { pollIntervalMs: 20, watch: true, batchSize: 500, checkpointFrames } });
      s.db.close();
      const app = application(s.path);
      const running = s.rep.run();
      await waitFor("streaming", 60_000, () => s.rep.live().phase === Phase.streaming);
      let most = 0;
      // 3,000 single-row commits in bursts, the daemon's timers running in between (2 frames a commit: the row's page and the changelog's).
      for (let b = 0; b < 150; b++) {
        updates(app, 20, b * 20);
        most = Math.max(most, readWalFrames(`${s.path}-shm`)!.frames);
        await sleep(1);
      }
      await waitFor("lag 0", 60_000, () => s.rep.live().lag_changes === 0);
      s.rep.requestStop();
      await running;
      const { compareDatabases } = await import("../helpers/compare.js");
      expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
      app.close();
      return { most, checkpoints: s.rep.checkpoints.checkpoints };
    };
    const off = await frames(0);
    const on = await frames(500);
    // Without the daemon's checkpoints the WAL holds every commit's frames.
    expect(off.checkpoints).toBe(0);
    expect(off.most).toBeGreaterThan(5000);
    // With them it starts over again and again (the bound leaves room for a slow machine: 500 frames is the threshold).
    expect(on.checkpoints).toBeGreaterThan(3);
    expect(on.most).toBeLessThan(off.most / 2);
  });
});
