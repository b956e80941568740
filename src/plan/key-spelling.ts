/**
 * Keys are identity. SQLite compares a key by its text (or its number), so
 * '2024-01-01 10:00:00' and '2024-01-01T10:00:00' are two keys; a
 * conversion that maps both to one Postgres value (a timestamp, a boolean)
 * would make them one row there, and a delete of one would delete the
 * other. A key column keeps such a conversion only while every value is in
 * the one spelling the conversion renders back; this names the values that
 * are not.
 */
import type { SourceTable } from "../sqlite/schema.js";
import type { EncodeColumn } from "./types.js";

/**
 * The one spelling of a timestamp Postgres renders back (as
 * convert/conversions.ts pgTimestampText writes it): a space, seconds, and
 * a fraction of at most microseconds without trailing zeros.
 */
const CANONICAL_TIMESTAMP = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{0,5}[1-9])?$/;

/**
 * Why a key value is not in the one spelling its column's conversion
 * renders back (so another SQLite key could map to the same Postgres
 * value), or null when it is — or when the column's conversion is
 * injective anyway (numbers, dates, epoch and julian instants), or the
 * value is of a kind the column's own checks refuse.
 */
export function keySpellingProblem(v: unknown, c: Pick<EncodeColumn, "kind" | "conversion">): string | null {
  if (v === null || v === undefined) return null;
  if (c.conversion === "boolean") {
    if (v === 0 || v === 1 || v === 0n || v === 1n) return null;
    return "a boolean key spelled as a word: SQLite keeps it apart from 1/0 and the other spellings of the same truth value, Postgres would make them one key";
  }
  if (c.conversion !== "none" || typeof v !== "string") return null;
  if (c.kind === "timestamp" && !CANONICAL_TIMESTAMP.test(v))
    return "a key timestamp not spelled as Postgres renders it back ('YYYY-MM-DD HH:MM:SS', a fraction without trailing zeros): SQLite keeps two spellings of one time as two keys, Postgres would make them one";
  if (c.kind === "timestamptz") return "a key timestamp with a zone: SQLite keeps each spelling of an instant as its own key, Postgres would make them one";
  return null;
}

/** Whether a key column's type conflates spellings SQLite keeps apart, so its values need {@link keySpellingProblem}. */
export function keySpellingMatters(c: Pick<EncodeColumn, "kind" | "conversion">): boolean {
  return c.conversion === "boolean" || (c.conversion === "none" && (c.kind === "timestamp" || c.kind === "timestamptz"));
}

/** Columns whose values are keys: the primary key, and the column terms of every unique index or constraint. */
export function uniqueKeyColumns(t: SourceTable): Set<string> {
  const out = new Set(t.primaryKey);
  for (const ix of t.indexes) if (ix.unique) for (const x of ix.terms) if (x.column !== null) out.add(x.column);
  return out;
}

/**
 * The first key column of a table planned by an older version, which typed
 * it with a conversion that makes several spellings one value without
 * marking it {@link EncodeColumn.keyExact}: such a table is planned and
 * copied again (after which its key is exact, or text). Null when none.
 */
export function unmarkedKeySpelling(t: { source: SourceTable; columns: (EncodeColumn & { source: { name: string } })[] }): string | null {
  const keys = uniqueKeyColumns(t.source);
  return t.columns.find((c) => keys.has(c.source.name) && keySpellingMatters(c) && !c.keyExact)?.source.name ?? null;
}
