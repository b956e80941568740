/**
 * Typed errors: every failure an operator can meet carries a stable `code`,
 * the category that decides the exit status, the context that names what
 * failed (table, column, key, value …), an operator `hint`, and its `cause`.
 *
 * One place, the CLI, maps categories to exit codes; nothing else calls
 * `process.exit`.
 */

/** What kind of failure, which decides the process exit status. */
export const ErrorCategory = {
  /** Bad flags, missing options, an unreadable config file. */
  usage: "usage",
  /** The SQLite side: unreadable file, a value or schema that cannot go to Postgres. */
  source: "source",
  /** The Postgres side: connection, permissions, DDL or COPY refused. */
  target: "target",
  /** The copy finished but Postgres does not hold exactly what SQLite holds. */
  validation: "validation",
  /** The cutover succeeded but the configured --on-cutover command failed. */
  hook: "hook",
  /** Waited for something (the cutover, a lock) longer than allowed; nothing was changed by the wait. */
  timeout: "timeout",
  /** A bug: an invariant of this program did not hold. */
  internal: "internal",
} as const;
export type ErrorCategory = (typeof ErrorCategory)[keyof typeof ErrorCategory];

/** Exit status per category; 0 means Postgres holds exactly what SQLite holds. */
export const EXIT_CODES: Record<ErrorCategory, number> = {
  validation: 1,
  usage: 2,
  source: 3,
  target: 4,
  hook: 5,
  timeout: 6,
  internal: 70,
};

/** Context fields an error may name. Values are rendered, never secrets. */
export type ErrorContext = Record<string, string | number | bigint | boolean | null | undefined>;

/** Options for {@link Sqlite2pgError}. */
export interface ErrorOptions {
  context?: ErrorContext;
  hint?: string;
  cause?: unknown;
  /** A race or a transient condition: nothing was changed, and trying again (after re-reading) is the remedy. */
  retryable?: boolean;
}

/** The base of every error this project raises on purpose. */
export class Sqlite2pgError extends Error {
  readonly code: string;
  readonly category: ErrorCategory;
  readonly context: ErrorContext;
  readonly hint: string | undefined;
  /** Whether trying again (after re-reading the state) is the remedy: a lost race, not a refusal. */
  readonly retryable: boolean;

  constructor(category: ErrorCategory, code: string, message: string, opts: ErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "Sqlite2pgError";
    this.category = category;
    this.code = code;
    this.context = opts.context ?? {};
    this.hint = opts.hint;
    this.retryable = opts.retryable ?? false;
  }
}

/** Whether an error is one of this project's errors marked retryable (a lost race): the daemon re-reads and tries again. */
export function isRetryableError(e: unknown): boolean {
  return e instanceof Sqlite2pgError && e.retryable;
}

/** Usage errors: the command line or configuration is wrong. */
export function usageError(code: string, message: string, opts?: ErrorOptions): Sqlite2pgError {
  return new Sqlite2pgError("usage", code, message, opts);
}
/** Source errors: the SQLite file, its schema or one of its values. */
export function sourceError(code: string, message: string, opts?: ErrorOptions): Sqlite2pgError {
  return new Sqlite2pgError("source", code, message, opts);
}
/** Target errors: the Postgres server refused or could not be reached. */
export function targetError(code: string, message: string, opts?: ErrorOptions): Sqlite2pgError {
  return new Sqlite2pgError("target", code, message, opts);
}
/** Validation errors: the two sides differ. */
export function validationError(code: string, message: string, opts?: ErrorOptions): Sqlite2pgError {
  return new Sqlite2pgError("validation", code, message, opts);
}

/** Timeouts: waited longer than allowed (`cutover --wait --timeout`, a lock). */
export function timeoutError(code: string, message: string, opts?: ErrorOptions): Sqlite2pgError {
  return new Sqlite2pgError("timeout", code, message, opts);
}

/** Internal errors: an invariant of this program did not hold (a bug); exit 70. */
export function internalError(code: string, message: string, opts?: ErrorOptions): Sqlite2pgError {
  return new Sqlite2pgError("internal", code, message, opts);
}

/** The exit status for any thrown value. */
export function exitCodeFor(err: unknown): number {
  return err instanceof Sqlite2pgError ? EXIT_CODES[err.category] : EXIT_CODES.internal;
}

/**
 * One operator-facing paragraph: the message, the context as `key=value`
 * pairs, and the hint. No stack trace; the CLI adds one under `--verbose`.
 */
export function describeError(err: unknown): string {
  if (!(err instanceof Sqlite2pgError)) {
    const msg = err instanceof Error ? err.message : String(err);
    return `internal error: ${msg}\n(this is a bug in sqlite2pg; run again with --verbose for the stack trace)`;
  }
  const lines = [`error [${err.code}]: ${err.message}`];
  const ctx = Object.entries(err.context).filter(([, v]) => v !== undefined);
  if (ctx.length > 0) lines.push("  " + ctx.map(([k, v]) => `${k}=${renderValue(v)}`).join(" "));
  if (err.cause instanceof Error && err.cause.message && !err.message.includes(err.cause.message)) {
    lines.push(`  cause: ${err.cause.message}`);
  }
  if (err.hint) lines.push(`  hint: ${err.hint}`);
  return lines.join("\n");
}

function renderValue(v: unknown): string {
  const s = typeof v === "bigint" ? v.toString() : String(v);
  return /^[\w.:/@+-]+$/.test(s) ? s : JSON.stringify(s);
}

/**
 * What kind of failure, as a short stable label (the metrics count errors
 * by it): this project's code, a PostgreSQL SQLSTATE, or a system error code.
 */
export function errorKind(e: unknown): string {
  if (e instanceof Sqlite2pgError) return e.code;
  const { code, severity } = (e ?? {}) as { code?: unknown; severity?: unknown };
  // A server error (it has a severity) carries a SQLSTATE; a system error has a name like ECONNRESET.
  if (typeof code === "string" && typeof severity === "string" && /^[0-9A-Z]{5}$/.test(code)) return `SQLSTATE_${code}`;
  if (typeof code === "string" && /^[A-Z][A-Z0-9_]{1,40}$/.test(code)) return code;
  return "UNKNOWN";
}
