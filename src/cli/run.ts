import { rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { requireSqlite, resolveConfig } from "../config/config.js";
import { usageError } from "../errors.js";
import { createLogger } from "../observe/logger.js";
import { Replicator } from "../pipeline/replicator.js";
import { installSignals } from "../pipeline/signals.js";
import { startHttp } from "../observe/http.js";

interface RunFlags {
  sqlite?: string; pg?: string; config?: string; verbose?: boolean; pollMs?: number; batchSize?: number; chunkRows?: number; batchMb?: number; chunkMb?: number; fixText?: boolean;
  onCutover?: string; validate?: string; cutover?: boolean; listen?: string; maxLag?: number;
}

/** The pid file `sqlite2pg cutover` uses to find the daemon of a SQLite file. */
export function pidFile(sqlite: string): string {
  return `${sqlite}-sqlite2pg.pid`;
}

/** `sqlite2pg run`: the daemon. Snapshot → catch-up → streaming, until SIGTERM/SIGINT, or the cutover (SIGUSR2). */
export async function runCommand(flags: RunFlags): Promise<void> {
  const cfg = resolveConfig(flags);
  const sqlite = resolve(requireSqlite(cfg));
  const validate = flags.validate ?? "full";
  if (validate !== "counts" && validate !== "full") throw usageError("BAD_VALIDATE", `--validate must be counts or full, not ${validate}`);
  for (const [flag, v] of [["--batch-mb", flags.batchMb], ["--chunk-mb", flags.chunkMb]] as const) {
    if (v !== undefined && !(v > 0)) throw usageError("BAD_BYTES", `${flag} must be a positive number of MiB, not ${v}`);
  }
  const log = createLogger({ level: cfg.verbose ? "debug" : "info" });
  const rep = new Replicator({
    sqlite, pg: cfg.pg, log, pollIntervalMs: flags.pollMs ?? 1000, batchSize: flags.batchSize ?? 10000, chunkRows: flags.chunkRows ?? 20000,
    batchBytes: flags.batchMb ? flags.batchMb * 1024 * 1024 : undefined, chunkBytes: flags.chunkMb ? flags.chunkMb * 1024 * 1024 : undefined,
    fixText: cfg.fixText, cutover: { validate, onCutover: flags.onCutover },
  });
  if (flags.cutover) rep.requestCutover();
  const signals = installSignals(log, { stop: () => rep.requestStop(), cutover: () => rep.requestCutover() });
  const report = setInterval(() => void rep.report().catch(() => undefined), flags.listen ? 2_000 : 10_000);
  report.unref();
  const http = flags.listen ? startHttp(flags.listen, async () => rep.live(), { maxLagSeconds: flags.maxLag ?? 10, log }) : null;
  writeFileSync(pidFile(sqlite), `${process.pid}\n`);
  try {
    await rep.run();
    log.info({ phase: rep.current.phase, applied_seq: rep.current.appliedSeq }, rep.current.phase === "done" ? "cutover done: exiting" : "stopped: the last batch is applied and checkpointed");
  } finally {
    clearInterval(report);
    http?.close();
    signals.dispose();
    rmSync(pidFile(sqlite), { force: true });
    await rep.stop();
  }
}
