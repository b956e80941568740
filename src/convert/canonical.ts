/**
 * The canonical text of a value, computed twice and independently: in this
 * process from the raw value SQLite holds ({@link canonicalWriter}), and on
 * the server from the value Postgres stored ({@link canonicalSql}, the exact
 * inverse of the column's conversion, written in SQL). The digests hash it.
 *
 * Why not hash what the copy wrote: a lossy conversion (unix seconds cut to
 * milliseconds, a real rounded into numeric(p,s), a julian day rounded) would
 * then be hashed lossy on both sides and look equal. Here the SQLite side
 * never goes through the encoder: an epoch column hashes the seconds SQLite
 * holds, and Postgres turns its timestamptz back into seconds; any step
 * that lost something shows up as a difference.
 *
 * Every SQL expression is independent of session settings (DateStyle,
 * TimeZone, bytea_output, extra_float_digits), so the same text comes out
 * inside any transaction.
 */
import { hash } from "node:crypto";
import type { EncodeColumn } from "../plan/types.js";
import { BOOL_WORDS, decimalText, epochSecondsText, julianToMillis } from "./conversions.js";

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const F64 = new DataView(new ArrayBuffer(8));

/** A double's 8 bytes, big-endian, as lower-case hex (Postgres: `encode(float8send(x), 'hex')`). */
export function doubleBits(x: number): string {
  F64.setFloat64(0, x, false);
  let out = "";
  for (let i = 0; i < 8; i++) out += HEX[F64.getUint8(i)];
  return out;
}

/** A boolean word's canonical text, `t` or `f`; undefined for any other text. */
function boolWord(s: string): string | undefined {
  const b = BOOL_WORDS.get(s.toLowerCase());
  return b === undefined ? undefined : b ? "t" : "f";
}
const DATE_RE = /^\d{4}-\d\d-\d\d$/;

/** A value outside the column's domain: text that no Postgres value renders to. */
function foreign(v: unknown): string {
  if (Buffer.isBuffer(v)) return "?x" + hash("md5", v, "hex");
  return "?" + (typeof v === "string" ? v : String(v));
}

function isNumber(v: unknown): v is number | bigint {
  return typeof v === "number" || typeof v === "bigint";
}

/**
 * A function from a raw SQLite value (as better-sqlite3 returns it) to its
 * canonical text, or null for NULL. Never throws: a value the column cannot
 * hold gets a text no Postgres value produces, so it shows as a difference.
 */
export function canonicalWriter(c: EncodeColumn): (v: unknown) => string | null {
  const w = writer(c);
  return (v) => (v === null || v === undefined ? null : w(v));
}

function writer(c: EncodeColumn): (v: unknown) => string {
  switch (c.conversion) {
    case "boolean":
      return (v) => (v === 1 || v === 1n ? "t" : v === 0 || v === 0n ? "f" : (typeof v === "string" && boolWord(v)) || foreign(v));
    case "epoch_s":
    case "epoch_ms":
      return (v) => (isNumber(v) ? decimalText(v) : foreign(v));
    case "julian":
      return (v) => (isNumber(v) ? doubleBits(Number(v)) : foreign(v));
    case "none":
      break;
  }
  switch (c.kind) {
    case "bigint":
      // A safe integer's String() is its exact digits (as BigInt's would be, without making one).
      return (v) =>
        typeof v === "number" && Number.isSafeInteger(v)
          ? String(v)
          : typeof v === "bigint"
            ? v.toString()
            : typeof v === "number" && Number.isInteger(v)
              ? BigInt(v).toString()
              : foreign(v);
    case "double precision":
      return (v) => (isNumber(v) ? doubleBits(Number(v)) : foreign(v));
    case "numeric":
      return (v) => (isNumber(v) ? decimalText(v) : foreign(v));
    case "bytea":
      return (v) => (Buffer.isBuffer(v) ? blobText(v) : foreign(v));
    case "date":
      return (v) => (typeof v === "string" && DATE_RE.test(v) ? v : foreign(v));
    case "timestamp":
    case "timestamptz": {
      const mode = c.kind;
      return (v) => (typeof v === "string" ? (epochSecondsText(v, mode) ?? foreign(v)) : foreign(v));
    }
    default:
      // text and json: the text itself (numbers in a text column as the copy writes them, by design).
      return (v) => {
        if (typeof v === "string") return v.includes("\u0000") ? v.replace(/\u0000/g, "") : v; // a NUL stopped the copy or was stripped under --fix-text
        if (typeof v === "bigint") return v.toString();
        if (typeof v === "number") return Object.is(v, -0) ? "-0" : String(v);
        return foreign(v);
      };
  }
}

/** Blobs up to this many bytes are hashed as their hex; longer ones by their md5 (the record text stays short). */
const HEX_BLOB_MAX = 256;

/** A blob's canonical text: its hex when short, else `m` and its md5 (no hex text starts with `m`). */
function blobText(v: Buffer): string {
  return v.length <= HEX_BLOB_MAX ? v.toString("hex") : "m" + hash("md5", v, "hex");
}

/** Whether a kind's canonical text never needs quoting in a record (digits, signs, dots, hex). */
export function canonicalIsBare(c: EncodeColumn): boolean {
  return (
    c.conversion === "boolean" ||
    c.conversion === "epoch_s" ||
    c.conversion === "epoch_ms" ||
    c.conversion === "julian" ||
    c.kind === "bigint" ||
    c.kind === "double precision" ||
    c.kind === "numeric" ||
    c.kind === "bytea" ||
    c.kind === "date"
  );
}

/**
 * SQL rendering the stored Postgres value `expr` of this column back into
 * the canonical text of the SQLite value it came from: the exact inverse of
 * the conversion. Its result is text (or NULL).
 */
export function canonicalSql(expr: string, c: EncodeColumn): string {
  switch (c.conversion) {
    case "boolean":
      return `CASE WHEN ${expr} THEN 't' WHEN NOT ${expr} THEN 'f' END`;
    case "epoch_s":
      return `trim_scale(extract(epoch FROM ${expr}))::text`;
    case "epoch_ms":
      return `trim_scale(extract(epoch FROM ${expr}) * 1000)::text`;
    case "julian":
      // The julian day SQLite's julianday() returns for this instant: whole milliseconds over 86400000, in doubles.
      return `encode(float8send((extract(epoch FROM ${expr}) * 1000 + ${JULIAN_EPOCH_MS})::float8 / 86400000::float8), 'hex')`;
    case "none":
      break;
  }
  switch (c.kind) {
    case "double precision":
      return `encode(float8send(${expr}), 'hex')`;
    case "numeric":
      return `trim_scale(${expr})::text`;
    case "bytea":
      return `CASE WHEN length(${expr}) <= ${HEX_BLOB_MAX} THEN encode(${expr}, 'hex') ELSE 'm' || md5(${expr}) END`;
    case "date":
      return `to_char(${expr}, 'YYYY-MM-DD')`;
    case "timestamp":
    case "timestamptz":
      // The instant as exact seconds since the unix epoch (a timestamp read as UTC): a quarter of to_char's cost.
      return `trim_scale(extract(epoch FROM ${expr}))::text`;
    default:
      return `${expr}::text`;
  }
}

const JULIAN_EPOCH_MS = -julianToMillis(0); // julian day 0 is this many milliseconds before the unix epoch
