/**
 * COPY text-format encoding of SQLite values, and Postgres' text output
 * of them. Pure functions: no I/O, heavily unit-tested.
 *
 * COPY text format: fields separated by TAB, rows by LF, NULL as `\N`,
 * backslash escapes for backslash and control characters. Values arrive
 * from better-sqlite3 as number | bigint | string | Buffer | null.
 */
import type { EncodeColumn } from "../plan/types.js";
import { isSuspectText } from "../sqlite/text.js";
import { decimalText, epochIso, isoInRange, julianIso, julianToMillis, pgMillisText, pgTimestampText, plainDecimal, toBoolean } from "./conversions.js";
import { ValueRefused } from "./refused.js";
import { keySpellingProblem } from "../plan/key-spelling.js";

export { ValueRefused } from "./refused.js";

// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /[\\\n\r\t\b\f\v]/;
// eslint-disable-next-line no-control-regex
const ESCAPES = /[\\\n\r\t\b\f\v]/g;
const ESCAPE_MAP: Record<string, string> = {
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\b": "\\b",
  "\f": "\\f",
  "\v": "\\v",
};

/** Escape a string for a COPY text field. Postgres writes the same escapes on COPY TO. */
export function escapeCopyText(s: string): string {
  return NEEDS_ESCAPE.test(s) ? s.replace(ESCAPES, (c) => ESCAPE_MAP[c]!) : s;
}

/** The shortest decimal that reads back as the same double, with -0 kept. */
export function formatDouble(x: number): string {
  if (Object.is(x, -0)) return "-0";
  return String(x); // shortest round-trip; Infinity and -Infinity spelled as Postgres reads them
}

/**
 * A double's exact bits as Postgres prints `float8send(x)` (bytea, hex).
 * The digest compares doubles by their bits: printing the shortest decimal
 * is not the same algorithm on both sides in every tie case.
 */
export function float8SendText(x: number): string {
  F64_VIEW.setFloat64(0, x, false);
  let out = "\\x";
  for (let i = 0; i < 8; i++) out += HEX[F64_BYTES[i]!];
  return out;
}

const F64_BYTES = new Uint8Array(8);
const F64_VIEW = new DataView(F64_BYTES.buffer);
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * Encode one value for COPY FROM (text format) into a column of the given
 * kind. Throws {@link ValueRefused} for a value the column cannot hold.
 * Text passed here has already been checked by the caller for NUL and
 * invalid UTF-8 ({@link isSuspectText}).
 */
export function encodeValue(v: unknown, c: EncodeColumn, col: number): string {
  if (v === null || v === undefined) return "\\N";
  if (c.keyExact) checkKeySpelling(v, c, col);
  switch (c.conversion) {
    case "boolean":
      return toBoolean(v, col) ? "t" : "f";
    case "epoch_s":
    case "epoch_ms":
    case "julian": {
      // The census admitted numbers only; a later text or blob is not an instant.
      if (typeof v !== "number" && typeof v !== "bigint")
        throw new ValueRefused(col, `${describe(v)} in a column of ${c.conversion === "julian" ? "julian days" : "unix times"}`, v);
      return c.conversion === "julian" ? julianIso(v, col) : epochIso(v, c.conversion, col);
    }
    case "none":
      break;
  }
  if (Buffer.isBuffer(v)) {
    if (c.kind !== "bytea") throw new ValueRefused(col, `blob in a ${c.kind} column`, v);
    return "\\\\x" + v.toString("hex");
  }
  checkFits(v, c, col);
  switch (typeof v) {
    case "string":
      return escapeCopyText(v);
    case "number":
      // An integer-valued real beyond 2^53 in a bigint column: its exact digits, not the shortest decimal (which names another integer).
      return c.kind === "bigint" && !Number.isSafeInteger(v) ? BigInt(v).toString() : formatDouble(v);
    case "bigint":
      return v.toString();
    default:
      throw new ValueRefused(col, `unexpected value of type ${typeof v}`, v);
  }
}

/** Refuse a key value another spelling of which is another SQLite key but the same Postgres value. */
function checkKeySpelling(v: unknown, c: EncodeColumn, col: number): void {
  const why = keySpellingProblem(v, c);
  if (why) throw new ValueRefused(col, why, v);
}

const SAFE = 9007199254740992n;
const DATE_RE = /^\d{4}-\d\d-\d\d$/;
const TIMESTAMP_RE = /^\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d:\d\d(?:\.\d{1,6})?)?$/;
const TIMESTAMPTZ_RE = /^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)$/;

function describe(v: unknown): string {
  return typeof v === "string"
    ? "text"
    : typeof v === "bigint" || (typeof v === "number" && Number.isInteger(v))
      ? "an integer"
      : typeof v === "number"
        ? "a real"
        : typeof v;
}

/**
 * Whether a double is exactly a decimal of at most `scale` fraction digits.
 * toFixed takes at most 100 digits; past that, the shortest decimal that
 * reads back as the double tells (no decimal with fewer digits does).
 */
function fitsScale(v: number, scale: number): boolean {
  if (scale <= 100) return Number(v.toFixed(scale)) === v;
  const d = decimalText(v);
  const dot = d.indexOf(".");
  return dot < 0 || d.length - dot - 1 <= scale;
}

/**
 * Refuse a value the column's type would take only by changing it: the
 * census admitted every value present when the type was chosen, but the
 * application may write others later (the daemon keeps the type). Postgres
 * would read '3.140' into a double, round 0.125 into numeric(10,2), or drop
 * a zone from a timestamp — silently; here they stop, named.
 */
function checkFits(v: unknown, c: EncodeColumn, col: number): void {
  const no = (why: string) => {
    throw new ValueRefused(col, why, v);
  };
  switch (c.kind) {
    case "bigint":
      if (typeof v === "string") no("text in a bigint column");
      if (typeof v === "number" && !Number.isInteger(v)) no("real in a bigint column");
      if (typeof v === "number" && (v >= 2 ** 63 || v < -(2 ** 63))) no("a real beyond bigint's range");
      return;
    case "double precision":
      if (typeof v === "string") no("text in a double precision column");
      if (typeof v === "bigint" && (v > SAFE || v < -SAFE)) no("an integer beyond ±2^53, which double precision would round");
      return;
    case "numeric":
      if (typeof v === "string") no("text in a numeric column");
      if (typeof v === "number" && c.scale !== null && Number.isFinite(v) && !fitsScale(v, c.scale))
        no(`more than ${c.scale} decimal(s), which numeric would round`);
      if (c.precision != null && typeof v === "number" && !Number.isFinite(v)) no(`${v}, which numeric(${c.precision},${c.scale ?? 0}) cannot hold`);
      if (c.precision != null && (typeof v === "bigint" || typeof v === "number")) {
        const whole = decimalText(v).replace(/^-/, "").split(".")[0]!.replace(/^0+/, "");
        if (whole.length > c.precision - (c.scale ?? 0))
          no(`more than ${c.precision - (c.scale ?? 0)} digit(s) before the decimal point, which numeric(${c.precision},${c.scale ?? 0}) cannot hold`);
      }
      return;
    case "date":
      if (typeof v !== "string" || !DATE_RE.test(v)) no(`${describe(v)} that is not an ISO date in a date column`);
      if (!isoInRange(v as string)) no("not a day of the calendar in the years 0001–9999 (Postgres would refuse it)");
      return;
    case "timestamp":
      if (typeof v !== "string" || !TIMESTAMP_RE.test(v)) no(`${describe(v)} that is not an ISO timestamp without zone in a timestamp column`);
      if (!isoInRange(v as string)) no("a date or time out of range (e.g. 24:00 or second 60, which Postgres would move to the next minute or day)");
      return;
    case "timestamptz":
      if (typeof v !== "string" || !TIMESTAMPTZ_RE.test(v)) no(`${describe(v)} that is not an ISO timestamp with a zone in a timestamptz column`);
      if (!isoInRange(v as string)) no("a date, time or zone out of range (e.g. 24:00 or second 60, which Postgres would move to the next minute or day)");
      return;
    case "json":
      if (typeof v !== "string") no(`${describe(v)} in a json column`);
      try {
        JSON.parse(v as string);
      } catch {
        no("text that is not JSON in a json column");
      }
      return;
    case "bytea":
      no(`${describe(v)} in a bytea column`);
      return;
    case "text":
      if (c.keyText && typeof v !== "string")
        no(`${describe(v)} in a key column of text, where SQLite keeps it apart from the text spelling the same digits but Postgres would not`);
      return;
    default:
      return;
  }
}

/**
 * A SQLite value as Postgres prints the stored value (session: DateStyle
 * ISO, TimeZone UTC, bytea_output hex; doubles as `float8send`), or null
 * for NULL. The digests do not use it (they hash the raw value's canonical
 * text, validate/canonical.ts, so a lossy conversion cannot hide in both
 * sides); it remains for tools and tests.
 */
export function pgText(v: unknown, c: EncodeColumn, col: number): string | null {
  if (v === null || v === undefined) return null;
  switch (c.conversion) {
    case "boolean":
      return toBoolean(v, col) ? "t" : "f";
    case "epoch_s":
      return pgMillisText(Number(v) * 1000) + "+00";
    case "epoch_ms":
      return pgMillisText(Number(v)) + "+00";
    case "julian":
      return pgMillisText(julianToMillis(Number(v))) + "+00";
    case "none":
      break;
  }
  switch (c.kind) {
    case "bigint":
      return typeof v === "bigint" ? v.toString() : String(v);
    case "double precision":
      return float8SendText(Number(v));
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
      return pgTimestampText(v as string, false);
    case "timestamptz":
      return pgTimestampText(v as string, true);
    case "bytea":
      return Buffer.isBuffer(v) ? "\\x" + v.toString("hex") : String(v);
    default:
      if (typeof v === "string") return v;
      if (typeof v === "bigint") return v.toString();
      if (typeof v === "number") return formatDouble(v);
      return String(v);
  }
}

/** What makes record_out quote a field: C isspace() (ASCII only), quote, backslash, parentheses, comma. */
const RECORD_QUOTE = /[ \t\n\v\f\r"\\(),]/;

/**
 * A row as Postgres' record output prints it (`t::text`): fields joined by
 * commas in parentheses, NULL as nothing, a field quoted when empty or when
 * it holds a quote, backslash, parenthesis, comma or white space, with
 * quotes and backslashes doubled inside.
 */
export function recordText(fields: (string | null)[]): string {
  let out = "(";
  for (let i = 0; i < fields.length; i++) {
    if (i > 0) out += ",";
    const f = fields[i];
    if (f !== null && f !== undefined) out += recordField(f);
  }
  return out + ")";
}

/** One non-NULL field as record_out writes it. */
export function recordField(f: string): string {
  if (f === "") return '""';
  if (!RECORD_QUOTE.test(f)) return f;
  let g = f.includes('"') ? f.replaceAll('"', '""') : f;
  if (g.includes("\\")) g = g.replaceAll("\\", "\\\\");
  return `"${g}"`;
}

/**
 * A SQLite value as a query parameter for a column of the given kind (the
 * same value COPY would write, without COPY's escaping): used for the keys
 * the stream deletes by.
 */
export function paramValue(v: unknown, c: EncodeColumn, col: number): string | Buffer | null {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) {
    if (c.kind !== "bytea") throw new ValueRefused(col, `blob in a ${c.kind} column`, v);
    return v;
  }
  if (typeof v === "string" && c.conversion === "none") {
    if (c.kind === "bytea") throw new ValueRefused(col, "text in a bytea column", v);
    // Never delete by a key Postgres would read as another row's key.
    if (c.keyExact) checkKeySpelling(v, c, col);
    return v;
  }
  return encodeValue(v, c, col); // numbers and converted values never need COPY escapes
}
