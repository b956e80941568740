/**
 * The distributed lock: {@link DatabaseManager.distributedLock} runs a
 * callback in a transaction that holds a named lock, on whichever backend
 * the database is. Each adapter implements the lock its way (see the
 * README): PostgreSQL `pg_advisory_xact_lock`, MySQL `GET_LOCK`, SQLite
 * `BEGIN IMMEDIATE`.
 */
import { createHash } from "node:crypto";
import { DatabaseUsageError } from "./errors.js";
import type { Database } from "./database.js";

/** The method an adapter implements to take the lock; a symbol, so it is no part of the public `Database`. */
export const LOCK = Symbol("sqlite2pg.distributedLock");

/** A database that can take a distributed lock. */
export interface Lockable {
  [LOCK]<T>(name: string, fn: (tx: Database) => Promise<T>, timeoutMs: number | undefined): Promise<T>;
}

/** Options of {@link DatabaseManager.distributedLock}. */
export interface DistributedLockOptions {
  /**
   * How long to wait for the lock, in milliseconds; a `LockTimeoutError`
   * naming the lock when it is not granted in time. 0 tries once. Without
   * it the call waits as long as it takes.
   */
  timeoutMs?: number;
}

/**
 * The PostgreSQL advisory-lock key of a lock name: the first 8 bytes of
 * SHA-256 of `"sqlite2pg-lock:" + name` (UTF-8), big-endian, as a signed
 * 64-bit integer. Fixed forever: old and new versions of an application
 * must derive the same key to exclude each other.
 */
export function pgAdvisoryLockKey(name: string): bigint {
  const digest = createHash("sha256").update(`sqlite2pg-lock:${name}`, "utf8").digest();
  return digest.readBigInt64BE(0);
}

/** MySQL's limit on a user lock name, in characters. */
const MYSQL_LOCK_NAME_MAX = 64;

/**
 * The MySQL `GET_LOCK` name of a lock name: the name itself when it fits in
 * 64 characters, else `sqlite2pg-lock:` and the first 49 hex digits of
 * SHA-256 of the name (64 characters in all).
 */
export function mysqlLockName(name: string): string {
  if ([...name].length <= MYSQL_LOCK_NAME_MAX) return name;
  const prefix = "sqlite2pg-lock:";
  return (
    prefix +
    createHash("sha256")
      .update(name, "utf8")
      .digest("hex")
      .slice(0, MYSQL_LOCK_NAME_MAX - prefix.length)
  );
}

/** The application's handle on cross-process coordination over a {@link Database}. */
export class DatabaseManager {
  constructor(
    /** The database the locks are taken on (an adapter of this library). */
    readonly db: Database,
  ) {}

  /**
   * Run `fn` in a transaction that holds the lock `name`: no other
   * `distributedLock` of the same name, in this process or any other using
   * the same database, runs at the same time. The lock is released when the
   * transaction ends (commit, rollback, or the connection's loss: a process
   * killed while holding it releases it).
   *
   * - PostgreSQL: `pg_advisory_xact_lock` with {@link pgAdvisoryLockKey} on
   *   the transaction's own connection, the transaction at READ COMMITTED;
   *   `timeoutMs` through `SET LOCAL lock_timeout`. Transaction-scoped, so it
   *   holds behind PgBouncer in transaction pooling.
   * - MySQL: `GET_LOCK` on the transaction's own connection, taken before
   *   the transaction starts (so it sees what the last holder committed) and
   *   released after it ends; names over 64 characters hashed
   *   ({@link mysqlLockName}). Lock names are server-wide in MySQL.
   * - SQLite: `BEGIN IMMEDIATE`, the file's write lock: it excludes every
   *   writer of the file, whatever the name, across processes on one host.
   *
   * Throws a `LockTimeoutError` whose `lockName` is `name` when the lock is
   * not granted within `timeoutMs`.
   */
  async distributedLock<T>(name: string, fn: (tx: Database) => Promise<T>, opts: DistributedLockOptions = {}): Promise<T> {
    const dialect = this.db.dialect;
    if (typeof name !== "string" || name === "") throw new DatabaseUsageError(dialect, "a distributed lock needs a non-empty name");
    const t = opts.timeoutMs;
    if (t !== undefined && !(typeof t === "number" && Number.isFinite(t) && t >= 0)) {
      throw new DatabaseUsageError(dialect, `timeoutMs must be a number of milliseconds ≥ 0, not ${String(t)}`);
    }
    const lockable = this.db as Partial<Lockable>;
    if (typeof lockable[LOCK] !== "function") {
      throw new DatabaseUsageError(
        dialect,
        "distributedLock needs an adapter of this library (SqliteAdapter, PostgresAdapter, MysqlAdapter), not a transaction handle",
      );
    }
    return lockable[LOCK](name, fn, t);
  }
}
