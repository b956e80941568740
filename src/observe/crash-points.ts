/**
 * Named fault points for crash tests: `SQLITE2PG_CRASH_AT=<name>` makes the
 * process stop itself with SIGKILL — exactly like `kill -9`, no cleanup, no
 * flush — the moment it passes that point; `SQLITE2PG_CRASH_AFTER=<n>`
 * (default 1) lets it pass n − 1 times first. A test then knows where the
 * process died instead of hoping a random kill landed there.
 *
 * A line `sqlite2pg crash point <name> (pass n)` is written to stderr
 * synchronously just before, so a test can check the process died there.
 * Without the variable a point costs one string comparison.
 */
import { writeSync } from "node:fs";

/** Every point, where it is, in the order a migration passes them. */
const CRASH_POINTS = {
  /** snapshot.ts: a chunk and its progress committed in Postgres. */
  snapshotChunkCommitted: "snapshot-chunk-committed",
  /** replicator.ts: keys and indexes built, the transaction not yet committed. */
  keyBuild: "key-build",
  /** replicator.ts: a catch-up batch committed in Postgres. */
  catchUpBatchCommitted: "catch-up-batch-committed",
  /** stream.ts: a batch's rows written in Postgres, before its COMMIT. */
  streamBeforeCommit: "stream-before-commit",
  /** stream.ts: a batch committed in Postgres. */
  streamAfterCommit: "stream-after-commit",
  /** capture.ts: one chunk of the changelog pruned, the rest not yet. */
  pruneChunk: "prune-chunk",
  /** capture.ts: inside the transaction that (re)installs the changelog and triggers. */
  captureInstall: "capture-install",
  /** cutover.ts: the steps of the cutover. */
  beforeFreeze: "before-freeze",
  afterFreeze: "after-freeze",
  draining: "draining",
  beforeCommit: "before-commit",
  afterCommit: "after-commit",
  /** cutover.ts: the --on-cutover command started, its result not yet recorded. */
  hookRunning: "hook-running",
  /** fallback: a batch written in SQLite, its changes not yet deleted in Postgres. */
  fallbackApplied: "fallback-applied",
  /** fallback: Postgres frozen for the rollback (committed), nothing drained yet. */
  rollbackFrozen: "rollback-frozen",
  /** fallback: one batch of the rollback's drain written in SQLite. */
  rollbackDraining: "rollback-draining",
  /** fallback: the rollback committed in Postgres, SQLite still frozen. */
  rollbackCommitted: "rollback-committed",
  /** fallback: SQLite takes writes again, the --on-rollback command not yet run. */
  rollbackUnfrozen: "rollback-unfrozen",
  /** fallback: `finish`'s SQLite side done, Postgres not yet committed. */
  finishing: "finishing",
} as const;
export type CrashPointName = (typeof CRASH_POINTS)[keyof typeof CRASH_POINTS];

let passes = 0;

/** Stop the process like `kill -9` here if the environment names this point. */
export function crashPoint(name: CrashPointName): void {
  const at = process.env.SQLITE2PG_CRASH_AT;
  if (at !== name) return;
  const after = Math.max(1, Number(process.env.SQLITE2PG_CRASH_AFTER ?? 1) || 1);
  if (++passes < after) return;
  try {
    writeSync(2, `sqlite2pg crash point ${name} (pass ${passes})\n`);
  } catch {
    /* stderr closed: die anyway */
  }
  process.kill(process.pid, "SIGKILL");
}
