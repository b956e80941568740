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
import { ChunkReader, readKey } from "../sqlite/reader.js";
import { copyColumnList, ROWID_COLUMN, RowEncoder, type TransformedValue } from "../convert/row-encoder.js";
import { GeneratedCheck } from "../postgres/generated-check.js";
import { type Chunk, PrefetchedChunks } from "./snapshot-prefetch.js";
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
  /** The SQLite file: when given, chunks are read and encoded by a prefetch thread, a few ahead of the commits. */
  sqlitePath?: string;
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
  const key = readKey(t);
  const generated = GeneratedCheck.of(plan.schema, t, key.names, key.width);
  const chunks = opts.sqlitePath
    ? new PrefetchedChunks({
        sqlite: opts.sqlitePath,
        plan,
        table: plan.tables.indexOf(t),
        after: progress.lastKey,
        chunkRows: opts.chunkRows,
        chunkBytes: opts.chunkBytes,
        fixText: opts.fixText,
        raw: generated !== null,
        ahead: 1,
      })
    : new LocalChunks(db, t, progress.lastKey, opts);
  try {
    return await copyChunks(client, plan, t, progress, opts, chunks, generated);
  } finally {
    await chunks.close();
  }
}

/** Chunks read and encoded in this thread (a table copied again after a schema change). */
class LocalChunks {
  private readonly reader: ChunkReader;
  private readonly encoder: RowEncoder;

  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly t: TablePlan,
    after: unknown[] | null,
    opts: SnapshotOptions,
  ) {
    this.reader = new ChunkReader(
      db,
      t,
      t.columns.map((c) => c.source.name),
      opts.chunkRows,
      { after: null, upTo: null },
      true,
    );
    if (after) this.reader.resumeAfter(after);
    if (opts.chunkBytes) this.reader.maxBytes = opts.chunkBytes;
    this.encoder = new RowEncoder(db, t, this.reader.keyNames, this.reader.keyWidth, {
      fixText: opts.fixText,
      transformed: opts.transformed,
      rowidColumn: usesRowidColumn(t),
    });
  }

  limits(rows: number, bytes?: number): void {
    this.reader.chunkRows = rows;
    if (bytes) this.reader.maxBytes = bytes;
  }

  async next(): Promise<Chunk | null> {
    const rows = readNamed(this.db, this.t, () => this.reader.read());
    if (rows === null) return null;
    return {
      data: this.encoder.binaryCopy(rows),
      rows: rows.length,
      lastKey: rows[rows.length - 1]!.slice(0, this.reader.keyWidth),
      raw: rows,
      transformed: [],
    };
  }

  async close(): Promise<void> {}
}

async function copyChunks(
  client: pg.ClientBase,
  plan: MigrationPlan,
  t: TablePlan,
  progress: TableProgress,
  opts: SnapshotOptions,
  chunks: LocalChunks | PrefetchedChunks,
  generated: GeneratedCheck | null,
): Promise<boolean> {
  const copySql = `COPY ${qualified(plan.schema, t.name)} (${copyColumnList(t, usesRowidColumn(t))}) FROM STDIN (FORMAT binary)`;
  let copied = progress.rows;
  for (;;) {
    if (opts.stopping()) return false;
    const limits = opts.limits?.();
    if (limits) chunks.limits(limits.rows, limits.bytes);
    const chunk = await chunks.next();
    if (chunk === null) {
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
    for (const tv of chunk.transformed) opts.transformed.push(tv);
    const { lastKey, rows } = chunk;
    await inTransaction(client, async () => {
      await pipeline(Readable.from([chunk.data]), client.query(copyFrom(copySql)));
      if (generated) await generated.check(client, chunk.raw!);
      // Conditional on the progress this daemon started from: a second daemon
      // that copied the same chunk meanwhile makes this one roll back.
      const moved = await client.query(
        "UPDATE sqlite2pg.snapshot_progress SET last_key = $3::jsonb, rows = rows + $4 WHERE source_id = $1 AND table_name = $2 AND rows = $5",
        [opts.sourceId, t.source.name, toJson(lastKey), rows, copied],
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
    copied += rows;
    opts.onChunk?.(rows);
  }
}
