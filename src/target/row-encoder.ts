import type BetterSqlite3 from "better-sqlite3";
import { isUtf8 } from "node:buffer";
import { sourceError } from "../errors.js";
import { renderKey, renderValue, type ColumnPlan, type TablePlan } from "../plan/plan.js";
import { readRawText } from "../plan/scan.js";
import { quoteIdent } from "../sql/ident.js";
import { encodeValue, isSuspectText, ValueRefused } from "./copy-encode.js";

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
    const names = this.copied.map((c) => quoteIdent(c.name));
    if (opts.rowidColumn) names.unshift(quoteIdent(ROWID_COLUMN));
    this.columnList = names.join(", ");
  }

  /** One COPY line (with its newline). May repair the row's text values in place under `fixText`. */
  line(row: unknown[]): string {
    const width = this.keyWidth;
    let line = this.opts.rowidColumn ? String(row[0]) : "";
    for (let i = 0; i < this.copied.length; i++) {
      const at = width + this.copiedIdx[i]!;
      let v = row[at];
      if (typeof v === "string" && isSuspectText(v)) row[at] = v = this.fixSuspect(v, this.copied[i]!, row);
      let field: string;
      try {
        field = encodeValue(v, this.copied[i]!, i);
      } catch (e) {
        if (!(e instanceof ValueRefused)) throw e;
        const key = renderKey(this.keyNames, row.slice(0, width));
        const c = this.copied[i]!;
        throw sourceError("VALUE_REFUSED", `table ${this.t.source.name}, column ${c.source.name}, ${key}: ${e.reason} (the column is ${c.type.sql})`, {
          context: { table: this.t.source.name, column: c.source.name, key, value: renderValue(v) },
          hint: "fix the value in SQLite; `sqlite2pg plan` shows the type chosen for this column and why",
        });
      }
      line += i === 0 && !this.opts.rowidColumn ? field : "\t" + field;
    }
    return line + "\n";
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
