import type { Logger } from "../observe/logger.js";

/**
 * Signal handlers only change state; the loops act at safe points (after
 * the current batch). A second SIGTERM/SIGINT forces the exit. SIGUSR1 is
 * left alone: it is Node's debugger signal.
 */
export function installSignals(log: Logger, actions: { stop: () => void; reload?: () => void; cutover?: () => void }): { dispose(): void } {
  let stopping = false;
  const stop = (sig: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal: sig }, "second signal: exiting now");
      process.exit(130);
    }
    stopping = true;
    log.info({ signal: sig }, "stopping after the current batch");
    actions.stop();
  };
  const hup = () => {
    log.info({ signal: "SIGHUP" }, actions.reload ? "reloading" : "SIGHUP: nothing to reload (logs go to stderr)");
    actions.reload?.();
  };
  const usr2 = () => {
    log.info({ signal: "SIGUSR2" }, "cutover requested");
    actions.cutover?.();
  };
  process.on("SIGUSR2", usr2);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("SIGHUP", hup);
  return {
    dispose() {
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
      process.off("SIGHUP", hup);
      process.off("SIGUSR2", usr2);
    },
  };
}
