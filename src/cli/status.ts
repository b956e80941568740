import { requireSqlite, resolveConfig } from "../config/config.js";
import { Phase } from "../replication/phase.js";
import { readStatus } from "../replication/status.js";

// The benchmark (bench/lib/replication.mjs) polls dist/cli/status.js's readStatus in its own process.
/** @public */
export { readStatus, type StatusReport } from "../replication/status.js";

/** `sqlite2pg status`. */
export async function statusCommand(flags: { sqlite?: string; pg?: string; config?: string; json?: boolean }): Promise<void> {
  const cfg = resolveConfig(flags);
  const r = await readStatus(requireSqlite(cfg), cfg.pg);
  if (flags.json) {
    process.stdout.write(JSON.stringify(r, null, 2) + "\n");
    return;
  }
  const lines = [
    `phase:           ${r.phase}${r.daemon_running ? ` (daemon running${r.daemon ? `: pid ${r.daemon.pid} on ${r.daemon.host}` : ""})` : " (no daemon running)"}`,
    `changes:         newest ${r.newest_seq}, applied ${r.applied_seq}, lag ${r.lag_changes} change(s) / ${r.lag_seconds} s`,
    `applied:         ${r.changes_applied} change(s) in all${r.apply_rate !== null ? `, ${r.apply_rate}/s lately` : ""}${r.applied_at ? `, last at ${r.applied_at}` : ""}`,
  ];
  if (r.snapshot.length) {
    lines.push("snapshot:");
    for (const t of r.snapshot) lines.push(`  ${t.table.padEnd(28)} ${t.done ? "done" : `${t.rows}/${t.total} rows`}`);
  }
  const cv = r.cutover;
  if (r.phase === Phase.cutOver || r.phase === Phase.done || r.phase === Phase.fallback || r.phase === Phase.rollingBack || r.phase === Phase.rolledBack) {
    const hook = cv.hook
      ? `; --on-cutover ${cv.hook.status}${cv.hook.status === "failed" ? ` (exit ${cv.hook.exit}; \`sqlite2pg run\` runs it again)` : ""}`
      : "";
    lines.push(
      `cutover:         cut over at ${cv.cutover_at}, freeze ${cv.freeze_ms?.toFixed(1)} ms${r.phase === Phase.cutOver ? "; finishing (validation, marker, hook)" : r.phase === Phase.done ? "; done" : ""}${hook}`,
    );
  } else if (r.phase === Phase.frozen) {
    const secs = cv.frozen_at ? ((Date.now() - Date.parse(cv.frozen_at)) / 1000).toFixed(1) : "?";
    lines.push(`cutover:         in progress: SQLite frozen since ${cv.frozen_at} (${secs} s), draining and committing in Postgres; NOT cut over yet`);
  } else if (cv.requested_at) {
    lines.push(
      `cutover:         requested at ${cv.requested_at}${cv.note ? ` (${cv.note})` : r.phase === Phase.cutoverCatchUp ? " (catching up before the freeze)" : ""}; not cut over yet`,
    );
  }
  const fb = r.fallback;
  if (fb) {
    if (r.phase === Phase.rolledBack) {
      lines.push(
        `rollback:        rolled back at ${fb.rolled_back_at}, PostgreSQL frozen ${fb.rollback_freeze_ms?.toFixed(1) ?? "?"} ms; SQLite holds the data${fb.rollback_hook ? `; --on-rollback ${fb.rollback_hook.status}` : ""}`,
      );
    } else {
      lines.push(`fallback:        SQLite follows PostgreSQL: lag ${fb.lag_changes} change(s) / ${fb.lag_seconds} s; ${fb.applied} applied in all`);
      if (r.phase === Phase.rollingBack) lines.push("rollback:        in progress: PostgreSQL frozen, draining into SQLite; NOT rolled back yet");
      else if (fb.rollback_requested_at) lines.push(`rollback:        requested at ${fb.rollback_requested_at}; not rolled back yet`);
      if (fb.finish_requested_at) lines.push(`finish:          requested at ${fb.finish_requested_at}`);
    }
  }
  if (r.file_problem) lines.push(`FILE REPLACED:   ${r.file_problem}`);
  lines.push(`last error:      ${r.last_error ? `${r.last_error} (at ${r.last_error_at})` : "none"}`);
  process.stdout.write(lines.join("\n") + "\n");
}
