/**
 * sqlite2pg as a library: the same operations as the command line, for
 * programs that drive a migration themselves.
 */
export { migrate, type MigrateOptions, type MigrateResult } from "./migrate/migrate.js";
export { Replicator, Phase, type ReplicatorOptions } from "./replication/replicator.js";
export { readStatus, type StatusReport } from "./replication/status.js";
export { validate, type ValidationReport } from "./validate/validate.js";
export { FROZEN_MESSAGE, isFrozenError, ROLLBACK_FROZEN_MESSAGE, isRollbackFrozenError } from "./db/frozen.js";
export { Sqlite2pgError, EXIT_CODES, ErrorCategory, describeError } from "./errors.js";
export { createLogger, silentLogger, type Logger } from "./observe/logger.js";

/*
 * The application side: one Database over SQLite, PostgreSQL and MySQL
 * (`?` placeholders, the same values on all three, typed errors), read
 * replicas on PostgreSQL, distributed locks, and the database that follows
 * the cutover.
 */
export type { Database, ExecuteResult } from "./db/database.js";
export { SqliteAdapter, type SqliteAdapterOptions } from "./db/sqlite-adapter.js";
export { PostgresAdapter, type PostgresAdapterOptions, type PostgresServer } from "./db/postgres-adapter.js";
export type { PostgresAdapterLog, PostgresServerStatus } from "./db/replicas.js";
export { MysqlAdapter, type MysqlAdapterOptions } from "./db/mysql-adapter.js";
export { SwitchingDatabase, type SwitchingDatabaseOptions } from "./db/switching.js";
export { DatabaseManager, pgAdvisoryLockKey, mysqlLockName, type DistributedLockOptions } from "./db/lock.js";
export { translatePlaceholders, type TranslatedSql, type TranslateOptions } from "./db/placeholders.js";
export {
  DatabaseError,
  UniqueViolationError,
  DeadlockError,
  SerializationFailureError,
  LockTimeoutError,
  ConnectionLostError,
  CommitOutcomeUnknownError,
  TransactionAbortedError,
  DatabaseUsageError,
  ParameterCountError,
  FreezeTimeoutError,
  type DatabaseErrorKind,
  type DatabaseErrorDetails,
  type Dialect,
} from "./db/errors.js";
