import type BetterSqlite3 from "better-sqlite3";
import { isUtf8 } from "node:buffer";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { sourceError, targetError } from "../errors.js";
import { renderKey, renderValue, type MigrationPlan, type TablePlan } from "../plan/plan.js";
import { qualified, quoteIdent } from "../sql/ident.js";
import { ChunkReader, type RowidRange } from "../source/reader.js";
import { readRawText } from "../plan/scan.js";
import { encodeValue, isSuspectText, ValueRefused } from "./copy-encode.js";
import { rowRecorder, type DigestBuilder } from "../validate/digest.js";

/** A value changed on the way because the operator asked for it (`--fix-text`). */
export interface TransformedValue {
  table: string;
  column: string;
  key: string;
  original: string;
  reason: string;
}

/** Options of one table copy. */
export interface CopyOptions {
  chunkRows: number;
  /** Strip NUL bytes and replace invalid UTF-8 instead of refusing the value. */
  fixText: boolean;
  /** Called after each chunk is handed to the COPY stream. */
  onRows?: (rows: number, bytes: number) => void;
  /** Every value changed under `fixText`. */
  transformed: TransformedValue[];
  /** Receives every row copied, as Postgres will print it, for validation. */
  digest?: DigestBuilder;
}

const FLUSH_BYTES = 128 * 1024;

/**
 * Copy one table, or one rowid range of it, with a single COPY FROM STDIN.
 * Rows are read in key-ordered chunks (one short SQLite statement each) and
 * encoded as COPY text; the stream's backpressure paces the reading. A
 * failure destroys the stream, so the server rolls the COPY back: nothing is
 * half-copied. Resolves once the server has confirmed the COPY.
 */
export async function copyTable(
  db: BetterSqlite3.Database,
  client: pg.ClientBase,
  plan: MigrationPlan,
  t: TablePlan,
  range: RowidRange,
  opts: CopyOptions,
): Promise<number> {
  // Read every column (the digest covers columns Postgres generates too);
  // COPY writes the copied ones.
  const all = t.columns;
  const copiedIdx = all.map((c, i) => (c.copied ? i : -1)).filter((i) => i >= 0);
  const cols = copiedIdx.map((i) => all[i]!);
  const reader = new ChunkReader(db, t, all.map((c) => c.source.name), opts.chunkRows, range);
  const digest = opts.digest;
  const record = rowRecorder(all);
  const width = reader.keyWidth;
  const sql = `COPY ${qualified(plan.schema, t.name)} (${cols.map((c) => quoteIdent(c.name)).join(", ")}) FROM STDIN`;
  let total = 0;

  const fixSuspect = (s: string, ci: number, row: unknown[]): string => {
    const col = cols[ci]!;
    const keyVals = row.slice(0, width);
    const key = renderKey(reader.keyNames, keyVals);
    let reason: string | null = null;
    let raw: Buffer | null = null;
    if (s.includes("\uFFFD")) {
      raw = readRawText(db, t.source.name, col.source.name, reader.keyNames, keyVals);
      if (raw && !isUtf8(raw)) reason = "invalid UTF-8";
    }
    if (s.includes("\u0000")) reason = reason ? `${reason} and a NUL byte` : "a NUL byte";
    if (!reason) return s;
    const shown = raw ? `x'${raw.subarray(0, 48).toString("hex")}${raw.length > 48 ? "…" : ""}'` : renderValue(s);
    if (!opts.fixText) {
      throw sourceError("VALUE_REFUSED", `table ${t.source.name}, column ${col.source.name}, ${key}: text with ${reason}, which Postgres cannot store`, {
        context: { table: t.source.name, column: col.source.name, key, value: shown },
        hint: "fix the value in SQLite, or pass --fix-text to strip NUL bytes and replace invalid UTF-8 with U+FFFD (every changed value is listed)",
      });
    }
    opts.transformed.push({ table: t.source.name, column: col.source.name, key, original: shown, reason });
    return s.replace(/\u0000/g, "");
  };

  async function* chunks(): AsyncGenerator<Buffer> {
    let parts: string[] = [];
    let size = 0;
    for (let rows = reader.read(); rows !== null; rows = reader.read()) {
      const before = size;
      for (const row of rows) {
        let line = "";
        for (let i = 0; i < cols.length; i++) {
          const at = width + copiedIdx[i]!;
          let v = row[at];
          if (typeof v === "string" && isSuspectText(v)) row[at] = v = fixSuspect(v, i, row);
          let field: string;
          try {
            field = encodeValue(v, cols[i]!, i);
          } catch (e) {
            if (!(e instanceof ValueRefused)) throw e;
            const key = renderKey(reader.keyNames, row.slice(0, width));
            throw sourceError("VALUE_REFUSED", `table ${t.source.name}, column ${cols[i]!.source.name}, ${key}: ${e.reason}`, {
              context: { table: t.source.name, column: cols[i]!.source.name, key, value: renderValue(v) },
              hint: "run `sqlite2pg plan` to see the type chosen for this column and why",
            });
          }
          line += i === 0 ? field : "\t" + field;
        }
        line += "\n";
        parts.push(line);
        if (digest) digest.add(record(row, width));
        size += line.length;
      }
      total += rows.length;
      opts.onRows?.(rows.length, size - before);
      if (size >= FLUSH_BYTES) {
        const buf = Buffer.from(parts.join(""));
        parts = [];
        size = 0;
        yield buf;
      }
    }
    if (parts.length) yield Buffer.from(parts.join(""));
  }

  try {
    await pipeline(Readable.from(chunks(), { objectMode: false }), client.query(copyFrom(sql)));
  } catch (e) {
    if (e instanceof Error && "category" in e) throw e;
    throw targetError("COPY_FAILED", `COPY into ${t.name} failed: ${(e as Error).message}`, {
      context: { table: t.source.name, postgres_table: `${plan.schema}.${t.name}` },
      cause: e,
    });
  }
  return total;
}
