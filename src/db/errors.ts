/**
 * The errors of the application library: one base, {@link DatabaseError},
 * carrying the backend's own code (a PostgreSQL SQLSTATE, a SQLite extended
 * result code such as `SQLITE_CONSTRAINT_UNIQUE`, a MySQL error code and
 * errno), and a `kind` that names what happened the same way on every
 * backend. The kinds an application acts on have their own classes, so
 * `instanceof` and `.kind` both work and no message is ever matched.
 */

/** The three backends. */
export type Dialect = "sqlite" | "postgres" | "mysql";

/** What happened, the same on every backend. */
export type DatabaseErrorKind =
  /** A UNIQUE or PRIMARY KEY constraint refused the write: {@link UniqueViolationError}. */
  | "unique_violation"
  | "foreign_key_violation"
  | "not_null_violation"
  | "check_violation"
  /** The server chose this transaction as a deadlock victim: {@link DeadlockError}, retryable. */
  | "deadlock"
  /** A concurrent transaction made this one impossible to serialize: {@link SerializationFailureError}, retryable. */
  | "serialization_failure"
  /** A lock (a row, a table, the SQLite file, a distributed lock) was not granted in time: {@link LockTimeoutError}. */
  | "lock_timeout"
  /** The connection broke or could not be made: {@link ConnectionLostError}. */
  | "connection_lost"
  /** The connection broke while COMMIT was under way: {@link CommitOutcomeUnknownError}; never retry blindly. */
  | "commit_outcome_unknown"
  /** The transaction had already been rolled back by the server when it was to commit: {@link TransactionAbortedError}. */
  | "transaction_aborted"
  /** The number of `?` placeholders and of parameters differ: {@link ParameterCountError}; nothing was sent. */
  | "parameter_count"
  /** A freeze (SQLite's for a cutover, PostgreSQL's for a rollback) lasted longer than the switching database waits: {@link FreezeTimeoutError}; nothing committed. */
  | "freeze_timeout"
  /** The library was used wrongly (a closed handle, an unsupported parameter, …): {@link DatabaseUsageError}; nothing was sent. */
  | "usage"
  /** Anything else the backend refused; `code` says what. */
  | "other";

/** What an error is built from. */
export interface DatabaseErrorDetails {
  /** The backend's code: SQLSTATE, SQLite extended result code, MySQL error code (`ER_DUP_ENTRY`), or a system error code. */
  code: string;
  /** The SQLSTATE, when the backend reports one (PostgreSQL, MySQL). */
  sqlState?: string;
  /** MySQL's numeric error number. */
  errno?: number;
  /** The constraint that refused the write, when the backend names it (PostgreSQL). */
  constraint?: string;
  /** Whether running the same call again may succeed (nothing of it committed). Defaults by kind. */
  retryable?: boolean;
  cause?: unknown;
}

/** The base of every error the application library raises. */
export class DatabaseError extends Error {
  /** What happened, the same on every backend. */
  readonly kind: DatabaseErrorKind;
  /** The backend that raised it. */
  readonly dialect: Dialect;
  /** The backend's code: SQLSTATE, SQLite extended result code, MySQL error code, or a system error code. */
  readonly code: string;
  /** The SQLSTATE, when the backend reports one (PostgreSQL, MySQL). */
  readonly sqlState: string | undefined;
  /** MySQL's numeric error number. */
  readonly errno: number | undefined;
  /** The constraint that refused the write, when the backend names it (PostgreSQL). */
  readonly constraint: string | undefined;
  /**
   * Whether the same call may be run again: it did not commit anything and
   * the cause is a race or a transient condition (a deadlock, a
   * serialization failure, a lock timeout, a connection that could not be
   * made, a transaction lost before COMMIT).
   */
  readonly retryable: boolean;

  constructor(kind: DatabaseErrorKind, dialect: Dialect, message: string, details: DatabaseErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "DatabaseError";
    this.kind = kind;
    this.dialect = dialect;
    this.code = details.code;
    this.sqlState = details.sqlState;
    this.errno = details.errno;
    this.constraint = details.constraint;
    this.retryable = details.retryable ?? false;
  }
}

/** A UNIQUE or PRIMARY KEY constraint refused the write (SQLSTATE 23505, SQLITE_CONSTRAINT_UNIQUE/PRIMARYKEY, ER_DUP_ENTRY). */
export class UniqueViolationError extends DatabaseError {
  constructor(dialect: Dialect, message: string, details: DatabaseErrorDetails) {
    super("unique_violation", dialect, message, details);
    this.name = "UniqueViolationError";
  }
}

/** The transaction was chosen as a deadlock victim and rolled back (SQLSTATE 40P01, ER_LOCK_DEADLOCK); run it again. */
export class DeadlockError extends DatabaseError {
  constructor(dialect: Dialect, message: string, details: DatabaseErrorDetails) {
    super("deadlock", dialect, message, { ...details, retryable: details.retryable ?? true });
    this.name = "DeadlockError";
  }
}

/** The transaction could not be serialized with a concurrent one (SQLSTATE 40001, SQLITE_BUSY_SNAPSHOT); run it again. */
export class SerializationFailureError extends DatabaseError {
  constructor(dialect: Dialect, message: string, details: DatabaseErrorDetails) {
    super("serialization_failure", dialect, message, { ...details, retryable: details.retryable ?? true });
    this.name = "SerializationFailureError";
  }
}

/**
 * A lock was not granted in time: a row or table lock (SQLSTATE 55P03,
 * ER_LOCK_WAIT_TIMEOUT), the SQLite write lock (SQLITE_BUSY), or the lock of
 * {@link DatabaseManager.distributedLock}, whose name is then in `lockName`.
 */
export class LockTimeoutError extends DatabaseError {
  /** The distributed lock that was not granted, when it was one. */
  readonly lockName: string | undefined;

  constructor(dialect: Dialect, message: string, details: DatabaseErrorDetails & { lockName?: string }) {
    super("lock_timeout", dialect, message, { ...details, retryable: details.retryable ?? true });
    this.name = "LockTimeoutError";
    this.lockName = details.lockName;
  }
}

/**
 * The connection broke (the server ended it, the network failed) or could
 * not be made. `retryable` is true when nothing of the call can have
 * committed: the connection could not be made, or it broke inside a
 * transaction before COMMIT (the server rolled the transaction back).
 */
export class ConnectionLostError extends DatabaseError {
  constructor(dialect: Dialect, message: string, details: DatabaseErrorDetails) {
    super("connection_lost", dialect, message, details);
    this.name = "ConnectionLostError";
  }
}

/**
 * The connection broke while COMMIT was under way: the transaction may or
 * may not have committed, and only reading the data can tell. Never
 * retryable: running the transaction again could apply it twice.
 */
export class CommitOutcomeUnknownError extends DatabaseError {
  constructor(dialect: Dialect, message: string, details: DatabaseErrorDetails) {
    super("commit_outcome_unknown", dialect, message, { ...details, retryable: false });
    this.name = "CommitOutcomeUnknownError";
  }
}

/**
 * The transaction was to commit, but the server had already rolled it back
 * after an earlier error inside it (one the callback caught and did not
 * rethrow). Nothing of it committed.
 */
export class TransactionAbortedError extends DatabaseError {
  constructor(dialect: Dialect, message: string, details: DatabaseErrorDetails) {
    super("transaction_aborted", dialect, message, details);
    this.name = "TransactionAbortedError";
  }
}

/** The library was used wrongly; nothing was sent to the server. */
export class DatabaseUsageError extends DatabaseError {
  constructor(dialect: Dialect, message: string, details: Partial<DatabaseErrorDetails> = {}) {
    super("usage", dialect, message, { code: "SQLITE2PG_USAGE", ...details });
    this.name = "DatabaseUsageError";
  }
}

/** The statement's `?` placeholders and the parameters given differ in number; nothing was sent to the server. */
export class ParameterCountError extends DatabaseError {
  /** The number of `?` placeholders in the statement. */
  readonly expected: number;
  /** The number of parameters given. */
  readonly given: number;

  constructor(dialect: Dialect, expected: number, given: number, sql: string) {
    const one = sql.replace(/\s+/g, " ").trim();
    const text = one.length > 120 ? one.slice(0, 120) + "…" : one;
    super(
      "parameter_count",
      dialect,
      `the statement has ${expected} placeholder${expected === 1 ? "" : "s"} (?) but ${given} parameter${given === 1 ? " was" : "s were"} given: ${text}`,
      { code: "SQLITE2PG_PARAMETER_COUNT" },
    );
    this.name = "ParameterCountError";
    this.expected = expected;
    this.given = given;
  }
}

/**
 * A write the switching database held while the side the data was leaving
 * refused writes — SQLite frozen for the cutover, or PostgreSQL frozen for
 * a rollback (then `dialect` is "postgres") — and that move was neither
 * finished nor undone within `freezeWaitMs`. Nothing of it committed
 * anywhere; running it again is safe (retryable).
 */
export class FreezeTimeoutError extends DatabaseError {
  constructor(message: string, waitedMs: number, dialect: Dialect = "sqlite") {
    super("freeze_timeout", dialect, message, { code: "FREEZE_TIMEOUT", retryable: true });
    this.name = "FreezeTimeoutError";
    this.waitedMs = waitedMs;
  }
  /** How long the write was held. */
  readonly waitedMs: number;
}
