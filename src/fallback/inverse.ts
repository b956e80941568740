/**
 * The way back of one value: the SQLite value that gives back exactly what
 * PostgreSQL holds, in the form the file used (forms.ts), or a refusal that
 * says why SQLite's original form cannot hold it.
 *
 * Input, per column, read under fixed session settings (DateStyle 'ISO, YMD',
 * TimeZone 'UTC', extra_float_digits 1, bytea_output 'hex'): the value's
 * text (`col::text`; a bytea as its bytes) and its canonical text
 * (convert/canonical.ts `canonicalSql`). The candidate is built from the
 * first; the proof uses the second: the value SQLite would really store
 * (after its type affinity converts what it binds) must be one the copy to
 * PostgreSQL takes and must have exactly that canonical text. Two
 * independent computations agree, or nothing is written.
 */
import Database from "better-sqlite3";
import type BetterSqlite3 from "better-sqlite3";
import { canonicalWriter } from "../convert/canonical.js";
import { decimalText, julianToMillis } from "../convert/conversions.js";
import { encodeValue, formatDouble, ValueRefused } from "../convert/copy-encode.js";
import type { ColumnPlan } from "../plan/model.js";
import { type Affinity, type ColumnForm, defaultForm, type IsoForm } from "./forms.js";

/** A PostgreSQL value SQLite's original form of the column cannot hold exactly, with the reason. */
export class InverseRefused extends Error {
  constructor(
    /** The PostgreSQL column. */
    readonly column: string,
    readonly reason: string,
    /** The value's text as PostgreSQL printed it (a bytea in hex), or null. */
    readonly value: string | null,
  ) {
    super(`column ${column}: ${reason}`);
    this.name = "InverseRefused";
  }
}

type Refuse = (reason: string) => never;

/**
 * The value to bind in SQLite (bigint for an integer, number for a real,
 * string, Buffer, or null) for a PostgreSQL value given as its text and its
 * canonical text. Throws {@link InverseRefused} when no SQLite value in the
 * column's form is exactly that value. `form` is the column's learned form
 * (undefined, or one learned for another type decision: the default).
 */
export function inverseValue(col: ColumnPlan, form: ColumnForm | undefined, pgText: string | Buffer | null, canonical: string | null): unknown {
  const shown = pgText === null || pgText === undefined ? null : Buffer.isBuffer(pgText) ? `\\x${pgText.toString("hex")}` : pgText;
  const no: Refuse = (reason) => {
    throw new InverseRefused(col.name, reason, shown);
  };
  if (pgText === null || pgText === undefined) {
    if (canonical !== null) no(`PostgreSQL gave NULL with the canonical text ${canonical}`);
    return null;
  }
  // A key is written in the one spelling the copy takes for it, whatever the form: learned forms of keys are that spelling anyway.
  const f = !form || form.kind !== col.kind || form.conversion !== col.conversion ? defaultForm(col) : col.keyExact ? defaultForm(col, form.affinity) : form;
  const candidate = candidateOf(col, f, pgText, no);
  prove(col, f.affinity, candidate, canonical, no);
  return candidate;
}

/**
 * Whether the value SQLite already holds is the PostgreSQL value (equal
 * canonical texts, and a value the copy takes): then the row keeps its own
 * spelling ('yes' stays 'yes', an offset '+02:00' stays as written, an
 * integer 3 in a double column stays an integer). Read `existing` with
 * better-sqlite3's safeIntegers, so an integer beyond 2^53 is exact.
 */
export function keepsExisting(col: ColumnPlan, existing: unknown, canonical: string | null): boolean {
  if (existing === null || existing === undefined) return canonical === null;
  if (canonical === null || canonicalWriter(col)(existing) !== canonical) return false;
  try {
    encodeValue(existing, col, 0);
    return true;
  } catch (e) {
    if (e instanceof ValueRefused) return false;
    throw e;
  }
}

function candidateOf(col: ColumnPlan, f: ColumnForm, v: string | Buffer, no: Refuse): unknown {
  if (col.kind === "bytea") {
    if (Buffer.isBuffer(v)) return v;
    if (/^\\x(?:[0-9a-fA-F]{2})*$/.test(v)) return Buffer.from(v.slice(2), "hex");
    return no("a bytea given as text that is not in hex form");
  }
  if (Buffer.isBuffer(v)) return no(`bytes given for a ${col.kind} column, where its text was expected`);
  switch (col.conversion) {
    case "boolean":
      return booleanValue(f, v, no);
    case "epoch_s":
    case "epoch_ms":
    case "julian":
      return instantValue(col.conversion, v, no);
    case "none":
      break;
  }
  switch (col.kind) {
    case "bigint":
      return /^-?\d+$/.test(v) ? BigInt(v) : no(`${v} is not an integer`);
    case "double precision":
      return doubleValue(f, v, no);
    case "numeric":
      return numericValue(f, v, no);
    case "date":
      return /^\d{4}-\d\d-\d\d$/.test(v) ? v : outOfRange("the column's ISO dates", v, no);
    case "timestamp":
    case "timestamptz":
      return isoValue(col.kind, f.iso ?? defaultForm(col).iso!, v, no);
    default:
      return textValue(f, v);
  }
}

function booleanValue(f: ColumnForm, v: string, no: Refuse): unknown {
  const b = v === "true" || v === "t" ? true : v === "false" || v === "f" ? false : no(`${v} is not a boolean`);
  if (f.words) return b ? f.words.true : f.words.false;
  return b ? 1n : 0n;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function doubleValue(f: ColumnForm, v: string, no: Refuse): number | bigint {
  if (v === "NaN") return no("SQLite cannot hold NaN: it stores NaN as NULL");
  const x = Number(v); // the shortest decimal that reads back as the same double, or Infinity/-Infinity
  if (Number.isNaN(x)) return no(`${v} is not a double`);
  // Like the file: a column that held integers too gets integral values back as integers (exact within ±2^53).
  if (f.integers && Number.isInteger(x) && !Object.is(x, -0) && Math.abs(x) <= 2 ** 53) return BigInt(x);
  return x;
}

/**
 * An integer when the value is integral and fits 64 bits (a real instead
 * when the column held only reals and the double is exact); otherwise a
 * double, only when its shortest decimal is the value itself.
 */
function numericValue(f: ColumnForm, v: string, no: Refuse): number | bigint {
  if (v === "NaN") return no("SQLite cannot hold NaN: it stores NaN as NULL");
  if (v === "Infinity" || v === "-Infinity") return Number(v);
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(v);
  if (!m) return no(`${v} is not a decimal number`);
  const frac = (m[3] ?? "").replace(/0+$/, "");
  const whole = m[2]!.replace(/^0+(?=\d)/, "");
  const exact = (whole === "0" && frac === "" ? "" : m[1]!) + whole + (frac ? `.${frac}` : "");
  const x = Number(exact);
  if (frac === "") {
    if (!f.integers && decimalText(x) === exact) return x;
    const i = BigInt(exact);
    if (i >= INT64_MIN && i <= INT64_MAX) return i;
  }
  if (decimalText(x) === exact) return x;
  return no(
    `numeric ${v} has no exact value in SQLite: ${frac ? "it is not an integer" : "it is an integer beyond 64 bits"}, and no double's shortest decimal is that number`,
  );
}

/** A text column's value: the text, or the number it spells when the column held numbers and this is how the copy writes that number. */
function textValue(f: ColumnForm, v: string): unknown {
  if (f.numbers) {
    if (/^(?:0|-?[1-9]\d*)$/.test(v)) {
      const i = BigInt(v);
      if (i >= INT64_MIN && i <= INT64_MAX) return i;
    }
    if (/\d/.test(v)) {
      const x = Number(v);
      if (!Number.isNaN(x) && formatDouble(x) === v) return x;
    }
  }
  return v;
}

/** A timestamp (with zone: read under TimeZone UTC) as PostgreSQL's ISO DateStyle prints it. */
const PG_TIMESTAMP = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(\+00)?$/;

function outOfRange(what: string, v: string, no: Refuse): never {
  if (/infinity/.test(v)) return no(`${what} cannot hold ${v}: it is no point in time SQLite's date functions know`);
  if (/ BC$/.test(v) || /^\d{5,}-/.test(v)) return no(`${what} cannot hold ${v}: it is outside the years 0001–9999`);
  return no(`${what} cannot hold ${v}: not the text PostgreSQL prints under DateStyle 'ISO, YMD' and TimeZone 'UTC'`);
}

/** The parts of a PostgreSQL timestamp text, or a refusal naming `what` could not hold it. */
function timestampParts(v: string, withZone: boolean, what: string, no: Refuse) {
  const m = PG_TIMESTAMP.exec(v);
  if (!m || (m[8] !== undefined) !== withZone) return outOfRange(what, v, no);
  const [, y, mo, d, h, mi, s, frac = ""] = m;
  return { date: `${y}-${mo}-${d}`, time: `${h}:${mi}:${s}`, frac6: frac.padEnd(6, "0"), y: +y!, mo: +mo!, d: +d!, h: +h!, mi: +mi!, s: +s! };
}

/**
 * An instant as the column's numbers: whole unix seconds, whole unix
 * milliseconds (integers, as the file held them), or the julian day
 * SQLite's julianday() returns (whole milliseconds only, and only a day
 * number that reads back as the same millisecond, as the copy checks).
 */
function instantValue(conversion: "epoch_s" | "epoch_ms" | "julian", v: string, no: Refuse): number | bigint {
  const what = conversion === "epoch_s" ? "unix seconds" : conversion === "epoch_ms" ? "unix milliseconds" : "julian days";
  const p = timestampParts(v, true, what, no);
  const t = new Date(0); // setUTCFullYear, unlike Date.UTC, keeps years 0001–0099 as written
  t.setUTCFullYear(p.y, p.mo - 1, p.d);
  t.setUTCHours(p.h, p.mi, p.s, 0);
  const seconds = BigInt(t.getTime() / 1000);
  if (conversion === "epoch_s") {
    if (p.frac6 !== "000000") return no(`unix seconds cannot hold ${v}: the column holds whole seconds`);
    return seconds;
  }
  if (p.frac6.slice(3) !== "000") return no(`${what} cannot hold ${v}: the column holds whole milliseconds`);
  const millis = seconds * 1000n + BigInt(p.frac6.slice(0, 3));
  if (conversion === "epoch_ms") return millis;
  const ms = Number(millis);
  const jd = (ms + JULIAN_EPOCH_MS) / 86400000;
  if (julianToMillis(jd) !== ms) return no(`julian days cannot hold ${v}: the nearest day number reads back as another millisecond`);
  return jd;
}

/** Julian day 0 in unix milliseconds, negated (as convert/canonical.ts computes it). */
const JULIAN_EPOCH_MS = -julianToMillis(0);

/** A timestamp in the file's ISO shape: its separator and zone, and fraction digits as the file writes them, never fewer than the value needs. */
function isoValue(kind: "timestamp" | "timestamptz", iso: IsoForm, v: string, no: Refuse): string {
  const p = timestampParts(v, kind === "timestamptz", kind === "timestamp" ? "the column's ISO timestamps" : "the column's ISO timestamps with a zone", no);
  const needed = p.frac6.replace(/0+$/, "").length;
  if (kind === "timestamp" && iso.dateOnly && needed === 0 && p.time === "00:00:00") return p.date;
  const digits = Math.min(6, needed === 0 ? iso.zeroDigits : iso.digits === null ? needed : Math.max(iso.digits, needed));
  const frac = digits > 0 ? `.${p.frac6.slice(0, digits)}` : "";
  return `${p.date}${iso.separator}${p.time}${frac}${kind === "timestamptz" ? (iso.zone ?? "+00:00") : ""}`;
}

/**
 * The proof: what SQLite would store for the candidate is a value the copy
 * takes, with exactly PostgreSQL's canonical text. Else refused, saying
 * what SQLite would have made of it.
 */
function prove(col: ColumnPlan, aff: Affinity, candidate: unknown, canonical: string | null, no: Refuse): void {
  const stored = storedAs(candidate, aff);
  const how = sameValue(stored, candidate)
    ? null
    : `SQLite would store ${describe(candidate)} as ${describe(stored)} in this column (declared ${col.source.declaredType || "without a type"}: ${aff} affinity)`;
  try {
    encodeValue(stored, col, 0);
  } catch (e) {
    if (!(e instanceof ValueRefused)) throw e;
    no(how ? `${how}, which the column does not take: ${e.reason}` : `${describe(stored)} is not a value the column takes: ${e.reason}`);
  }
  const got = canonicalWriter(col)(stored);
  if (got !== canonical)
    no(how ? `${how}, which is another value` : `${describe(stored)} is not the same value (its canonical text is ${got}, PostgreSQL's ${canonical})`);
}

/** A value in words, for messages. */
function describe(v: unknown): string {
  if (typeof v === "bigint") return `the integer ${v}`;
  if (typeof v === "number") return `the real ${formatDouble(v)}`;
  if (typeof v === "string") return `the text '${v.length > 60 ? `${v.slice(0, 60)}…` : v}'`;
  if (Buffer.isBuffer(v)) return `a blob of ${v.length} bytes`;
  return String(v);
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return typeof a === typeof b && Object.is(a, b);
}

/** Texts SQLite's numeric affinities may turn into numbers (a superset: the probe decides). */
const NUMBER_LIKE = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

/**
 * What SQLite stores when `v` is bound into a column of this affinity, as
 * better-sqlite3 reads it back with safeIntegers (integers as bigint). A
 * number is bound as a real. The rules for numbers are SQLite's: REAL
 * affinity makes integers reals and loses the sign of -0; INTEGER and
 * NUMERIC make an integral real strictly inside ±2^63 an integer (-0 too);
 * TEXT spells numbers as text. Texts that may look like numbers are asked
 * of SQLite itself.
 */
function storedAs(v: unknown, aff: Affinity): unknown {
  if (v === null || Buffer.isBuffer(v) || aff === "blob") return v;
  if (typeof v === "string") return aff !== "text" && NUMBER_LIKE.test(v) ? probe(v, aff) : v;
  if (aff === "text") return typeof v === "bigint" ? v.toString() : probe(v as number, aff);
  if (typeof v === "bigint") return aff === "real" ? Number(v) : v;
  const x = v as number;
  if (aff === "real") return Object.is(x, -0) ? 0 : x;
  return Number.isInteger(x) && x > -(2 ** 63) && x < 2 ** 63 ? BigInt(x) : x;
}

let probeDb: BetterSqlite3.Database | null = null;
const probes = new Map<string, { insert: BetterSqlite3.Statement; clear: BetterSqlite3.Statement }>();

/** Bind `v` into an empty in-memory table of the affinity and read back what SQLite stored. */
function probe(v: string | number, aff: Exclude<Affinity, "blob">): unknown {
  if (!probeDb) {
    probeDb = new Database(":memory:");
    probeDb.exec("CREATE TABLE p_integer (v INTEGER); CREATE TABLE p_numeric (v NUMERIC); CREATE TABLE p_real (v REAL); CREATE TABLE p_text (v TEXT)");
  }
  let p = probes.get(aff);
  if (!p) {
    p = {
      insert: probeDb.prepare(`INSERT INTO p_${aff} (v) VALUES (?) RETURNING v`).pluck().safeIntegers(true),
      clear: probeDb.prepare(`DELETE FROM p_${aff}`),
    };
    probes.set(aff, p);
  }
  try {
    return p.insert.get(v);
  } finally {
    p.clear.run();
  }
}
