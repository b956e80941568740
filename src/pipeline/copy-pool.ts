import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { Sqlite2pgError, type ErrorCategory, type ErrorContext } from "../errors.js";
import type { MigrationPlan } from "../plan/plan.js";
import type { RowidRange } from "../source/reader.js";
import type { TransformedValue } from "../target/row-encoder.js";
import type { Digest } from "../validate/digest.js";

/** What every copy worker is started with. */
export interface WorkerInit {
  sqlite: string;
  pg: string | undefined;
  plan: MigrationPlan;
  chunkRows: number;
  fixText: boolean;
}

/** One range of one table to copy. */
export interface WorkerTask {
  type: "task";
  id: number;
  table: number;
  range: RowidRange;
}

/** Messages from a worker. */
export type WorkerReply =
  | { type: "progress"; id: number; rows: number; bytes: number }
  | { type: "done"; id: number; rows: number; digest: Digest; transformed: TransformedValue[] }
  | { type: "error"; id: number; error: { category: ErrorCategory; code: string; message: string; context?: ErrorContext; hint?: string; cause?: string } };

/** The worker script: compiled beside this module, or in dist/ when this module runs from source (tests). */
function workerUrl(): URL {
  const here = new URL("./copy-worker.js", import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  return new URL("../../dist/pipeline/copy-worker.js", import.meta.url);
}

/**
 * A fixed set of copy workers. `run` hands tasks out as workers free up,
 * reports progress, and fails fast: the first error stops handing out
 * tasks, and `close` ends every worker whatever happened.
 */
export class CopyPool {
  private readonly workers: Worker[] = [];

  constructor(init: WorkerInit, size: number) {
    for (let i = 0; i < size; i++) {
      // Small heaps keep the peak memory flat whatever the database size: a
      // worker holds one chunk and one COPY buffer at a time.
      const w = new Worker(workerUrl(), { workerData: init, resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 32 } });
      w.unref();
      this.workers.push(w);
    }
  }

  /** Run every task; resolves with each task's result in task order. */
  async run(
    tasks: WorkerTask[],
    onProgress: (task: WorkerTask, rows: number, bytes: number) => void,
    onDone: (task: WorkerTask, r: Extract<WorkerReply, { type: "done" }>) => void,
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
              else if (m.type === "done") {
                onDone(task, m);
                give();
              } else {
                failed ??= new Sqlite2pgError(m.error.category, m.error.code, m.error.message, {
                  context: m.error.context, hint: m.error.hint, cause: m.error.cause ? new Error(m.error.cause) : undefined,
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

  /** End every worker; closes their connections first when they can. */
  async close(): Promise<void> {
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
