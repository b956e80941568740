import type pg from "pg";
import type { MigrationPlan } from "../plan/plan.js";
import { Phase } from "./phase.js";
import type { TableCensus } from "../sqlite/census.js";

/**
 * The replication state, in Postgres (schema `sqlite2pg`), written in the
 * same transaction as the data it describes: a crash at any instant leaves
 * the state and the data consistent, and a restart resumes from it.
 */
const STATE_SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS sqlite2pg;
CREATE TABLE IF NOT EXISTS sqlite2pg.state (
  source_id       text PRIMARY KEY,
  sqlite_path     text NOT NULL,
  target_schema   text NOT NULL,
  preserve_case   boolean NOT NULL DEFAULT false,
  phase           text NOT NULL,
  snapshot_seq    bigint,
  applied_seq     bigint NOT NULL DEFAULT 0,
  applied_token   double precision,
  changes_applied bigint NOT NULL DEFAULT 0,
  apply_rate      double precision,
  schema_version  bigint,
  schema_fingerprint text,
  plan            jsonb,
  last_error      text,
  last_error_at   timestamptz,
  cutover_requested_at timestamptz,
  sentinel_seq    bigint,
  frozen_at       timestamptz,
  cutover_at      timestamptz,
  freeze_ms       double precision,
  validation      jsonb,
  finished_at     timestamptz,
  applied_at      timestamptz,
  started_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS sqlite2pg.snapshot_progress (
  source_id  text NOT NULL REFERENCES sqlite2pg.state (source_id) ON DELETE CASCADE,
  table_name text NOT NULL,
  last_key   jsonb,
  rows       bigint NOT NULL DEFAULT 0,
  total      bigint NOT NULL DEFAULT 0,
  done       boolean NOT NULL DEFAULT false,
  PRIMARY KEY (source_id, table_name)
);
ALTER TABLE sqlite2pg.state ADD COLUMN IF NOT EXISTS applied_token double precision;`;

/**
 * Columns added after the first release; added only when missing (ALTER
 * TABLE takes an exclusive lock on the state, which a running daemon's
 * commit may hold).
 *   daemon_pid/host/start  who the active daemon is (written once it holds the advisory lock);
 *                          `start` is the process' start time from /proc, so a reused pid is told apart
 *   hook_*                 the --on-cutover command: recorded command, status (running/ok/failed), exit code
 */
const STATE_COLUMNS_SQL = `
ALTER TABLE sqlite2pg.state
  ADD COLUMN IF NOT EXISTS daemon_pid integer,
  ADD COLUMN IF NOT EXISTS daemon_host text,
  ADD COLUMN IF NOT EXISTS daemon_start text,
  ADD COLUMN IF NOT EXISTS daemon_since timestamptz,
  ADD COLUMN IF NOT EXISTS hook_command text,
  ADD COLUMN IF NOT EXISTS hook_status text,
  ADD COLUMN IF NOT EXISTS hook_exit integer,
  ADD COLUMN IF NOT EXISTS hook_at timestamptz`;

/**
 * Columns of the way back (the fallback after the cutover, `finish`, `rollback`):
 *   fallback_forms        how the SQLite file spells each column's values (learned at the fallback's start)
 *   fallback_fingerprint  the replicated tables' columns in Postgres as the fallback started: a schema change pauses it
 *   fallback_applied      changes applied to SQLite so far
 *   finish_requested_at   `sqlite2pg finish` asked for
 *   rollback_*            `sqlite2pg rollback`: asked for (with its validation), the freeze, the outcome, the hook
 */
const FALLBACK_COLUMNS_SQL = `
ALTER TABLE sqlite2pg.state
  ADD COLUMN IF NOT EXISTS fallback_forms jsonb,
  ADD COLUMN IF NOT EXISTS fallback_fingerprint text,
  ADD COLUMN IF NOT EXISTS fallback_applied bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS finish_requested_at timestamptz,
  ADD COLUMN IF NOT EXISTS rollback_requested_at timestamptz,
  ADD COLUMN IF NOT EXISTS rollback_validate text,
  ADD COLUMN IF NOT EXISTS rollback_frozen_at timestamptz,
  ADD COLUMN IF NOT EXISTS rollback_freeze_ms double precision,
  ADD COLUMN IF NOT EXISTS rolled_back_at timestamptz,
  ADD COLUMN IF NOT EXISTS rollback_validation jsonb,
  ADD COLUMN IF NOT EXISTS rollback_hook_command text,
  ADD COLUMN IF NOT EXISTS rollback_hook_status text,
  ADD COLUMN IF NOT EXISTS rollback_hook_exit integer`;

/** The channel `cutover`, `unfreeze` and the daemon NOTIFY (payload: the source id) when they change the request. */
export const STATE_CHANNEL = "sqlite2pg_state";

/** One source's row of `sqlite2pg.state`. */
export interface ReplicationState {
  sourceId: string;
  sqlitePath: string;
  targetSchema: string;
  preserveCase: boolean;
  /** Written only through ./phase.ts. */
  phase: Phase;
  snapshotSeq: number | null;
  appliedSeq: number;
  /** The julianday of the change at \`appliedSeq\`: with it, the checkpoint names one change, not just a number. */
  appliedToken: number | null;
  changesApplied: number;
  /** Changes per second over the daemon's last reporting interval. */
  applyRate: number | null;
  /** SQLite's schema cookie and a hash of its schema text, as the plan last saw them. */
  schemaVersion: number | null;
  schemaFingerprint: string | null;
  plan: MigrationPlan | null;
  lastError: string | null;
  lastErrorAt: Date | null;
  cutoverRequestedAt: Date | null;
  sentinelSeq: number | null;
  frozenAt: Date | null;
  cutoverAt: Date | null;
  freezeMs: number | null;
  validation: unknown;
  /** The active daemon as it recorded itself, or null. */
  daemon: { pid: number; host: string; start: string | null } | null;
  /** The --on-cutover command's outcome: null (not run), running, ok, failed. */
  hookStatus: string | null;
  hookExit: number | null;
  hookCommand: string | null;
  appliedAt: Date | null;
  updatedAt: Date;
  /** The way back (see FALLBACK_COLUMNS_SQL). */
  fallback: {
    forms: unknown;
    fingerprint: string | null;
    applied: number;
    finishRequestedAt: Date | null;
    rollbackRequestedAt: Date | null;
    rollbackValidate: "counts" | "full" | null;
    rollbackFrozenAt: Date | null;
    rollbackFreezeMs: number | null;
    rolledBackAt: Date | null;
    rollbackValidation: unknown;
    rollbackHookCommand: string | null;
    rollbackHookStatus: string | null;
    rollbackHookExit: number | null;
  };
}

/** Snapshot progress of one table. */
export interface TableProgress {
  table: string;
  lastKey: unknown[] | null;
  rows: number;
  total: number;
  done: boolean;
}

/** JSON that keeps bigints, Buffers and Maps (the plan and keys hold all three). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, k, v) {
    const raw = this[k];
    if (typeof raw === "bigint") return { $bigint: raw.toString() };
    if (Buffer.isBuffer(raw)) return { $bytes: raw.toString("hex") };
    if (raw instanceof Map) return { $map: [...raw.entries()] };
    if (typeof raw === "number" && !Number.isFinite(raw)) return { $number: String(raw) };
    if (typeof raw === "number" && Object.is(raw, -0)) return { $number: "-0" };
    return v;
  });
}

/** The inverse of {@link toJson}. */
function fromJson<T>(text: string | object): T {
  const revive = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(revive);
    if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (typeof o.$bigint === "string") return BigInt(o.$bigint);
      if (typeof o.$bytes === "string") return Buffer.from(o.$bytes, "hex");
      if (Array.isArray(o.$map)) return new Map((o.$map as [unknown, unknown][]).map(([k, x]) => [revive(k), revive(x)]));
      if (typeof o.$number === "string") return Number(o.$number);
      return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, revive(x)]));
    }
    return v;
  };
  return revive(typeof text === "string" ? JSON.parse(text) : text) as T;
}

/** Create the state schema and tables if missing. */
export async function ensureStateSchema(c: pg.ClientBase): Promise<void> {
  await c.query(STATE_SCHEMA_SQL);
  const has = await c.query("SELECT 1 FROM information_schema.columns WHERE table_schema = 'sqlite2pg' AND table_name = 'state' AND column_name = 'hook_at'");
  if (has.rowCount === 0) await c.query(STATE_COLUMNS_SQL);
  const fb = await c.query(
    "SELECT 1 FROM information_schema.columns WHERE table_schema = 'sqlite2pg' AND table_name = 'state' AND column_name = 'rollback_hook_exit'",
  );
  if (fb.rowCount === 0) await c.query(FALLBACK_COLUMNS_SQL);
  const ic = await c.query(
    "SELECT 1 FROM information_schema.columns WHERE table_schema = 'sqlite2pg' AND table_name = 'state' AND column_name = 'init_census'",
  );
  if (ic.rowCount === 0) await c.query("ALTER TABLE sqlite2pg.state ADD COLUMN IF NOT EXISTS init_census jsonb");
}

/**
 * The census `init` took, exact as of a changelog position: nothing was
 * committed to the file between the census and the capture triggers'
 * installation. The daemon's first plan reuses it for every table no change
 * was captured for since, instead of reading those tables again.
 */
export interface InitCensus {
  /** The changelog's newest seq when the triggers were installed. */
  position: number;
  /** The schema fingerprint (replication/keys.ts) right after the installation. */
  fingerprint: string;
  tables: Map<string, TableCensus>;
}

/** Record (or clear, with null) the census `init` took; only while the source has not started its snapshot. */
export async function saveInitCensus(c: pg.ClientBase, sourceId: string, census: InitCensus | null): Promise<void> {
  await c.query("UPDATE sqlite2pg.state SET init_census = $2::jsonb WHERE source_id = $1 AND phase = $3", [
    sourceId,
    census ? toJson(census) : null,
    Phase.new,
  ]);
}

/** The census `init` recorded, if any. */
export async function loadInitCensus(c: pg.ClientBase, sourceId: string): Promise<InitCensus | null> {
  const r = await c.query<{ t: string | null }>("SELECT init_census::text AS t FROM sqlite2pg.state WHERE source_id = $1", [sourceId]);
  const t = r.rows[0]?.t;
  return t ? fromJson<InitCensus>(t) : null;
}

/**
 * Record a cutover request in the state (kept if one is already there) and
 * tell the daemon. The request lives here only: `unfreeze` withdraws it by
 * clearing the column. Returns the phase, or null when there is no state.
 */
export async function requestCutoverInState(c: pg.ClientBase, sourceId: string): Promise<Phase | null> {
  const r = await c.query(
    "UPDATE sqlite2pg.state SET cutover_requested_at = coalesce(cutover_requested_at, now()), updated_at = now() WHERE source_id = $1 RETURNING phase",
    [sourceId],
  );
  if (r.rowCount !== 1) return null;
  await notifyState(c, sourceId);
  return r.rows[0].phase as Phase;
}

/**
 * Record a request of the way back in the state — `finish` or `rollback`
 * (with the rollback's validation) — and tell the daemon. Kept if one is
 * already there. Returns the phase, or null when there is no state.
 */
export async function requestInState(c: pg.ClientBase, sourceId: string, what: "finish" | "rollback", validate?: "counts" | "full"): Promise<Phase | null> {
  const r =
    what === "finish"
      ? await c.query(
          "UPDATE sqlite2pg.state SET finish_requested_at = coalesce(finish_requested_at, now()), updated_at = now() WHERE source_id = $1 RETURNING phase",
          [sourceId],
        )
      : await c.query(
          "UPDATE sqlite2pg.state SET rollback_requested_at = coalesce(rollback_requested_at, now()), rollback_validate = coalesce($2, rollback_validate), updated_at = now() WHERE source_id = $1 RETURNING phase",
          [sourceId, validate ?? null],
        );
  if (r.rowCount !== 1) return null;
  await notifyState(c, sourceId);
  return r.rows[0].phase as Phase;
}

/** Wake the daemon of a source: the state changed (a request, a withdrawal). Delivered at commit. */
export async function notifyState(c: pg.ClientBase, sourceId: string): Promise<void> {
  await c.query("SELECT pg_notify($1, $2)", [STATE_CHANNEL, sourceId]);
}

/** Read one source's state, or null; `withPlan` false skips the (large) stored plan. */
export async function loadState(c: pg.ClientBase, sourceId: string, withPlan = true): Promise<ReplicationState | null> {
  const exists = await c.query("SELECT to_regclass('sqlite2pg.state') AS t");
  if (!exists.rows[0].t) return null;
  try {
    return await readState(c, sourceId, withPlan);
  } catch (e) {
    // A state table from an earlier version: add the newer columns, once.
    if ((e as { code?: string }).code !== "42703") throw e;
    await ensureStateSchema(c);
    return readState(c, sourceId, withPlan);
  }
}

async function readState(c: pg.ClientBase, sourceId: string, withPlan: boolean): Promise<ReplicationState | null> {
  const r = await c.query(
    `SELECT ${withPlan ? "*, plan::text AS plan_text" : "source_id, sqlite_path, target_schema, preserve_case, phase, snapshot_seq, applied_seq, applied_token, changes_applied, apply_rate, schema_version, schema_fingerprint, last_error, last_error_at, applied_at, updated_at, cutover_requested_at, sentinel_seq, frozen_at, cutover_at, freeze_ms, validation, daemon_pid, daemon_host, daemon_start, hook_status, hook_exit, hook_command, fallback_forms, fallback_fingerprint, fallback_applied, finish_requested_at, rollback_requested_at, rollback_validate, rollback_frozen_at, rollback_freeze_ms, rolled_back_at, rollback_validation, rollback_hook_command, rollback_hook_status, rollback_hook_exit"} FROM sqlite2pg.state WHERE source_id = $1`,
    [sourceId],
  );
  if (r.rowCount === 0) return null;
  const s = r.rows[0];
  return {
    sourceId: s.source_id,
    sqlitePath: s.sqlite_path,
    targetSchema: s.target_schema,
    preserveCase: Boolean(s.preserve_case),
    phase: s.phase,
    snapshotSeq: s.snapshot_seq === null ? null : Number(s.snapshot_seq),
    appliedSeq: Number(s.applied_seq),
    appliedToken: s.applied_token === null || s.applied_token === undefined ? null : Number(s.applied_token),
    changesApplied: Number(s.changes_applied),
    applyRate: s.apply_rate,
    schemaVersion: s.schema_version === null || s.schema_version === undefined ? null : Number(s.schema_version),
    schemaFingerprint: s.schema_fingerprint ?? null,
    plan: s.plan_text ? fromJson<MigrationPlan>(s.plan_text) : null,
    lastError: s.last_error,
    lastErrorAt: s.last_error_at,
    cutoverRequestedAt: s.cutover_requested_at ?? null,
    sentinelSeq: s.sentinel_seq === null || s.sentinel_seq === undefined ? null : Number(s.sentinel_seq),
    frozenAt: s.frozen_at ?? null,
    cutoverAt: s.cutover_at ?? null,
    freezeMs: s.freeze_ms ?? null,
    validation: s.validation ?? null,
    daemon: s.daemon_pid ? { pid: Number(s.daemon_pid), host: s.daemon_host, start: s.daemon_start ?? null } : null,
    hookStatus: s.hook_status ?? null,
    hookExit: s.hook_exit ?? null,
    hookCommand: s.hook_command ?? null,
    appliedAt: s.applied_at,
    updatedAt: s.updated_at,
    fallback: {
      forms: s.fallback_forms ?? null,
      fingerprint: s.fallback_fingerprint ?? null,
      applied: Number(s.fallback_applied ?? 0),
      finishRequestedAt: s.finish_requested_at ?? null,
      rollbackRequestedAt: s.rollback_requested_at ?? null,
      rollbackValidate: s.rollback_validate ?? null,
      rollbackFrozenAt: s.rollback_frozen_at ?? null,
      rollbackFreezeMs: s.rollback_freeze_ms ?? null,
      rolledBackAt: s.rolled_back_at ?? null,
      rollbackValidation: s.rollback_validation ?? null,
      rollbackHookCommand: s.rollback_hook_command ?? null,
      rollbackHookStatus: s.rollback_hook_status ?? null,
      rollbackHookExit: s.rollback_hook_exit ?? null,
    },
  };
}

/** Snapshot progress of every table of a source. */
export async function loadProgress(c: pg.ClientBase, sourceId: string): Promise<TableProgress[]> {
  const r = await c.query(
    "SELECT table_name, last_key::text AS k, rows, total, done FROM sqlite2pg.snapshot_progress WHERE source_id = $1 ORDER BY table_name",
    [sourceId],
  );
  return r.rows.map((x) => ({
    table: x.table_name,
    lastKey: x.k ? fromJson<unknown[]>(x.k) : null,
    rows: Number(x.rows),
    total: Number(x.total),
    done: x.done,
  }));
}

/** Record an error (or clear it with null) without touching positions. */
export async function recordError(c: pg.ClientBase, sourceId: string, message: string | null): Promise<void> {
  await c.query(
    "UPDATE sqlite2pg.state SET last_error = $2, last_error_at = CASE WHEN $2::text IS NULL THEN last_error_at ELSE now() END, updated_at = now() WHERE source_id = $1",
    [sourceId, message],
  );
}

/** Start (or restart) a table's snapshot progress: nothing copied yet, `total` rows counted. */
export async function resetProgress(c: pg.ClientBase, sourceId: string, table: string, total: number): Promise<void> {
  await c.query(
    "INSERT INTO sqlite2pg.snapshot_progress (source_id, table_name, total) VALUES ($1, $2, $3) ON CONFLICT (source_id, table_name) DO UPDATE SET last_key = NULL, rows = 0, total = $3, done = false",
    [sourceId, table, total],
  );
}
