import type BetterSqlite3 from "better-sqlite3";
import { quoteIdent } from "../sql/ident.js";
import type { SourceColumn, SourceTable } from "./schema.js";

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
  /** Reals that are ±Infinity. */
  infinities: number;
  /** Reals that are integral and within ±2^53. */
  integralReals: number;
  /** Text values that read as a date `YYYY-MM-DD`. */
  textDates: number;
  /** Text values that read as a timestamp without zone (at most microseconds). */
  textTimestamps: number;
  /** Text values that read as a timestamp with `Z` or `±HH:MM`. */
  textTimestampsTz: number;
  /** Text values spelling a boolean: true/false/t/f/yes/no (any case). */
  textBooleans: number;
  /** Text values that are valid JSON (objects or arrays). */
  textJson: number;
  /** Reals within the julian-day range of years 1–9999. */
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

const DATE_SHAPE = "[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]";
const TIME_SHAPE = "[0-2][0-9]:[0-5][0-9]:[0-5][0-9]";

/**
 * A SQL expression classifying a text value as a date (1), timestamp (2) or
 * timestamp with zone (3), else 0. Shapes are checked with GLOB and validity
 * by SQLite's own date functions (2021-02-30 is not a date). Year 0000 is
 * refused because Postgres has no year zero.
 */
export function dateClassSql(col: string): string {
  const n = `(CASE WHEN substr(${col},11,1)='T' THEN substr(${col},1,10)||' '||substr(${col},12) ELSE ${col} END)`;
  const validDate = `(date(substr(${n},1,10)) = substr(${n},1,10) AND substr(${n},1,4) > '0000')`;
  const validTime = `(time(substr(${n},12,8)) = substr(${n},12,8))`;
  // Body without a zone: 'YYYY-MM-DD HH:MM:SS' optionally '.' and 1–6 digits.
  const body = (x: string) =>
    `(${x} GLOB '${DATE_SHAPE} ${TIME_SHAPE}' OR (${x} GLOB '${DATE_SHAPE} ${TIME_SHAPE}.[0-9]*' AND length(${x}) <= 26 AND NOT substr(${x},21) GLOB '*[^0-9]*'))`;
  const tzLen = `(CASE WHEN ${n} GLOB '*Z' THEN 1 WHEN ${n} GLOB '*[+-][0-2][0-9]:[0-5][0-9]' THEN 6 ELSE 0 END)`;
  const noTz = `substr(${n},1,length(${n})-${tzLen})`;
  return `(CASE WHEN typeof(${col})<>'text' THEN 0
    WHEN ${col} GLOB '${DATE_SHAPE}' AND ${validDate} THEN 1
    WHEN ${tzLen} = 0 AND ${body(n)} AND ${validDate} AND ${validTime} THEN 2
    WHEN ${tzLen} > 0 AND ${body(noTz)} AND ${validDate} AND ${validTime} THEN 3
    ELSE 0 END)`;
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

function columnAggregates(c: SourceColumn): string[] {
  const q = quoteIdent(c.name);
  const parts = [
    `sum(${q} IS NULL)`,
    `sum(typeof(${q})='integer')`,
    `sum(typeof(${q})='real')`,
    `sum(typeof(${q})='text')`,
    `sum(typeof(${q})='blob')`,
    `min(CASE WHEN typeof(${q})='integer' THEN ${q} END)`,
    `max(CASE WHEN typeof(${q})='integer' THEN ${q} END)`,
    // CASE keeps abs() away from integers: abs(-2^63) is an overflow error.
    `sum(CASE WHEN typeof(${q})='real' THEN abs(${q}) > 1.7976931348623157e308 END)`,
    `sum(CASE WHEN typeof(${q})='real' THEN abs(${q}) <= 9007199254740992.0 AND ${q} = CAST(${q} AS INTEGER) END)`,
  ];
  const dateLike = isDateDeclared(c.declaredType);
  parts.push(dateLike ? `sum(${dateClassSql(q)} = 1)` : "0");
  parts.push(dateLike ? `sum(${dateClassSql(q)} = 2)` : "0");
  parts.push(dateLike ? `sum(${dateClassSql(q)} = 3)` : "0");
  const boolLike = /bool/i.test(c.declaredType);
  parts.push(boolLike ? `sum(typeof(${q})='text' AND lower(${q}) IN ('true','false','t','f','yes','no'))` : "0");
  const jsonLike = /json/i.test(c.declaredType);
  parts.push(jsonLike ? `sum(typeof(${q})='text' AND json_valid(${q}) AND substr(ltrim(${q}),1,1) IN ('{','['))` : "0");
  parts.push(dateLike ? `sum(typeof(${q})='real' AND ${q} BETWEEN 1721425.5 AND 5373484.5)` : "0");
  parts.push(`sum(typeof(${q})='integer' AND ${q} IN (0,1))`);
  const nm = numericTypmod(c.declaredType);
  if (nm && nm.precision <= 15) {
    const limit = `1e${nm.precision - nm.scale}`;
    parts.push(
      `sum(CASE typeof(${q}) WHEN 'integer' THEN ${q} > -${limit} AND ${q} < ${limit} WHEN 'real' THEN abs(${q}) < ${limit} AND ${q} = round(${q}, ${nm.scale}) END)`,
    );
  } else if (nm) {
    const limit = `1e${Math.min(nm.precision - nm.scale, 18)}`;
    parts.push(`sum(CASE WHEN typeof(${q})='integer' THEN ${q} > -${limit} AND ${q} < ${limit} END)`);
  } else {
    parts.push("0");
  }
  return parts;
}

const FIELDS_PER_COLUMN = 17;

/**
 * Count what every column of a table holds, in one pass. Integers come back
 * as bigint so the range is exact beyond 2^53.
 */
export function censusTable(db: BetterSqlite3.Database, table: SourceTable): TableCensus {
  const aggs = table.columns.flatMap(columnAggregates);
  const sql = `SELECT count(*)${aggs.length ? ", " + aggs.join(", ") : ""} FROM main.${quoteIdent(table.name)}`;
  const row = db.prepare(sql).raw(true).safeIntegers(true).get() as (bigint | number | null)[];
  const num = (v: bigint | number | null | undefined) => (v === null || v === undefined ? 0 : Number(v));
  const columns = new Map<string, ColumnCensus>();
  table.columns.forEach((c, i) => {
    const b = 1 + i * FIELDS_PER_COLUMN;
    const v = (k: number) => row[b + k];
    const big = (x: bigint | number | null | undefined) => (x === null || x === undefined ? null : BigInt(x));
    columns.set(c.name, {
      nulls: num(v(0)),
      integers: num(v(1)),
      reals: num(v(2)),
      texts: num(v(3)),
      blobs: num(v(4)),
      minInt: big(v(5)),
      maxInt: big(v(6)),
      infinities: num(v(7)),
      integralReals: num(v(8)),
      textDates: num(v(9)),
      textTimestamps: num(v(10)),
      textTimestampsTz: num(v(11)),
      textBooleans: num(v(12)),
      textJson: num(v(13)),
      julianReals: num(v(14)),
      zeroOne: num(v(15)),
      numericFits: num(v(16)),
    });
  });
  return { rows: num(row[0]), columns };
}
