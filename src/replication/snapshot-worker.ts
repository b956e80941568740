/**
 * A snapshot prefetch thread: reads one table's chunks from SQLite on its
 * own connection and encodes them as binary COPY data, a few chunks ahead
 * of the daemon, which sends them to Postgres and commits each with its
 * progress. Reading and encoding run on one core while Postgres ingests
 * the previous chunk on the other; nothing here touches Postgres, so what a
 * crash leaves behind is decided by the daemon's commits alone.
 */
import { parentPort, workerData } from "node:worker_threads";
import type BetterSqlite3 from "better-sqlite3";
import type { TablePlan } from "../plan/plan.js";
import { openSource } from "../sqlite/open.js";
import { ChunkReader, DEFAULT_CHUNK_BYTES } from "../sqlite/reader.js";
import { readNamed } from "../plan/too-big.js";
import { RowEncoder, type TransformedValue } from "../convert/row-encoder.js";
import { usesRowidColumn } from "./snapshot.js";
import { serializeError, type PrefetchInit, type PrefetchReply } from "./snapshot-prefetch.js";

const init = workerData as PrefetchInit;
const port = parentPort!;
let ended = false;
let credits = init.ahead;
const transformed: TransformedValue[] = [];
let source: { db: BetterSqlite3.Database; t: TablePlan; reader: ChunkReader; encoder: RowEncoder } | null = null;
try {
  const db = openSource(init.sqlite);
  const t = init.plan.tables[init.table]!;
  const reader = new ChunkReader(
    db,
    t,
    t.columns.map((c) => c.source.name),
    init.chunkRows,
    { after: null, upTo: null },
    true,
  );
  if (init.after) reader.resumeAfter(init.after);
  const encoder = new RowEncoder(db, t, reader.keyNames, reader.keyWidth, { fixText: init.fixText, transformed, rowidColumn: usesRowidColumn(t) });
  source = { db, t, reader, encoder };
} catch (e) {
  // Reported as any other error: its category, hint and retryability kept.
  ended = true;
  port.postMessage({ type: "error", error: serializeError(e) } satisfies PrefetchReply);
}

/** Rows and bytes per chunk (a chunk is one Postgres transaction); the latest limits the daemon sent. */
const limits = { rows: init.chunkRows, bytes: init.chunkBytes ?? DEFAULT_CHUNK_BYTES };

/**
 * Rows read and encoded at a time: a chunk is built from short reads, so
 * the rows read die young and the thread's heap stays small whatever the
 * chunk's size.
 */
const READ_ROWS = 256;

function pump(): void {
  if (!source) return;
  const { db, t, reader, encoder } = source;
  try {
    while (credits > 0 && !ended) {
      const copy = encoder.binaryCopyStart();
      const raw: unknown[][] | null = init.raw ? [] : null;
      let n = 0;
      let read = 0;
      let lastKey: unknown[] | null = null;
      while (n < limits.rows && read < limits.bytes) {
        reader.chunkRows = Math.min(READ_ROWS, limits.rows - n);
        reader.maxBytes = limits.bytes - read;
        const rows = readNamed(db, t, () => reader.read());
        if (rows === null) break;
        for (const r of rows) encoder.writeBinary(r, copy);
        read += reader.lastBytes;
        if (raw) for (const r of rows) raw.push(r);
        n += rows.length;
        lastKey = rows[rows.length - 1]!.slice(0, reader.keyWidth);
      }
      if (n === 0) {
        ended = true;
        port.postMessage({ type: "end" } satisfies PrefetchReply);
        break;
      }
      const buf = encoder.binaryCopyEnd(copy);
      const reply: PrefetchReply = { type: "chunk", data: buf, rows: n, lastKey: lastKey!, raw, transformed: transformed.splice(0) };
      port.postMessage(reply, [buf.buffer as ArrayBuffer]);
      credits--;
    }
  } catch (e) {
    ended = true;
    port.postMessage({ type: "error", error: serializeError(e) } satisfies PrefetchReply);
  }
}

port.on("message", (m: { type: "credit" } | { type: "limits"; rows: number; bytes?: number }) => {
  if (m.type === "limits") {
    limits.rows = m.rows;
    if (m.bytes) limits.bytes = m.bytes;
    return;
  }
  credits++;
  pump();
});
pump();
