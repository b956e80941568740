import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { requireSqlite, resolveConfig } from "../config/config.js";
import { Sqlite2pgError, timeoutError, usageError, validationError } from "../errors.js";
import { freezeInfo, unfreeze } from "../sqlite/freeze.js";
import { openSource } from "../sqlite/open.js";
import { withPg } from "../postgres/pg.js";
import type pg from "pg";
import { loadState, notifyState, requestCutoverInState } from "../replication/state.js";
import { daemonRunning } from "../replication/lock.js";
import { Phase, transition } from "../replication/phase.js";
import { markerPath } from "../sqlite/freeze.js";
import { inTransaction } from "../postgres/transaction.js";
import { sourceIdOf } from "../replication/source-file.js";

/** The phases in which the cutover is over: validated, marker written, hook run (the fallback and what follows it, or done). */
const CUTOVER_OVER: readonly Phase[] = [Phase.fallback, Phase.rollingBack, Phase.rolledBack, Phase.done];

/**
 * `sqlite2pg cutover`: record the request in the state and NOTIFY the
 * daemon (it acts on it at its next safe point, even after a restart, and
 * only the active daemon acts). It signals no process: not a pid file's
 * pid (stale after a crash, or a standby's), and not even the verified
 * active daemon, whose signal handler would record the request once more.
 * `--wait` follows it to the end, the --on-cutover command included.
 */
export async function cutoverCommand(flags: { sqlite?: string; pg?: string; config?: string; wait?: boolean; timeout?: number }): Promise<void> {
  const cfg = resolveConfig(flags);
  const sqlite = resolve(requireSqlite(cfg));
  const sourceId = sourceIdOf(sqlite);
  const timeout = flags.timeout ?? 600;
  await withPg(cfg.pg, async (c) => {
    // After a rollback no daemon acts on a request any more: this attempt is over.
    const was = (await loadState(c, sourceId, false))?.phase;
    if (was === Phase.rollingBack || was === Phase.rolledBack) {
      throw usageError(
        "ROLLED_BACK",
        was === Phase.rolledBack
          ? "this source was rolled back to SQLite: the migration it cut over is over, and a cutover request would never be carried out"
          : "a rollback to SQLite is under way: there is nothing to cut over",
        {
          context: { phase: was },
          hint: "to migrate again, start a later attempt: `sqlite2pg init --drop-existing`, `sqlite2pg run`, then `sqlite2pg cutover`",
        },
      );
    }
    const phase = await requestCutoverInState(c, sourceId);
    if (phase === null) throw usageError("NO_STATE", `no replication state for source ${sourceId}`, { hint: "run `sqlite2pg init` and `sqlite2pg run` first" });
    // No signal: the request is in the state and the NOTIFY of that change
    // wakes the active daemon wherever it runs (it also re-reads the state at
    // every poll). A signal would make its handler record the request again,
    // and could undo an \`unfreeze\` that withdrew it meanwhile.
    const running = await daemonRunning(c, sourceId);
    process.stdout.write(
      `Cutover requested (phase ${phase}${phase === Phase.snapshot || phase === Phase.catchUp || phase === Phase.new ? ": queued until caught up" : ""}). ` +
        (running ? "The daemon is notified through PostgreSQL.\n" : "No daemon is running: it starts when `sqlite2pg run` does.\n"),
    );
    if (!flags.wait) return;
    const deadline = Date.now() + timeout * 1000;
    for (;;) {
      const s = await loadState(c, sourceId, false);
      if (s?.hookStatus === "failed" && s.phase === Phase.cutOver) {
        const v = s.validation as { ok: boolean; mode: string } | null;
        process.stdout.write(
          `Cut over: freeze ${s.freezeMs?.toFixed(1)} ms; validation (${v?.mode}): ${v?.ok ? "equal" : "DIFFERS"}; the --on-cutover command FAILED (exit status ${s.hookExit}).\n`,
        );
        throw new Sqlite2pgError("hook", "HOOK_FAILED", `the cutover is committed, but the --on-cutover command exited with status ${s.hookExit}`, {
          context: { command: s.hookCommand ?? undefined },
          hint: "fix the command and start `sqlite2pg run` again: it runs the command again, and the job is done once it succeeds",
        });
      }
      // Done, or (the default) following PostgreSQL in the fallback: the cutover is over either way.
      if (s && CUTOVER_OVER.includes(s.phase)) {
        const v = s.validation as { ok: boolean; mode: string } | null;
        const hook = s.hookStatus === "ok" ? "; --on-cutover command succeeded" : "";
        const back =
          s.phase === Phase.done
            ? ""
            : s.phase === Phase.fallback
              ? "; SQLite follows PostgreSQL until `sqlite2pg finish` or `sqlite2pg rollback`"
              : `; rolled back since (phase ${s.phase})`;
        process.stdout.write(`Cut over: freeze ${s.freezeMs?.toFixed(1)} ms; validation (${v?.mode}): ${v?.ok ? "equal" : "DIFFERS"}${hook}${back}.\n`);
        if (v && !v.ok) throw validationError("CUTOVER_VALIDATION", "the cutover's validation found differences", { hint: "run `sqlite2pg validate --full`" });
        return;
      }
      if (s && s.phase === Phase.streaming && !s.cutoverRequestedAt) {
        throw usageError("CUTOVER_WITHDRAWN", "the cutover request was withdrawn (sqlite2pg unfreeze) before it was carried out", {
          hint: "run `sqlite2pg cutover` again when ready",
        });
      }
      if (Date.now() > deadline) {
        throw timeoutError(
          "CUTOVER_TIMEOUT",
          `the cutover did not finish within ${timeout} s (phase ${s?.phase}${s?.lastError ? `, last error: ${s.lastError}` : ""})`,
          {
            hint: "the request stands: the daemon goes on with it; `sqlite2pg status` shows where it is, `sqlite2pg unfreeze` withdraws it",
          },
        );
      }
      await sleep(200);
    }
  });
}

/** How long `unfreeze` waits for the state row (a daemon committing the cutover holds it for at most --max-freeze). */
const UNFREEZE_LOCK_TIMEOUT_MS = 10_000;

/**
 * `sqlite2pg unfreeze`: abort a cutover that Postgres has not committed and
 * withdraw any pending request: the state goes back to streaming first (so
 * no daemon can commit the cutover after this), then SQLite takes writes
 * again, then the daemon is told (NOTIFY). Never waits more than 10 s for
 * the state row.
 */
export async function unfreezeCommand(flags: { sqlite?: string; pg?: string; config?: string }): Promise<void> {
  const cfg = resolveConfig(flags);
  const sqlite = requireSqlite(cfg);
  const sourceId = sourceIdOf(sqlite);
  if (existsSync(markerPath(sqlite))) {
    throw usageError(
      "ALREADY_CUT_OVER",
      `the cutover marker ${markerPath(sqlite)} exists: the application writes to Postgres now, so SQLite stays frozen for good`,
    );
  }
  // The state row stays locked until SQLite is unfrozen: a daemon cannot
  // commit the cutover in between (its commit waits for this row).
  const said = await withPg(cfg.pg, (c) =>
    inTransaction(c, async () => {
      await c.query(`SET LOCAL lock_timeout = ${UNFREEZE_LOCK_TIMEOUT_MS}`);
      let r: pg.QueryResult;
      try {
        r = await c.query("SELECT phase FROM sqlite2pg.state WHERE source_id = $1 FOR UPDATE", [sourceId]);
      } catch (e) {
        if ((e as { code?: string }).code !== "55P03") throw e;
        throw timeoutError(
          "STATE_LOCKED",
          `could not lock the replication state within ${UNFREEZE_LOCK_TIMEOUT_MS / 1000} s: the daemon is committing the cutover right now (or another session holds the row); nothing was changed`,
          {
            context: { source_id: sourceId },
            hint: "run `sqlite2pg status`: if the phase is cut-over or done the cutover committed and SQLite stays frozen; otherwise run `sqlite2pg unfreeze` again",
          },
        );
      }
      if (r.rowCount !== 1) {
        throw usageError("NO_STATE", `no replication state for source ${sourceId} in this database, so it cannot tell whether the cutover is committed`, {
          hint: "point --pg (or DATABASE_URL) at the database the daemon replicates into",
        });
      }
      const phase = r.rows[0].phase as Phase;
      if (phase === Phase.cutOver || phase === Phase.done || phase === Phase.fallback || phase === Phase.rollingBack) {
        throw usageError(
          "ALREADY_CUT_OVER",
          "the cutover is committed in Postgres: the application writes there now, so SQLite stays frozen (the way back is `sqlite2pg rollback` while the fallback runs)",
          { context: { phase } },
        );
      }
      // The row is held FOR UPDATE: a cutover under way goes back to streaming; any other phase stays.
      if (phase === Phase.cutoverCatchUp || phase === Phase.frozen) await transition(c, sourceId, phase, Phase.streaming);
      await c.query("UPDATE sqlite2pg.state SET cutover_requested_at = NULL, sentinel_seq = NULL, frozen_at = NULL, updated_at = now() WHERE source_id = $1", [
        sourceId,
      ]);
      await notifyState(c, sourceId);
      const db = openSource(sqlite, { readonly: false });
      try {
        const was = freezeInfo(db);
        let n: number;
        try {
          n = unfreeze(db);
        } catch (e) {
          // The application held SQLite's write lock past the busy timeout: nothing changed (the state rolls back too).
          if (String((e as { code?: string }).code).startsWith("SQLITE_BUSY")) {
            throw timeoutError("UNFREEZE_BUSY", "SQLite's write lock stayed taken for 10 s: nothing was changed", {
              cause: e,
              hint: "run `sqlite2pg unfreeze` again; a long write transaction of the application holds the lock",
            });
          }
          throw e;
        }
        return was || n
          ? `Unfrozen: ${n} freeze trigger(s) removed; the application can write to SQLite again and replication goes on; any pending cutover request is withdrawn.\n`
          : "SQLite was not frozen; any pending cutover request is withdrawn.\n";
      } finally {
        db.close();
      }
    }),
  );
  process.stdout.write(said); // once the state's change is committed
}
