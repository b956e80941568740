import type { LiveStatus } from "./live.js";
import { snapshotRatio } from "./metrics.js";

/** 1234 → "1.2k", 3000000 → "3M": counts as an operator reads them at a glance. */
export function shortCount(n: number): string {
  const units: [number, string][] = [
    [1e9, "G"],
    [1e6, "M"],
    [1e3, "k"],
  ];
  for (const [size, unit] of units) {
    if (n >= size) {
      const v = n / size;
      return `${v >= 100 ? Math.round(v) : +v.toFixed(1)}${unit}`;
    }
  }
  return String(n);
}

/**
 * One line saying what the daemon is doing, for `systemctl status`
 * (sd_notify STATUS=): `snapshot 41% (users 1.2M/3M)`, `streaming, lag 0
 * changes / 0.01 s`, `standby`, `frozen 12 ms`.
 */
export function statusLine(s: LiveStatus, now = Date.now()): string {
  if (s.role === "standby") return "standby: another daemon is active for this database; taking over if it stops";
  if (s.role === "starting" || !s.phase) return "starting: connecting to PostgreSQL";
  const lag = `lag ${s.lag_changes ?? 0} changes / ${s.lag_seconds ?? 0} s`;
  const failing = s.last_error ? "; the last step failed, retrying" : "";
  switch (s.phase) {
    case "new":
      return `preparing the snapshot${failing}`;
    case "snapshot": {
      const pct = Math.floor((snapshotRatio(s) ?? 0) * 100);
      const t = s.snapshot?.find((x) => !x.done);
      return `snapshot ${pct}%${t ? ` (${t.table} ${shortCount(t.rows)}/${shortCount(Math.max(t.total, t.rows))})` : ""}${failing}`;
    }
    case "catch-up":
      return `catching up, ${lag}${failing}`;
    case "streaming":
      return `streaming, ${lag}${failing}`;
    case "cutover-catch-up":
      return `cutover: catching up before the freeze, ${lag}${failing}`;
    case "frozen":
      return `frozen ${s.frozen_at ? Math.max(0, now - Date.parse(s.frozen_at)) : 0} ms: cutting over${failing}`;
    case "cut-over":
      return `cut over: validating${failing}`;
    case "fallback":
      return `fallback: SQLite follows PostgreSQL, lag ${s.fallback_lag_changes ?? "?"} changes / ${s.fallback_lag_seconds ?? "?"} s${failing}`;
    case "rolling-back":
      return `rolling back: PostgreSQL frozen, draining into SQLite${failing}`;
    case "rolled-back":
      return `rolled back: SQLite holds the data${failing}`;
    case "done":
      return "cutover done";
    default:
      return `${s.phase}${failing}`;
  }
}
