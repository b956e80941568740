/**
 * The status of a replicated source, read from the SQLite file and the
 * state in Postgres: what `sqlite2pg status` prints and the library's
 * `readStatus` returns.
 */
import { usageError } from "../errors.js";
import { captureInfo, ChangelogReader } from "../sqlite/capture.js";
import { openSource } from "../sqlite/open.js";
import { loadProgress, loadState } from "./state.js";
import { daemonRunning } from "./lock.js";
import { Phase } from "./phase.js";
import { withPg } from "../postgres/pg.js";

/** What `status` reports. */
export interface StatusReport {
  source_id: string;
  phase: Phase;
  daemon_running: boolean;
  /** The active daemon as it recorded itself (pid, host), while one holds the source. */
  daemon: { pid: number; host: string } | null;
  snapshot: { table: string; rows: number; total: number; done: boolean }[];
  newest_seq: number;
  applied_seq: number;
  lag_changes: number;
  lag_seconds: number;
  changes_applied: number;
  apply_rate: number | null;
  applied_at: string | null;
  last_error: string | null;
  last_error_at: string | null;
  /** Set when the file is not the one replicated (restored from a backup, recreated): the lag above means nothing then. */
  file_problem: string | null;
  cutover: {
    requested_at: string | null;
    /** "queued until caught up" while the snapshot or catch-up runs. */
    note: string | null;
    frozen_at: string | null;
    sentinel_seq: number | null;
    cutover_at: string | null;
    freeze_ms: number | null;
    validation: unknown;
    /** The --on-cutover command: null (none run), running, ok, failed; with its exit status. */
    hook: { status: string; exit: number | null } | null;
  };
  /** After the cutover (phases fallback, rolling-back): changes made in PostgreSQL not yet in SQLite, and the oldest one's age in seconds; null otherwise. */
  fallback_lag_changes: number | null;
  fallback_lag_seconds: number | null;
  /** After the cutover: the way back (null before it). */
  fallback: {
    /** Changes made in PostgreSQL not yet applied to SQLite, and the age of the oldest (seconds). */
    lag_changes: number;
    lag_seconds: number;
    /** Changes applied to SQLite so far. */
    applied: number;
    finish_requested_at: string | null;
    rollback_requested_at: string | null;
    rolled_back_at: string | null;
    rollback_freeze_ms: number | null;
    rollback_validation: unknown;
    rollback_hook: { status: string; exit: number | null } | null;
  } | null;
}

/** Read the status from the SQLite file and the state in Postgres; works whether or not the daemon runs. */
export async function readStatus(sqlite: string, pgUrl: string | undefined): Promise<StatusReport> {
  const db = openSource(sqlite);
  let sourceId: string;
  let newest: number;
  let lagSecondsAt: (applied: number) => number;
  let cl: ChangelogReader;
  try {
    const info = captureInfo(db);
    if (!info) throw usageError("NOT_INITIALISED", `change capture is not installed in ${sqlite}`, { hint: "run `sqlite2pg init` first" });
    sourceId = info.sourceId;
    cl = new ChangelogReader(db);
    newest = cl.newestSeq();
    const cache = new Map<number, number>();
    lagSecondsAt = (a) => cache.get(a) ?? cl.lagSeconds(a);
    const s = await withPg(pgUrl, async (c) => {
      const state = await loadState(c, sourceId, false);
      if (!state)
        throw usageError("NO_STATE", `no replication state for source ${sourceId} in this database`, { hint: "run `sqlite2pg init` with the same --pg" });
      let lag = { n: 0, s: 0 };
      if (([Phase.cutOver, Phase.fallback, Phase.rollingBack] as Phase[]).includes(state.phase)) {
        const r = await c
          .query<{ n: string; s: number | null }>(
            "SELECT count(*)::text AS n, extract(epoch FROM clock_timestamp() - min(at))::float8 AS s FROM sqlite2pg.pg_changes WHERE sch = $1",
            [state.targetSchema],
          )
          .catch(() => null); // no change table: --no-fallback, or already finished
        if (r) lag = { n: Number(r.rows[0]?.n ?? 0), s: Number(r.rows[0]?.s ?? 0) };
      }
      return { state, progress: await loadProgress(c, sourceId), running: await daemonRunning(c, sourceId), lag };
    });
    const applied = s.state.appliedSeq;
    // Rolled back: the changelog started over when SQLite took writes again (the application's new
    // changes, for a later attempt); the forward position of this attempt no longer describes it.
    const startedOver = s.state.phase === Phase.rolledBack;
    let fileProblem: string | null = null;
    try {
      if (!startedOver) cl.snapshot(() => cl.verifyCheckpoint(sourceId, applied, s.state.appliedToken));
    } catch (e) {
      fileProblem = (e as Error).message;
    }
    const committed = ([Phase.cutOver, Phase.fallback, Phase.rollingBack, Phase.rolledBack, Phase.done] as Phase[]).includes(s.state.phase);
    return {
      source_id: sourceId,
      phase: s.state.phase,
      daemon_running: s.running,
      daemon: s.running && s.state.daemon ? { pid: s.state.daemon.pid, host: s.state.daemon.host } : null,
      snapshot: s.progress.map((p) => ({ table: p.table, rows: p.rows, total: p.total, done: p.done })),
      newest_seq: newest,
      applied_seq: applied,
      lag_changes: startedOver ? 0 : Math.max(0, newest - applied),
      lag_seconds: startedOver ? 0 : +lagSecondsAt(applied).toFixed(3),
      changes_applied: s.state.changesApplied,
      apply_rate: s.state.applyRate === null ? null : Math.round(s.state.applyRate),
      applied_at: s.state.appliedAt?.toISOString() ?? null,
      last_error: s.state.lastError,
      last_error_at: s.state.lastErrorAt?.toISOString() ?? null,
      file_problem: fileProblem,
      cutover: {
        requested_at: s.state.cutoverRequestedAt?.toISOString() ?? null,
        note: s.state.cutoverRequestedAt && ([Phase.new, Phase.snapshot, Phase.catchUp] as Phase[]).includes(s.state.phase) ? "queued until caught up" : null,
        frozen_at: s.state.frozenAt?.toISOString() ?? null,
        sentinel_seq: s.state.sentinelSeq,
        // "Cut over" only once the commit is visible: the phase says so, nothing else.
        cutover_at: committed ? (s.state.cutoverAt?.toISOString() ?? null) : null,
        freeze_ms: committed ? s.state.freezeMs : null,
        validation: s.state.validation,
        hook: s.state.hookStatus ? { status: s.state.hookStatus, exit: s.state.hookExit } : null,
      },
      fallback_lag_changes: ([Phase.fallback, Phase.rollingBack] as Phase[]).includes(s.state.phase) ? s.lag.n : null,
      fallback_lag_seconds: ([Phase.fallback, Phase.rollingBack] as Phase[]).includes(s.state.phase)
        ? s.lag.n === 0
          ? 0
          : +Math.max(0, s.lag.s).toFixed(3)
        : null,
      fallback: ([Phase.fallback, Phase.rollingBack, Phase.rolledBack] as Phase[]).includes(s.state.phase)
        ? {
            lag_changes: s.lag.n,
            lag_seconds: s.lag.n === 0 ? 0 : +Math.max(0, s.lag.s).toFixed(3),
            applied: s.state.fallback.applied,
            finish_requested_at: s.state.fallback.finishRequestedAt?.toISOString() ?? null,
            rollback_requested_at: s.state.fallback.rollbackRequestedAt?.toISOString() ?? null,
            rolled_back_at: s.state.fallback.rolledBackAt?.toISOString() ?? null,
            rollback_freeze_ms: s.state.fallback.rollbackFreezeMs,
            rollback_validation: s.state.fallback.rollbackValidation,
            rollback_hook: s.state.fallback.rollbackHookStatus
              ? { status: s.state.fallback.rollbackHookStatus, exit: s.state.fallback.rollbackHookExit }
              : null,
          }
        : null,
    };
  } finally {
    db.close();
  }
}
