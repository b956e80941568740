/**
 * Failures that go away by themselves: the daemon backs off and retries
 * them. SQLSTATEs and driver errors, as named data.
 */
const RETRYABLE_SQLSTATES: Record<string, string> = {
  "40001": "serialization failure",
  "40P01": "deadlock detected",
  "55P03": "lock not available",
  "57P01": "admin shutdown",
  "57P02": "crash shutdown",
  "57P03": "cannot connect now",
  "08000": "connection exception",
  "08003": "connection does not exist",
  "08006": "connection failure",
  "53300": "too many connections",
};

/** Node and SQLite error codes that mean "try again". */
const RETRYABLE_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "SQLITE_BUSY", "SQLITE_LOCKED", "PG_CONNECT"]);

/** Whether an error is worth retrying after a pause. */
export function isRetryable(e: unknown): boolean {
  const err = e as { code?: string; message?: string; cause?: unknown };
  if (err?.code && (RETRYABLE_SQLSTATES[err.code] || RETRYABLE_CODES.has(err.code))) return true;
  if (typeof err?.message === "string" && /Connection terminated|not queryable|Client was closed|terminating connection/i.test(err.message)) return true;
  return err?.cause ? isRetryable(err.cause) : false;
}
