/**
 * `sqlite2pg rollback` and `sqlite2pg finish`: the two ends of the fallback
 * after a cutover. Each records its request in the state and NOTIFYs the
 * active daemon wherever it runs; when no daemon runs, this process becomes
 * it (holding the source's lock) and carries the request out itself.
 * `--wait` follows a running daemon to the end.
 */
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { requireSqlite, resolveConfig } from "../config/config.js";
import { timeoutError, usageError, validationError } from "../errors.js";
import { withPg } from "../postgres/pg.js";
import { daemonRunning } from "../replication/lock.js";
import { Phase } from "../replication/phase.js";
import { ensureStateSchema, loadState, requestInState } from "../replication/state.js";
import { runCommand } from "./run.js";
import { sourceIdOf } from "../replication/source-file.js";

type Flags = {
  sqlite?: string;
  pg?: string;
  config?: string;
  wait?: boolean;
  timeout?: number;
  validate?: "counts" | "full";
  onRollback?: string;
  maxFreeze?: string;
  verbose?: boolean;
};

/** `sqlite2pg rollback`: back to SQLite with nothing lost. */
export async function rollbackCommand(flags: Flags): Promise<void> {
  await endFallback("rollback", flags);
}

/** `sqlite2pg finish`: end the fallback; SQLite stays frozen as the last copy. */
export async function finishCommand(flags: Flags): Promise<void> {
  await endFallback("finish", flags);
}

async function endFallback(what: "rollback" | "finish", flags: Flags): Promise<void> {
  const cfg = resolveConfig(flags);
  const sqlite = resolve(requireSqlite(cfg));
  const sourceId = sourceIdOf(sqlite);
  const goal = what === "rollback" ? Phase.rolledBack : Phase.done;
  const asked = await withPg(cfg.pg, async (c) => {
    await ensureStateSchema(c);
    const s = await loadState(c, sourceId, false);
    if (!s)
      throw usageError("NO_STATE", `no replication state for source ${sourceId}`, {
        hint: "point --pg (or DATABASE_URL) at the database the daemon replicates into",
      });
    if (s.phase === goal) return { done: true, running: false };
    const allowed: Phase[] = what === "rollback" ? [Phase.cutOver, Phase.fallback, Phase.rollingBack] : [Phase.cutOver, Phase.fallback];
    if (!allowed.includes(s.phase)) {
      throw usageError(
        what === "rollback" ? "NO_FALLBACK" : "NOT_IN_FALLBACK",
        what === "rollback"
          ? s.phase === Phase.done
            ? "the fallback was finished (or never kept, --no-fallback): SQLite no longer follows PostgreSQL, so there is no way back that loses nothing"
            : `nothing to roll back: the cutover has not committed (phase ${s.phase}); before it, \`sqlite2pg unfreeze\` aborts a cutover under way`
          : `nothing to finish: phase ${s.phase} (finish ends the fallback that follows a cutover)`,
        { context: { phase: s.phase } },
      );
    }
    await requestInState(c, sourceId, what, flags.validate);
    return { done: false, running: await daemonRunning(c, sourceId) };
  });
  if (asked.done) {
    process.stdout.write(what === "rollback" ? "Already rolled back: SQLite holds the data.\n" : "Already finished.\n");
    return;
  }
  if (!asked.running) {
    process.stdout.write(`No daemon is running: carrying out the ${what} in this process.\n`);
    await runCommand({ ...flags }, { what, validate: flags.validate });
    await report(what, cfg.pg, sourceId);
    return;
  }
  process.stdout.write(`${what === "rollback" ? "Rollback" : "Finish"} requested; the daemon is notified through PostgreSQL.\n`);
  if (!flags.wait) return;
  const deadline = Date.now() + (flags.timeout ?? 600) * 1000;
  for (;;) {
    const s = await withPg(cfg.pg, (c) => loadState(c, sourceId, false));
    if (s?.phase === goal) return report(what, cfg.pg, sourceId);
    if (what === "rollback" && s?.phase === Phase.fallback && !s.fallback.rollbackRequestedAt) {
      throw validationError("ROLLBACK_REFUSED", `the rollback was undone: ${s.lastError ?? "see the daemon's log"}`, {
        hint: "PostgreSQL takes the application's writes again and SQLite keeps following it; `sqlite2pg validate --full` names the rows that differ",
      });
    }
    if (Date.now() > deadline)
      throw timeoutError(
        "FALLBACK_TIMEOUT",
        `the ${what} did not finish within ${flags.timeout ?? 600} s (phase ${s?.phase}${s?.lastError ? `, last error: ${s.lastError}` : ""})`,
        {
          hint: "the request stands: the daemon goes on with it; `sqlite2pg status` shows where it is",
        },
      );
    await sleep(200);
  }
}

async function report(what: "rollback" | "finish", pgUrl: string | undefined, sourceId: string): Promise<void> {
  const s = await withPg(pgUrl, (c) => loadState(c, sourceId, false));
  if (what === "finish") {
    if (s?.phase !== Phase.done) throw usageError("NOT_FINISHED", `the fallback is not finished (phase ${s?.phase})`);
    process.stdout.write(`Finished: ${s.fallback.applied} change(s) were applied to SQLite during the fallback; SQLite stays frozen as the last copy.\n`);
    return;
  }
  if (s?.phase !== Phase.rolledBack)
    throw usageError("NOT_ROLLED_BACK", `the rollback did not complete (phase ${s?.phase}${s?.lastError ? `, last error: ${s.lastError}` : ""})`);
  const v = s.fallback.rollbackValidation as { mode?: string; ok?: boolean } | null;
  process.stdout.write(
    `Rolled back: PostgreSQL was frozen ${s.fallback.rollbackFreezeMs?.toFixed(1) ?? "?"} ms; validation (${v?.mode ?? "?"}): ${v?.ok ? "equal" : "DIFFERS"}; SQLite takes the application's writes again${s.fallback.rollbackHookStatus ? `; --on-rollback ${s.fallback.rollbackHookStatus}` : ""}.\n`,
  );
}
