import type BetterSqlite3 from "better-sqlite3";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { targetError } from "../errors.js";
import type { MigrationPlan, TablePlan } from "../plan/plan.js";
import { qualified } from "../ident.js";
import { ChunkReader, type RowidRange } from "../sqlite/reader.js";
import { readNamed } from "../plan/too-big.js";
import { RowEncoder, type TransformedValue } from "../convert/row-encoder.js";
import { BINARY_HEADER, BINARY_TRAILER, BinaryData } from "../convert/copy-binary.js";
import type { DigestBuilder } from "../validate/digest.js";

/** Options of one table copy. */
export interface CopyOptions {
  chunkRows: number;
  /** A chunk also ends once its rows pass this many bytes (default: the reader's). */
  chunkBytes?: number;
  /** Strip NUL bytes and replace invalid UTF-8 instead of refusing the value. */
  fixText: boolean;
  /** Called after each chunk is handed to the COPY stream. */
  onRows?: (rows: number, bytes: number) => void;
  /** Every value changed under `fixText`. */
  transformed: TransformedValue[];
  /** Receives every row copied, as Postgres will print it, for validation. */
  digest?: DigestBuilder;
  /** Also write each row's rowid into the rowid column (replication of tables keyed by rowid). */
  rowidColumn?: boolean;
}

const FLUSH_BYTES = 128 * 1024;

/**
 * Copy one table, or one rowid range of it, with a single COPY FROM STDIN.
 * Rows are read in key-ordered chunks (one short SQLite statement each) and
 * encoded in COPY's binary format (Postgres reads it with far less work
 * than text); the stream's backpressure paces the reading. A
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
  const reader = new ChunkReader(
    db,
    t,
    all.map((c) => c.source.name),
    opts.chunkRows,
    range,
  );
  if (opts.chunkBytes) reader.maxBytes = opts.chunkBytes;
  const width = reader.keyWidth;
  const encoder = new RowEncoder(db, t, reader.keyNames, width, { fixText: opts.fixText, transformed: opts.transformed, rowidColumn: opts.rowidColumn });
  const digest = opts.digest;
  const record = digest ? digest.writer(all) : null;
  const sql = `COPY ${qualified(plan.schema, t.name)} (${encoder.columnList}) FROM STDIN (FORMAT binary)`;
  let total = 0;

  async function* chunks(): AsyncGenerator<Buffer> {
    let out = new BinaryData();
    out.pushBuffer(BINARY_HEADER);
    const read = () => readNamed(db, t, () => reader.read());
    for (let rows = read(); rows !== null; rows = read()) {
      const before = out.size;
      for (const row of rows) {
        encoder.writeBinary(row, out);
        if (digest) digest.addRow(record!, row, width);
      }
      total += rows.length;
      opts.onRows?.(rows.length, out.size - before);
      if (out.size >= FLUSH_BYTES) {
        yield* out.take();
        out = new BinaryData();
      }
    }
    out.pushBuffer(BINARY_TRAILER);
    yield* out.take();
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
