import type BetterSqlite3 from "better-sqlite3";
import { hash } from "node:crypto";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import type pg from "pg";
import type { ColumnPlan, MigrationPlan, TablePlan } from "../plan/plan.js";
import { qualified, quoteIdent } from "../ident.js";
import { ChunkReader } from "../sqlite/reader.js";
import { readNamed } from "../plan/too-big.js";
import { recordField } from "../convert/copy-encode.js";
import { canonicalIsBare, canonicalSql, canonicalWriter } from "../convert/canonical.js";

/**
 * An order-independent digest of a table: the row count and the sum of the
 * first 60 bits of md5(row text) over all rows, where the row text is the
 * record of each value's canonical text (canonical.ts): SQLite's side from
 * the raw values read, in this process; Postgres' side rendered back from
 * the stored values by the inverse of each conversion, on the server in one
 * aggregate query. Equal digests mean equal tables, in any row order,
 * duplicates counted — and a lossy conversion cannot hide in both.
 */
export interface Digest {
  rows: number;
  sum: bigint;
}

/** Accumulates a {@link Digest}, row by row. */
export class DigestBuilder {
  private rows = 0;
  private hi = 0;
  private lo = 0;
  private pending = 0;
  private sum = 0n;

  /** Add one row, given as its Postgres record text. */
  add(record: string): void {
    const h = hash("md5", record, "hex");
    this.hi += parseInt(h.slice(0, 7), 16); // 28 bits
    this.lo += parseInt(h.slice(7, 15), 16); // 32 bits
    this.rows++;
    // Flush before the Number sums could pass 2^53.
    if (++this.pending === 1 << 20) this.flush();
  }

  /** Merge another builder's rows (a range of the same table). */
  merge(d: Digest): void {
    this.flush();
    this.rows += d.rows;
    this.sum += d.sum;
  }

  private flush(): void {
    this.sum += (BigInt(this.hi) << 32n) + BigInt(this.lo);
    this.hi = 0;
    this.lo = 0;
    this.pending = 0;
  }

  digest(): Digest {
    this.flush();
    return { rows: this.rows, sum: this.sum };
  }
}

/**
 * A function giving the record text of a SQLite row (values from `offset`
 * on, one per planned column): each field the canonical text of the raw
 * value (see canonical.ts), quoted as Postgres' record output quotes it.
 */
export function rowRecorder(cols: ColumnPlan[]): (row: unknown[], offset: number) => string {
  const writers = cols.map((c) => {
    const w = canonicalWriter(c);
    return canonicalIsBare(c) ? (v: unknown) => recordFieldOrForeign(w(v)!) : (v: unknown) => recordField(w(v)!);
  });
  const n = cols.length;
  return (row, offset) => {
    let out = "(";
    for (let i = 0; i < n; i++) {
      if (i > 0) out += ",";
      const v = row[offset + i];
      if (v === null || v === undefined) continue;
      out += writers[i]!(v);
    }
    return out + ")";
  };
}

/** A bare canonical text as it is; a foreign one (`?…`, any text) quoted as needed. */
function recordFieldOrForeign(f: string): string {
  return f.charCodeAt(0) === 63 ? recordField(f) : f;
}

/** Session settings for text output in ISO form (kept for tools; the digest no longer depends on the session). */
export const CANONICAL_SESSION = "SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; SET bytea_output = 'hex'; SET extra_float_digits = 1";

/** The row text Postgres hashes: every column rendered back to the canonical text of its SQLite value. */
export function digestRowSql(t: TablePlan): string {
  return `ROW(${t.columns.map((c) => canonicalSql(`t.${quoteIdent(c.name)}`, c)).join(", ")})::text`;
}

/** Digest of a table as Postgres holds it, computed by the server. */
export async function pgDigest(
  client: pg.ClientBase,
  plan: MigrationPlan,
  t: TablePlan,
  range?: { column: string; after: bigint | null; upTo: bigint | null },
): Promise<Digest> {
  const where = range ? ` WHERE ${rangeSql(`t.${quoteIdent(range.column)}`, range)}` : "";
  const r = await client.query<{ n: string; s: string }>(
    `SELECT count(*)::text AS n, coalesce(sum(('x' || left(md5(${digestRowSql(t)}), 15))::bit(60)::bigint), 0)::text AS s FROM ${qualified(plan.schema, t.name)} AS t${where}`,
  );
  return { rows: Number(r.rows[0]!.n), sum: BigInt(r.rows[0]!.s) };
}

/**
 * Digest of a table as SQLite holds it, read in short key-ordered chunks,
 * yielding to the event loop between chunks.
 */
export async function sqliteDigest(
  db: BetterSqlite3.Database,
  t: TablePlan,
  chunkRows = 5000,
  range?: { after: bigint | null; upTo: bigint | null },
): Promise<Digest> {
  const reader = new ChunkReader(
    db,
    t,
    t.columns.map((c) => c.source.name),
    chunkRows,
    range ?? { after: null, upTo: null },
  );
  const d = new DigestBuilder();
  const record = rowRecorder(t.columns);
  const read = () => readNamed(db, t, () => reader.read());
  for (let rows = read(); rows !== null; rows = read()) {
    for (const row of rows) d.add(record(row, reader.keyWidth));
    await yieldToLoop();
  }
  return d.digest();
}

/** Whether two digests are equal. */
export function sameDigest(a: Digest, b: Digest): boolean {
  return a.rows === b.rows && a.sum === b.sum;
}

/** `col > after AND col <= upTo`, with open ends left out (bounds are integers, never data). */
export function rangeSql(col: string, r: { after: bigint | null; upTo: bigint | null }): string {
  const parts = [r.after !== null ? `${col} > ${BigInt(r.after)}` : null, r.upTo !== null ? `${col} <= ${BigInt(r.upTo)}` : null].filter(Boolean);
  return parts.length ? parts.join(" AND ") : "true";
}
