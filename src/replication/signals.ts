import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Logger } from "../observe/logger.js";

/** What the signals ask for; `force` is the command layer's: only it ends the process. */
export interface SignalActions {
  /** SIGTERM/SIGINT: stop after the current batch. */
  stop: () => void;
  /** A second SIGTERM/SIGINT: end now (the CLI exits with 130). */
  force: () => void;
  reload?: () => void;
  cutover?: () => void;
  /** SIGUSR1: the way back (after the cutover). */
  rollback?: () => void;
}

/**
 * Signal handlers only change state; the loops act at safe points (after
 * the current batch). A second SIGTERM/SIGINT forces the exit, through the
 * caller's `force`. SIGUSR1 asks for the rollback when the caller handles
 * it (then it no longer starts Node's inspector).
 */
export function installSignals(log: Logger, actions: SignalActions): { dispose(): void } {
  let stopping = false;
  const stop = (sig: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal: sig }, "second signal: exiting now");
      actions.force();
      return;
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
  const usr1 = () => {
    log.info({ signal: "SIGUSR1" }, "rollback requested");
    actions.rollback?.();
  };
  process.on("SIGUSR2", usr2);
  if (actions.rollback) process.on("SIGUSR1", usr1);
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("SIGHUP", hup);
  return {
    dispose() {
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
      process.off("SIGHUP", hup);
      process.off("SIGUSR2", usr2);
      process.off("SIGUSR1", usr1);
    },
  };
}

/**
 * A process' start time as the kernel records it (/proc/<pid>/stat, field
 * 22, clock ticks since boot), or null where there is no /proc or no such
 * process. With the pid and the host it names one process: a pid reused
 * after a `kill -9` has another start time.
 */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/** Who this process is, as the active daemon records itself in the state. */
export function selfIdentity(): { pid: number; host: string; start: string | null } {
  return { pid: process.pid, host: hostname(), start: processStart(process.pid) };
}
