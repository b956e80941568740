/**
 * When applied changes are pruned from the changelog. Why rarely: every
 * prune commits a write to the application's file, and an application
 * transaction that began reading before that commit and writes after it
 * fails with SQLITE_BUSY (SQLite cannot upgrade a stale read snapshot; no
 * busy timeout helps). One short transaction per interval keeps that to a
 * handful per hour; writers that use BEGIN IMMEDIATE only wait (the
 * transaction holds the lock for milliseconds).
 */
import type BetterSqlite3 from "better-sqlite3";
import type { Logger } from "../observe/logger.js";
import { pruneChanges } from "../sqlite/capture.js";

/** Changelog rows one prune transaction deletes at most: a few tens of milliseconds of the write lock. */
const PRUNE_CHUNK = 200_000;

/** The prune schedule: an interval, or sooner when a backlog of applied changes waits. */
export class PruneSchedule {
  /** When the next prune is due (ms since the epoch), and the checkpoint the last one pruned below. */
  private nextPrune: number;
  private prunedBelow = 0;

  constructor(
    private intervalMs: number,
    private readonly backlog: number,
    private readonly log: Logger,
  ) {
    this.nextPrune = Date.now() + intervalMs;
  }

  /** A new interval (SIGHUP): due at once if the new interval has passed since the last prune was planned. */
  setInterval(ms: number): void {
    this.nextPrune = Math.min(this.nextPrune, Date.now() + ms);
    this.intervalMs = ms;
  }

  /** Prune what is applied (below `applied`) when the interval is up or the backlog is large. */
  maybe(writer: BetterSqlite3.Database, applied: number): void {
    if (applied <= this.prunedBelow) return;
    const now = Date.now();
    if (now < this.nextPrune && applied - this.prunedBelow < this.backlog) return;
    const r = pruneChanges(writer, applied, PRUNE_CHUNK);
    // The application held the write lock: try again in a few seconds, not at the next batch.
    this.nextPrune = now + (r.busy ? Math.min(this.intervalMs, 3000) : this.intervalMs);
    if (!r.busy && r.done) this.prunedBelow = applied;
    if (r.deleted) this.log.debug({ deleted: r.deleted, below: applied, busy: r.busy }, "pruned applied changes");
  }
}
