/**
 * The one-shot migration, as numbered steps:
 *
 *   1. read the SQLite schema and plan (census, types, constraints)
 *   2. check the target schema (empty, or dropped with --drop-existing)
 *   3. create the tables (no keys yet)
 *   4. copy every table with COPY, tables and rowid ranges in parallel
 *   5. build keys and indexes, then CHECKs and foreign keys
 *   6. set the identity sequences past max(key) and sqlite_sequence
 *   7. validate: every table's digest on both sides, value for value
 *   8. confirm the source did not change meanwhile
 *
 * It resolves only when Postgres holds exactly what SQLite holds; anything
 * else is a typed error for the CLI to report.
 */
import type BetterSqlite3 from "better-sqlite3";
import type pg from "pg";
import { sourceError, validationError, usageError } from "../errors.js";
import type { Logger } from "../observe/logger.js";
import { noProgress, type Progress } from "../observe/progress.js";
import { buildPlan, type MigrationPlan, type TablePlan } from "../plan/plan.js";
import type { PostLoadStatement } from "../plan/model.js";
import { openSource } from "../sqlite/open.js";
import { readSchema, rowidName } from "../sqlite/schema.js";
import { rowidNeedsBigInt, splitRowidRange } from "../sqlite/reader.js";
import { quoteIdent } from "../ident.js";
import type { TransformedValue } from "../convert/row-encoder.js";
import { CopyPool, type WorkerTask } from "./copy-pool.js";
import { createTableSql } from "../postgres/ddl.js";
import { connectPg, countRelations, pgFailure } from "../postgres/pg.js";
import { setSequences } from "../postgres/sequences.js";
import { DigestBuilder, pgDigest, type RowHash, rowHashFor, sameDigest, type Digest } from "../validate/digest.js";
import { differences } from "../validate/validate.js";
import { inTransaction } from "../postgres/transaction.js";
import { type PostLoadJob, PostLoadSchedule } from "./post-load.js";

/** Options of {@link migrate}. */
export interface MigrateOptions {
  sqlite: string;
  pg: string | undefined;
  schema: string;
  jobs: number;
  preserveCase: boolean;
  dropExisting: boolean;
  fixText: boolean;
  chunkRows?: number;
  /** Bytes of rows per chunk read (default 32 MiB; always at least one row). */
  chunkBytes?: number;
  log: Logger;
  progress?: Progress;
}

/** What a finished migration reports. */
export interface MigrateResult {
  plan: MigrationPlan;
  tables: { table: string; rows: number; seconds: number }[];
  rows: number;
  transformed: TransformedValue[];
  seconds: number;
}

/** Rows above which a rowid table is split into ranges copied in parallel. */
const SPLIT_ROWS = 200_000;

/** Copy a SQLite file into Postgres and prove the copy exact. */
export async function migrate(opts: MigrateOptions): Promise<MigrateResult> {
  const t0 = Date.now();
  const log = opts.log;
  const progress = opts.progress ?? noProgress;
  const jobs = Math.max(1, Math.floor(opts.jobs));
  const chunkRows = opts.chunkRows ?? 256;
  const db = openSource(opts.sqlite);
  const clients: pg.Client[] = [];
  // The workers count the tables' values (census) in parallel, then copy them.
  const pool = new CopyPool({ sqlite: opts.sqlite, pg: opts.pg, chunkRows, chunkBytes: opts.chunkBytes, fixText: opts.fixText }, jobs);
  try {
    const version0 = db.pragma("data_version", { simple: true });

    log.info({ step: 1, sqlite: opts.sqlite }, "step 1/8: read schema and plan");
    const schema = readSchema(db);
    const censuses = await pool.census(schema.tables);
    const plan = buildPlan(db, schema, { schema: opts.schema, preserveCase: opts.preserveCase }, censuses);
    if (plan.refusals.length > 0) {
      const list = plan.refusals.map((r) => `  - table ${r.table}, column ${r.column}: ${r.reason} (${r.key})`).join("\n");
      throw sourceError("VALUES_REFUSED", `${plan.refusals.length} column(s) hold values Postgres cannot take as they are:\n${list}`, {
        context: { table: plan.refusals[0]!.table, column: plan.refusals[0]!.column },
        hint: "fix these values in SQLite; `sqlite2pg plan` lists every decision",
      });
    }
    for (const d of plan.decisions.filter((x) => x.severity === "warning")) log.warn({ table: d.table, column: d.column, object: d.object }, d.text);

    for (let i = 0; i < jobs; i++) clients.push(await connectPg(opts.pg));
    const main = clients[0]!;

    log.info({ step: 2, schema: opts.schema }, "step 2/8: check the target schema");
    await prepareSchema(main, opts);

    log.info({ step: 3, tables: plan.tables.length }, "step 3/8: create tables");
    await ddlTransaction(main, "create tables", async () => {
      await main.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(opts.schema)}`);
      for (const t of plan.tables) await main.query(createTableSql(plan, t));
    });

    log.info({ step: 4, jobs }, "step 4/8: copy rows");
    const transformed: TransformedValue[] = [];
    // Rows are hashed for step 7 as they are copied, the way the server will hash them.
    const rowHash = await rowHashFor(main);
    const digests = new Map(plan.tables.map((t) => [t.name, new DigestBuilder(rowHash)]));
    const tables = await copyAll(db, plan, pool, jobs, { chunkRows, fixText: opts.fixText, transformed, progress, log, digests, rowHash });
    await pool.close();
    progress.stop();
    for (const tv of transformed)
      log.warn({ table: tv.table, column: tv.column, key: tv.key, original: tv.original }, `value changed by --fix-text: ${tv.reason}`);

    // Steps 5 and 7 run side by side, on every connection: Postgres'
    // digests read the tables while keys and indexes are built, and a
    // foreign key is added and validated while other tables' indexes are
    // still being built (see PostLoadSchedule).
    log.info({ step: 5 }, "step 5/8: build keys, indexes and constraints");
    log.info({ step: 7 }, "step 7/8: validate (alongside step 5)");
    for (let i = 0; i < jobs; i++) clients.push(await connectPg(opts.pg)); // closed in `finally` even if a later connection fails
    await postLoad(db, clients, plan, digests, log);

    log.info({ step: 6 }, "step 6/8: set sequences");
    await setSequences(main, plan, new Map(plan.tables.map((t) => [t.source.name, t.source.sequence])), log);

    log.info({ step: 8 }, "step 8/8: check the source did not change");
    const version1 = db.pragma("data_version", { simple: true });
    if (version1 !== version0) {
      throw validationError("SOURCE_CHANGED", "the SQLite database was written to while it was being copied: the copy may already be stale", {
        context: { sqlite: opts.sqlite },
        hint: "a one-shot copy is for a database nobody writes to; for a live database use `sqlite2pg run`, which follows the changes, then cut over",
      });
    }
    const rows = tables.reduce((a, t) => a + t.rows, 0);
    return { plan, tables, rows, transformed, seconds: (Date.now() - t0) / 1000 };
  } finally {
    progress.stop();
    await pool.close();
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    db.close();
  }
}

/** One transaction of DDL; a failure that is not already typed is reported as `what` failing. */
async function ddlTransaction(c: pg.ClientBase, what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await inTransaction(c, fn);
  } catch (e) {
    if (e instanceof Error && "category" in e) throw e;
    throw pgFailure("PG_DDL", what, e);
  }
}

async function prepareSchema(c: pg.ClientBase, opts: MigrateOptions): Promise<void> {
  const n = await countRelations(c, opts.schema);
  if (n === 0) return;
  if (!opts.dropExisting) {
    throw usageError("TARGET_NOT_EMPTY", `the target schema ${opts.schema} already holds ${n} relation(s)`, {
      context: { schema: opts.schema },
      hint: "choose another --schema, or pass --drop-existing to drop the schema and everything in it first",
    });
  }
  await ddlTransaction(c, "drop the existing schema", async () => {
    await c.query(`DROP SCHEMA ${quoteIdent(opts.schema)} CASCADE`);
    await c.query(`CREATE SCHEMA ${quoteIdent(opts.schema)}`);
  });
}

interface CopyContext {
  chunkRows: number;
  fixText: boolean;
  transformed: TransformedValue[];
  progress: Progress;
  log: Logger;
  digests: Map<string, DigestBuilder>;
  rowHash: RowHash;
}

async function copyAll(db: BetterSqlite3.Database, plan: MigrationPlan, pool: CopyPool, jobs: number, ctx: CopyContext) {
  const tasks: WorkerTask[] = [];
  const pending = new Map<string, number>();
  const started = new Map<string, number>();
  const result = new Map<string, { rows: number; seconds: number }>();
  const weight = new Map<number, number>();
  plan.tables.forEach((t, ti) => {
    if (t.readOrder.kind === "rowid" && !t.bigIntegers && rowidNeedsBigInt(db, t.source.name, rowidName(t.source))) t.bigIntegers = true;
    const parts = t.readOrder.kind === "rowid" && t.census.rows >= SPLIT_ROWS ? jobs : 1;
    const ranges = parts > 1 ? splitRowidRange(db, t.source.name, parts, rowidName(t.source)) : [{ after: null, upTo: null }];
    for (const range of ranges) {
      const id = tasks.length;
      tasks.push({ type: "task", id, table: ti, range });
      weight.set(id, t.census.rows / ranges.length);
    }
    pending.set(t.name, ranges.length);
    result.set(t.name, { rows: 0, seconds: 0 });
  });
  tasks.sort((a, b) => weight.get(b.id)! - weight.get(a.id)!);
  pool.setPlan(plan, ctx.rowHash);
  const tableOf = (task: WorkerTask) => plan.tables[(task as Extract<WorkerTask, { type: "task" }>).table]!;
  await pool.run(
    tasks,
    (task, rows, bytes) => {
      const t = tableOf(task);
      if (!started.has(t.name)) {
        started.set(t.name, Date.now());
        ctx.progress.start(t.name, t.census.rows);
      }
      ctx.progress.add(t.name, rows, bytes);
    },
    (task, r) => {
      if (r.type !== "done") return;
      const t = tableOf(task);
      if (!started.has(t.name)) started.set(t.name, Date.now());
      const res = result.get(t.name)!;
      res.rows += r.rows;
      ctx.digests.get(t.name)!.merge(r.digest);
      ctx.transformed.push(...r.transformed);
      const left = pending.get(t.name)! - 1;
      pending.set(t.name, left);
      if (left === 0) {
        res.seconds = (Date.now() - started.get(t.name)!) / 1000;
        ctx.progress.done(t.name);
        ctx.log.debug({ table: t.source.name, rows: res.rows, seconds: res.seconds }, "table copied");
      }
    },
  );
  return plan.tables.map((t) => ({ table: t.name, ...result.get(t.name)! }));
}

/**
 * Steps 5 and 7 on every connection: keys, indexes and constraints built,
 * and every table's digest compared, in the order of
 * {@link PostLoadSchedule}; then the unique indexes become their
 * constraints, last (each step is instant, but takes its table
 * exclusively).
 */
async function postLoad(
  db: BetterSqlite3.Database,
  clients: pg.Client[],
  plan: MigrationPlan,
  digests: Map<string, DigestBuilder>,
  log: Logger,
): Promise<void> {
  const mismatches: Mismatch[] = [];
  for (const c of clients) await c.query("SET maintenance_work_mem = '256MB'");
  const schedule = new PostLoadSchedule(plan);
  const worker = async (c: pg.Client) => {
    for (let job = await schedule.next(); job; job = await schedule.next()) {
      let ok = false;
      try {
        if (job.step === "digest") {
          const m = await validateTable(db, c, plan, job.t, digests.get(job.t.name)!);
          if (m) mismatches.push(m);
          else log.debug({ table: job.t.source.name }, "table validated");
        } else await runPostLoad(c, plan, job, log);
        ok = true;
      } finally {
        schedule.finished(job, ok);
      }
    }
  };
  await Promise.all(clients.map(worker));
  for (const t of plan.tables) for (const s of t.constraints.statements) if (s.split) await runStatement(clients[0]!, s, t.name, s.split.attachSql, log);
  if (mismatches.length > 0) throw mismatchError(mismatches);
}

async function runPostLoad(c: pg.ClientBase, plan: MigrationPlan, job: PostLoadJob, log: Logger): Promise<void> {
  const s = job.s!;
  if (job.step === "build") return runStatement(c, s, job.t.name, s.split?.indexSql ?? s.sql, log);
  if (job.step === "add") return runStatement(c, s, job.t.name, s.sql, log);
  const t0 = performance.now();
  try {
    await c.query(s.validateSql!);
    log.debug({ table: job.t.name, constraint: s.name, ms: Math.round(performance.now() - t0) }, `${s.kind} validated`);
  } catch (e) {
    const text = `${s.kind} ${s.name} kept NOT VALID: existing rows break it (${(e as Error).message}); new rows are checked, existing ones kept as they are`;
    plan.decisions.push({ table: job.t.name, object: s.name, severity: "warning", text });
    log.warn({ table: job.t.name, constraint: s.name }, text);
  }
}

async function runStatement(c: pg.ClientBase, s: PostLoadStatement, table: string, sql: string, log: Logger): Promise<void> {
  const t0 = performance.now();
  try {
    await c.query(sql);
  } catch (e) {
    throw pgFailure("PG_CONSTRAINT", `creating ${s.kind} ${s.name} on ${table} failed`, e, { table, constraint: s.name });
  }
  log.debug({ table, constraint: s.name, ms: Math.round(performance.now() - t0) }, `${s.kind} built`);
}

/** A table whose digests differ: both sides' counts, and the rows that differ when they could be named. */
interface Mismatch {
  table: string;
  sqlite: Digest;
  pg: Digest;
  rows?: string;
}

/**
 * Validation of one table of the one-shot copy. The SQLite digest of the
 * table was computed from the very rows the copy read and sent; Postgres
 * computes its digest of what it stored. Equal digests prove every row
 * arrived as SQLite held it when read; SQLite's own count(*) proves no row
 * was skipped, and step 8 (data_version unchanged) proves SQLite still
 * holds those rows. Returns the mismatch, or null.
 */
async function validateTable(db: BetterSqlite3.Database, c: pg.Client, plan: MigrationPlan, t: TablePlan, digest: DigestBuilder): Promise<Mismatch | null> {
  const s = digest.digest();
  const p = await pgDigest(c, plan, t, s.hash);
  const count = Number((db.prepare(`SELECT count(*) AS n FROM main.${quoteIdent(t.source.name)}`).get() as { n: number }).n);
  if (sameDigest(p, s) && count === s.rows) return null;
  // Name the rows: a generated column Postgres computes differently, a value converted with a loss.
  const where = await differences(db, c, plan, t, s.hash);
  const keys = where.differences?.map((d) => `${d.key} (${d.kind})`).join(", ");
  return { table: t.source.name, sqlite: { ...s, rows: count }, pg: p, rows: keys || where.note };
}

function mismatchError(mismatches: Mismatch[]): Error {
  const list = mismatches
    .map(
      (m) =>
        `  - table ${m.table}: SQLite ${m.sqlite.rows} rows, Postgres ${m.pg.rows} rows${m.sqlite.rows === m.pg.rows ? ", values differ" : ""}${m.rows ? `: ${m.rows}` : ""}`,
    )
    .join("\n");
  return validationError("VALIDATION_MISMATCH", `Postgres does not hold exactly what SQLite holds:\n${list}`, {
    context: { table: mismatches[0]!.table },
    hint: "if the application wrote to SQLite during the copy, use `sqlite2pg run` for a live database; otherwise report this as a bug",
  });
}
