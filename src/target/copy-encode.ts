/**
 * COPY text-format encoding of SQLite values, and the canonical form the
 * validator compares. Pure functions: no I/O, heavily unit-tested.
 *
 * COPY text format: fields separated by TAB, rows by LF, NULL as `\N`,
 * backslash escapes for backslash and control characters. Values arrive
 * from better-sqlite3 as number | bigint | string | Buffer | null.
 */
import type { Conversion, PgKind } from "../plan/types.js";

/** What the encoder needs to know about one column. */
export interface EncodeColumn {
  name: string;
  kind: PgKind;
  conversion: Conversion;
  /** Scale of `numeric(p,s)`; null for unconstrained numeric and other kinds. */
  scale: number | null;
}

/** A value that cannot be written to its column, with the reason. */
export class ValueRefused extends Error {
  constructor(
    readonly column: number,
    readonly reason: string,
    readonly value: unknown,
  ) {
    super(reason);
    this.name = "ValueRefused";
  }
}

// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /[\\\n\r\t\b\f\v]/;
// eslint-disable-next-line no-control-regex
const ESCAPES = /[\\\n\r\t\b\f\v]/g;
const ESCAPE_MAP: Record<string, string> = {
  "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f", "\v": "\\v",
};

/** Escape a string for a COPY text field. Postgres writes the same escapes on COPY TO. */
export function escapeCopyText(s: string): string {
  return NEEDS_ESCAPE.test(s) ? s.replace(ESCAPES, (c) => ESCAPE_MAP[c]!) : s;
}

/** True when a string may not be stored as Postgres text as it is: a NUL, or U+FFFD (possibly invalid UTF-8 in the file). */
export function isSuspectText(s: string): boolean {
  return s.includes("\u0000") || s.includes("\uFFFD");
}

/** The shortest decimal that reads back as the same double, with -0 kept. */
export function formatDouble(x: number): string {
  if (Object.is(x, -0)) return "-0";
  return String(x); // shortest round-trip; Infinity and -Infinity spelled as Postgres reads them
}

/** A double's exact bits in the form Postgres prints `float8send(x)` in COPY text. */
export function doubleBitsCanon(x: number): string {
  const b = Buffer.allocUnsafe(8);
  b.writeDoubleBE(x);
  return "\\\\x" + b.toString("hex");
}

/** Expand JavaScript number text (maybe `1e+21`, `1.5e-7`) into the plain decimal Postgres' numeric prints. */
export function plainDecimal(s: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const [, sign, int, frac = "", expS] = m;
  const exp = Number(expS);
  const digits = int! + frac;
  const point = int!.length + exp;
  let out: string;
  if (point <= 0) out = "0." + "0".repeat(-point) + digits;
  else if (point >= digits.length) out = digits + "0".repeat(point - digits.length);
  else out = digits.slice(0, point) + "." + digits.slice(point);
  out = out.replace(/^0+(?=\d)/, "");
  if (out.includes(".")) out = out.replace(/0+$/, "").replace(/\.$/, "");
  return sign + out;
}

function isoFromMillis(ms: number): string {
  return new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ; range checked by the census
}

/** Milliseconds since the epoch for a julian day, rounded as SQLite's date functions round it. */
export function julianToMillis(jd: number): number {
  const ijd = Math.floor(jd * 86400000 + 0.5); // SQLite: (sqlite3_int64)(r*86400000.0 + 0.5)
  return ijd - 210866760000000; // julian day 2440587.5 in milliseconds
}

const BOOL_WORDS: Record<string, boolean> = { true: true, t: true, yes: true, false: false, f: false, no: false };

function toBoolean(v: unknown, col: number): boolean {
  if (v === 1 || v === 1n) return true;
  if (v === 0 || v === 0n) return false;
  if (typeof v === "string") {
    const b = BOOL_WORDS[v.toLowerCase()];
    if (b !== undefined) return b;
  }
  throw new ValueRefused(col, "not a boolean (0/1 or true/false)", v);
}

/**
 * Encode one value for COPY FROM (text format) into a column of the given
 * kind. Throws {@link ValueRefused} for a value the column cannot hold.
 * Text passed here has already been checked by the caller for NUL and
 * invalid UTF-8 ({@link isSuspectText}).
 */
export function encodeValue(v: unknown, c: EncodeColumn, col: number): string {
  if (v === null || v === undefined) return "\\N";
  switch (c.conversion) {
    case "boolean":
      return toBoolean(v, col) ? "t" : "f";
    case "epoch_s":
      return isoFromMillis(Number(v) * 1000);
    case "epoch_ms":
      return isoFromMillis(Number(v));
    case "julian":
      return isoFromMillis(julianToMillis(Number(v)));
    case "none":
      break;
  }
  switch (typeof v) {
    case "string":
      if (c.kind === "bytea") throw new ValueRefused(col, "text in a bytea column", v);
      return escapeCopyText(v);
    case "number":
      if (c.kind === "bytea") throw new ValueRefused(col, "number in a bytea column", v);
      if (c.kind === "bigint" && !Number.isInteger(v)) throw new ValueRefused(col, "real in a bigint column", v);
      return formatDouble(v);
    case "bigint":
      if (c.kind === "bytea") throw new ValueRefused(col, "number in a bytea column", v);
      return v.toString();
    default:
      if (Buffer.isBuffer(v)) {
        if (c.kind !== "bytea") throw new ValueRefused(col, `blob in a ${c.kind} column`, v);
        return "\\\\x" + v.toString("hex");
      }
      throw new ValueRefused(col, `unexpected value of type ${typeof v}`, v);
  }
}

/** Two-digit zero padding. */
function p2(n: number): string {
  return n < 10 ? "0" + n : String(n);
}

function canonMillis(ms: number): string {
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  return `${String(y).padStart(4, "0")}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}.${String(d.getUTCMilliseconds()).padStart(3, "0")}000`;
}

/** `YYYY-MM-DD HH:MM:SS.ffffff` from an ISO text the census accepted; zone applied when present. */
export function canonTimestampText(s: string, withZone: boolean): string {
  const m = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?(Z|[+-]\d\d:\d\d)?$/.exec(s);
  if (!m) return "?" + s; // cannot match: the census admitted only these shapes
  const [, y, mo, d, h = "00", mi = "00", se = "00", frac = "", zone] = m;
  const micros = frac.padEnd(6, "0");
  if (!withZone || !zone || zone === "Z" || zone === "+00:00" || zone === "-00:00") {
    return `${y}-${mo}-${d} ${h}:${mi}:${se}.${micros}`;
  }
  const sign = zone[0] === "-" ? -1 : 1;
  const offMin = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  const t = new Date(0); // setUTCFullYear, unlike Date.UTC, keeps years 0001–0099 as written
  t.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  t.setUTCHours(Number(h), Number(mi), Number(se), 0);
  return `${canonMillis(t.getTime() - offMin * 60000).slice(0, 19)}.${micros}`;
}

/**
 * The canonical text of a SQLite value as the validator compares it: exactly
 * what Postgres prints, in COPY text format, for the column's validation
 * expression (see `canonSelectExpr`).
 */
export function canonValue(v: unknown, c: EncodeColumn, col: number): string {
  if (v === null || v === undefined) return "\\N";
  switch (c.conversion) {
    case "boolean":
      return toBoolean(v, col) ? "t" : "f";
    case "epoch_s":
      return canonMillis(Number(v) * 1000);
    case "epoch_ms":
      return canonMillis(Number(v));
    case "julian":
      return canonMillis(julianToMillis(Number(v)));
    case "none":
      break;
  }
  switch (c.kind) {
    case "double precision":
      return doubleBitsCanon(Number(v));
    case "numeric": {
      if (c.scale !== null) {
        if (typeof v === "bigint") return c.scale > 0 ? `${v}.${"0".repeat(c.scale)}` : v.toString();
        return (v as number).toFixed(c.scale);
      }
      if (typeof v === "bigint") return v.toString();
      if (Object.is(v, -0)) return "0";
      return plainDecimal(formatDouble(v as number));
    }
    case "timestamp":
      return canonTimestampText(v as string, false);
    case "timestamptz":
      return canonTimestampText(v as string, true);
    case "date":
      return v as string;
    default:
      return encodeValue(v, c, col);
  }
}
