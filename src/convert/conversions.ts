/**
 * The conversions of SQLite values that are not spelled the same in
 * PostgreSQL: unix seconds/milliseconds and julian days to an instant,
 * 0/1 and true/false words to a boolean, numbers to the exact decimal they
 * denote, and ISO dates and timestamps as Postgres prints them. Pure
 * functions, one direction each; the COPY encoder (copy-encode.ts) and the
 * canonical forms (canonical.ts) use them.
 */
import { ValueRefused } from "./refused.js";

/** Expand JavaScript number text (maybe `1e+21`, `1.5e-7`) into the plain decimal Postgres' numeric prints. */
export function plainDecimal(s: string): string {
  if (!s.includes("e")) return s; // the usual case, without the regular expression
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
  return ijd - JULIAN_EPOCH_MS;
}

/** Julian day 2440587.5 (the unix epoch) in milliseconds. */
const JULIAN_EPOCH_MS = 210866760000000;

/**
 * The exact decimal a SQLite number denotes: an integer's digits, a real's
 * shortest round-trip decimal (never an exponent; -0 as 0). The validator
 * hashes this form of epoch and numeric values, independently of how they
 * were converted.
 */
export function decimalText(v: number | bigint): string {
  if (typeof v === "bigint") return v.toString();
  return Object.is(v, -0) ? "0" : plainDecimal(numberText(v));
}

/**
 * `String(v)` for a number, without the general shortest-digits search for
 * the usual reals of money and measurements: a value within ±1e11 that is
 * exactly the double nearest some c / 10^k (k ≤ 4) is spelled from the
 * integer c. That is `String(v)`: below 1e11 a double's rounding interval
 * is narrower than 10^-4, so no other decimal of at most k fraction digits
 * (nor any shorter one) reads back as v.
 */
export function numberText(v: number): string {
  if (Number.isInteger(v) || !(v < 1e11 && v > -1e11)) return String(v);
  for (let k = 1, m = 10; k <= 4; k++, m *= 10) {
    const c = Math.round(v * m);
    if (c / m !== v) continue;
    let digits = String(c < 0 ? -c : c);
    while (digits.length <= k) digits = "0" + digits;
    const point = digits.length - k;
    return `${c < 0 ? "-" : ""}${digits.slice(0, point)}.${digits.slice(point)}`;
  }
  return String(v);
}

/**
 * Unix seconds or milliseconds as an exact instant: the value's decimal
 * digits, scaled to microseconds (what timestamptz holds) with integer
 * arithmetic. A value with finer digits than microseconds is refused, never
 * cut: 1700000200.1234567 s has no timestamptz that equals it.
 */
export function epochIso(v: number | bigint, conversion: "epoch_s" | "epoch_ms", col: number): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(decimalText(v));
  if (!m) throw new ValueRefused(col, "not a finite number of unix time", v);
  const digits = conversion === "epoch_s" ? 6 : 3;
  const frac = m[3] ?? "";
  if (frac.length > digits)
    throw new ValueRefused(
      col,
      `unix ${conversion === "epoch_s" ? "seconds" : "milliseconds"} with ${frac.length} decimals: finer than the microseconds timestamptz holds`,
      v,
    );
  const micros = BigInt(m[1]! + m[2]! + frac.padEnd(digits, "0"));
  let ms = micros / 1000n;
  let rest = micros % 1000n;
  if (rest < 0n) {
    ms -= 1n;
    rest += 1000n;
  }
  if (!(ms >= BigInt(MIN_MS) && ms <= BigInt(MAX_MS))) throw new ValueRefused(col, "outside the years 0001–9999", v);
  const iso = isoFromMillis(Number(ms));
  return rest === 0n ? iso : `${iso.slice(0, -1)}${String(rest).padStart(3, "0")}Z`;
}

/**
 * A julian day as the instant SQLite's date functions read (whole
 * milliseconds). Only a day number that is exactly such an instant is
 * taken (what julianday() itself returns): any other would be rounded.
 */
export function julianIso(v: number | bigint, col: number): string {
  const n = Number(v);
  const ms = julianToMillis(n);
  if (!(ms >= MIN_MS && ms <= MAX_MS)) throw new ValueRefused(col, "outside the years 0001–9999", v);
  if ((ms + JULIAN_EPOCH_MS) / 86400000 !== n)
    throw new ValueRefused(col, "a julian day that is not a whole millisecond: SQLite's date functions would round it, and so would timestamptz", v);
  return isoFromMillis(ms);
}

/** The words a boolean column takes, lower-case (a Map: an object's lookup would also find `constructor` and `__proto__`). */
export const BOOL_WORDS: ReadonlyMap<string, boolean> = new Map<string, boolean>([
  ["true", true],
  ["t", true],
  ["yes", true],
  ["false", false],
  ["f", false],
  ["no", false],
]);

export function toBoolean(v: unknown, col: number): boolean {
  if (v === 1 || v === 1n) return true;
  if (v === 0 || v === 0n) return false;
  if (typeof v === "string") {
    const b = BOOL_WORDS.get(v.toLowerCase());
    if (b !== undefined) return b;
  }
  throw new ValueRefused(col, "not a boolean (0/1 or true/false)", v);
}

/** Days from 1970-01-01 to a proleptic Gregorian date (any year). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Days between 1970-01-01 and Postgres' epoch, 2000-01-01. */
const PG_EPOCH_DAYS = 10957;

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Two ASCII digits at `i`, or -1. */
function d2(s: string, i: number): number {
  const a = s.charCodeAt(i) - 48;
  const b = s.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

/** Result of {@link parseIso}: seconds since Postgres' epoch and the microseconds within that second. */
interface Instant {
  secs: number;
  micros: number;
}

/** What the last successful {@link parseIso} read (one shared object: no allocation per value). */
export const parsed: Instant = { secs: 0, micros: 0 };

/**
 * Parse an ISO date or timestamp of exactly the shapes the COPY encoder
 * takes (copy-encode.ts: `YYYY-MM-DD`, `YYYY-MM-DD[ T]HH:MM:SS[.f{1,6}]`,
 * and for `zone` a required `Z` or `±HH:MM`) within the same ranges
 * (isoInRange: years 0001–9999, real calendar days, hours 0–23, minutes and
 * seconds 0–59, zones within ±15:59). Fills {@link parsed} (UTC for a
 * zone) and returns true, or false for anything else.
 */
export function parseIso(s: string, mode: "date" | "timestamp" | "timestamptz"): boolean {
  const n = s.length;
  if (n < 10) return false;
  const y1 = d2(s, 0);
  const y2 = d2(s, 2);
  if (y1 < 0 || y2 < 0 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45) return false;
  const y = y1 * 100 + y2;
  const mo = d2(s, 5);
  const d = d2(s, 8);
  if (y < 1 || mo < 1 || mo > 12 || d < 1) return false;
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  if (d > (mo === 2 && leap ? 29 : MONTH_DAYS[mo - 1]!)) return false;
  let secs = (daysFromCivil(y, mo, d) - PG_EPOCH_DAYS) * 86400;
  let micros = 0;
  if (n === 10) {
    if (mode === "timestamptz") return false;
    parsed.secs = secs;
    parsed.micros = 0;
    return true;
  }
  if (mode === "date" || n < 19) return false;
  const sep = s.charCodeAt(10);
  if (sep !== 32 && sep !== 84) return false;
  const h = d2(s, 11);
  const mi = d2(s, 14);
  const se = d2(s, 17);
  if (s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59) return false;
  secs += h * 3600 + mi * 60 + se;
  let i = 19;
  if (i < n && s.charCodeAt(i) === 46) {
    i++;
    let digits = 0;
    while (i < n) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      if (++digits > 6) return false;
      micros = micros * 10 + c;
      i++;
    }
    if (digits === 0) return false;
    for (let k = digits; k < 6; k++) micros *= 10;
  }
  if (mode === "timestamptz") {
    if (i === n) return false;
    const z = s.charCodeAt(i);
    if (z === 90 && i + 1 === n) {
      // Z
    } else if ((z === 43 || z === 45) && i + 6 === n && s.charCodeAt(i + 3) === 58) {
      const zh = d2(s, i + 1);
      const zm = d2(s, i + 4);
      if (zh < 0 || zh > 15 || zm < 0 || zm > 59) return false;
      const off = (zh * 60 + zm) * 60;
      secs -= z === 43 ? off : -off;
    } else return false;
  } else if (i !== n) return false;
  parsed.secs = secs;
  parsed.micros = micros;
  return true;
}

/**
 * An ISO date or timestamp as the exact number of seconds since the unix
 * epoch it names, in decimal, the fraction without trailing zeros (what
 * `trim_scale(extract(epoch FROM x))::text` prints for the stored value);
 * null for text of another shape or out of range.
 */
export function epochSecondsText(s: string, mode: "timestamp" | "timestamptz"): string | null {
  if (!parseIso(s, mode)) return null;
  const e = parsed.secs + UNIX_EPOCH_SECS;
  const us = parsed.micros;
  if (us === 0) return String(e);
  // A negative instant with a fraction: the integer part towards zero, the fraction's complement.
  const whole = e < 0 ? (e + 1 === 0 ? "-0" : String(e + 1)) : String(e);
  const frac = String(e < 0 ? 1000000 - us : us)
    .padStart(6, "0")
    .replace(/0+$/, "");
  return `${whole}.${frac}`;
}

/** Seconds from the unix epoch to Postgres' (2000-01-01). */
const UNIX_EPOCH_SECS = 946684800;

const MIN_MS = -62135596800000; // 0001-01-01
const MAX_MS = 253402300799999; // 9999-12-31 23:59:59.999

const ISO_PARTS = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d):(\d\d)(?:\.\d+)?)?(?:Z|([+-])(\d\d):(\d\d))?$/;

/**
 * Whether an ISO date/timestamp (of a shape the regexes admit) names a real
 * instant Postgres stores as written: a calendar day of the years
 * 0001–9999, hours 0–23, seconds 0–59 (Postgres reads 24:00 and second 60
 * as the next day or minute: silently another text), zones within ±15:59.
 */
export function isoInRange(s: string): boolean {
  const m = ISO_PARTS.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (y < 1 || mo < 1 || mo > 12 || d < 1) return false;
  const days = [31, y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mo - 1]!;
  if (d > days) return false;
  if (m[4] !== undefined && (Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 59)) return false;
  if (m[8] !== undefined && (Number(m[8]) > 15 || Number(m[9]) > 59)) return false;
  return true;
}

/** Two-digit zero padding. */
function p2(n: number): string {
  return n < 10 ? "0" + n : String(n);
}

/** `YYYY-MM-DD HH:MM:SS[.fff]` in UTC, as Postgres prints a timestamp (fraction without trailing zeros). */
export function pgMillisText(ms: number): string {
  const d = new Date(ms);
  const base = `${String(d.getUTCFullYear()).padStart(4, "0")}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}`;
  const f = d.getUTCMilliseconds();
  return f === 0 ? base : `${base}.${String(f).padStart(3, "0").replace(/0+$/, "")}`;
}

/**
 * An ISO date/timestamp text (a shape the census admitted) as Postgres
 * prints it: `timestamp` as written, `timestamptz` moved to UTC with `+00`.
 */
export function pgTimestampText(s: string, withZone: boolean): string {
  // The common shape, 'YYYY-MM-DD HH:MM:SS', is already what Postgres prints.
  if (s.length === 19 && s.charCodeAt(10) === 32) return withZone ? s + "+00" : s;
  const m = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?(Z|[+-]\d\d:\d\d)?$/.exec(s);
  if (!m) return "?" + s; // cannot match: the census admitted only these shapes, so this shows as a difference
  const [, y, mo, d, h = "00", mi = "00", se = "00", frac = "", zone] = m;
  const f = frac.replace(/0+$/, "");
  let text = `${y}-${mo}-${d} ${h}:${mi}:${se}`;
  if (withZone && zone && zone !== "Z" && zone !== "+00:00" && zone !== "-00:00") {
    const sign = zone[0] === "-" ? -1 : 1;
    const offMin = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
    const t = new Date(0); // setUTCFullYear, unlike Date.UTC, keeps years 0001–0099 as written
    t.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
    t.setUTCHours(Number(h), Number(mi), Number(se), 0);
    text = pgMillisText(t.getTime() - offMin * 60000);
  }
  return (f ? `${text}.${f}` : text) + (withZone ? "+00" : "");
}
