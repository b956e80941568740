/**
 * The snapshot phase: copy every table in short key-ordered chunks, each
 * chunk in its own SQLite read (no long read transaction pins the WAL) and
 * its own Postgres transaction together with the table's progress, so a
 * crash at any instant loses at most the chunk in flight and a restart goes
 * on from the last committed key. Rows that change while the snapshot runs
 * have changelog entries past the position recorded before it started; the
 * stream re-reads them, so the copy needs no lock and no consistent read.
 */
import type BetterSqlite3 from "better-sqlite3";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import type { MigrationPlan, TablePlan } from "../plan/plan.js";
import { qualified, quoteIdent } from "../ident.js";
import { createTableSql } from "../postgres/ddl.js";
import { ChunkReader } from "../sqlite/reader.js";
import { ROWID_COLUMN, RowEncoder, type TransformedValue } from "../convert/row-encoder.js";
import { BINARY_HEADER, BINARY_TRAILER, BinaryData } from "../convert/copy-binary.js";
import { GeneratedCheck } from "../postgres/generated-check.js";
import { readNamed } from "../plan/too-big.js";
import { toJson, type TableProgress } from "./state.js";
import { crashPoint } from "../observe/crash-points.js";
import { Sqlite2pgError } from "../errors.js";
import { inTransaction } from "../postgres/transaction.js";

/** Options of {@link snapshotTable}. */
export interface SnapshotOptions {
  sourceId: string;
  chunkRows: number;
  /** A chunk also ends once its rows pass this many bytes (default 32 MiB). */
  chunkBytes?: number;
  fixText: boolean;
  transformed: TransformedValue[];
  /** Checked between chunks: stop early (the progress is saved). */
  stopping: () => boolean;
  /** Run in the transaction that marks the table done (a copy after a schema change builds the table's keys there). */
  finish?: (client: pg.ClientBase) => Promise<void>;
  onChunk?: (rows: number) => void;
  /** Read before each chunk: rows and bytes per chunk as they are now (SIGHUP may change them). */
  limits?: () => { rows: number; bytes?: number };
}

/** Whether a table is keyed by SQLite's rowid without a declared rowid column in Postgres. */
export function usesRowidColumn(t: TablePlan): boolean {
  return t.readOrder.kind === "rowid" && t.source.rowidAlias === null;
}

/** CREATE TABLE for the daemon: the plan's table, and first, when the table needs it, the rowid column. */
export function snapshotTableSql(plan: MigrationPlan, t: TablePlan): string {
  // Nullable: the application's own inserts after the cutover never set it, and it is dropped then.
  return createTableSql(plan, t, usesRowidColumn(t) ? [`${quoteIdent(ROWID_COLUMN)} bigint`] : []);
}

/** Copy one table from where its progress says, chunk by chunk. Returns true when the table is done. */
export async function snapshotTable(
  db: BetterSqlite3.Database,
  client: pg.ClientBase,
  plan: MigrationPlan,
  t: TablePlan,
  progress: TableProgress,
  opts: SnapshotOptions,
): Promise<boolean> {
  const reader = new ChunkReader(
    db,
    t,
    t.columns.map((c) => c.source.name),
    opts.chunkRows,
    { after: null, upTo: null },
    true,
  );
  if (progress.lastKey) reader.resumeAfter(progress.lastKey);
  if (opts.chunkBytes) reader.maxBytes = opts.chunkBytes;
  const encoder = new RowEncoder(db, t, reader.keyNames, reader.keyWidth, {
    fixText: opts.fixText,
    transformed: opts.transformed,
    rowidColumn: usesRowidColumn(t),
  });
  const generated = GeneratedCheck.of(plan.schema, t, reader.keyNames, reader.keyWidth);
  const copySql = `COPY ${qualified(plan.schema, t.name)} (${encoder.columnList}) FROM STDIN (FORMAT binary)`;
  let copied = progress.rows;
  for (;;) {
    if (opts.stopping()) return false;
    const limits = opts.limits?.();
    if (limits) {
      reader.chunkRows = limits.rows;
      if (limits.bytes) reader.maxBytes = limits.bytes;
    }
    const rows = readNamed(db, t, () => reader.read());
    if (rows === null) {
      const finish = opts.finish;
      if (!finish) {
        await client.query("UPDATE sqlite2pg.snapshot_progress SET done = true WHERE source_id = $1 AND table_name = $2", [opts.sourceId, t.source.name]);
        return true;
      }
      await inTransaction(client, async () => {
        await finish(client);
        await client.query("UPDATE sqlite2pg.snapshot_progress SET done = true WHERE source_id = $1 AND table_name = $2", [opts.sourceId, t.source.name]);
      });
      return true;
    }
    const data = new BinaryData();
    data.pushBuffer(BINARY_HEADER);
    for (const r of rows) encoder.writeBinary(r, data);
    data.pushBuffer(BINARY_TRAILER);
    const lastKey = rows[rows.length - 1]!.slice(0, reader.keyWidth);
    await inTransaction(client, async () => {
      await pipeline(Readable.from(data.take()), client.query(copyFrom(copySql)));
      await generated?.check(client, rows);
      // Conditional on the progress this daemon started from: a second daemon
      // that copied the same chunk meanwhile makes this one roll back.
      const moved = await client.query(
        "UPDATE sqlite2pg.snapshot_progress SET last_key = $3::jsonb, rows = rows + $4 WHERE source_id = $1 AND table_name = $2 AND rows = $5",
        [opts.sourceId, t.source.name, toJson(lastKey), rows.length, copied],
      );
      if (moved.rowCount !== 1) {
        throw new Sqlite2pgError(
          "target",
          "SNAPSHOT_PROGRESS_MOVED",
          `the snapshot progress of ${t.source.name} moved under this daemon (another daemon?); nothing of this chunk was committed`,
          {
            context: { table: t.source.name },
            retryable: true,
            hint: "the daemon re-reads the progress and goes on from there",
          },
        );
      }
    });
    crashPoint("snapshot-chunk-committed");
    copied += rows.length;
    opts.onChunk?.(rows.length);
  }
}
