/**
 * Where the snapshot's chunks come from: read and encoded in this thread,
 * or by a prefetch thread (./snapshot-worker.ts) a few chunks ahead, so
 * that reading and encoding the next chunk overlaps Postgres ingesting
 * this one. Either way chunks arrive in key order, each with its last key;
 * the caller commits each one with its progress.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { Sqlite2pgError, type ErrorCategory, type ErrorContext } from "../errors.js";
import type { MigrationPlan } from "../plan/plan.js";
import type { TransformedValue } from "../convert/row-encoder.js";

/** What the prefetch thread is started with. */
export interface PrefetchInit {
  sqlite: string;
  plan: MigrationPlan;
  /** Index of the table in the plan. */
  table: number;
  /** Continue after this key (null: from the start). */
  after: unknown[] | null;
  chunkRows: number;
  chunkBytes?: number;
  fixText: boolean;
  /** Also send each chunk's rows (a table with generated columns checks them). */
  raw: boolean;
  /** Chunks read ahead of the one being committed. */
  ahead: number;
}

/** One chunk: binary COPY data (header to trailer), its row count and last key. */
export interface Chunk {
  data: Buffer;
  rows: number;
  lastKey: unknown[];
  raw: unknown[][] | null;
  transformed: TransformedValue[];
}

/** An error as it crosses from the thread: enough to rebuild what the daemon's retry logic reads. */
interface SerializedError {
  category?: ErrorCategory;
  code?: string;
  message: string;
  context?: ErrorContext;
  hint?: string;
  retryable?: boolean;
  stack?: string;
  /** The cause's code and message (a wrapped SQLITE_BUSY stays retryable). */
  cause?: { code?: string; message: string };
}

/** Messages from the prefetch thread. */
export type PrefetchReply = ({ type: "chunk" } & Chunk) | { type: "end" } | { type: "error"; error: SerializedError };

export function serializeError(e: unknown): SerializedError {
  const c = (e as { cause?: { code?: unknown; message?: unknown } })?.cause;
  const cause = c ? { code: typeof c.code === "string" ? c.code : undefined, message: String(c.message ?? c) } : undefined;
  if (e instanceof Sqlite2pgError)
    return { category: e.category, code: e.code, message: e.message, context: e.context, hint: e.hint, retryable: e.retryable, cause };
  const err = e as { message?: string; code?: string; stack?: string };
  return { message: err?.message ?? String(e), code: typeof err?.code === "string" ? err.code : undefined, stack: err?.stack, cause };
}

function rebuild(s: SerializedError): Error {
  let cause: (Error & { code?: string }) | undefined;
  if (s.cause) {
    cause = new Error(s.cause.message);
    if (s.cause.code) cause.code = s.cause.code;
  }
  if (s.category) return new Sqlite2pgError(s.category, s.code!, s.message, { context: s.context, hint: s.hint, retryable: s.retryable, cause });
  const e = new Error(s.message, cause ? { cause } : undefined) as Error & { code?: string };
  if (s.code) e.code = s.code; // SQLITE_BUSY and the like stay retryable
  if (s.stack) e.stack = s.stack;
  return e;
}

/** Structured clone turns a Buffer into a plain Uint8Array: a blob key or value is a Buffer again. */
function buffers(values: unknown[]): unknown[] {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v instanceof Uint8Array && !Buffer.isBuffer(v)) values[i] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }
  return values;
}

/** The thread's script: compiled beside this module, or in dist/ when this module runs from source (tests). */
function workerUrl(): URL {
  const here = new URL("./snapshot-worker.js", import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  return new URL("../../dist/replication/snapshot-worker.js", import.meta.url);
}

/** Chunks of one table from a prefetch thread, in order. */
export class PrefetchedChunks {
  private readonly worker: Worker;
  private readonly queue: PrefetchReply[] = [];
  private waiting: ((r: PrefetchReply) => void) | null = null;
  private failure: Error | null = null;

  constructor(init: PrefetchInit) {
    // No cap on the heap: one text value may take hundreds of megabytes, and
    // an allocation past a cap aborts the whole process. The default young
    // generation, unlike migrate's copy threads' 8 MiB: this one thread reads
    // chunks of 20,000 rows, and with 8 MiB the snapshot took 25 % longer.
    this.worker = new Worker(workerUrl(), { workerData: init, resourceLimits: { maxYoungGenerationSizeMb: 8 } });
    this.worker.on("message", (m: PrefetchReply) => this.arrive(m));
    this.worker.on("error", (e) => this.arrive({ type: "error", error: serializeError(e) }));
    this.worker.on("exit", (code) => {
      if (code !== 0) this.arrive({ type: "error", error: { message: `the snapshot's prefetch thread exited with code ${code}` } });
    });
  }

  private arrive(m: PrefetchReply): void {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w(m);
    } else this.queue.push(m);
  }

  /** The next chunk, or null at the end of the table. */
  async next(): Promise<Chunk | null> {
    if (this.failure) throw this.failure;
    const m = this.queue.shift() ?? (await new Promise<PrefetchReply>((resolve) => (this.waiting = resolve)));
    if (m.type === "end") return null;
    if (m.type === "error") {
      this.failure = rebuild(m.error);
      throw this.failure;
    }
    this.worker.postMessage({ type: "credit" });
    if (m.raw) for (const r of m.raw) buffers(r);
    return {
      data: Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength),
      rows: m.rows,
      lastKey: buffers(m.lastKey),
      raw: m.raw,
      transformed: m.transformed,
    };
  }

  /** Rows and bytes per chunk from the next chunk read on. */
  limits(rows: number, bytes?: number): void {
    this.worker.postMessage({ type: "limits", rows, bytes });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
