/**
 * A copy worker thread: its own SQLite connection and its own Postgres
 * connection, copying the ranges the main thread hands it. Reading,
 * encoding and hashing are CPU work; a thread per job puts them on every
 * core instead of one.
 */
import { parentPort, workerData } from "node:worker_threads";
import type pg from "pg";
import { Sqlite2pgError, internalError } from "../errors.js";
import type { MigrationPlan } from "../plan/plan.js";
import { openSource } from "../sqlite/open.js";
import type { RowidRange } from "../sqlite/reader.js";
import { copyTable } from "./copy.js";
import type { TransformedValue } from "../convert/row-encoder.js";
import { connectPg } from "../postgres/pg.js";
import { DigestBuilder, sqliteDigest, type RowHash } from "../validate/digest.js";
import { censusTable } from "../sqlite/census.js";
import type { WorkerInit, WorkerReply, WorkerTask } from "./copy-pool.js";

const init = workerData as WorkerInit;
const port = parentPort!;
const db = openSource(init.sqlite);
let client: pg.Client | null = null;

let plan: MigrationPlan | null = null;
/** How often a copying worker reports its progress. */
const PROGRESS_MS = 200;
let rowHash: RowHash = "md5";

async function run(task: WorkerTask): Promise<WorkerReply> {
  if (task.type === "census") return { type: "census", id: task.id, census: censusTable(db, task.table) };
  if (!plan) throw internalError("NO_PLAN", "a copy task reached the worker before the plan");
  if (task.type === "digest") return { type: "digest", id: task.id, digest: await sqliteDigest(db, plan.tables[task.table]!, rowHash, task.range) };
  client ??= await connectPg(init.pg);
  const t = plan.tables[task.table]!;
  const transformed: TransformedValue[] = [];
  const digest = new DigestBuilder(rowHash);
  const range: RowidRange = task.range;
  // Progress goes out a few times a second, not per chunk: a message costs
  // more than encoding a short chunk.
  let pending = 0;
  let pendingBytes = 0;
  let sent = performance.now();
  const report = () => {
    if (pending > 0) port.postMessage({ type: "progress", id: task.id, rows: pending, bytes: pendingBytes } satisfies WorkerReply);
    pending = pendingBytes = 0;
    sent = performance.now();
  };
  const rows = await copyTable(db, client, plan, t, range, {
    chunkRows: init.chunkRows,
    chunkBytes: init.chunkBytes,
    fixText: init.fixText,
    transformed,
    digest,
    onRows: (n, bytes) => {
      pending += n;
      pendingBytes += bytes;
      if (performance.now() - sent >= PROGRESS_MS) report();
    },
  });
  report();
  return { type: "done", id: task.id, rows, digest: digest.digest(), transformed };
}

port.on("message", (msg: WorkerTask | { type: "close" } | { type: "plan"; plan: MigrationPlan; rowHash: RowHash }) => {
  if (msg.type === "plan") {
    plan = msg.plan;
    rowHash = msg.rowHash;
    return;
  }
  if (msg.type === "close") {
    void (client?.end() ?? Promise.resolve()).finally(() => {
      db.close();
      port.close();
    });
    return;
  }
  run(msg).then(
    (reply) => port.postMessage(reply),
    (e: unknown) => {
      const err =
        e instanceof Sqlite2pgError
          ? {
              category: e.category,
              code: e.code,
              message: e.message,
              context: e.context,
              hint: e.hint,
              cause: e.cause instanceof Error ? e.cause.message : undefined,
            }
          : { category: "internal" as const, code: "INTERNAL", message: e instanceof Error ? (e.stack ?? e.message) : String(e) };
      port.postMessage({ type: "error", id: msg.id, error: err } satisfies WorkerReply);
    },
  );
});
