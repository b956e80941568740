import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { requireSqlite, resolveConfig } from "../config/config.js";
import { usageError } from "../errors.js";
import { createLogger } from "../observe/logger.js";
import { Replicator } from "../replication/replicator.js";
import { installSignals } from "../replication/signals.js";
import { parseListen, startHttp } from "../observe/http.js";
import { captureInfo } from "../sqlite/capture.js";
import { openSource } from "../sqlite/open.js";
import { withPg } from "../postgres/pg.js";
import { loadState } from "../replication/state.js";
import { Phase } from "../replication/phase.js";

interface RunFlags {
  sqlite?: string;
  pg?: string;
  schema?: string;
  config?: string;
  verbose?: boolean;
  pollMs?: number;
  batchSize?: number;
  chunkRows?: number;
  batchMb?: number;
  chunkMb?: number;
  fixText?: boolean;
  onCutover?: string;
  validate?: string;
  cutover?: boolean;
  listen?: string;
  maxLag?: number;
  maxFreeze?: number;
  preserveCase?: boolean;
  pruneInterval?: number;
}

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

/** `sqlite2pg run`: the daemon. Snapshot → catch-up → streaming, until SIGTERM/SIGINT, or the cutover (SIGUSR2). */
export async function runCommand(flags: RunFlags): Promise<void> {
  const cfg = resolveConfig(flags);
  const sqlite = resolve(requireSqlite(cfg));
  const validate = flags.validate ?? "full";
  if (validate !== "counts" && validate !== "full")
    throw usageError("BAD_VALIDATE", `--validate must be counts or full, not ${validate}`, {
      hint: "pass --validate full (checksums of every row, the default) or --validate counts (row counts only)",
    });
  const listen = flags.listen ? parseListen(flags.listen) : null;
  const log = createLogger({ level: cfg.verbose ? "debug" : "info" });
  await checkRecordedSchema(sqlite, cfg.pg, cfg.schemaGiven ? cfg.schema : undefined);
  let wrotePid = false;
  const rep = new Replicator({
    sqlite,
    pg: cfg.pg,
    log,
    pollIntervalMs: flags.pollMs ?? 1000,
    batchSize: flags.batchSize ?? 10000,
    chunkRows: flags.chunkRows ?? 20000,
    pruneIntervalMs: flags.pruneInterval === undefined ? undefined : flags.pruneInterval * 1000,
    batchBytes: flags.batchMb ? flags.batchMb * 1024 * 1024 : undefined,
    chunkBytes: flags.chunkMb ? flags.chunkMb * 1024 * 1024 : undefined,
    fixText: cfg.fixText,
    cutover: { validate, onCutover: flags.onCutover, maxFreezeMs: cfg.maxFreeze * 1000 },
    // Only the active daemon has a pid file: a standby writes it when it takes over.
    onActive: () => {
      writeFileSync(pidFile(sqlite), `${process.pid}\n`);
      wrotePid = true;
    },
  });
  // The HTTP endpoint first: a busy or bad --listen is a usage error before anything starts.
  const http = listen ? await startHttp(listen, async () => rep.live(), { maxLagSeconds: flags.maxLag ?? 10, log }) : null;
  const signals = installSignals(log, {
    stop: () => rep.requestStop(),
    force: () => process.exit(130),
    cutover: () =>
      void rep.requestCutover().then(
        () => log.info("cutover request recorded in the state"),
        (e: Error) => log.error({ err: e.message }, "could not record the cutover request in the state"),
      ),
  });
  const report = setInterval(() => void rep.report().catch(() => undefined), flags.listen ? 2_000 : 10_000);
  report.unref();
  let failed = false;
  try {
    if (flags.cutover) await rep.requestCutover();
    await rep.run();
    log.info(
      { phase: rep.current.phase, applied_seq: rep.current.appliedSeq },
      rep.current.phase === Phase.done ? "cutover done: exiting" : "stopped: the last batch is applied and checkpointed",
    );
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    clearInterval(report);
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
    await rep.stop().catch((e: unknown) => {
      if (!failed) throw e;
      log.warn({ err: (e as Error).message }, "releasing the daemon's connections failed too");
    });
  }
}
