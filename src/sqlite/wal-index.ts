/**
 * The WAL-index header of a SQLite file in WAL mode, read from its `-shm`
 * file (the format is SQLite's, "WAL-Index Format" in its file-format
 * documentation): two copies of a 48-byte header — a change counter
 * bumped by every commit, the frame count, the salts and checksums — then
 * the checkpoint info, whose first word says how many frames are already
 * in the database file. Integers are in the machine's byte order.
 *
 * Read with plain reads of the first 100 bytes, no lock: what is read may
 * be mid-update, so it only ever decides when to look (wake the daemon, or
 * ask SQLite for a checkpoint), never what is true of the data.
 */
import { fstatSync, openSync, readSync, statSync } from "node:fs";
import { endianness } from "node:os";

/** The WAL-index header's version SQLite writes (WALINDEX_MAX_VERSION). */
const WAL_INDEX_VERSION = 3007000;
/** Bytes read: the two header copies, then the checkpoint info's nBackfill. */
const HEAD_BYTES = 100;
/** One copy of the header: what changes with every commit. */
export const WAL_HEADER_BYTES = 48;

/** Frames in the WAL and how many of them are already in the database file; null when `head` is not an initialised WAL index. */
export function walFrames(head: Buffer): { frames: number; backfilled: number } | null {
  const u32 = (at: number) => (endianness() === "LE" ? head.readUInt32LE(at) : head.readUInt32BE(at));
  // iVersion, then isInit (byte 12) — the same in both copies once the index is built.
  if (u32(0) !== WAL_INDEX_VERSION || head[12] !== 1 || u32(48) !== WAL_INDEX_VERSION) return null;
  return { frames: u32(16), backfilled: u32(96) };
}

/**
 * Open descriptors of `-shm` files, by path: opened once and never closed.
 * Closing any descriptor of a file drops every POSIX lock this process
 * holds on it — SQLite's own locks on the `-shm` file included, for every
 * connection of this process. A file put in place of one (another inode)
 * gets a descriptor of its own; the old one stays open.
 */
const shmFds = new Map<string, number>();

function shmFd(path: string): number {
  const ino = statSync(path).ino;
  let fd = shmFds.get(path);
  if (fd === undefined || fstatSync(fd).ino !== ino) {
    fd = openSync(path, "r");
    shmFds.set(path, fd);
  }
  return fd;
}

/** The first 100 bytes of the `-shm` file at `shmPath`; null when there is none (another journal mode, or no connection has opened the WAL yet). */
export function readWalIndex(shmPath: string): Buffer | null {
  const head = Buffer.alloc(HEAD_BYTES);
  try {
    return readSync(shmFd(shmPath), head, 0, HEAD_BYTES, 0) < HEAD_BYTES ? null : head;
  } catch {
    return null;
  }
}

/** Frames in the WAL and how many are in the database file already, from the `-shm` file at `shmPath`; null when there is none to read. */
export function readWalFrames(shmPath: string): { frames: number; backfilled: number } | null {
  const head = readWalIndex(shmPath);
  return head ? walFrames(head) : null;
}
