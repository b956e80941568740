import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { type Config, reloadable, requireSqlite, resolveConfigWithOrigins } from "../config/config.js";
import { parseListen } from "../config/listen.js";
import { usageError } from "../errors.js";
import { createLogger, type Logger } from "../observe/logger.js";
import { Replicator } from "../replication/replicator.js";
import type { ReplicatorTunables } from "../replication/options.js";
import { installSignals } from "../replication/signals.js";
import { startHttp } from "../observe/http.js";
import { DaemonMetrics } from "../observe/metrics.js";
import { Notifier } from "../observe/notify.js";
import { statusLine } from "../observe/status-line.js";
import { captureInfo } from "../sqlite/capture.js";
import { openSource } from "../sqlite/open.js";
import { withPg } from "../postgres/pg.js";
import { loadState } from "../replication/state.js";
import { Phase } from "../replication/phase.js";

/** The flags of `run` (commander's camelCase), all of them settings. */
type RunFlags = Partial<Record<keyof Config, unknown>> & { config?: string };

/** The pid file of the active daemon of a SQLite file (written once it holds the source's lock, removed on exit). */
function pidFile(sqlite: string): string {
  return `${sqlite}-sqlite2pg.pid`;
}

/**
 * A `--schema` (or a different `--preserve-case`) given to `run` that is not
 * what `init` recorded would be ignored: refuse it instead, naming both.
 */
async function checkRecordedSchema(sqlite: string, pgUrl: string | undefined, schema: string | undefined): Promise<void> {
  if (schema === undefined) return;
  const db = openSource(sqlite);
  let id: string | undefined;
  try {
    id = captureInfo(db)?.sourceId;
  } finally {
    db.close();
  }
  if (!id) return; // start() says capture is not installed
  const st = await withPg(pgUrl, (c) => loadState(c, id!, false));
  if (st && st.targetSchema !== schema) {
    throw usageError("SCHEMA_MISMATCH", `--schema ${schema} differs from the schema \`init\` recorded for this source: ${st.targetSchema}`, {
      context: { schema, recorded_schema: st.targetSchema },
      hint: `the daemon replicates into ${st.targetSchema}; drop --schema (and SQLITE2PG_SCHEMA / "schema" in the config file), or run \`sqlite2pg init --schema ${schema}\` against a fresh database to replicate elsewhere`,
    });
  }
}

function logLevel(c: Config): string {
  return c.logLevel ?? (c.verbose ? "debug" : "info");
}

/** The daemon's options that follow the configuration (and change with it on SIGHUP). */
function tunables(c: Config): ReplicatorTunables {
  return {
    pollIntervalMs: c.pollMs,
    batchSize: c.batchSize,
    batchDelayMs: c.batchDelayMs,
    chunkRows: c.chunkRows,
    batchBytes: c.batchMb * 1024 * 1024,
    chunkBytes: c.chunkMb * 1024 * 1024,
    pruneIntervalMs: c.pruneInterval * 1000,
    checkpointFrames: c.checkpointFrames,
    cutover: { validate: c.validate, onCutover: c.onCutover, maxFreezeMs: c.maxFreeze * 1000, fallback: c.fallback },
    onRollback: c.onRollback,
  };
}

/**
 * SIGHUP: read the configuration again (the config file may have changed)
 * and apply what can change while running; say what changed, and what
 * needs a restart. An invalid configuration changes nothing.
 */
function reloadConfig(flags: RunFlags, current: { cfg: Config }, rep: Replicator, log: Logger): void {
  let next: Config;
  try {
    next = resolveConfigWithOrigins(flags).config;
  } catch (e) {
    log.error({ err: (e as Error).message }, "reload refused: the configuration is not valid; the daemon keeps its settings");
    return;
  }
  const changed: Record<string, { from: unknown; to: unknown }> = {};
  const restart: string[] = [];
  for (const k of Object.keys(next) as (keyof Config)[]) {
    if (k === "schemaGiven" || current.cfg[k] === next[k]) continue;
    if (reloadable(k)) changed[k] = { from: current.cfg[k], to: next[k] };
    else if (k !== "pg") restart.push(k);
    else restart.push("pg (connection string)");
  }
  const applied = { ...current.cfg };
  for (const k of Object.keys(changed)) (applied as Record<string, unknown>)[k] = next[k as keyof Config];
  current.cfg = applied;
  log.level = logLevel(applied);
  rep.configure(tunables(applied));
  if (restart.length) log.warn({ settings: restart }, `reload: ${restart.join(", ")} changed; only a restart applies ${restart.length > 1 ? "them" : "it"}`);
  log.info(
    { changed },
    Object.keys(changed).length
      ? `reloaded: ${Object.entries(changed)
          .map(([k, v]) => `${k} ${JSON.stringify(v.from ?? null)} → ${JSON.stringify(v.to ?? null)}`)
          .join(", ")}`
      : "reloaded: nothing changed",
  );
}

/**
 * Feed the service manager (sd_notify): READY=1 once connected and holding
 * or waiting for the lock, STATUS= kept current, WATCHDOG=1 while the loop
 * makes progress. Nothing is sent outside a Type=notify unit.
 */
function serviceManager(
  notifier: Notifier,
  rep: Replicator,
  current: { cfg: Config },
  log: Logger,
): { ready(): void; reload(apply: () => void): void; dispose(): void } {
  let ready = false;
  let last = { text: "", key: "", at: 0 };
  const send = (force: boolean) => {
    let s: ReturnType<Replicator["live"]>;
    try {
      s = rep.live();
    } catch (e) {
      log.debug({ err: (e as Error).message }, "no status for systemd this time"); // the file is being reopened
      return;
    }
    const text = statusLine(s);
    const key = `${s.role}/${s.phase}/${Boolean(s.last_error)}`;
    // Numbers change all the time: at most every 5 s, unless the phase or role changed.
    if (text === last.text || (!force && key === last.key && Date.now() - last.at < 5000)) return;
    last = { text, key, at: Date.now() };
    notifier.status(text);
  };
  const timers: NodeJS.Timeout[] = [];
  if (notifier.enabled) {
    timers.push(setInterval(() => ready && send(false), 1000));
    const every = notifier.watchdogMs();
    if (every !== null) {
      let starving = false;
      timers.push(
        setInterval(
          () => {
            // A loop stuck without progress is not vouched for: systemd restarts the daemon after WatchdogSec.
            const since = rep.sinceProgress();
            if (since <= current.cfg.stallTimeout) {
              starving = false;
              notifier.watchdog();
            } else if (!starving) {
              starving = true;
              log.error({ seconds_since_progress: since, stall_timeout: current.cfg.stallTimeout }, "no progress: no longer feeding the systemd watchdog");
            }
          },
          Math.max(100, every / 2),
        ),
      );
    }
  }
  for (const t of timers) t.unref();
  return {
    ready() {
      if (!ready) {
        ready = true;
        const text = statusLine(rep.live());
        last = { text, key: "", at: Date.now() };
        notifier.ready(text);
      } else send(true);
    },
    /** RELOADING=1, the reload, READY=1 again, as systemd expects (before the first READY=1: just the reload). */
    reload(apply: () => void) {
      if (!ready) return apply();
      notifier.reloading();
      try {
        apply();
      } finally {
        const text = statusLine(rep.live());
        last = { text, key: "", at: Date.now() };
        notifier.ready(text);
      }
    },
    dispose() {
      for (const t of timers) clearInterval(t);
    },
  };
}

/**
 * `sqlite2pg run`: the daemon. Snapshot → catch-up → streaming, until
 * SIGTERM/SIGINT, or the cutover (SIGUSR2); then the fallback until
 * `finish` or `rollback` (SIGUSR1). `request` records a request first (the
 * `rollback` and `finish` commands run the daemon here when none runs).
 */
export async function runCommand(flags: RunFlags, request?: { what: "rollback" | "finish"; validate?: "counts" | "full" }): Promise<void> {
  const resolved = resolveConfigWithOrigins(flags);
  const current = { cfg: resolved.config };
  const cfg = current.cfg;
  const sqlite = resolve(requireSqlite(cfg));
  const listen = cfg.listen ? parseListen(cfg.listen) : null;
  const log = createLogger({ level: logLevel(cfg) });
  if (resolved.unknownEnv.length)
    log.warn({ variables: resolved.unknownEnv }, `ignored: ${resolved.unknownEnv.join(", ")} name no setting (see \`sqlite2pg config --print\`)`);
  await checkRecordedSchema(sqlite, cfg.pg, cfg.schemaGiven ? cfg.schema : undefined);
  const notifier = new Notifier(log);
  const metrics = new DaemonMetrics();
  let wrotePid = false;
  let manager: ReturnType<typeof serviceManager> | null = null;
  const rep = new Replicator({
    sqlite,
    pg: cfg.pg,
    log,
    ...tunables(cfg),
    fixText: cfg.fixText,
    // Only the active daemon has a pid file: a standby writes it when it takes over.
    onActive: () => {
      writeFileSync(pidFile(sqlite), `${process.pid}\n`);
      wrotePid = true;
    },
    events: { ...metrics.events(), role: () => manager?.ready() },
  });
  // The HTTP endpoint first: a busy or bad --listen is a usage error before anything starts.
  const http = listen
    ? await startHttp(listen, () => rep.live(), {
        limits: () => ({ maxLagSeconds: current.cfg.maxLag, stallSeconds: current.cfg.stallTimeout }),
        metrics,
        log,
      })
    : null;
  manager = serviceManager(notifier, rep, current, log);
  const signals = installSignals(log, {
    stop: () => {
      notifier.stopping("stopping: finishing the current batch");
      rep.requestStop();
    },
    force: () => process.exit(130),
    reload: () => manager?.reload(() => reloadConfig(flags, current, rep, log)),
    cutover: () =>
      void rep.requestCutover().then(
        () => log.info("cutover request recorded in the state"),
        (e: Error) => log.error({ err: e.message }, "could not record the cutover request in the state"),
      ),
    rollback: () =>
      void rep.requestFallbackEnd("rollback").then(
        (phase) => log.info({ phase }, "rollback request recorded in the state"),
        (e: Error) => log.error({ err: e.message }, "could not record the rollback request in the state"),
      ),
  });
  const report = setInterval(() => void rep.report().catch(() => undefined), listen ? 2_000 : 10_000);
  report.unref();
  let failed = false;
  try {
    if (cfg.cutover) await rep.requestCutover();
    if (request) await rep.requestFallbackEnd(request.what, request.validate);
    await rep.run();
    log.info(
      { phase: rep.current.phase, applied_seq: rep.current.appliedSeq },
      rep.current.phase === Phase.done
        ? "done: exiting"
        : rep.current.phase === Phase.rolledBack
          ? "rolled back: exiting"
          : "stopped: the last batch is applied and checkpointed",
    );
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    const end = rep.live().phase;
    notifier.stopping(failed ? "stopping after an error" : end === Phase.done ? "cutover done" : end === Phase.rolledBack ? "rolled back" : "stopped");
    clearInterval(report);
    manager.dispose();
    http?.close();
    signals.dispose();
    if (wrotePid) {
      try {
        if (readFileSync(pidFile(sqlite), "utf8").trim() === String(process.pid)) rmSync(pidFile(sqlite), { force: true });
      } catch {
        /* already gone */
      }
    }
    // A failure to release is the command's error, unless the run already failed (that error says more).
    await rep
      .stop()
      .catch((e: unknown) => {
        if (!failed) throw e;
        log.warn({ err: (e as Error).message }, "releasing the daemon's connections failed too");
      })
      .finally(() => notifier.flushed());
  }
}
