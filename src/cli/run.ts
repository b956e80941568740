import { requireSqlite, resolveConfig } from "../config/config.js";
import { createLogger } from "../observe/logger.js";
import { Replicator } from "../pipeline/replicator.js";
import { installSignals } from "../pipeline/signals.js";

interface RunFlags {
  sqlite?: string; pg?: string; config?: string; verbose?: boolean; pollMs?: number; batchSize?: number; fixText?: boolean;
}

/** `sqlite2pg run`: the daemon. Snapshot → catch-up → streaming, until SIGTERM/SIGINT. */
export async function runCommand(flags: RunFlags): Promise<void> {
  const cfg = resolveConfig(flags);
  const sqlite = requireSqlite(cfg);
  const log = createLogger({ level: cfg.verbose ? "debug" : "info" });
  const rep = new Replicator({
    sqlite, pg: cfg.pg, log, pollIntervalMs: flags.pollMs ?? 1000, batchSize: flags.batchSize ?? 10000, fixText: cfg.fixText,
  });
  const signals = installSignals(log, { stop: () => rep.requestStop() });
  const report = setInterval(() => void rep.report().catch(() => undefined), 10_000);
  report.unref();
  try {
    await rep.run();
    log.info({ applied_seq: rep.current.appliedSeq }, "stopped: the last batch is applied and checkpointed");
  } finally {
    clearInterval(report);
    signals.dispose();
    await rep.stop();
  }
}
