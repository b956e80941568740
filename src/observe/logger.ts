import pino from "pino";

/** Paths pino removes from every log line: secrets never reach a log. */
const REDACT_PATHS = [
  "password",
  "*.password",
  "pg",
  "*.pg",
  "url",
  "*.url",
  "connectionString",
  "*.connectionString",
  "config.pg",
  "env.PGPASSWORD",
  "*.PGPASSWORD",
];

/** The project's logger type. */
export type Logger = pino.Logger;

/**
 * The logger: JSON lines on stderr (stdout stays for command output), with
 * secrets redacted at the logger so no call site can leak one.
 */
export function createLogger(opts: { level?: string; destination?: number | string } = {}): Logger {
  return pino(
    { level: opts.level ?? process.env.SQLITE2PG_LOG_LEVEL ?? "info", redact: { paths: REDACT_PATHS, censor: "[redacted]" }, base: { pid: process.pid } },
    pino.destination({ dest: opts.destination ?? 2, sync: true }),
  );
}

/** A logger that writes nothing, for library callers and tests that do not want logs. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
