/**
 * The daemon's Prometheus metrics (prom-client, with its default process
 * metrics). Counters and histograms are fed by the daemon's events; the
 * gauges are set from its live numbers at each scrape. Labels are bounded:
 * table names, error codes, phases, roles. No values, no connection strings.
 */
import client from "prom-client";
import type { DaemonEvents } from "./events.js";
import type { LiveStatus } from "./live.js";

const PHASES = ["new", "snapshot", "catch-up", "streaming", "cutover-catch-up", "frozen", "cut-over", "fallback", "rolling-back", "rolled-back", "done"];

export class DaemonMetrics {
  readonly registry = new client.Registry();
  private readonly lagChanges;
  private readonly lagSeconds;
  private readonly fallbackLagChanges;
  private readonly fallbackLagSeconds;
  private readonly applied;
  private readonly newest;
  private readonly rate;
  private readonly failing;
  private readonly sinceProgress;
  private readonly phase;
  private readonly role;
  private readonly snapshotCopied;
  private readonly snapshotRows;
  private readonly snapshotRatio;
  private readonly changesApplied;
  private readonly batchDuration;
  private readonly errors;
  private readonly freezes;
  private readonly attempts;
  private readonly checkpoints;
  private readonly framesCheckpointed;

  constructor() {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry });
    const gauge = (name: string, help: string, labelNames: string[] = []) => new client.Gauge({ name, help, labelNames, registers });
    this.lagChanges = gauge("sqlite2pg_lag_changes", "Changes recorded in SQLite and not yet applied to Postgres (absent on a standby)");
    this.lagSeconds = gauge("sqlite2pg_lag_seconds", "Age of the oldest change not yet applied, in seconds (absent on a standby)");
    this.fallbackLagChanges = gauge(
      "sqlite2pg_fallback_lag_changes",
      "After the cutover: changes made in Postgres not yet applied to the SQLite fallback (absent before the cutover)",
    );
    this.fallbackLagSeconds = gauge(
      "sqlite2pg_fallback_lag_seconds",
      "After the cutover: age of the oldest change in Postgres not yet applied to SQLite, in seconds",
    );
    this.applied = gauge("sqlite2pg_applied_seq", "Last changelog seq applied to Postgres");
    this.newest = gauge("sqlite2pg_newest_seq", "Newest changelog seq in SQLite");
    this.rate = gauge("sqlite2pg_apply_rate", "Changes applied per second, recent");
    this.failing = gauge("sqlite2pg_failing", "1 while the last step failed and is being retried");
    this.sinceProgress = gauge("sqlite2pg_seconds_since_progress", "Seconds since the daemon's loop last made progress");
    this.phase = gauge("sqlite2pg_phase", "1 for the current phase of the replication", ["phase"]);
    this.role = gauge("sqlite2pg_role", "1 for this process' role: active (holds the source's lock) or standby", ["role"]);
    this.snapshotCopied = gauge("sqlite2pg_snapshot_rows_copied", "Rows of a table copied by the snapshot so far", ["table"]);
    this.snapshotRows = gauge("sqlite2pg_snapshot_rows", "Rows of a table when the snapshot began", ["table"]);
    this.snapshotRatio = gauge("sqlite2pg_snapshot_progress_ratio", "Share of the snapshot's rows copied, 0 to 1 (1 once it is done)");
    this.changesApplied = new client.Counter({ name: "sqlite2pg_changes_applied_total", help: "Changes applied to Postgres by this process", registers });
    this.batchDuration = new client.Histogram({
      name: "sqlite2pg_apply_batch_duration_seconds",
      help: "Time to apply and commit one batch of changes",
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.errors = new client.Counter({ name: "sqlite2pg_errors_total", help: "Failed steps, by error code", labelNames: ["kind"], registers });
    this.freezes = new client.Histogram({
      name: "sqlite2pg_freeze_duration_seconds",
      help: "How long SQLite (cutover) or Postgres (rollback) was frozen by each attempt, committed or undone",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.attempts = new client.Counter({ name: "sqlite2pg_cutover_attempts_total", help: "Cutover attempts started by this process", registers });
    this.checkpoints = new client.Counter({
      name: "sqlite2pg_wal_checkpoints_total",
      help: "Checkpoints of the application's WAL run by this process (so the application's commits do not)",
      registers,
    });
    this.framesCheckpointed = new client.Counter({
      name: "sqlite2pg_wal_frames_checkpointed_total",
      help: "WAL frames this process' checkpoints copied into the SQLite database file",
      registers,
    });
  }

  /** The daemon's events, counted. */
  events(): DaemonEvents {
    return {
      applied: (changes, seconds) => {
        this.changesApplied.inc(changes);
        this.batchDuration.observe(seconds);
      },
      error: (kind) => this.errors.inc({ kind }),
      freeze: (ms) => this.freezes.observe(ms / 1000),
      cutoverAttempt: () => this.attempts.inc(),
      checkpoint: (frames) => {
        this.checkpoints.inc();
        this.framesCheckpointed.inc(frames);
      },
    };
  }

  /** The gauges, from the live numbers (before each scrape). */
  update(s: LiveStatus): void {
    // Unknown is absent, not 0 (a standby knows no lag): the series leaves the registry until it is known.
    const set = (g: client.Gauge, v: number | null) => {
      const name = (g as unknown as { name: string }).name;
      const registered = this.registry.getSingleMetric(name) !== undefined;
      if (v === null) {
        if (registered) this.registry.removeSingleMetric(name);
      } else {
        if (!registered) this.registry.registerMetric(g);
        g.set(v);
      }
    };
    set(this.lagChanges, s.lag_changes);
    set(this.lagSeconds, s.lag_seconds);
    set(this.fallbackLagChanges, s.fallback_lag_changes ?? null);
    set(this.fallbackLagSeconds, s.fallback_lag_seconds ?? null);
    set(this.applied, s.applied_seq);
    set(this.newest, s.newest_seq);
    set(this.rate, s.apply_rate);
    this.failing.set(s.last_error ? 1 : 0);
    this.sinceProgress.set(s.seconds_since_progress);
    this.phase.reset();
    if (s.phase) for (const p of PHASES) this.phase.set({ phase: p }, p === s.phase ? 1 : 0);
    this.role.reset();
    for (const r of ["active", "standby"]) this.role.set({ role: r }, r === s.role ? 1 : 0);
    this.snapshotCopied.reset();
    this.snapshotRows.reset();
    for (const t of s.snapshot ?? []) {
      this.snapshotCopied.set({ table: t.table }, t.rows);
      this.snapshotRows.set({ table: t.table }, t.total);
    }
    set(this.snapshotRatio, snapshotRatio(s));
  }
}

/** Share of the snapshot copied: null before anything is known, 1 once past it. */
export function snapshotRatio(s: Pick<LiveStatus, "phase" | "snapshot">): number | null {
  if (!s.phase) return null;
  if (s.phase === "new") return 0;
  if (!s.snapshot) return s.phase === "snapshot" ? 0 : 1;
  const total = s.snapshot.reduce((a, t) => a + Math.max(t.total, t.rows), 0);
  const done = s.snapshot.reduce((a, t) => a + (t.done ? Math.max(t.total, t.rows) : t.rows), 0);
  return total === 0 ? 1 : Math.min(1, done / total);
}
