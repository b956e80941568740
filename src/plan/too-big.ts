/**
 * A value too big to read: better-sqlite3 caps a value at V8's longest
 * string (about 512 MiB), and SQLite answers SQLITE_TOOBIG for a bigger one
 * another program wrote. Retrying never helps, and the error names nothing:
 * this turns it into a typed error naming table, column and key.
 */
import type BetterSqlite3 from "better-sqlite3";
import { sourceError, type Sqlite2pgError } from "../errors.js";
import { keyOf, renderKey, type TablePlan } from "./plan.js";
import { quoteIdent } from "../ident.js";

/** Whether an error says a value was too big for a string or a read. */
function isTooBig(e: unknown): boolean {
  const err = e as { code?: string; message?: string } | null;
  if (err?.code === "SQLITE_TOOBIG" || err?.code === "ERR_STRING_TOO_LONG") return true;
  return e instanceof RangeError && /string length|buffer/i.test(err?.message ?? "");
}

/**
 * The typed error for a value too big to read, naming the biggest value of
 * the table (found by its stored size, `octet_length()`, which reads no
 * content); null when `e` is another error.
 */
function tooBigError(db: BetterSqlite3.Database, t: TablePlan, e: unknown): Sqlite2pgError | null {
  if (!isTooBig(e)) return null;
  const key = keyOf(t.source);
  const from = `main.${quoteIdent(t.source.name)}`;
  let worst: { column: string; bytes: number; key: string } | null = null;
  for (const c of t.columns) {
    const q = quoteIdent(c.source.name);
    const r = db
      .prepare(`SELECT ${key.sql}, octet_length(${q}) FROM ${from} WHERE octet_length(${q}) IS NOT NULL ORDER BY octet_length(${q}) DESC LIMIT 1`)
      .raw(true)
      .safeIntegers(true)
      .get() as unknown[] | undefined;
    if (!r) continue;
    const bytes = Number(r[key.names.length]);
    if (!worst || bytes > worst.bytes) worst = { column: c.source.name, bytes, key: renderKey(key.names, r.slice(0, key.names.length)) };
  }
  const where = worst ? `column ${worst.column}, ${worst.key}: a value of ${worst.bytes} bytes` : "a value";
  return sourceError(
    "VALUE_TOO_BIG",
    `table ${t.source.name}, ${where} is too big to read (${(e as Error).message}): this reader holds a value of at most about 512 MiB, and Postgres takes at most 1 GB in one COPY line`,
    {
      context: { table: t.source.name, ...(worst ? { column: worst.column, key: worst.key, value: `${worst.bytes} bytes` } : {}) },
      hint: "store such a value outside the database (a file, object storage) or split it; the change stays in the changelog and applies once the value is smaller",
      cause: e,
    },
  );
}

/** Run a read of table `t`, turning a too-big value into {@link tooBigError}. */
export function readNamed<T>(db: BetterSqlite3.Database, t: TablePlan, read: () => T): T {
  try {
    return read();
  } catch (e) {
    throw tooBigError(db, t, e) ?? e;
  }
}
