import type { Logger } from "../observe/logger.js";
import type { DaemonEvents } from "../observe/events.js";
import type { CutoverOptions } from "./cutover.js";

/** Options of the daemon. */
export interface ReplicatorOptions {
  sqlite: string;
  pg: string | undefined;
  log: Logger;
  /** Fallback poll interval when no WAL change is seen; 0 disables the timer (tests call `streamOnce`). */
  pollIntervalMs?: number;
  /** Changes per batch. */
  batchSize?: number;
  /**
   * While streaming, after a batch that took everything there was, wait
   * this long (ms) before reading the next one (default 25; 0 reads it at
   * once); a stop, a request for the cutover or the way back, or a new
   * setting ends the wait. Under a steady stream of commits, batches then
   * gather the changes of that long instead of the few that arrived while
   * the last one was applied: fewer, larger transactions, each with its
   * fixed cost (a SQLite read transaction and six round trips to
   * Postgres). A change that comes after a quiet spell is applied as soon
   * as it is seen, as before.
   */
  batchDelayMs?: number;
  /** Rows per snapshot chunk. */
  chunkRows?: number;
  /**
   * How often applied changes are pruned from the changelog, in ms (default
   * 60 000). Each prune is a write to the application's file: a deferred
   * transaction of the application that read before it and writes after it
   * fails with SQLITE_BUSY, so pruning is rare and done in one short
   * transaction. It also runs when `pruneBacklog` applied changes wait.
   */
  pruneIntervalMs?: number;
  /**
   * Frames waiting in the application's WAL at which the daemon runs a
   * PASSIVE checkpoint itself (default 500, half SQLite's automatic
   * threshold), so the application's commits do not pay for checkpoints;
   * 0 leaves them to the application (checkpoint.ts).
   */
  checkpointFrames?: number;
  /** Applied changes that trigger a prune before the interval is up (default 500 000). */
  pruneBacklog?: number;
  /** Bytes of rows per batch (default 32 MiB; always at least one change): a batch ends early once its rows pass it. */
  batchBytes?: number;
  /** Bytes of rows per snapshot chunk (default 32 MiB; always at least one row). */
  chunkBytes?: number;
  fixText?: boolean;
  /** Wake up at once on a commit (the WAL-index header read every 10 ms, wal-watch.ts), not only at the poll. */
  watch?: boolean;
  /** How the cutover validates, and the command it runs after. */
  cutover?: CutoverOptions;
  /** Shell command run after a rollback (--on-rollback). */
  onRollback?: string;
  /** Called once this process is the active daemon (holds the source's lock): the CLI writes its pid file then. */
  onActive?: () => void;
  /** What the daemon reports as it goes, for the metrics and the service manager. */
  events?: DaemonEvents;
}

/** The options a running daemon takes anew (SIGHUP): see Replicator.configure. */
export type ReplicatorTunables = Pick<
  ReplicatorOptions,
  | "pollIntervalMs"
  | "batchSize"
  | "batchDelayMs"
  | "chunkRows"
  | "batchBytes"
  | "chunkBytes"
  | "pruneIntervalMs"
  | "checkpointFrames"
  | "cutover"
  | "onRollback"
>;
