/**
 * A SQLite row's canonical texts written straight into a reusable byte
 * buffer as UTF-8, the bytes the server hashes, without a string per field
 * and per row: the digest of every row of a table is mostly this loop.
 * Either one field at a time, as the text itself (`fields`: what the
 * lookup3 digest hashes, field by field), or the whole row as its record
 * text — what `ROW(canonical values)::text` prints in Postgres, the same
 * text as `rowRecorder` (digest.ts) builds as a string (`record`: the md5
 * digest's input).
 */
import type { EncodeColumn } from "../plan/types.js";
import { canonicalWriter } from "../convert/canonical.js";
import { parsed, parseIso } from "../convert/conversions.js";

/** record_out's reasons to quote a field (C isspace() in ASCII, quote, backslash, parentheses, comma); 2 = also doubled. */
const SPECIAL = new Uint8Array(128);
for (const ch of " \t\n\v\f\r(),") SPECIAL[ch.charCodeAt(0)] = 1;
SPECIAL[34] = 2; // "
SPECIAL[92] = 2; // \
const HEX = new Uint8Array(Array.from("0123456789abcdef", (ch) => ch.charCodeAt(0)));
const F64 = new DataView(new ArrayBuffer(8));
/** Strings longer than this are measured before the buffer grows, not bounded by 3 bytes a character. */
const LONG = 4096;
/** From this length on, a string without special characters is written by Node's UTF-8 writer rather than the loop. */
const NATIVE_MIN = 16;
/** Any of record_out's reasons to quote (see SPECIAL). */
const NEEDS_QUOTES = /[ \t\n\v\f\r(),"\\]/;
/** Seconds from the unix epoch to Postgres' (2000-01-01), as parsed.secs counts them. */
const UNIX_EPOCH_SECS = 946684800;

/**
 * Writes rows of one table (values from `offset` on, one per column) in
 * UTF-8: as their record text, byte for byte
 * `Buffer.from(rowRecorder(cols)(row, offset))` (`write`, in `record`
 * form), or one field's canonical text, byte for byte
 * `Buffer.from(canonicalWriter(col)(v))` (`writeField`, in `fields` form).
 */
export class RecordWriter {
  /** The last row or field written, in bytes `[0, length)`; a new buffer when one outgrows it. */
  buf = Buffer.allocUnsafe(1024);
  private pos = 0;
  private readonly writers: ((v: unknown) => void)[];
  /** Whether fields are quoted as record_out quotes them (the `record` form). */
  private readonly quote: boolean;
  /** Columns per row. */
  readonly width: number;

  constructor(
    cols: EncodeColumn[],
    readonly form: "record" | "fields" = "record",
  ) {
    this.quote = form === "record";
    this.width = cols.length;
    this.writers = cols.map((c) => this.columnWriter(c));
  }

  /** Write the canonical text of one non-NULL value of column `i` (`fields` form); returns its length in bytes. */
  writeField(i: number, v: unknown): number {
    this.pos = 0;
    this.writers[i]!(v);
    return this.pos;
  }

  /** Write one row; returns its length in bytes. */
  write(row: unknown[], offset: number): number {
    const writers = this.writers;
    const n = writers.length;
    this.pos = 0;
    this.reserve(n + 2);
    this.buf[this.pos++] = 40; // (
    for (let i = 0; i < n; i++) {
      if (i > 0) this.buf[this.pos++] = 44; // ,
      const v = row[offset + i];
      if (v !== null && v !== undefined) writers[i]!(v);
    }
    this.buf[this.pos++] = 41; // )
    return this.pos;
  }

  private columnWriter(c: EncodeColumn): (v: unknown) => void {
    const text = canonicalWriter(c);
    if (c.conversion === "none" && c.kind === "double precision")
      return (v) => (typeof v === "number" ? this.double(v) : typeof v === "bigint" ? this.double(Number(v)) : this.field(text(v)!));
    // The common values of the kinds below, as digits written straight into
    // the buffer: the same text canonical.ts spells, without a string.
    if (c.conversion === "none" && c.kind === "bigint")
      return (v) => (typeof v === "number" && Number.isSafeInteger(v) ? this.integer(v) : this.field(text(v)!));
    if (c.conversion === "none" && (c.kind === "timestamp" || c.kind === "timestamptz")) {
      const mode = c.kind;
      return (v) => (typeof v === "string" && parseIso(v, mode) ? this.epochSeconds(parsed.secs + UNIX_EPOCH_SECS, parsed.micros) : this.field(text(v)!));
    }
    // Any other canonical text, foreign ones (`?…`) included, goes through the quoting
    // loop: bare texts (digits, hex, dates) never trigger it, so it costs them nothing.
    return (v) => this.field(text(v)!);
  }

  /** Room for `more` bytes past the current position, plus the separators that follow a field. */
  private reserve(more: number): void {
    const need = this.pos + more + 2;
    if (need <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  /** A safe integer's decimal digits (String(v), -0 as 0). */
  private integer(v: number): void {
    this.reserve(17);
    const buf = this.buf;
    let p = this.pos;
    if (v < 0) {
      buf[p++] = 45; // -
      v = -v;
    }
    const start = p;
    do {
      const q = Math.floor(v / 10);
      buf[p++] = 48 + (v - q * 10);
      v = q;
    } while (v > 0);
    // Digits were written lowest first.
    for (let i = start, j = p - 1; i < j; i++, j--) {
      const t = buf[i]!;
      buf[i] = buf[j]!;
      buf[j] = t;
    }
    this.pos = p;
  }

  /** Whole seconds `e` and microseconds `us` as epochSecondsText spells them: a fraction without trailing zeros, towards zero. */
  private epochSeconds(e: number, us: number): void {
    if (us === 0) {
      this.integer(e);
      return;
    }
    if (e < 0) {
      // A negative instant with a fraction: the whole part towards zero, the fraction's complement.
      if (e + 1 === 0) {
        this.reserve(2);
        this.buf[this.pos++] = 45;
        this.buf[this.pos++] = 48;
      } else this.integer(e + 1);
      us = 1000000 - us;
    } else this.integer(e);
    this.reserve(7);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = 46; // .
    for (let unit = 100000; us > 0; unit /= 10) {
      const d = Math.floor(us / unit);
      buf[p++] = 48 + d;
      us -= d * unit;
    }
    this.pos = p;
  }

  /** A double's 8 bytes big-endian as 16 lower-case hex digits (canonical.ts' doubleBits). */
  private double(x: number): void {
    this.reserve(16);
    const buf = this.buf;
    let p = this.pos;
    F64.setFloat64(0, x, false);
    for (let i = 0; i < 8; i++) {
      const byte = F64.getUint8(i);
      buf[p++] = HEX[byte >>> 4]!;
      buf[p++] = HEX[byte & 15]!;
    }
    this.pos = p;
  }

  /**
   * One non-NULL field as record_out writes it: quoted when empty or when
   * it holds a special character, `"` and `\` doubled inside quotes; in the
   * `fields` form, never quoted. UTF-8 as Buffer.from writes it (a lone
   * surrogate becomes U+FFFD).
   */
  private field(s: string): void {
    const n = s.length;
    const quote = this.quote;
    if (n >= NATIVE_MIN && (!quote || !NEEDS_QUOTES.test(s))) {
      // Nothing to quote: Node's own UTF-8 writer (lone surrogates become U+FFFD there too).
      this.reserve(n > LONG ? Buffer.byteLength(s) : 3 * n);
      this.pos += this.buf.write(s, this.pos, "utf8");
      return;
    }
    // Each UTF-16 unit is at most 3 bytes, or 2 when doubled; 2 for the quotes.
    this.reserve(n > LONG ? 2 * Buffer.byteLength(s) + 2 : 3 * n + 2);
    const buf = this.buf;
    const start = this.pos;
    let p = start;
    let quoted = quote && n === 0;
    if (quoted) buf[p++] = 34;
    for (let i = 0; i < n; i++) {
      let ch = s.charCodeAt(i);
      if (ch < 0x80) {
        const sp = quote ? SPECIAL[ch]! : 0;
        if (sp !== 0) {
          if (!quoted) {
            // The first special character: what was written moves right to make room for the opening quote.
            buf.copyWithin(start + 1, start, p);
            buf[start] = 34;
            p++;
            quoted = true;
          }
          if (sp === 2) buf[p++] = ch;
        }
        buf[p++] = ch;
      } else if (ch < 0x800) {
        buf[p++] = 0xc0 | (ch >>> 6);
        buf[p++] = 0x80 | (ch & 63);
      } else if (ch < 0xd800 || ch > 0xdfff) {
        buf[p++] = 0xe0 | (ch >>> 12);
        buf[p++] = 0x80 | ((ch >>> 6) & 63);
        buf[p++] = 0x80 | (ch & 63);
      } else {
        const lo = i + 1 < n ? s.charCodeAt(i + 1) : 0;
        if (ch <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff) {
          ch = 0x10000 + ((ch - 0xd800) << 10) + (lo - 0xdc00);
          i++;
          buf[p++] = 0xf0 | (ch >>> 18);
          buf[p++] = 0x80 | ((ch >>> 12) & 63);
          buf[p++] = 0x80 | ((ch >>> 6) & 63);
          buf[p++] = 0x80 | (ch & 63);
        } else {
          buf[p++] = 0xef; // a lone surrogate: U+FFFD
          buf[p++] = 0xbf;
          buf[p++] = 0xbd;
        }
      }
    }
    if (quoted) buf[p++] = 34;
    this.pos = p;
  }
}
