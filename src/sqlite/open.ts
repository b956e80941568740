import Database from "better-sqlite3";
import { existsSync } from "node:fs";
import { sourceError } from "../errors.js";

/** Open the SQLite file for reading. The application keeps writing; we only read. */
export function openSource(path: string, opts: { readonly?: boolean } = {}): Database.Database {
  if (!existsSync(path)) {
    throw sourceError("SQLITE_NOT_FOUND", `SQLite file not found: ${path}`, {
      context: { sqlite: path },
      hint: 'check --sqlite (or SQLITE2PG_SQLITE, or "sqlite" in the config file): it must name the application\'s existing database file',
    });
  }
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: opts.readonly ?? true, fileMustExist: true });
    db.pragma("busy_timeout = 10000");
    db.prepare("SELECT count(*) FROM sqlite_schema").get();
  } catch (e) {
    const code = (e as { code?: string }).code ?? "";
    if (opts.readonly === false && /^SQLITE_(READONLY|CANTOPEN|PERM)/.test(code)) {
      throw sourceError("SQLITE_NOT_WRITABLE", `cannot open ${path} for writing (${code}): ${(e as Error).message}`, {
        context: { sqlite: path },
        cause: e,
        hint: "run as the user the application runs as (the owner of the file), or give this user write access to the file and its directory (SQLite creates -wal and -shm files beside it)",
      });
    }
    throw sourceError("SQLITE_OPEN", `cannot read ${path} as a SQLite database: ${(e as Error).message}`, {
      context: { sqlite: path },
      cause: e,
    });
  }
  return db;
}
