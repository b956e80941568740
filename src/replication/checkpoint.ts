/**
 * The daemon checkpoints the application's WAL, so the application's own
 * commits do not.
 *
 * SQLite checkpoints from the commit that finds the WAL holding
 * `wal_autocheckpoint` frames (1000 by default): that commit copies the
 * frames into the database file and waits for two fsyncs. The capture
 * triggers make every single-row commit write one more page (the
 * changelog's), so the WAL fills twice as fast and the application's
 * commits pay for twice as many checkpoints — which is most of what capture
 * costs a single-row update (bench/RESULTS.md, "Capture cost"). The daemon
 * watches how many frames wait (the WAL-index header in the `-shm` file,
 * wal-index.ts) and runs a PASSIVE checkpoint on its own
 * connection once 500 frames wait, so the frames are copied, and the
 * fsyncs waited for, in this process. An application commit that then
 * reaches its own threshold finds little or nothing left to copy (with
 * nothing left, a checkpoint does no fsync), and the first commit after a
 * checkpoint that caught up with the last commit starts the WAL over.
 * Under writes that never pause, a checkpoint in another process rarely
 * catches up exactly, so the WAL starts over less often than the
 * application's own checkpoints would make it; an application that never
 * checkpoints (`wal_autocheckpoint = 0`) and never pauses sees its WAL
 * grow as it would without the daemon.
 *
 * A PASSIVE checkpoint is what SQLite's automatic one is: it takes no lock
 * a writer or reader waits for, never changes what any transaction sees,
 * and stops where a reader still needs the WAL. An application that
 * checkpoints on its own schedule meets the daemon's checkpoints as it
 * would any other connection's: one runs at a time, and one asked for while
 * another runs reports busy (`PRAGMA wal_checkpoint` returns busy = 1, no
 * error) and can be asked for again.
 */
import type BetterSqlite3 from "better-sqlite3";
import type { Logger } from "../observe/logger.js";
import { readWalFrames } from "../sqlite/wal-index.js";

/**
 * Frames waiting in the WAL that start the daemon's checkpoint: half of
 * SQLite's default `wal_autocheckpoint` (1000), so the daemon gets there
 * first with room to spare at thousands of commits a second.
 */
export const DEFAULT_CHECKPOINT_FRAMES = 500;

/** Checkpoints the file when enough frames wait (see the module's comment). */
export class WalCheckpointer {
  /** Checkpoints run, and frames they copied into the database file. */
  checkpoints = 0;
  framesCopied = 0;

  constructor(
    private readonly shmPath: string,
    /** Frames waiting in the WAL that start a checkpoint; 0 never does. */
    public frames: number,
    private readonly log: Logger,
  ) {}

  /**
   * Checkpoint on `writer` when `frames` or more wait; returns what it did,
   * or null when nothing was due (or the `-shm` file could not be read: no
   * WAL yet, another journal mode).
   */
  maybe(writer: BetterSqlite3.Database): { busy: boolean; frames: number; copied: number } | null {
    if (this.frames <= 0) return null;
    const now = readWalFrames(this.shmPath);
    if (!now || now.frames - Math.min(now.backfilled, now.frames) < this.frames) return null;
    const [r] = writer.pragma("wal_checkpoint(PASSIVE)") as { busy: number; log: number; checkpointed: number }[];
    if (!r) return null;
    const copied = Math.max(0, r.checkpointed - Math.min(now.backfilled, r.checkpointed));
    this.checkpoints++;
    this.framesCopied += copied;
    this.log.debug({ frames: r.log, checkpointed: r.checkpointed, busy: r.busy === 1 }, "checkpointed the WAL");
    return { busy: r.busy === 1, frames: r.log, copied };
  }
}
