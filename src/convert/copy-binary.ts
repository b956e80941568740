/**
 * COPY binary-format encoding of SQLite values: each field as its length
 * and the bytes of the type's binary form (`int8send`, `float8send`,
 * `numeric_send`, `timestamp_send`, …). Postgres reads these with far less
 * work than the text forms (no float or timestamp parsing), and this side
 * writes them with less work than printing text (no shortest-decimal
 * printing of doubles, no hex for blobs).
 *
 * Exactness rests on the text encoder (copy-encode.ts): every value the
 * fast paths here do not take as certainly valid goes through
 * {@link encodeValue}, which refuses what the column cannot hold with the
 * same reason and otherwise returns the value's COPY text, which is then
 * written in binary. So the binary COPY stores exactly what the text COPY
 * would, or stops with the same error.
 */
import type { EncodeColumn } from "../plan/types.js";
import { encodeValue, ValueRefused } from "./copy-encode.js";
import { numberText, parsed, parseIso, plainDecimal, toBoolean } from "./conversions.js";
import { keySpellingProblem } from "../plan/key-spelling.js";

/** The signature, flags and header extension that open binary COPY data. */
export const BINARY_HEADER = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
/** The field count -1 that ends binary COPY data. */
export const BINARY_TRAILER = Buffer.from([0xff, 0xff]);

const PIECE = 256 * 1024;
/** Pieces given back by {@link BinaryData.recycle}, this thread's own; at most MAX_SPARE of them (16 MiB). */
const spare: Buffer[] = [];
const MAX_SPARE = 64;
function piece(): Buffer {
  return spare.pop() ?? Buffer.allocUnsafe(PIECE);
}
/** Texts up to this length are tried as ASCII in a loop before Node's UTF-8 writer. */
const SHORT_TEXT = 64;
const TWO32 = 4294967296;

/**
 * Binary COPY data as a list of Buffers of about 256 KiB: values are
 * written into the current piece; a large blob is passed on as its own
 * Buffer, never copied.
 */
export class BinaryData {
  readonly buffers: Buffer[] = [];
  /** Bytes so far. */
  bytes = 0;
  buf: Buffer = piece();
  pos = 0;
  /** The pieces behind {@link buffers}, for {@link recycle}. */
  private readonly pieces: Buffer[] = [];

  /** Room for `n` more bytes in the current piece. */
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
  }

  private flush(): void {
    if (this.pos === 0) return;
    this.buffers.push(this.buf.subarray(0, this.pos));
    this.pieces.push(this.buf);
    this.bytes += this.pos;
    this.buf = piece();
    this.pos = 0;
  }

  /**
   * Hand the pieces back for the next data to write into, once they have
   * been copied out and nothing refers to them: a thread that builds one
   * chunk after another then reuses the same few pieces instead of leaving
   * a chunk's worth of garbage outside the heap each time.
   */
  recycle(): void {
    for (const b of [...this.pieces, this.buf]) if (b.length === PIECE && spare.length < MAX_SPARE) spare.push(b);
    this.pieces.length = 0;
    this.buffers.length = 0;
    this.buf = piece();
    this.bytes = this.pos = 0;
  }

  /** Append bytes as they are (not copied when large). */
  pushBuffer(b: Buffer): void {
    if (b.length <= 4096) {
      this.ensure(b.length);
      b.copy(this.buf, this.pos);
      this.pos += b.length;
      return;
    }
    this.flush();
    this.buffers.push(b);
    this.bytes += b.length;
  }

  int16(n: number): void {
    this.ensure(2);
    this.buf.writeInt16BE(n, this.pos);
    this.pos += 2;
  }

  int32(n: number): void {
    this.ensure(4);
    this.buf.writeInt32BE(n, this.pos);
    this.pos += 4;
  }

  /** Bytes written so far, pending ones included. */
  get size(): number {
    return this.bytes + this.pos;
  }

  /** Everything appended, as Buffers. */
  take(): Buffer[] {
    this.flush();
    return this.buffers;
  }
}

/** Writes one non-NULL value of a column as a binary COPY field (length, then bytes); throws {@link ValueRefused}. */
export type FieldWriter = (v: unknown, out: BinaryData) => void;

/** A NULL field. */
export function writeNull(out: BinaryData): void {
  out.int32(-1);
}

/** An int8 field from a safe integer or an integer-valued double within int64 (exact: only powers of two divide). */
export function writeInt8(out: BinaryData, v: number): void {
  const hi = Math.floor(v / TWO32);
  const lo = v - hi * TWO32;
  out.ensure(12);
  const b = out.buf;
  const p = out.pos;
  b.writeInt32BE(8, p);
  b.writeInt32BE(hi, p + 4);
  b.writeUInt32BE(lo, p + 8);
  out.pos = p + 12;
}

function writeBigInt8(out: BinaryData, v: bigint): void {
  out.ensure(12);
  out.buf.writeInt32BE(8, out.pos);
  out.buf.writeBigInt64BE(v, out.pos + 4);
  out.pos += 12;
}

function writeFloat8(out: BinaryData, v: number): void {
  out.ensure(12);
  out.buf.writeInt32BE(8, out.pos);
  out.buf.writeDoubleBE(v, out.pos + 4);
  out.pos += 12;
}

function writeBool(out: BinaryData, v: boolean): void {
  out.ensure(5);
  out.buf.writeInt32BE(1, out.pos);
  out.buf[out.pos + 4] = v ? 1 : 0;
  out.pos += 5;
}

/** A string as UTF-8 (a lone surrogate as U+FFFD, as Buffer.from writes it). */
function writeUtf8(out: BinaryData, s: string): void {
  const n = s.length;
  if (n <= SHORT_TEXT) {
    // Short text: a loop costs less than a native call, while it is ASCII.
    out.ensure(4 + 3 * n);
    const buf = out.buf;
    const start = out.pos;
    let p = start + 4;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[p++] = c;
    }
    if (i === n) {
      buf.writeInt32BE(n, start);
      out.pos = p;
      return;
    }
  }
  // Short strings are bounded by 3 bytes a UTF-16 unit; long ones are measured.
  const max = n > 4096 ? Buffer.byteLength(s) : 3 * n;
  out.ensure(4 + max);
  const start = out.pos;
  const len = out.buf.write(s, start + 4, "utf8");
  out.buf.writeInt32BE(len, start);
  out.pos = start + 4 + len;
}

/**
 * The int64 `secs * 1e6 + micros` (microseconds since Postgres' epoch, as
 * timestamp_send writes it) in two 32-bit words, exactly: the product
 * passes 2^53 for years far from 2000, so it is built in parts that stay
 * below it.
 */
export function writeMicros(out: BinaryData, secs: number, micros: number): void {
  const sh = Math.floor(secs / 1048576);
  const sl = secs - sh * 1048576; // [0, 2^20)
  const a = sh * 1000000; // value = a * 2^20 + b
  const b = sl * 1000000 + micros;
  const ah = Math.floor(a / 4096);
  const al = a - ah * 4096; // a * 2^20 = ah * 2^32 + al * 2^20
  const y = al * 1048576 + b;
  const carry = Math.floor(y / TWO32);
  out.ensure(12);
  const buf = out.buf;
  buf.writeInt32BE(8, out.pos);
  buf.writeInt32BE(ah + carry, out.pos + 4);
  buf.writeUInt32BE(y - carry * TWO32, out.pos + 8);
  out.pos += 12;
}

/**
 * numeric_send's form of a decimal text (`-12.5`, `1e+21`, `1.5e-7`,
 * `Infinity`), without the field's length. Throws for text that is not a decimal.
 */
export function numericBinary(text: string): Buffer {
  const out = new BinaryData();
  writeNumeric(out, text);
  return Buffer.concat(out.take()).subarray(4);
}

/** Digit groups of one value: a double's plain decimal has at most ~330 digits on either side of the point. */
const GROUPS = new Uint16Array(256);
const MAX_DIGITS = 1000;

/**
 * A plain decimal text (`-?digits[.digits]`) as numeric_send writes it,
 * straight into `out`; false for any other text.
 */
function writeNumericPlain(out: BinaryData, s: string): boolean {
  const n = s.length;
  const neg = s.charCodeAt(0) === 45 ? 1 : 0;
  let dot = s.indexOf(".");
  if (dot < 0) dot = n;
  const intLen = dot - neg;
  const fracLen = dot === n ? 0 : n - dot - 1;
  if (intLen < 1 || (dot < n && fracLen < 1) || intLen + fracLen > MAX_DIGITS) return false;
  // Groups of 4 digits aligned on the point: the first holds intLen % 4 digits (or 4), the integer part ends on a group's end.
  let g = 0;
  let acc = 0;
  let inGroup = (4 - (intLen % 4)) % 4;
  let intGroups = -1;
  for (let i = neg; i < n; i++) {
    if (i === dot) {
      intGroups = g;
      continue;
    }
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return false;
    acc = acc * 10 + c;
    if (++inGroup === 4) {
      GROUPS[g++] = acc;
      acc = 0;
      inGroup = 0;
    }
  }
  if (intGroups < 0) intGroups = g;
  if (inGroup > 0) {
    for (let k = inGroup; k < 4; k++) acc *= 10;
    GROUPS[g++] = acc;
  }
  let first = 0;
  while (first < g && GROUPS[first] === 0) first++;
  let last = g;
  while (last > first && GROUPS[last - 1] === 0) last--;
  const count = last - first;
  out.ensure(12 + 2 * count);
  const buf = out.buf;
  let p = out.pos;
  buf.writeInt32BE(8 + 2 * count, p);
  buf.writeInt16BE(count, p + 4);
  buf.writeInt16BE(count === 0 ? 0 : intGroups - 1 - first, p + 6);
  buf.writeUInt16BE(neg && count > 0 ? 0x4000 : 0, p + 8);
  buf.writeInt16BE(fracLen, p + 10);
  p += 12;
  for (let i = first; i < last; i++) {
    buf.writeUInt16BE(GROUPS[i]!, p);
    p += 2;
  }
  out.pos = p;
  return true;
}

/** A number's decimal text as a numeric field: exponents expanded as numeric_in reads them, infinities and NaN by their codes. */
function writeNumeric(out: BinaryData, s: string): void {
  const special = s === "NaN" ? 0xc000 : s === "Infinity" ? 0xd000 : s === "-Infinity" ? 0xf000 : 0;
  if (special) {
    out.int32(8);
    out.int32(0); // no digits, weight 0
    out.ensure(4);
    out.buf.writeUInt16BE(special, out.pos);
    out.buf.writeInt16BE(0, out.pos + 2);
    out.pos += 4;
    return;
  }
  if (!writeNumericPlain(out, plainDecimal(s))) throw new Error(`not a decimal: ${s}`);
}

/** A date field: days since Postgres' epoch. */
function writeDate(out: BinaryData, days: number): void {
  out.int32(4);
  out.int32(days);
}

/** Whole digits and fraction digits of a plain decimal text (no exponent), or null when it has an exponent. */
function digitCounts(s: string): { whole: number; frac: number } | null {
  if (s.includes("e")) return null;
  const neg = s.charCodeAt(0) === 45 ? 1 : 0;
  const dot = s.indexOf(".");
  const intPart = dot < 0 ? s.length - neg : dot - neg;
  const zeroInt = intPart === 1 && s.charCodeAt(neg) === 48;
  return { whole: zeroInt ? 0 : intPart, frac: dot < 0 ? 0 : s.length - dot - 1 };
}

/**
 * The writer of one column's non-NULL values. Fast paths take the common,
 * certainly valid values; every other value goes through the text encoder,
 * which refuses it with its reason or returns the text that is then
 * written in this column's binary form.
 */
export function fieldWriter(c: EncodeColumn, col: number): FieldWriter {
  const slow = (v: unknown, out: BinaryData) => writeFromText(out, c, encodeValue(v, c, col), v, col);
  const keyCheck = (v: unknown) => {
    if (!c.keyExact) return;
    const why = keySpellingProblem(v, c);
    if (why) throw new ValueRefused(col, why, v);
  };
  switch (c.conversion) {
    case "boolean":
      return (v, out) => {
        keyCheck(v);
        writeBool(out, toBoolean(v, col));
      };
    case "epoch_s":
    case "epoch_ms":
    case "julian":
      return slow;
    case "none":
      break;
  }
  switch (c.kind) {
    case "bigint":
      return (v, out) => {
        if (typeof v === "number" && Number.isInteger(v) && v < 2 ** 63 && v >= -(2 ** 63)) writeInt8(out, v);
        else if (typeof v === "bigint") writeBigInt8(out, v);
        else slow(v, out);
      };
    case "double precision":
      return (v, out) => {
        if (typeof v === "number") writeFloat8(out, v);
        else if (typeof v === "bigint" && v <= 9007199254740992n && v >= -9007199254740992n) writeFloat8(out, Number(v));
        else slow(v, out);
      };
    case "numeric": {
      const wholeMax = c.precision != null ? c.precision - (c.scale ?? 0) : Infinity;
      const fracMax = c.scale ?? Infinity;
      return (v, out) => {
        if (typeof v === "number" && Number.isFinite(v)) {
          const s = numberText(v);
          const n = digitCounts(s);
          if (n && n.whole <= wholeMax && n.frac <= fracMax) {
            writeNumeric(out, s);
            return;
          }
        } else if (typeof v === "bigint") {
          const s = v.toString();
          if (s.length - (v < 0n ? 1 : 0) <= wholeMax || v === 0n) {
            writeNumeric(out, s);
            return;
          }
        }
        slow(v, out);
      };
    }
    case "date":
    case "timestamp":
    case "timestamptz": {
      const mode = c.kind;
      return (v, out) => {
        if (typeof v === "string" && parseIso(v, mode)) {
          keyCheck(v);
          if (mode === "date") writeDate(out, parsed.secs / 86400);
          else writeMicros(out, parsed.secs, parsed.micros);
        } else slow(v, out);
      };
    }
    case "bytea":
      return (v, out) => {
        if (!Buffer.isBuffer(v)) {
          slow(v, out);
          return;
        }
        out.int32(v.length);
        out.pushBuffer(v);
      };
    case "json":
      return (v, out) => {
        if (typeof v !== "string") {
          slow(v, out);
          return;
        }
        try {
          JSON.parse(v);
        } catch {
          slow(v, out);
          return;
        }
        writeUtf8(out, v);
      };
    case "text":
      return (v, out) => {
        if (typeof v === "string") writeUtf8(out, v);
        else slow(v, out);
      };
    default:
      return slow;
  }
}

/**
 * Write a value the text encoder accepted, from the COPY text it returned.
 * Only kinds whose COPY text carries no escapes come here with text: for
 * text and json the value itself is written.
 */
function writeFromText(out: BinaryData, c: EncodeColumn, text: string, v: unknown, col: number): void {
  const bad = () => new ValueRefused(col, `internal: no binary form for the COPY text ${JSON.stringify(text.slice(0, 64))} of a ${c.kind} column`, v);
  switch (c.kind) {
    case "boolean":
      if (text !== "t" && text !== "f") throw bad();
      writeBool(out, text === "t");
      return;
    case "bigint":
      writeBigInt8(out, BigInt(text));
      return;
    case "double precision": {
      const x = Number(text);
      if (Number.isNaN(x)) throw bad();
      writeFloat8(out, x);
      return;
    }
    case "numeric":
      writeNumeric(out, text);
      return;
    case "date":
    case "timestamp":
    case "timestamptz":
      if (!parseIso(text, c.kind)) throw bad();
      if (c.kind === "date") writeDate(out, parsed.secs / 86400);
      else writeMicros(out, parsed.secs, parsed.micros);
      return;
    case "text":
    case "json":
      // Numbers in a text column: their COPY text has no escapes.
      if (typeof v === "string") {
        writeUtf8(out, v);
        return;
      }
      writeUtf8(out, text);
      return;
    default:
      throw bad();
  }
}
