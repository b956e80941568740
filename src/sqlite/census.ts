import type BetterSqlite3 from "better-sqlite3";
import { quoteIdent } from "../ident.js";
import { affinity, type SourceTable } from "./schema.js";

/**
 * What one column actually holds: SQLite lets any value into any column, so
 * the Postgres type is chosen from these counts, not from the declared type
 * alone. Counted in one aggregate pass over the table.
 */
export interface ColumnCensus {
  nulls: number;
  integers: number;
  reals: number;
  texts: number;
  blobs: number;
  /** Range of the integer values (exact, as bigint); null when there are none. */
  minInt: bigint | null;
  maxInt: bigint | null;
  /**
   * Which shapes the text values have, as bits: {@link DATE_CLASS}. A column
   * whose texts are all dates has no `other` bit.
   */
  dateClasses: number;
  /** Text values spelling a boolean: true/false/t/f/yes/no (any case). */
  textBooleans: number;
  /** Text values that are valid JSON (objects or arrays). */
  textJson: number;
  /** Reals within the julian-day range of years 1–9999 that are whole milliseconds (julianday(x) = x: the instant converts exactly). */
  julianReals: number;
  /** Integers 0 or 1. */
  zeroOne: number;
  /** For `numeric(p,s)` columns: values that fit exactly. */
  numericFits: number;
}

/** The census of one table: row count and one entry per column name. */
export interface TableCensus {
  rows: number;
  columns: Map<string, ColumnCensus>;
}

/** Bits of {@link ColumnCensus.dateClasses}. */
export const DATE_CLASS = { other: 1, date: 2, timestamp: 4, timestamptz: 8 } as const;

const DATE_SHAPE = "[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]";
const TIME_SHAPE = "[0-2][0-9]:[0-5][0-9]:[0-5][0-9]";

/**
 * A SQL expression giving the {@link DATE_CLASS} bit of a text value (NULL
 * for other storage classes): `YYYY-MM-DD`, `YYYY-MM-DD[ T]HH:MM:SS` with an
 * optional fraction of 1–6 digits, optionally `Z` or `±HH:MM`. Shapes are
 * checked with GLOB, validity by SQLite's own date functions (2021-02-30 is
 * not a date). Year 0000 is refused: Postgres has no year zero.
 *
 * SQLite's own form, `YYYY-MM-DD HH:MM:SS` (what `datetime()` and
 * CURRENT_TIMESTAMP write, the most common by far), is taken first by one
 * call: `datetime(x) = x` holds only for a valid timestamp spelled exactly
 * as `datetime()` spells it, which is that shape, so the GLOBs and the
 * rebuilt comparison text of the general branch are not needed for it (a
 * quarter of the cost; the general branch is unchanged, and a test compares
 * both on every shape). Comparisons are BINARY whatever the column's
 * collation.
 */
export function dateClassSql(col: string): string {
  const rest = `substr(${col},20)`;
  const tzLen = `(CASE WHEN ${rest} GLOB '*Z' THEN 1 WHEN ${rest} GLOB '*[+-][0-2][0-9]:[0-5][0-9]' THEN 6 ELSE 0 END)`;
  const frac = `substr(${rest},1,length(${rest})-${tzLen})`;
  const fracOk = `(${frac} = '' OR (${frac} GLOB '.[0-9]*' AND length(${frac}) BETWEEN 2 AND 7 AND NOT substr(${frac},2) GLOB '*[^0-9]*'))`;
  return `(CASE WHEN typeof(${col})<>'text' THEN NULL
    WHEN length(${col}) = 19 AND datetime(${col}) = ${col} COLLATE BINARY THEN CASE WHEN ${col} >= '0001' COLLATE BINARY THEN ${DATE_CLASS.timestamp} ELSE ${DATE_CLASS.other} END
    WHEN length(${col}) = 10 THEN CASE WHEN ${col} GLOB '${DATE_SHAPE}' AND date(${col}) = ${col} COLLATE BINARY AND ${col} >= '0001' COLLATE BINARY THEN ${DATE_CLASS.date} ELSE ${DATE_CLASS.other} END
    WHEN NOT ${col} GLOB '${DATE_SHAPE}[ T]${TIME_SHAPE}*' OR substr(${col},1,4) = '0000' THEN ${DATE_CLASS.other}
    WHEN datetime(substr(${col},1,19)) IS NOT substr(${col},1,10)||' '||substr(${col},12,8) THEN ${DATE_CLASS.other}
    WHEN length(${col}) = 19 THEN ${DATE_CLASS.timestamp}
    WHEN NOT ${fracOk} THEN ${DATE_CLASS.other}
    WHEN ${tzLen} > 0 THEN ${DATE_CLASS.timestamptz}
    ELSE ${DATE_CLASS.timestamp} END)`;
}

/** Precision and scale from a declared `numeric(p,s)` / `decimal(p,s)`, if any. */
export function numericTypmod(declared: string): { precision: number; scale: number } | null {
  const m = /^\s*(?:numeric|decimal)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)\s*$/i.exec(declared);
  if (!m) return null;
  const precision = Number(m[1]);
  const scale = m[2] === undefined ? 0 : Number(m[2]);
  if (precision < 1 || precision > 1000 || scale > precision) return null;
  return { precision, scale };
}

/** True when the declared type names a date or time. */
export function isDateDeclared(declared: string): boolean {
  return /date|time/i.test(declared);
}

type Kind = "integer" | "real" | "text" | "blob";

/** SQLite sorts NULL < numbers < text < blob: the kinds of min() and max() bound the kinds in between. */
function kindsBetween(lo: Kind, hi: Kind): Set<"number" | "text" | "blob"> {
  const rank = { integer: 0, real: 0, text: 1, blob: 2 } as const;
  const names = ["number", "text", "blob"] as const;
  const out = new Set<"number" | "text" | "blob">();
  for (let r = rank[lo]; r <= rank[hi]; r++) out.add(names[r]!);
  return out;
}

/**
 * Count what every column of a table holds. Two passes, so the common case
 * stays cheap on large tables: the first reads count, min and max of every
 * column (three cheap aggregates; min and max bound which storage classes
 * occur, by SQLite's sort order); the second computes only what the first
 * leaves open (reals among numbers, the exact integer range, date shapes
 * for date columns, booleans, JSON, numeric fit, and counts per class where
 * classes mix). Integers come back as bigint, exact beyond 2^53.
 *
 * What SQLite itself guarantees is not counted: the rowid alias (INTEGER
 * PRIMARY KEY) holds only integers, never NULL, and its ends are read from
 * the b-tree's ends; a column of REAL affinity reads every number as a real
 * (SQLite converts an integer when it reads the column, whatever was stored
 * and under whichever declared type it was written), so it holds no integers.
 */
export function censusTable(db: BetterSqlite3.Database, table: SourceTable): TableCensus {
  const from = `main.${quoteIdent(table.name)}`;
  const first: string[] = ["count(*)"];
  const scanned = table.columns.filter((c) => c.name !== table.rowidAlias);
  for (const c of scanned) {
    const q = quoteIdent(c.name);
    first.push(`count(${q})`, `min(${q})`, `max(${q})`, `typeof(min(${q}))`, `typeof(max(${q}))`);
  }
  const r1 = db
    .prepare(`SELECT ${first.join(", ")} FROM ${from}`)
    .raw(true)
    .safeIntegers(true)
    .get() as unknown[];
  const rows = Number(r1[0]);
  const columns = new Map<string, ColumnCensus>();
  const second: { expr: string; cc: ColumnCensus; set: (cc: ColumnCensus, v: unknown) => void }[] = [];
  const n = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));
  const after: (() => void)[] = [];
  table.columns.forEach((c) => {
    const q = quoteIdent(c.name);
    const i = scanned.indexOf(c);
    const [count, min, max, tmin, tmax] = (i >= 0 ? r1.slice(1 + i * 5, 6 + i * 5) : rowidAliasFirst(db, from, q, r1[0] as bigint)) as [
      bigint,
      unknown,
      unknown,
      Kind | "null",
      Kind | "null",
    ];
    const cc: ColumnCensus = {
      nulls: rows - Number(count),
      integers: 0,
      reals: 0,
      texts: 0,
      blobs: 0,
      minInt: null,
      maxInt: null,
      dateClasses: 0,
      textBooleans: 0,
      textJson: 0,
      julianReals: 0,
      zeroOne: 0,
      numericFits: 0,
    };
    columns.set(c.name, cc);
    if (Number(count) === 0 || tmin === "null" || tmax === "null") return;
    const kinds = kindsBetween(tmin, tmax);
    const add = (expr: string, set: (cc: ColumnCensus, v: unknown) => void) => second.push({ expr, cc, set });
    if (kinds.size === 1) {
      if (kinds.has("text")) cc.texts = Number(count);
      if (kinds.has("blob")) cc.blobs = Number(count);
    } else {
      add(`sum(typeof(${q})='text')`, (x, v) => (x.texts = n(v)));
      add(`sum(typeof(${q})='blob')`, (x, v) => (x.blobs = n(v)));
    }
    const realAffinity = affinity(c.declaredType, table.strict) === "real";
    if (kinds.has("number")) {
      const onlyNumbers = kinds.size === 1;
      if (c.name === table.rowidAlias && onlyNumbers) {
        // SQLite's rowid alias (INTEGER PRIMARY KEY) holds only integers: nothing to count.
        cc.integers = Number(count);
      } else if (realAffinity) {
        // Every number reads as a real: the numbers are what the other classes leave, and there is no integer range.
        if (onlyNumbers) cc.reals = Number(count);
        else after.push(() => (cc.reals = Number(count) - cc.texts - cc.blobs));
      } else {
        add(`sum(typeof(${q})='real')`, (x, v) => {
          x.reals = n(v);
          x.integers = onlyNumbers ? Number(count) - x.reals : 0;
        });
        if (!onlyNumbers) add(`sum(typeof(${q})='integer')`, (x, v) => (x.integers = n(v)));
      }
      if (realAffinity) {
        // No integers, so no integer range.
      } else if (onlyNumbers && tmin === "integer" && tmax === "integer") {
        // Both ends are integers: they are the integer range, whether or not reals lie between.
        cc.minInt = BigInt(min as bigint);
        cc.maxInt = BigInt(max as bigint);
      } else {
        add(`min(CASE WHEN typeof(${q})='integer' THEN ${q} END)`, (x, v) => (x.minInt = v === null ? null : BigInt(v as bigint)));
        add(`max(CASE WHEN typeof(${q})='integer' THEN ${q} END)`, (x, v) => (x.maxInt = v === null ? null : BigInt(v as bigint)));
      }
    }
    const dateLike = isDateDeclared(c.declaredType);
    if (dateLike && kinds.has("text")) add(`sum(DISTINCT ${dateClassSql(q)})`, (x, v) => (x.dateClasses = n(v)));
    if (dateLike && kinds.has("number"))
      add(`sum(CASE WHEN typeof(${q})='real' THEN ${q} BETWEEN 1721425.5 AND 5373484.5 AND julianday(${q}) = ${q} END)`, (x, v) => (x.julianReals = n(v)));
    if (/bool/i.test(c.declaredType)) {
      if (kinds.has("text")) add(`sum(typeof(${q})='text' AND lower(${q}) IN ('true','false','t','f','yes','no'))`, (x, v) => (x.textBooleans = n(v)));
      if (kinds.has("number") && !realAffinity) add(`sum(typeof(${q})='integer' AND ${q} IN (0,1))`, (x, v) => (x.zeroOne = n(v)));
    }
    if (/json/i.test(c.declaredType) && kinds.has("text")) {
      add(`sum(typeof(${q})='text' AND json_valid(${q}) AND substr(ltrim(${q}),1,1) IN ('{','['))`, (x, v) => (x.textJson = n(v)));
    }
    const nm = numericTypmod(c.declaredType);
    if (nm && kinds.has("number")) {
      // CASE keeps abs() away from integers: abs(-2^63) is an overflow error.
      const limit = `1e${Math.min(nm.precision - nm.scale, 18)}`;
      const real = nm.precision <= 15 ? `abs(${q}) < ${limit} AND ${q} = round(${q}, ${nm.scale})` : "0";
      add(`sum(CASE typeof(${q}) WHEN 'integer' THEN ${q} > -${limit} AND ${q} < ${limit} WHEN 'real' THEN ${real} END)`, (x, v) => (x.numericFits = n(v)));
    }
  });
  if (second.length > 0) {
    const r2 = db
      .prepare(`SELECT ${second.map((x) => x.expr).join(", ")} FROM ${from}`)
      .raw(true)
      .safeIntegers(true)
      .get() as unknown[];
    for (const [i, x] of second.entries()) x.set(x.cc, r2[i]);
  }
  for (const f of after) f();
  return { rows, columns };
}

/**
 * Pass one's five values for the rowid alias, without a scan: it is never
 * NULL (count(*) counts it) and its ends come from the b-tree's ends.
 */
function rowidAliasFirst(db: BetterSqlite3.Database, from: string, q: string, rows: bigint): unknown[] {
  if (rows === 0n) return [0n, null, null, "null", "null"];
  const r = db.prepare(`SELECT (SELECT min(${q}) FROM ${from}), (SELECT max(${q}) FROM ${from})`).raw(true).safeIntegers(true).get() as [bigint, bigint];
  return [rows, r[0], r[1], "integer", "integer"];
}
