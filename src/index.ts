/**
 * sqlite2pg as a library: the same operations as the command line, for
 * programs that drive a migration themselves.
 */
export { migrate, type MigrateOptions, type MigrateResult } from "./migrate/migrate.js";
export { Replicator, Phase, type ReplicatorOptions } from "./replication/replicator.js";
export { readStatus, type StatusReport } from "./replication/status.js";
export { validate, type ValidationReport } from "./validate/validate.js";
export { FROZEN_MESSAGE, isFrozenError } from "./db/frozen.js";
export { Sqlite2pgError, EXIT_CODES, ErrorCategory, describeError } from "./errors.js";
export { createLogger, silentLogger, type Logger } from "./observe/logger.js";
