/**
 * The SQLite file the daemon replicates, as connections and an identity.
 *
 * A file put in place of the one the daemon opened (a backup restored by
 * rename, the file recreated) is not seen through the open connections:
 * they still read the old one. {@link fileIdentity} (device and inode) tells
 * that the path names another file; the daemon then reopens, and the
 * checkpoint check of the next read tells whether it is the same database
 * (see ChangelogReader.verifyCheckpoint).
 */
import type BetterSqlite3 from "better-sqlite3";
import { statSync } from "node:fs";
import { sourceError, usageError } from "../errors.js";
import { captureInfo, ChangelogReader } from "../sqlite/capture.js";
import { openSource } from "../sqlite/open.js";

/** The open file: a reading and a writing connection, its changelog, and which file they are. */
export interface OpenedSource {
  db: BetterSqlite3.Database;
  writer: BetterSqlite3.Database;
  changelog: ChangelogReader;
  sourceId: string;
  /** Device and inode of the file the connections have open. */
  fileId: string;
}

/** Device and inode of the file at `path` now; a typed error when it is gone. */
export function fileIdentity(path: string): string {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch (e) {
    throw sourceError("SQLITE_NOT_FOUND", `the SQLite file ${path} is gone: ${(e as Error).message}`, { context: { sqlite: path }, cause: e });
  }
}

/** Open the reading and the writing connection to the file, and remember which file they are. */
export function openReplicatedSource(path: string): OpenedSource {
  const db = openSource(path);
  const info = captureInfo(db);
  if (!info) {
    db.close();
    throw usageError("NOT_INITIALISED", `change capture is not installed in ${path}`, { hint: "run `sqlite2pg init --sqlite … --pg …` first" });
  }
  const writer = openSource(path, { readonly: false });
  // Pruning waits for the application's write lock only briefly (it blocks
  // this loop meanwhile), then tries again later.
  writer.pragma("busy_timeout = 50");
  const st = statSync(path);
  return { db, writer, changelog: new ChangelogReader(db), sourceId: info.sourceId, fileId: `${st.dev}:${st.ino}` };
}

/** The source id `init` stored in the file; a usage error before `init` (the commands that name a source). */
export function sourceIdOf(sqlite: string): string {
  const db = openSource(sqlite);
  try {
    const id = captureInfo(db)?.sourceId;
    if (!id) throw usageError("NOT_INITIALISED", `change capture is not installed in ${sqlite}`, { hint: "run `sqlite2pg init --sqlite … --pg …` first" });
    return id;
  } finally {
    db.close();
  }
}
