import { existsSync, statSync } from "node:fs";
import type BetterSqlite3 from "better-sqlite3";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { Sqlite2pgError, type ErrorCategory, type ErrorContext } from "../errors.js";
import type { MigrationPlan } from "../plan/plan.js";
import { splitRowidRange, type RowidRange } from "../sqlite/reader.js";
import type { TransformedValue } from "../convert/row-encoder.js";
import { DigestBuilder, type Digest, type RowHash } from "../validate/digest.js";
import { censusTable, type TableCensus } from "../sqlite/census.js";
import { rowidName, type SourceTable } from "../sqlite/schema.js";

/** What every copy worker is started with. */
export interface WorkerInit {
  sqlite: string;
  pg: string | undefined;
  chunkRows: number;
  /** Bytes of rows per chunk read (default: the reader's 32 MiB). */
  chunkBytes?: number;
  fixText: boolean;
}

/** Work for a worker: one range of one table to copy (after `setPlan`), or one table's census. */
export type WorkerTask =
  | { type: "task"; id: number; table: number; range: RowidRange }
  | { type: "census"; id: number; table: SourceTable }
  | { type: "digest"; id: number; table: number; range: RowidRange };

/** Messages from a worker. */
export type WorkerReply =
  | { type: "progress"; id: number; rows: number; bytes: number }
  | { type: "done"; id: number; rows: number; digest: Digest; transformed: TransformedValue[] }
  | { type: "census"; id: number; census: TableCensus }
  | { type: "digest"; id: number; digest: Digest }
  | { type: "error"; id: number; error: { category: ErrorCategory; code: string; message: string; context?: ErrorContext; hint?: string; cause?: string } };

/** The worker script: compiled beside this module, or in dist/ when this module runs from source (tests). */
function workerUrl(): URL {
  const here = new URL("./copy-worker.js", import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  return new URL("../../dist/migrate/copy-worker.js", import.meta.url);
}

/**
 * A fixed set of copy workers. `run` hands tasks out as workers free up,
 * reports progress, and fails fast: the first error stops handing out
 * tasks, and `close` ends every worker whatever happened.
 */
export class CopyPool {
  private readonly workers: Worker[] = [];
  private closed = false;

  constructor(init: WorkerInit, size: number) {
    for (let i = 0; i < size; i++) {
      // A worker holds one chunk and one COPY buffer at a time. Its young
      // generation is kept small (8 MiB: peak RSS of migrate 235-255 MB on
      // the benchmark, 268-270 MB with 16); its old generation is not capped
      // below the process's own limit, since one text value may take hundreds
      // of megabytes and an allocation past a cap aborts the whole process.
      const w = new Worker(workerUrl(), { workerData: init, resourceLimits: WORKER_LIMITS });
      w.unref();
      this.workers.push(w);
    }
  }

  /** Hand every worker the plan the copy tasks refer to, and how to hash rows for the digest. */
  setPlan(plan: MigrationPlan, rowHash: RowHash): void {
    for (const w of this.workers) w.postMessage({ type: "plan", plan, rowHash });
  }

  /** The census of every table, tables in parallel (one SQLite connection per worker). */
  async census(tables: SourceTable[]): Promise<Map<string, TableCensus>> {
    const out = new Map<string, TableCensus>();
    const tasks: WorkerTask[] = tables.map((table, id) => ({ type: "census", id, table }));
    await this.run(
      tasks,
      () => undefined,
      (task, r) => {
        if (r.type === "census" && task.type === "census") out.set(task.table.name, r.census);
      },
    );
    return out;
  }

  /** Run every task, handing them out as workers free up. */
  async run(
    tasks: WorkerTask[],
    onProgress: (task: WorkerTask, rows: number, bytes: number) => void,
    onDone: (task: WorkerTask, r: Extract<WorkerReply, { type: "done" | "census" | "digest" }>) => void,
  ): Promise<void> {
    let next = 0;
    let failed: unknown = null;
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const give = () => {
              if (failed || next >= tasks.length) {
                w.off("message", onMessage);
                w.off("error", onError);
                resolve();
                return;
              }
              w.postMessage(tasks[next++]);
            };
            const onMessage = (m: WorkerReply) => {
              const task = tasks.find((t) => t.id === m.id)!;
              if (m.type === "progress") onProgress(task, m.rows, m.bytes);
              else if (m.type === "done" || m.type === "census" || m.type === "digest") {
                onDone(task, m);
                give();
              } else {
                failed ??= new Sqlite2pgError(m.error.category, m.error.code, m.error.message, {
                  context: m.error.context,
                  hint: m.error.hint,
                  cause: m.error.cause ? new Error(m.error.cause) : undefined,
                });
                give();
              }
            };
            const onError = (e: Error) => {
              failed ??= e;
              resolve();
            };
            w.on("message", onMessage);
            w.on("error", onError);
            give();
          }),
      ),
    );
    if (failed) throw failed;
  }

  /** End every worker; closes their connections first when they can. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => void w.terminate().then(() => resolve()), 5000);
            w.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
            w.postMessage({ type: "close" });
          }),
      ),
    );
  }
}

/** Heap limits of the copy threads (see the constructor of {@link CopyPool}). */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 8 };

/** Below this many bytes of file (and WAL), starting threads costs more than the census or the hashing they would share. */
const PARALLEL_BYTES = 32 * 1024 * 1024;

function fileBytes(path: string): number {
  let n = 0;
  for (const f of [path, `${path}-wal`]) {
    try {
      n += statSync(f).size;
    } catch {
      // no WAL
    }
  }
  return n;
}

/**
 * The census of every table: in worker threads, tables in parallel, when
 * the file is large enough to gain from them; else in this thread, on `db`.
 */
export async function censusAll(sqlite: string, db: BetterSqlite3.Database, tables: SourceTable[], jobs = 2): Promise<Map<string, TableCensus>> {
  const size = Math.min(Math.max(1, Math.floor(jobs)), tables.length);
  if (size < 2 || fileBytes(sqlite) < PARALLEL_BYTES) return new Map(tables.map((t) => [t.name, censusTable(db, t)]));
  const pool = new CopyPool({ sqlite, pg: undefined, chunkRows: 5000, fixText: false }, size);
  try {
    return await pool.census(tables);
  } finally {
    await pool.close();
  }
}

/**
 * SQLite's side of a full validation in worker threads: each rowid table
 * in `jobs` rowid ranges, hashed side by side and merged (a digest is a sum
 * over rows, so ranges add up to the table's), the others whole. On a file
 * too small to gain from threads, null: the caller hashes in its own
 * thread. Each thread reads in short chunks, as the caller's own reads do.
 */
export async function digestAll(
  sqlite: string,
  db: BetterSqlite3.Database,
  plan: MigrationPlan,
  tables: number[],
  hash: RowHash,
  jobs = 2,
): Promise<Digest[] | null> {
  const size = Math.max(1, Math.floor(jobs));
  if (size < 2 || fileBytes(sqlite) < PARALLEL_BYTES) return null;
  const tasks: WorkerTask[] = [];
  const of = new Map<number, number>();
  for (const [k, ti] of tables.entries()) {
    const t = plan.tables[ti]!;
    const ranges = t.readOrder.kind === "rowid" ? splitRowidRange(db, t.source.name, size, rowidName(t.source)) : [{ after: null, upTo: null }];
    for (const range of ranges) {
      of.set(tasks.length, k);
      tasks.push({ type: "digest", id: tasks.length, table: ti, range });
    }
  }
  const merged = tables.map(() => new DigestBuilder(hash));
  const pool = new CopyPool({ sqlite, pg: undefined, chunkRows: 5000, fixText: false }, Math.min(size, tasks.length));
  try {
    pool.setPlan(plan, hash);
    await pool.run(
      tasks,
      () => undefined,
      (task, r) => {
        if (r.type === "digest") merged[of.get(task.id)!]!.merge(r.digest);
      },
    );
  } finally {
    await pool.close();
  }
  return merged.map((d) => d.digest());
}
