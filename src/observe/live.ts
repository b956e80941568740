/** What a running daemon knows of itself, read at each request: no Postgres round trip. */
export interface LiveStatus {
  /** active: holds the source's lock and replicates; standby: waits for it; starting: neither yet. */
  role: "active" | "standby" | "starting";
  /** The replication's phase; null until known (a standby does not read the state). */
  phase: string | null;
  applied_seq: number | null;
  newest_seq: number | null;
  lag_changes: number | null;
  lag_seconds: number | null;
  apply_rate: number | null;
  last_error: string | null;
  /** Per table while the snapshot runs; null otherwise. */
  snapshot: { table: string; rows: number; total: number; done: boolean }[] | null;
  /** Seconds since the loop last made progress (0 while waiting on purpose). */
  seconds_since_progress: number;
  /** While SQLite is frozen for the cutover: since when (ISO time). */
  frozen_at: string | null;
  /** After the cutover (fallback, rollback): changes made in PostgreSQL not yet applied to SQLite, and the age of the oldest; null before. */
  fallback_lag_changes?: number | null;
  fallback_lag_seconds?: number | null;
}
