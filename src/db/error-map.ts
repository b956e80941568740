/**
 * From each driver's errors to {@link DatabaseError}: by the backend's code
 * (SQLSTATE, SQLite extended result code, MySQL errno), never by message;
 * the one exception is the handful of errors `pg` raises without any code
 * when its socket ends (listed below).
 */
import {
  ConnectionLostError,
  DatabaseError,
  DatabaseUsageError,
  DeadlockError,
  LockTimeoutError,
  SerializationFailureError,
  TransactionAbortedError,
  UniqueViolationError,
  type DatabaseErrorDetails,
  type DatabaseErrorKind,
  type Dialect,
} from "./errors.js";

/** System error codes of a broken or refused connection. */
const SOCKET_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN"]);
/** Of those, the ones that mean the connection was never made: nothing was sent. */
const CONNECT_CODES = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN"]);

/** The errors `pg` and `pg-pool` raise without a code when the socket is gone or cannot be had (their messages are stable API of theirs). */
const PG_CODELESS_CONNECTION = [
  "Connection terminated",
  "Client has encountered a connection error and is not queryable",
  "Client was closed and is not queryable",
  "timeout exceeded when trying to connect",
];

interface DriverError {
  message?: unknown;
  code?: unknown;
  errno?: unknown;
  sqlState?: unknown;
  constraint?: unknown;
  fatal?: unknown;
  severity?: unknown;
}

function fields(e: unknown): DriverError {
  return typeof e === "object" && e !== null ? (e as DriverError) : {};
}

function messageOf(e: unknown): string {
  const m = fields(e).message;
  return typeof m === "string" && m !== "" ? m : String(e);
}

function build(kind: DatabaseErrorKind, dialect: Dialect, message: string, d: DatabaseErrorDetails): DatabaseError {
  switch (kind) {
    case "unique_violation":
      return new UniqueViolationError(dialect, message, d);
    case "deadlock":
      return new DeadlockError(dialect, message, d);
    case "serialization_failure":
      return new SerializationFailureError(dialect, message, d);
    case "lock_timeout":
      return new LockTimeoutError(dialect, message, d);
    case "connection_lost":
      return new ConnectionLostError(dialect, message, d);
    case "transaction_aborted":
      return new TransactionAbortedError(dialect, message, d);
    default:
      return new DatabaseError(kind, dialect, message, d);
  }
}

const PG_KINDS: Record<string, DatabaseErrorKind> = {
  "23505": "unique_violation",
  "23503": "foreign_key_violation",
  "23502": "not_null_violation",
  "23514": "check_violation",
  "40P01": "deadlock",
  "40001": "serialization_failure",
  "55P03": "lock_timeout",
  "25P02": "transaction_aborted", // in_failed_sql_transaction: a statement after an error in the same transaction
  "57P01": "connection_lost", // admin_shutdown: pg_terminate_backend, a fast shutdown
  "57P02": "connection_lost", // crash_shutdown
  "57P03": "connection_lost", // cannot_connect_now: starting up, shutting down
};

/** A `pg` error as a {@link DatabaseError}. */
export function mapPgError(e: unknown): DatabaseError {
  if (e instanceof DatabaseError) return e;
  const f = fields(e);
  const message = messageOf(e);
  const code = typeof f.code === "string" ? f.code : undefined;
  // A server error has a severity and a five-character SQLSTATE.
  const sqlState = code !== undefined && typeof f.severity === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  const constraint = typeof f.constraint === "string" ? f.constraint : undefined;
  if (sqlState !== undefined) {
    const kind = PG_KINDS[sqlState] ?? (sqlState.startsWith("08") ? "connection_lost" : "other");
    const retryable = kind === "connection_lost" ? sqlState === "57P03" || sqlState === "08001" || sqlState === "08004" : undefined;
    return build(kind, "postgres", message, { code: sqlState, sqlState, constraint, retryable, cause: e });
  }
  if (code !== undefined && SOCKET_CODES.has(code)) {
    return build("connection_lost", "postgres", message, { code, retryable: CONNECT_CODES.has(code), cause: e });
  }
  if (code === undefined && PG_CODELESS_CONNECTION.some((m) => message.startsWith(m))) {
    const connecting = message.startsWith("timeout exceeded when trying to connect");
    return build("connection_lost", "postgres", message, { code: "CONNECTION_LOST", retryable: connecting, cause: e });
  }
  return new DatabaseError("other", "postgres", message, { code: code ?? "UNKNOWN", cause: e });
}

/** A better-sqlite3 error as a {@link DatabaseError}. */
export function mapSqliteError(e: unknown): DatabaseError {
  if (e instanceof DatabaseError) return e;
  const f = fields(e);
  const message = messageOf(e);
  const code = typeof f.code === "string" && f.code.startsWith("SQLITE_") ? f.code : undefined;
  if (code === undefined) {
    // better-sqlite3 raises TypeError/RangeError for misuse (two statements in one text, a value it cannot bind).
    return new DatabaseUsageError("sqlite", message, { code: "SQLITE_MISUSE", cause: e });
  }
  let kind: DatabaseErrorKind = "other";
  if (code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY") kind = "unique_violation";
  else if (code === "SQLITE_CONSTRAINT_FOREIGNKEY") kind = "foreign_key_violation";
  else if (code === "SQLITE_CONSTRAINT_NOTNULL") kind = "not_null_violation";
  else if (code === "SQLITE_CONSTRAINT_CHECK") kind = "check_violation";
  else if (code === "SQLITE_BUSY_SNAPSHOT") kind = "serialization_failure";
  else if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) kind = "lock_timeout";
  return build(kind, "sqlite", message, { code, cause: e });
}

const MYSQL_KINDS: Record<number, DatabaseErrorKind> = {
  1022: "unique_violation", // ER_DUP_KEY
  1062: "unique_violation", // ER_DUP_ENTRY
  1586: "unique_violation", // ER_DUP_ENTRY_WITH_KEY_NAME
  1216: "foreign_key_violation", // ER_NO_REFERENCED_ROW
  1217: "foreign_key_violation", // ER_ROW_IS_REFERENCED
  1451: "foreign_key_violation", // ER_ROW_IS_REFERENCED_2
  1452: "foreign_key_violation", // ER_NO_REFERENCED_ROW_2
  1048: "not_null_violation", // ER_BAD_NULL_ERROR
  3819: "check_violation", // ER_CHECK_CONSTRAINT_VIOLATED (MySQL)
  4025: "check_violation", // ER_CONSTRAINT_FAILED (MariaDB)
  1213: "deadlock", // ER_LOCK_DEADLOCK
  1020: "serialization_failure", // ER_CHECKREAD: record changed since last read (MariaDB snapshot isolation)
  1205: "lock_timeout", // ER_LOCK_WAIT_TIMEOUT
  3572: "lock_timeout", // ER_LOCK_NOWAIT
  1053: "connection_lost", // ER_SERVER_SHUTDOWN
  1927: "connection_lost", // ER_CONNECTION_KILLED (MariaDB)
  2006: "connection_lost", // CR_SERVER_GONE_ERROR
  2013: "connection_lost", // CR_SERVER_LOST
  4031: "connection_lost", // ER_CLIENT_INTERACTION_TIMEOUT (MySQL)
};

/** A mysql2 error as a {@link DatabaseError}. */
export function mapMysqlError(e: unknown): DatabaseError {
  if (e instanceof DatabaseError) return e;
  const f = fields(e);
  const message = messageOf(e);
  const errno = typeof f.errno === "number" ? f.errno : undefined;
  const code = typeof f.code === "string" ? f.code : undefined;
  const sqlState = typeof f.sqlState === "string" ? f.sqlState : undefined;
  let kind: DatabaseErrorKind = errno !== undefined ? (MYSQL_KINDS[errno] ?? "other") : "other";
  if (kind === "other" && (f.fatal === true || (code !== undefined && (SOCKET_CODES.has(code) || code.startsWith("PROTOCOL_"))))) kind = "connection_lost";
  const retryable = kind === "connection_lost" ? code !== undefined && CONNECT_CODES.has(code) : undefined;
  return build(kind, "mysql", message, { code: code ?? (errno !== undefined ? String(errno) : "UNKNOWN"), sqlState, errno, retryable, cause: e });
}

/** A connection error seen inside a transaction, before COMMIT: the server rolled the transaction back, so it may be run again. */
export function lostBeforeCommit(e: unknown): unknown {
  if (!(e instanceof ConnectionLostError) || e.retryable) return e;
  return new ConnectionLostError(e.dialect, `${e.message} (inside a transaction, before COMMIT: the transaction did not commit)`, {
    code: e.code,
    sqlState: e.sqlState,
    errno: e.errno,
    retryable: true,
    cause: e.cause,
  });
}
