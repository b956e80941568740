/**
 * The same JavaScript values in and out of every backend.
 *
 * Out: integers as `number` while they are safe (|n| ≤ 2^53 − 1) and as
 * `bigint` beyond, never a rounded number; booleans as `boolean` where the
 * column type is boolean (PostgreSQL `boolean`, MySQL `TINYINT(1)`/`BOOLEAN`);
 * blobs as `Buffer`; exact numerics (`numeric`, `DECIMAL`) as strings; JSON as
 * its text; dates (`date`, `DATE`) as `YYYY-MM-DD` strings; timestamps as
 * `Date`, a timestamp without time zone read as UTC. The README's table
 * lists every column type.
 *
 * In: `string`, `number` (an integral number binds as an integer), `bigint`,
 * `boolean`, `Buffer`/`Uint8Array`, `Date` (an instant, written in UTC), and
 * `null`; `undefined` is refused (write `null`). Arrays and plain objects are
 * PostgreSQL arrays/JSON there, and JSON text on SQLite and MySQL.
 */
import pg from "pg";
import mysql from "mysql2/promise";
import { DatabaseUsageError, type Dialect } from "./errors.js";

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const SAFE_MIN = BigInt(Number.MIN_SAFE_INTEGER);
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** An integer as `number` when it is safe, else as `bigint`. */
export function integerValue(v: bigint): number | bigint {
  return v >= SAFE_MIN && v <= SAFE_MAX ? Number(v) : v;
}

/** Decimal integer text as `number` when safe, else `bigint`. */
function integerText(s: string): number | bigint {
  // Up to 15 digits are always safe: skip the BigInt.
  if (s.length <= 15) return Number(s);
  return integerValue(BigInt(s));
}

function isPlainJson(v: object): boolean {
  return Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null;
}

function refuse(dialect: Dialect, i: number, what: string): never {
  throw new DatabaseUsageError(dialect, `parameter ${i + 1}: ${what}`);
}

function instant(dialect: Dialect, i: number, d: Date): string {
  if (Number.isNaN(d.getTime())) refuse(dialect, i, "an invalid Date");
  return d.toISOString();
}

function toBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** The checks every backend shares; returns the value when it needs no conversion. */
function common(dialect: Dialect, i: number, v: unknown): void {
  if (v === undefined) refuse(dialect, i, "undefined; pass null for SQL NULL");
  if (typeof v === "function" || typeof v === "symbol") refuse(dialect, i, `a ${typeof v} cannot be bound`);
}

/** Parameters for better-sqlite3: integral numbers and booleans as integers, dates as ISO 8601 UTC text. */
export function sqliteParams(params: readonly unknown[]): unknown[] {
  const out = new Array<unknown>(params.length);
  for (let i = 0; i < params.length; i++) {
    const v = params[i];
    common("sqlite", i, v);
    switch (typeof v) {
      case "number":
        // better-sqlite3 binds every number as REAL; an integral one is an INTEGER, as on the other backends.
        out[i] = Number.isSafeInteger(v) ? BigInt(v) : v;
        break;
      case "bigint":
        if (v < INT64_MIN || v > INT64_MAX) refuse("sqlite", i, `${v} is outside the 64-bit range SQLite stores`);
        out[i] = v;
        break;
      case "boolean":
        out[i] = v ? 1n : 0n;
        break;
      case "object":
        if (v === null) out[i] = null;
        else if (v instanceof Date) out[i] = instant("sqlite", i, v);
        else if (v instanceof Uint8Array) out[i] = toBuffer(v);
        else if (isPlainJson(v)) out[i] = JSON.stringify(v);
        else refuse("sqlite", i, `a ${v.constructor?.name ?? "object"} cannot be bound`);
        break;
      default:
        out[i] = v;
    }
  }
  return out;
}

/** Parameters for pg: dates as ISO 8601 UTC text (so a timestamp without time zone holds UTC); the rest as pg sends them. */
export function pgParams(params: readonly unknown[]): unknown[] {
  const out = new Array<unknown>(params.length);
  for (let i = 0; i < params.length; i++) {
    const v = params[i];
    common("postgres", i, v);
    if (v instanceof Date) out[i] = instant("postgres", i, v);
    else if (v instanceof Uint8Array) out[i] = toBuffer(v);
    else out[i] = v;
  }
  return out;
}

const T = mysql.TypedParameter;

/** Parameters for mysql2's prepared statements: integers as BIGINT (signed or unsigned), never as a double. */
export function mysqlParams(params: readonly unknown[]): mysql.ExecuteValues[] {
  const out = new Array<mysql.ExecuteValues>(params.length);
  for (let i = 0; i < params.length; i++) {
    const v = params[i];
    common("mysql", i, v);
    switch (typeof v) {
      case "number":
        out[i] = Number.isSafeInteger(v) ? T.LONGLONG(v) : v;
        break;
      case "bigint":
        if (v >= INT64_MIN && v <= INT64_MAX) out[i] = T.LONGLONG(v);
        else if (v > INT64_MAX && v <= UINT64_MAX) out[i] = T.LONGLONG.unsigned(v);
        else refuse("mysql", i, `${v} is outside the 64-bit range MySQL stores`);
        break;
      case "object":
        if (v === null) out[i] = null;
        else if (v instanceof Date) {
          instant("mysql", i, v);
          out[i] = v;
        } else if (v instanceof Uint8Array) out[i] = toBuffer(v);
        else if (isPlainJson(v)) out[i] = JSON.stringify(v);
        else refuse("mysql", i, `a ${v.constructor?.name ?? "object"} cannot be bound`);
        break;
      default:
        out[i] = v as string | boolean;
    }
  }
  return out;
}

/** Results of better-sqlite3 statements in safe-integers mode: every integer comes as `bigint`; the safe ones become numbers. */
export function sqliteRow(row: Record<string, unknown>): Record<string, unknown> {
  for (const k in row) {
    const v = row[k];
    if (typeof v === "bigint" && v >= SAFE_MIN && v <= SAFE_MAX) row[k] = Number(v);
  }
  return row;
}

// ---- PostgreSQL: type parsers installed per pool, never globally ----

type Parser = (text: string) => unknown;
const base = pg.types;
const arrayOf =
  (element: Parser): Parser =>
  (text) =>
    (base as unknown as { arrayParser: { create(s: string, t: (e: string | null) => unknown): { parse(): unknown } } }).arrayParser
      .create(text, (e) => (e === null ? null : element(e)))
      .parse();
const identity: Parser = (s) => s;
const defaultTimestamptz = base.getTypeParser(1184, "text") as Parser;
/** A timestamp without time zone is read as UTC, the zone dates are written in. */
const timestampUtc: Parser = (s) => {
  if (s === "infinity" || s === "-infinity") return defaultTimestamptz(s);
  return defaultTimestamptz(s.endsWith(" BC") ? `${s.slice(0, -3)}+00 BC` : `${s}+00`);
};

const PG_PARSERS: Record<number, Parser> = {
  20: integerText, // int8
  1016: arrayOf(integerText), // int8[]
  1231: arrayOf(identity), // numeric[]: exact text, like numeric
  1082: identity, // date: YYYY-MM-DD
  1182: arrayOf(identity), // date[]
  1114: timestampUtc, // timestamp
  1115: arrayOf(timestampUtc), // timestamp[]
  114: identity, // json: its text
  3802: identity, // jsonb
  199: arrayOf(identity), // json[]
  3807: arrayOf(identity), // jsonb[]
  1186: identity, // interval: PostgreSQL's text
  1187: arrayOf(identity), // interval[]
};

/** The type parsers of one pool (pg's `types` option): the table above over pg's defaults. */
export const pgTypes = {
  getTypeParser(oid: number, format?: "text" | "binary"): Parser {
    if (format !== "binary") {
      const p = PG_PARSERS[oid];
      if (p) return p;
    }
    return base.getTypeParser(oid, format ?? "text") as Parser;
  },
} as pg.CustomTypesConfig;

// ---- MySQL: the rows mysql2 returns, corrected by their field types ----

/** What a converter needs of mysql2's field packet. */
interface MysqlField {
  name: string;
  columnType?: number;
  type?: number;
  columnLength?: number;
}

/** mysql2's column type codes (protocol constants). */
const MYSQL_LONGLONG = 8;
const MYSQL_TINY = 1;

/**
 * Correct a result set in place: BIGINT (which the pool reads as exact
 * text) as number or bigint, `TINYINT(1)` as boolean. The rest stays as
 * mysql2 reads it with the pool's options (DECIMAL as text, DATE as text,
 * DATETIME and TIMESTAMP as Date in UTC, JSON as text, binary as Buffer).
 * Done on the rows after mysql2 parsed them with its fast, generated
 * parser: a `typeCast` function would make it build a wrapper per field
 * of every row. The conversions are chosen once per result set.
 */
export function mysqlRows(rows: Record<string, unknown>[], fields: readonly MysqlField[] | undefined): Record<string, unknown>[] {
  if (!fields || rows.length === 0) return rows;
  const bigints: string[] = [];
  const booleans: string[] = [];
  for (const f of fields) {
    const type = f.columnType ?? f.type;
    if (type === MYSQL_LONGLONG) bigints.push(f.name);
    else if (type === MYSQL_TINY && f.columnLength === 1) booleans.push(f.name);
  }
  if (bigints.length === 0 && booleans.length === 0) return rows;
  for (const r of rows) {
    for (const k of bigints) {
      const v = r[k];
      if (typeof v === "string") r[k] = integerText(v);
    }
    for (const k of booleans) {
      const v = r[k];
      if (v !== null && v !== undefined) r[k] = Number(v) !== 0;
    }
  }
  return rows;
}

/** A MySQL insert id (mysql2 gives text beyond the safe range) as number or bigint; undefined for none. */
export function mysqlInsertId(v: unknown): number | bigint | undefined {
  if (typeof v === "string") return integerText(v);
  if (typeof v === "number" && v !== 0) return v;
  return undefined;
}
