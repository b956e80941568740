import type BetterSqlite3 from "better-sqlite3";
import { isUtf8 } from "node:buffer";
import { sourceError } from "../errors.js";
import { renderKey, renderValue, type ColumnPlan, type TablePlan } from "../plan/plan.js";
import { readRawText } from "../plan/scan.js";
import { quoteIdent } from "../ident.js";
import { encodeValue, ValueRefused } from "./copy-encode.js";
import { isSuspectText } from "../sqlite/text.js";
import { BINARY_HEADER, BINARY_TRAILER, BinaryData, fieldWriter, writeInt8, writeNull, type FieldWriter } from "./copy-binary.js";

/** A value changed on the way because the operator asked for it (`--fix-text`). */
export interface TransformedValue {
  table: string;
  column: string;
  key: string;
  original: string;
  reason: string;
}

/** The Postgres column that carries SQLite's rowid for tables whose rowid is not a declared column. */
export const ROWID_COLUMN = "_sqlite2pg_rowid";

/** The quoted column list a table's COPY writes: the copied columns, after the rowid column when there is one. */
export function copyColumnList(t: TablePlan, rowidColumn: boolean): string {
  const names = t.columns.filter((c) => c.copied).map((c) => quoteIdent(c.name));
  if (rowidColumn) names.unshift(quoteIdent(ROWID_COLUMN));
  return names.join(", ");
}

/** Options of a {@link RowEncoder}. */
export interface RowEncoderOptions {
  /** Strip NUL bytes and replace invalid UTF-8 instead of refusing the value. */
  fixText: boolean;
  /** Receives every value changed under `fixText`. */
  transformed: TransformedValue[];
  /** Write the row's rowid (its first key field) into {@link ROWID_COLUMN} first. */
  rowidColumn?: boolean;
}

/**
 * Turns SQLite rows into COPY text lines for one table. Rows are raw arrays:
 * the reading key fields first (`keyWidth` of them), then one value per
 * planned column. A value Postgres cannot hold stops with an error naming
 * table, column, key and value; under `fixText` NULs and invalid UTF-8 are
 * repaired and listed instead.
 */
export class RowEncoder {
  readonly copied: ColumnPlan[];
  private readonly copiedIdx: number[];
  /** The COPY column list, quoted. */
  readonly columnList: string;

  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly t: TablePlan,
    private readonly keyNames: string[],
    private readonly keyWidth: number,
    private readonly opts: RowEncoderOptions,
  ) {
    this.copiedIdx = t.columns.map((c, i) => (c.copied ? i : -1)).filter((i) => i >= 0);
    this.copied = this.copiedIdx.map((i) => t.columns[i]!);
    this.columnList = copyColumnList(t, opts.rowidColumn ?? false);
  }

  /** One COPY line (with its newline). May repair the row's text values in place under `fixText`. */
  line(row: unknown[]): string {
    let line = "";
    this.fields(row, (f) => (line += typeof f === "string" ? f : f.toString("latin1")));
    return line;
  }

  /**
   * Append one row to COPY data. A blob of more than {@link BIG_BLOB} bytes
   * goes as a run of hex Buffers, never as one string: a 200 MiB blob
   * is 400 MiB of hex, near V8's limit on a string's length.
   */
  write(row: unknown[], out: CopyData): void {
    this.fields(row, (f) => (typeof f === "string" ? out.push(f) : out.pushBuffer(f)));
  }

  /**
   * Append one row to binary COPY data (`COPY … FROM STDIN (FORMAT binary)`):
   * the same values, refusals and repairs as {@link write}, in each type's
   * binary form.
   */
  writeBinary(row: unknown[], out: BinaryData): void {
    if (!this.binaryWriters) this.binaryWriters = this.copied.map((c, i) => fieldWriter(c, i));
    const writers = this.binaryWriters;
    const width = this.keyWidth;
    const rowid = this.opts.rowidColumn;
    out.int16(this.copied.length + (rowid ? 1 : 0));
    if (rowid) {
      const r = row[0];
      if (typeof r === "bigint") {
        out.int32(8);
        out.ensure(8);
        out.buf.writeBigInt64BE(r, out.pos);
        out.pos += 8;
      } else writeInt8(out, r as number);
    }
    for (let i = 0; i < writers.length; i++) {
      const at = width + this.copiedIdx[i]!;
      let v = row[at];
      if (v === null || v === undefined) {
        writeNull(out);
        continue;
      }
      if (typeof v === "string") {
        if (isSuspectText(v)) row[at] = v = this.fixSuspect(v, this.copied[i]!, row);
      } else if (Buffer.isBuffer(v) && v.length > MAX_COPY_BLOB && this.copied[i]!.kind === "bytea") {
        this.refuse(tooBig(v), this.copied[i]!, row, v);
      }
      try {
        writers[i]!(v, out);
      } catch (e) {
        if (!(e instanceof ValueRefused)) throw e;
        this.refuse(e.reason, this.copied[i]!, row, v);
      }
    }
  }

  private binaryWriters: FieldWriter[] | undefined;

  /** Rows as one whole binary COPY (signature to trailer), in a Buffer of its own (one a thread can hand over). */
  binaryCopy(rows: unknown[][]): Buffer {
    const copy = this.binaryCopyStart();
    for (const r of rows) this.writeBinary(r, copy);
    return this.binaryCopyEnd(copy);
  }

  /** A whole binary COPY written in parts: its signature, then rows with {@link writeBinary}, then {@link binaryCopyEnd}. */
  binaryCopyStart(): BinaryData {
    const data = new BinaryData();
    data.pushBuffer(BINARY_HEADER);
    return data;
  }

  /** The trailer, and the whole COPY in a Buffer of its own. */
  binaryCopyEnd(data: BinaryData): Buffer {
    data.pushBuffer(BINARY_TRAILER);
    const buf = Buffer.allocUnsafeSlow(data.size);
    let at = 0;
    for (const p of data.take()) at += p.copy(buf, at);
    data.recycle();
    return buf;
  }

  private fields(row: unknown[], emit: (f: string | Buffer) => void): void {
    const width = this.keyWidth;
    if (this.opts.rowidColumn) emit(String(row[0]));
    for (let i = 0; i < this.copied.length; i++) {
      const at = width + this.copiedIdx[i]!;
      let v = row[at];
      if (i > 0 || this.opts.rowidColumn) emit("\t");
      if (Buffer.isBuffer(v) && v.length > BIG_BLOB && this.copied[i]!.kind === "bytea") {
        this.bigBlob(v, this.copied[i]!, row, emit);
        continue;
      }
      if (typeof v === "string" && isSuspectText(v)) row[at] = v = this.fixSuspect(v, this.copied[i]!, row);
      try {
        emit(encodeValue(v, this.copied[i]!, i));
      } catch (e) {
        if (!(e instanceof ValueRefused)) throw e;
        this.refuse(e.reason, this.copied[i]!, row, v);
      }
    }
    emit("\n");
  }

  private bigBlob(v: Buffer, c: ColumnPlan, row: unknown[], emit: (f: string | Buffer) => void): void {
    // COPY reads a line into one buffer of at most 1 GB; as hex, a blob takes twice its size.
    if (v.length > MAX_COPY_BLOB) this.refuse(tooBig(v), c, row, v);
    emit("\\\\x");
    for (let o = 0; o < v.length; o += BIG_BLOB) emit(Buffer.from(v.subarray(o, o + BIG_BLOB).toString("hex"), "latin1"));
  }

  private refuse(reason: string, c: ColumnPlan, row: unknown[], v: unknown): never {
    const key = renderKey(this.keyNames, row.slice(0, this.keyWidth));
    throw sourceError("VALUE_REFUSED", `table ${this.t.source.name}, column ${c.source.name}, ${key}: ${reason} (the column is ${c.type.sql})`, {
      context: { table: this.t.source.name, column: c.source.name, key, value: renderValue(v) },
      hint: "fix the value in SQLite; `sqlite2pg plan` shows the type chosen for this column and why",
    });
  }

  private fixSuspect(s: string, col: ColumnPlan, row: unknown[]): string {
    const keyVals = row.slice(0, this.keyWidth);
    const key = renderKey(this.keyNames, keyVals);
    let reason: string | null = null;
    let raw: Buffer | null = null;
    if (s.includes("\uFFFD")) {
      raw = readRawText(this.db, this.t.source.name, col.source.name, this.keyNames, keyVals);
      if (raw && !isUtf8(raw)) reason = "invalid UTF-8";
    }
    if (s.includes("\u0000")) reason = reason ? `${reason} and a NUL byte` : "a NUL byte";
    if (!reason) return s;
    const shown = raw ? `x'${raw.subarray(0, 48).toString("hex")}${raw.length > 48 ? "…" : ""}'` : renderValue(s);
    if (!this.opts.fixText) {
      throw sourceError("VALUE_REFUSED", `table ${this.t.source.name}, column ${col.source.name}, ${key}: text with ${reason}, which Postgres cannot store`, {
        context: { table: this.t.source.name, column: col.source.name, key, value: shown },
        hint: "fix the value in SQLite, or pass --fix-text to strip NUL bytes and replace invalid UTF-8 with U+FFFD (every changed value is listed)",
      });
    }
    this.opts.transformed.push({ table: this.t.source.name, column: col.source.name, key, original: shown, reason });
    return s.replace(/\u0000/g, "");
  }
}

/** Blobs above this size are written to COPY data in hex pieces of this size. */
const BIG_BLOB = 1024 * 1024;
/** The largest blob one COPY line carries (as hex, with its row, under Postgres' 1 GB line buffer). */
const MAX_COPY_BLOB = 512 * 1024 * 1024 - 64 * 1024;

function tooBig(v: Buffer): string {
  return `a blob of ${v.length} bytes: Postgres reads a COPY line of at most 1 GB, which holds a bytea of at most ${MAX_COPY_BLOB} bytes`;
}

/**
 * COPY data as a list of Buffers of about {@link PIECE} bytes each: a batch
 * or a chunk never becomes one string (V8 caps a string near 512 MiB, and
 * one big string is one big copy).
 */
export class CopyData {
  readonly buffers: Buffer[] = [];
  /** Bytes so far. */
  bytes = 0;
  private pending = "";

  /** Append text. */
  push(s: string): void {
    this.pending += s;
    if (this.pending.length >= PIECE) this.flush();
  }

  /** Append bytes as they are. */
  pushBuffer(b: Buffer): void {
    this.flush();
    this.buffers.push(b);
    this.bytes += b.length;
  }

  private flush(): void {
    if (!this.pending) return;
    const b = Buffer.from(this.pending);
    this.pending = "";
    this.buffers.push(b);
    this.bytes += b.length;
  }

  /** Everything appended, as Buffers (the pending text flushed). */
  take(): Buffer[] {
    this.flush();
    return this.buffers;
  }
}

const PIECE = 256 * 1024;
