import { spawn } from "node:child_process";
import type { Logger } from "../observe/logger.js";

/** Run an operator's command (--on-cutover, --on-rollback) with the result in its environment; resolves to its exit status. */
export function runHook(cmd: string, result: Record<string, unknown>, log: Logger, flag = "--on-cutover"): Promise<number> {
  return new Promise((resolve) => {
    const { NOTIFY_SOCKET: _notify, WATCHDOG_USEC: _usec, WATCHDOG_PID: _pid, ...inherited } = process.env;
    // Not the service manager's socket: the hook must not speak for the daemon (READY, STOPPING, MAINPID).
    const env = {
      ...inherited,
      SQLITE2PG_RESULT: JSON.stringify(result),
      SQLITE2PG_MARKER: String(result.marker),
      SQLITE2PG_SCHEMA: String(result.schema),
      SQLITE2PG_FREEZE_MS: String(result.freeze_ms),
      SQLITE2PG_VALIDATION: (result.validation as { ok: boolean }).ok ? "equal" : "differs",
    };
    const child = spawn("sh", ["-c", cmd], { env, stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", (e) => {
      log.error({ err: e.message }, `${flag} could not start`);
      resolve(127);
    });
    child.on("exit", (code) => resolve(code ?? 1));
  });
}
