/**
 * Wake the daemon when the application commits, so a change is applied at
 * once instead of at the next poll: every commit changes the WAL-index
 * header (its change counter, frame count and checksums), and reading its
 * 48 bytes from the `-shm` file every 10 ms costs next to nothing, however
 * fast the application writes.
 *
 * Why not a watch on the `-wal` file: inotify sends an event for each of
 * the application's writes, and at 30,000 commits a second the process
 * handling them spent 58 % of a core on that alone (bench/RESULTS.md),
 * taking the CPU from the application it replicates; it also passed on at
 * most one change every 50 ms.
 */
import { readWalIndex, WAL_HEADER_BYTES } from "../sqlite/wal-index.js";

/** How often the header is read, ms. */
const WATCH_MS = 10;

/** A running watch; `close` stops it. */
export interface WalWatch {
  close(): void;
}

/** Call `nudge` whenever the file's WAL-index header changes (a commit); close the returned watch to stop. */
export function watchWal(sqlite: string, nudge: () => void, everyMs = WATCH_MS): WalWatch {
  const shm = `${sqlite}-shm`;
  let last: Buffer | null = null;
  const timer = setInterval(() => {
    const head = readWalIndex(shm)?.subarray(0, WAL_HEADER_BYTES) ?? null;
    if (head && last && !head.equals(last)) nudge();
    if (head) last = head;
  }, everyMs);
  timer.unref();
  return { close: () => clearInterval(timer) };
}
