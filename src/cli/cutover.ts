import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { requireSqlite, resolveConfig } from "../config/config.js";
import { Sqlite2pgError, usageError, validationError } from "../errors.js";
import { captureInfo } from "../source/capture.js";
import { freezeInfo, unfreeze } from "../source/freeze.js";
import { openSource } from "../source/open.js";
import { withPg } from "../target/pg.js";
import { daemonRunning, loadState } from "../target/state.js";
import { pidFile } from "./run.js";
import { markerPath } from "../pipeline/cutover.js";

function sourceIdOf(sqlite: string): string {
  const db = openSource(sqlite);
  try {
    const info = captureInfo(db);
    if (!info) throw usageError("NOT_INITIALISED", `change capture is not installed in ${sqlite}`, { hint: "run `sqlite2pg init` first" });
    return info.sourceId;
  } finally {
    db.close();
  }
}

/**
 * `sqlite2pg cutover`: record the request in the state (the daemon acts on
 * it at its next safe point, even after a restart) and wake the local daemon
 * with SIGUSR2 through its pid file. `--wait` follows it to the end.
 */
export async function cutoverCommand(flags: { sqlite?: string; pg?: string; config?: string; wait?: boolean; timeout?: number }): Promise<void> {
  const cfg = resolveConfig(flags);
  const sqlite = resolve(requireSqlite(cfg));
  const sourceId = sourceIdOf(sqlite);
  await withPg(cfg.pg, async (c) => {
    const r = await c.query("UPDATE sqlite2pg.state SET cutover_requested_at = coalesce(cutover_requested_at, now()) WHERE source_id = $1 RETURNING phase", [sourceId]);
    if (r.rowCount !== 1) throw usageError("NO_STATE", `no replication state for source ${sourceId}`, { hint: "run `sqlite2pg init` and `sqlite2pg run` first" });
    const running = await daemonRunning(c, sourceId);
    let signalled = false;
    if (existsSync(pidFile(sqlite))) {
      const pid = Number(readFileSync(pidFile(sqlite), "utf8").trim());
      try {
        process.kill(pid, "SIGUSR2");
        signalled = true;
      } catch {
        /* not on this host, or gone: the request in the state stands */
      }
    }
    const phase = r.rows[0].phase as string;
    process.stdout.write(
      `Cutover requested (phase ${phase}${phase === "snapshot" || phase === "catch-up" || phase === "new" ? ": queued until caught up" : ""}). ` +
        (signalled ? "Daemon signalled.\n" : running ? "The daemon will see it within its poll interval.\n" : "No daemon is running: it starts when `sqlite2pg run` does.\n"),
    );
    if (!flags.wait) return;
    const deadline = Date.now() + (flags.timeout ?? 600) * 1000;
    for (;;) {
      const s = await loadState(c, sourceId, false);
      if (s?.phase === "done") {
        const v = s.validation as { ok: boolean; mode: string } | null;
        process.stdout.write(`Cut over: freeze ${s.freezeMs?.toFixed(1)} ms; validation (${v?.mode}): ${v?.ok ? "equal" : "DIFFERS"}.\n`);
        if (v && !v.ok) throw validationError("CUTOVER_VALIDATION", "the cutover's validation found differences", { hint: "run `sqlite2pg validate --full`" });
        return;
      }
      if (Date.now() > deadline) throw new Sqlite2pgError("target", "CUTOVER_TIMEOUT", `the cutover did not finish within ${flags.timeout ?? 600} s (phase ${s?.phase}${s?.lastError ? `, last error: ${s.lastError}` : ""})`);
      await sleep(200);
    }
  });
}

/**
 * `sqlite2pg unfreeze`: abort a cutover that Postgres has not committed:
 * the state goes back to streaming first (so no daemon can commit the
 * cutover after this), then SQLite takes writes again.
 */
export async function unfreezeCommand(flags: { sqlite?: string; pg?: string; config?: string }): Promise<void> {
  const cfg = resolveConfig(flags);
  const sqlite = requireSqlite(cfg);
  const sourceId = sourceIdOf(sqlite);
  if (existsSync(markerPath(sqlite))) {
    throw usageError("ALREADY_CUT_OVER", `the cutover marker ${markerPath(sqlite)} exists: the application writes to Postgres now, so SQLite stays frozen for good`);
  }
  // The state row stays locked until SQLite is unfrozen: a daemon cannot
  // commit the cutover in between (its commit waits for this row).
  await withPg(cfg.pg, async (c) => {
    await c.query("BEGIN");
    try {
      const r = await c.query("SELECT phase FROM sqlite2pg.state WHERE source_id = $1 FOR UPDATE", [sourceId]);
      if (r.rowCount !== 1) {
        throw usageError("NO_STATE", `no replication state for source ${sourceId} in this database, so it cannot tell whether the cutover is committed`, {
          hint: "point --pg (or DATABASE_URL) at the database the daemon replicates into",
        });
      }
      const phase = r.rows[0].phase as string;
      if (phase === "cut-over" || phase === "done") {
        throw usageError("ALREADY_CUT_OVER", "the cutover is committed in Postgres: the application writes there now, so SQLite stays frozen for good", { context: { phase } });
      }
      await c.query("UPDATE sqlite2pg.state SET phase = CASE WHEN phase IN ('cutover-catch-up', 'frozen') THEN 'streaming' ELSE phase END, cutover_requested_at = NULL, sentinel_seq = NULL, frozen_at = NULL, updated_at = now() WHERE source_id = $1", [sourceId]);
      const db = openSource(sqlite, { readonly: false });
      try {
        const was = freezeInfo(db);
        const n = unfreeze(db);
        await c.query("COMMIT");
        process.stdout.write(was || n ? `Unfrozen: ${n} freeze trigger(s) removed; the application can write to SQLite again and replication goes on.\n` : "SQLite was not frozen; any pending cutover request is withdrawn.\n");
      } finally {
        db.close();
      }
    } catch (e) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw e;
    }
  });
}
