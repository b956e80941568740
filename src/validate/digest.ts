import type BetterSqlite3 from "better-sqlite3";
import { hash } from "node:crypto";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import type pg from "pg";
import type { ColumnPlan, MigrationPlan, TablePlan } from "../plan/plan.js";
import type { EncodeColumn } from "../plan/types.js";
import { qualified, quoteIdent } from "../ident.js";
import { ChunkReader } from "../sqlite/reader.js";
import { readNamed } from "../plan/too-big.js";
import { recordField } from "../convert/copy-encode.js";
import { canonicalIsBare, canonicalSql, canonicalWriter } from "../convert/canonical.js";
import { internalError } from "../errors.js";
import { hashBytesExtended2, seedWords } from "./lookup3.js";
import { RecordWriter } from "./record-bytes.js";

/**
 * How each row is hashed, on both sides alike:
 *
 * - `lookup3`: each field's canonical text hashed on its own by
 *   `hashtextextended(text, seed)` — PostgreSQL's own hash, computed on the
 *   server and, ported exactly (lookup3.ts), in this process — under a seed
 *   of its column's own (the table seed plus the column's position), a NULL
 *   standing for a constant of its column's own; the row's hash is the XOR
 *   of its fields' hashes. Two such 64-bit row hashes per row, one per table
 *   seed; each table keeps the exact sum of each (BigInt here, numeric on
 *   the server).
 * - `md5`: the first 60 bits of md5 of the row's record text (what
 *   `ROW(…)::text` prints), one sum (the second is 0): for a server whose
 *   `hashtextextended` this process cannot reproduce (a big-endian
 *   machine), checked by {@link rowHashFor}.
 *
 * Why 2 × 64 bits is enough. Equal row counts and equal sums are read as
 * "equal tables". When tables differ, the sums still agree only if
 * Σ h(rows only in SQLite) = Σ h(rows only in Postgres) (sums are exact,
 * never wrapped) for both seeds at once. For hashes that behave as random
 * functions of the text that is a chance of about 2^-64 per seed, 2^-128
 * for the pair; one changed row, the usual case, goes unseen only if its
 * old and new values collide under both seeds. A row's hash is as good as
 * its fields': the XOR of independent random 64-bit values is one, and
 * every column hashes under its own seed, so equal values in two columns
 * do not cancel and values moved between columns change the hash. lookup3
 * is not a cryptographic hash — someone choosing texts on purpose could
 * make them collide — but it was built so that inputs a few bits apart
 * give unrelated outputs, which is what catching accidental changes needs;
 * and a seed enters the internal state before any byte of the text, so
 * texts that collide under one seed are no likelier to collide under
 * another.
 *
 * Why per field and not the record text: the server renders a record
 * (record_out quotes and escapes every field) at a greater cost than all
 * the fields' hashes; hashing the fields as they are took the server's
 * side of the benchmark's tables from 4.5 to 2.6 s, and spares this
 * process the quoting too.
 */
export type RowHash = "lookup3" | "md5";

/** The two table seeds (PCG's multiplier and increment: arbitrary, fixed, far apart in every bit). */
const SEEDS = [6364136223846793005n, 1442695040888963407n] as const;
const SEED_WORDS = Int32Array.of(...seedWords(SEEDS[0]), ...seedWords(SEEDS[1]));

/** What column `i`'s fields hash with, under both table seeds. */
interface FieldSeed {
  /** The two seeds (each table seed plus `i`) as the words hashBytesExtended2 takes. */
  words: Int32Array;
  /** The hashes a NULL stands for, as [hi, lo, hi, lo] (hi signed, lo unsigned, as hashes are summed). */
  nulls: [number, number, number, number];
  /** The same seeds and NULL hashes as SQL literals. */
  seedSql: [string, string];
  nullSql: [string, string];
}

const fieldSeeds: FieldSeed[] = [];

/** The seeds of column `i` (computed once per position). */
function fieldSeed(i: number): FieldSeed {
  for (let k = fieldSeeds.length; k <= i; k++) {
    const seeds = [BigInt.asIntN(64, SEEDS[0] + BigInt(k)), BigInt.asIntN(64, SEEDS[1] + BigInt(k))] as const;
    // An arbitrary fixed value per column and seed (the seed times the golden ratio's 64 bits): a text hashes to it with a chance of 2^-64.
    const nulls = seeds.map((s) => BigInt.asIntN(64, s * 0x9e3779b97f4a7c15n));
    const words = (x: bigint) => [Number(BigInt.asIntN(32, x >> 32n)), Number(BigInt.asUintN(32, x))] as const;
    fieldSeeds.push({
      words: Int32Array.of(...seedWords(seeds[0]), ...seedWords(seeds[1])),
      nulls: [...words(nulls[0]!), ...words(nulls[1]!)],
      seedSql: [String(seeds[0]), String(seeds[1])],
      nullSql: [String(nulls[0]), String(nulls[1])],
    });
  }
  return fieldSeeds[i]!;
}

/**
 * An order-independent digest of a table: the row count and two sums of
 * row hashes (see {@link RowHash}), hashed from each value's canonical
 * text (canonical.ts): SQLite's side from the raw
 * values read, in this process; Postgres' side rendered back from the
 * stored values by the inverse of each conversion, on the server in one
 * aggregate query. Equal digests mean equal tables, in any row order,
 * duplicates counted — and a lossy conversion cannot hide in both.
 */
export interface Digest {
  rows: number;
  hash: RowHash;
  sums: [bigint, bigint];
}

/** Accumulates a {@link Digest}, row by row. */
export class DigestBuilder {
  private rows = 0;
  // Per sum: the high words (signed) and low words (unsigned) of the 64-bit hashes, in Numbers until a flush.
  private hi0 = 0;
  private lo0 = 0;
  private hi1 = 0;
  private lo1 = 0;
  private pending = 0;
  private sums: [bigint, bigint] = [0n, 0n];
  private readonly out = new Uint32Array(4);

  constructor(readonly hash: RowHash) {}

  /** A writer of rows for {@link addRow}, in the form this digest hashes them. */
  writer(cols: EncodeColumn[]): RecordWriter {
    return new RecordWriter(cols, this.hash === "lookup3" ? "fields" : "record");
  }

  /** Add one row of a table, written by `w` (made by {@link writer}; values from `offset` on). */
  addRow(w: RecordWriter, row: unknown[], offset: number): void {
    if (this.hash === "md5") {
      const len = w.write(row, offset);
      this.addBytes(w.buf, len);
      return;
    }
    if (w.form !== "fields") throw internalError("DIGEST_WRITER", "a lookup3 digest hashes rows field by field: make its writer with writer()");
    const out = this.out;
    let hi0 = 0;
    let lo0 = 0;
    let hi1 = 0;
    let lo1 = 0;
    for (let i = 0, n = w.width; i < n; i++) {
      const v = row[offset + i];
      const s = fieldSeed(i);
      if (v === null || v === undefined) {
        hi0 ^= s.nulls[0];
        lo0 ^= s.nulls[1];
        hi1 ^= s.nulls[2];
        lo1 ^= s.nulls[3];
        continue;
      }
      // The length first: writing may replace the writer's buffer with a larger one.
      const len = w.writeField(i, v);
      hashBytesExtended2(w.buf, len, s.words, out);
      hi0 ^= out[0]!;
      lo0 ^= out[1]!;
      hi1 ^= out[2]!;
      lo1 ^= out[3]!;
    }
    this.add(hi0 | 0, lo0 >>> 0, hi1 | 0, lo1 >>> 0);
  }

  /** Add one row of an md5 digest, given as the first `len` bytes of `bytes`: its record text in UTF-8. */
  addBytes(bytes: Uint8Array, len: number): void {
    if (this.hash !== "md5") throw internalError("DIGEST_BYTES", "a lookup3 digest hashes rows field by field: use addRow");
    const h = hash("md5", bytes.subarray(0, len), "hex");
    this.add(parseInt(h.slice(0, 7), 16), parseInt(h.slice(7, 15), 16), 0, 0); // 28 + 32 bits
  }

  /** Count one row of the given hashes: each as its signed high and unsigned low 32 bits. */
  private add(hi0: number, lo0: number, hi1: number, lo1: number): void {
    this.hi0 += hi0;
    this.lo0 += lo0;
    this.hi1 += hi1;
    this.lo1 += lo1;
    this.rows++;
    // Flush before the Number sums could pass 2^53 (2^20 rows of at most 2^32 each).
    if (++this.pending === 1 << 20) this.flush();
  }

  /** Merge another builder's rows (a range of the same table, hashed the same way). */
  merge(d: Digest): void {
    if (d.hash !== this.hash) throw internalError("DIGEST_MERGE", `cannot merge a ${d.hash} digest into a ${this.hash} one`);
    this.flush();
    this.rows += d.rows;
    this.sums[0] += d.sums[0];
    this.sums[1] += d.sums[1];
  }

  private flush(): void {
    this.sums[0] += BigInt(this.hi0) * 4294967296n + BigInt(this.lo0);
    this.sums[1] += BigInt(this.hi1) * 4294967296n + BigInt(this.lo1);
    this.hi0 = this.lo0 = this.hi1 = this.lo1 = 0;
    this.pending = 0;
  }

  digest(): Digest {
    this.flush();
    return { rows: this.rows, hash: this.hash, sums: [this.sums[0], this.sums[1]] };
  }
}

/** Texts the server hashes to check this process's port: empty, within and past a 12-byte block, quotes, multibyte. */
const PROBES = ["", "(1,abc)", '("a b","x\\y""z",é€中😀)', "0123456789ab", "0123456789abc", "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"];

/**
 * The row hash both sides can compute: `lookup3` when the server's
 * `hashtextextended` gives exactly what this process computes for a few
 * probe texts under both seeds (it does on every little-endian server),
 * else `md5`. One round trip.
 */
export async function rowHashFor(client: pg.ClientBase): Promise<RowHash> {
  const r = await client.query<{ a: string; b: string }>(
    `SELECT hashtextextended(x COLLATE "C", ${SEEDS[0]})::text AS a, hashtextextended(x COLLATE "C", ${SEEDS[1]})::text AS b FROM unnest($1::text[]) WITH ORDINALITY AS p(x, i) ORDER BY i`,
    [PROBES],
  );
  const out = new Uint32Array(4);
  const signed = (hi: number, lo: number) => BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
  const same = PROBES.every((p, i) => {
    const bytes = Buffer.from(p, "utf8");
    hashBytesExtended2(bytes, bytes.length, SEED_WORDS, out); // exactly as rows are hashed
    return BigInt(r.rows[i]!.a) === signed(out[0]!, out[1]!) && BigInt(r.rows[i]!.b) === signed(out[2]!, out[3]!);
  });
  return same ? "lookup3" : "md5";
}

/**
 * A function giving the record text of a SQLite row (values from `offset`
 * on, one per planned column): each field the canonical text of the raw
 * value (see canonical.ts), quoted as Postgres' record output quotes it.
 * The string that {@link RecordWriter} writes as bytes for the digest;
 * compared as it is where differing rows are named one by one.
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
  // A foreign text (`?…`) may need quoting; so does the empty text (an empty blob's hex), which record_out writes as "".
  return f === "" || f.charCodeAt(0) === 63 ? recordField(f) : f;
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
  hash: RowHash,
  range?: { column: string; after: bigint | null; upTo: bigint | null },
): Promise<Digest> {
  const where = range ? ` WHERE ${rangeSql(`t.${quoteIdent(range.column)}`, range)}` : "";
  const from = `${qualified(plan.schema, t.name)} AS t${where}`;
  // OFFSET 0 keeps each subquery from being merged into the outer query:
  // each canonical text (or row text) is rendered once, not once per sum.
  let sql: string;
  if (hash === "lookup3") {
    const f = t.columns.map((_, i) => quoteIdent(`f${i}`));
    const fields = t.columns.map((c, i) => `${canonicalSql(`t.${quoteIdent(c.name)}`, c)} COLLATE "C" AS ${f[i]}`);
    const rowHash = (k: 0 | 1) =>
      t.columns.map((_, i) => `coalesce(hashtextextended(d.${f[i]}, ${fieldSeed(i).seedSql[k]}), ${fieldSeed(i).nullSql[k]})`).join(" # ");
    sql = `SELECT count(*)::text AS n, coalesce(sum(${rowHash(0)}), 0)::text AS a, coalesce(sum(${rowHash(1)}), 0)::text AS b FROM (SELECT ${fields.join(", ")} FROM ${from} OFFSET 0) AS d`;
  } else {
    const sum = "coalesce(sum(('x' || left(md5(r), 15))::bit(60)::bigint), 0)::text AS a, '0' AS b";
    sql = `SELECT count(*)::text AS n, ${sum} FROM (SELECT ${digestRowSql(t)} COLLATE "C" AS r FROM ${from} OFFSET 0) AS d`;
  }
  const r = await client.query<{ n: string; a: string; b: string }>(sql);
  const row = r.rows[0]!;
  return { rows: Number(row.n), hash, sums: [BigInt(row.a), BigInt(row.b)] };
}

/**
 * Digest of a table (or a rowid range of it) as SQLite holds it, read in
 * short key-ordered chunks, yielding to the event loop between chunks so
 * the Postgres side's query is sent and answered meanwhile.
 */
export async function sqliteDigest(
  db: BetterSqlite3.Database,
  t: TablePlan,
  hash: RowHash,
  range?: { after: bigint | null; upTo: bigint | null },
): Promise<Digest> {
  const reader = new ChunkReader(
    db,
    t,
    t.columns.map((c) => c.source.name),
    CHUNK_ROWS,
    range ?? { after: null, upTo: null },
  );
  const d = new DigestBuilder(hash);
  const w = d.writer(t.columns);
  const offset = reader.keyWidth;
  const read = () => readNamed(db, t, () => reader.read());
  for (let rows = read(); rows !== null; rows = read()) {
    for (const row of rows) d.addRow(w, row, offset);
    await yieldToLoop();
  }
  return d.digest();
}

/** Rows per SQLite read of a digest: enough to amortise the statement, few enough to stay in V8's young generation. */
const CHUNK_ROWS = 5000;

/** Whether two digests are equal. */
export function sameDigest(a: Digest, b: Digest): boolean {
  return a.rows === b.rows && a.hash === b.hash && a.sums[0] === b.sums[0] && a.sums[1] === b.sums[1];
}

/** `col > after AND col <= upTo`, with open ends left out (bounds are integers, never data). */
export function rangeSql(col: string, r: { after: bigint | null; upTo: bigint | null }): string {
  const parts = [r.after !== null ? `${col} > ${BigInt(r.after)}` : null, r.upTo !== null ? `${col} <= ${BigInt(r.upTo)}` : null].filter(Boolean);
  return parts.length ? parts.join(" AND ") : "true";
}
