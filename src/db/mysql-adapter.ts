/**
 * MySQL and MariaDB through mysql2's pool.
 *
 * Statements with parameters are server-side prepared statements
 * (`execute`: the values never enter the SQL text); statements without run
 * as plain text, so anything the server accepts runs. Every connection works
 * in UTC (`SET time_zone = '+00:00'` when it opens), so DATETIME, TIMESTAMP
 * and `Date` agree. A transaction pins one pool connection.
 */
import mysql from "mysql2/promise";
import { TransactionHandle, prepare, runInside, type Database, type ExecuteResult, type TransactionConnection } from "./database.js";
import { lostBeforeCommit, mapMysqlError } from "./error-map.js";
import {
  CommitOutcomeUnknownError,
  ConnectionLostError,
  DatabaseError,
  DatabaseUsageError,
  DeadlockError,
  LockTimeoutError,
  TransactionAbortedError,
} from "./errors.js";
import { LOCK, mysqlLockName, type Lockable } from "./lock.js";
import type { TranslatedSql } from "./placeholders.js";
import { mysqlInsertId, mysqlParams, mysqlRows } from "./values.js";

/** Options of {@link MysqlAdapter}. */
export interface MysqlAdapterOptions {
  /** `mysql://user:password@host:port/database` */
  url: string;
  /** mysql2 pool settings (`connectionLimit`, `connectTimeout`, …); the value settings are the adapter's own. */
  pool?: Omit<
    mysql.PoolOptions,
    "uri" | "typeCast" | "supportBigNumbers" | "bigNumberStrings" | "decimalNumbers" | "dateStrings" | "timezone" | "jsonStrings" | "multipleStatements"
  >;
}

type Queryable = Pick<mysql.Pool, "query" | "execute">;
type Outcome = mysql.RowDataPacket[] | mysql.ResultSetHeader;
type Fields = mysql.FieldPacket[] | undefined;
type Result = [Outcome, Fields];

const WRITE_VERBS = new Set(["insert", "update", "delete", "replace"]);
const FOREVER_SECONDS = 365 * 24 * 3600;

async function run(on: Queryable, t: TranslatedSql, params: readonly unknown[]): Promise<Result> {
  if (params.length === 0) return (await on.query(t.text)) as unknown as Result;
  return (await on.execute(t.text, mysqlParams(params))) as unknown as Result;
}

/** The rows of a result (none for a write), with BIGINT and TINYINT(1) corrected by the fields' types. */
function rowsOf([o, fields]: Result): Record<string, unknown>[] {
  if (!Array.isArray(o)) return [];
  // Several result sets (a CALL) come as an array of arrays: returned as they are.
  if (o.length > 0 && Array.isArray(o[0])) return o as unknown as Record<string, unknown>[];
  return mysqlRows(o as Record<string, unknown>[], Array.isArray(fields) && !Array.isArray(fields[0]) ? fields : undefined);
}

function executeResult([o]: Result, t: TranslatedSql): ExecuteResult {
  if (Array.isArray(o)) {
    // A result set from a write (MariaDB's INSERT … RETURNING): one row per changed row.
    return { rowsAffected: WRITE_VERBS.has(t.verb) ? o.length : 0 };
  }
  const insertId = mysqlInsertId(o.insertId);
  return insertId === undefined ? { rowsAffected: o.affectedRows } : { rowsAffected: o.affectedRows, insertId };
}

/** A {@link Database} on MySQL or MariaDB. */
export class MysqlAdapter implements Database, Lockable {
  readonly dialect = "mysql" as const;
  private readonly pool: mysql.Pool;
  private closed = false;
  /** Connections checked out for transactions and locks: close waits for them (mysql2's pool.end would cut them). */
  private readonly pinned = new Set<Promise<unknown>>();

  constructor(opts: MysqlAdapterOptions) {
    if (!opts || typeof opts.url !== "string" || opts.url === "") throw new DatabaseUsageError("mysql", "MysqlAdapter needs { url }");
    this.pool = mysql.createPool({
      // Prepared statements kept per connection (mysql2's default, 16000, could exhaust the server's max_prepared_stmt_count).
      maxPreparedStatements: 512,
      // No stack captured by mysql2 at every call (an Error.captureStackTrace per statement, ~5 µs: bench/adapters.mjs):
      // the adapter's own errors carry the caller's stack. `pool: { trace: true }` puts it back on the driver's error (`cause`).
      trace: false,
      ...opts.pool,
      uri: opts.url,
      // BIGINT as exact text, which mysqlRows turns into number or bigint.
      supportBigNumbers: true,
      bigNumberStrings: true,
      decimalNumbers: false,
      dateStrings: ["DATE"],
      timezone: "Z",
      jsonStrings: true,
      multipleStatements: false,
    });
    this.pool.pool.on("connection", (c) => {
      c.query("SET time_zone = '+00:00'", () => undefined);
    });
  }

  private checkOpen(): void {
    if (this.closed) throw new DatabaseUsageError("mysql", "the database is closed");
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    const t = prepare(sql, params, "mysql");
    this.checkOpen();
    try {
      return rowsOf(await run(this.pool, t, params)) as T[];
    } catch (e) {
      throw mapMysqlError(e);
    }
  }

  async execute(sql: string, params: unknown[] = []): Promise<ExecuteResult> {
    const t = prepare(sql, params, "mysql");
    this.checkOpen();
    try {
      return executeResult(await run(this.pool, t, params), t);
    } catch (e) {
      throw mapMysqlError(e);
    }
  }

  private async connection(): Promise<MysqlTransactionConnection> {
    this.checkOpen();
    try {
      return new MysqlTransactionConnection(await this.pool.getConnection());
    } catch (e) {
      throw mapMysqlError(e);
    }
  }

  /** Run `use` on a pinned connection, released (or destroyed when broken) afterwards. */
  private async pin<T>(use: (conn: MysqlTransactionConnection) => Promise<T>): Promise<T> {
    const work = (async () => {
      const conn = await this.connection();
      try {
        return await use(conn);
      } finally {
        conn.release();
      }
    })();
    this.pinned.add(work);
    try {
      return await work;
    } finally {
      this.pinned.delete(work);
    }
  }

  transaction<T>(fn: (tx: Database) => Promise<T>): Promise<T> {
    return this.pin((conn) => this.runTransaction(conn, fn));
  }

  [LOCK]<T>(name: string, fn: (tx: Database) => Promise<T>, timeoutMs: number | undefined): Promise<T> {
    return this.pin((conn) => this.lockAndRun(conn, name, fn, timeoutMs));
  }

  private async lockAndRun<T>(conn: MysqlTransactionConnection, name: string, fn: (tx: Database) => Promise<T>, timeoutMs: number | undefined): Promise<T> {
    const lockName = mysqlLockName(name);
    // GET_LOCK before the transaction starts, so its snapshot follows the previous holder's commit.
    // No limit: a year (MariaDB refuses MySQL's negative "forever").
    const seconds = timeoutMs === undefined ? FOREVER_SECONDS : timeoutMs / 1000;
    const rows = await conn.raw("SELECT GET_LOCK(?, ?) AS granted", [lockName, seconds]);
    const granted = rows[0]?.granted;
    if (granted === 0 || granted === false) {
      throw new LockTimeoutError("mysql", `distributed lock "${name}" was not granted within ${timeoutMs} ms`, { code: "GET_LOCK_TIMEOUT", lockName: name });
    }
    if (granted !== 1 && granted !== true) {
      throw new DatabaseError("other", "mysql", `GET_LOCK of distributed lock "${name}" returned NULL (the server reported an error)`, {
        code: "GET_LOCK_NULL",
      });
    }
    try {
      return await this.runTransaction(conn, fn);
    } finally {
      // COMMIT does not release a GET_LOCK; a connection that cannot release it is closed, which does.
      if (!conn.broken) {
        try {
          await conn.raw("SELECT RELEASE_LOCK(?) AS released", [lockName]);
        } catch {
          conn.broken = true;
        }
      }
    }
  }

  private async runTransaction<T>(conn: MysqlTransactionConnection, fn: (tx: Database) => Promise<T>): Promise<T> {
    try {
      await conn.command("START TRANSACTION");
    } catch (e) {
      throw lostBeforeCommit(e);
    }
    const tx = new TransactionHandle(conn, this, 0);
    let result: T;
    try {
      result = await runInside(tx, fn);
    } catch (e) {
      tx.finished = true;
      if (!conn.broken) {
        try {
          await conn.connection.query("ROLLBACK");
        } catch {
          conn.broken = true;
        }
      }
      throw conn.broken ? lostBeforeCommit(e) : e;
    }
    tx.finished = true;
    if (conn.broken) throw lostBeforeCommit(conn.lostError ?? new ConnectionLostError("mysql", "the connection was lost", { code: "CONNECTION_LOST" }));
    if (conn.aborted) {
      await conn.connection.query("ROLLBACK").catch(() => {
        conn.broken = true;
      });
      throw conn.abortedError();
    }
    try {
      await conn.connection.query("COMMIT");
    } catch (e) {
      const m = mapMysqlError(e);
      if (m instanceof ConnectionLostError) {
        conn.broken = true;
        throw new CommitOutcomeUnknownError(
          "mysql",
          `the connection was lost during COMMIT: the transaction may or may not have committed (${m.message}); read the data to know`,
          { code: m.code, errno: m.errno, sqlState: m.sqlState, cause: e },
        );
      }
      throw m;
    }
    return result;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.pinned]);
    await this.pool.end();
  }
}

/** A pinned pool connection. */
class MysqlTransactionConnection implements TransactionConnection {
  readonly dialect = "mysql" as const;
  broken = false;
  lostError: DatabaseError | undefined;
  /** The error after which the server rolled the whole transaction back (a deadlock): statements and COMMIT are refused from then on. */
  aborted: DatabaseError | undefined;
  private readonly onError = (): void => {
    this.broken = true;
  };

  constructor(readonly connection: mysql.PoolConnection) {
    // Checked out, a connection's error event is ours to catch.
    connection.connection.on("error", this.onError);
  }

  release(): void {
    this.connection.connection.off("error", this.onError);
    if (this.broken) this.connection.destroy();
    else this.connection.release();
  }

  fail(e: unknown): DatabaseError {
    const m = mapMysqlError(e);
    if (m instanceof ConnectionLostError) {
      this.broken = true;
      this.lostError = m;
    }
    if (m instanceof DeadlockError) this.aborted = m;
    return m;
  }

  abortedError(): TransactionAbortedError {
    const a = this.aborted!;
    return new TransactionAbortedError("mysql", `the server rolled the transaction back (${a.message}); nothing of it committed`, {
      code: a.code,
      errno: a.errno,
      sqlState: a.sqlState,
      retryable: a.retryable,
      cause: a,
    });
  }

  private check(): void {
    if (this.aborted) throw this.abortedError();
  }

  async raw(sql: string, params: unknown[]): Promise<Record<string, unknown>[]> {
    try {
      return rowsOf((await this.connection.execute(sql, mysqlParams(params))) as unknown as Result);
    } catch (e) {
      throw this.fail(e);
    }
  }

  async query(t: TranslatedSql, params: readonly unknown[]): Promise<Record<string, unknown>[]> {
    this.check();
    try {
      return rowsOf(await run(this.connection, t, params));
    } catch (e) {
      throw this.fail(e);
    }
  }

  async execute(t: TranslatedSql, params: readonly unknown[]): Promise<ExecuteResult> {
    this.check();
    try {
      return executeResult(await run(this.connection, t, params), t);
    } catch (e) {
      throw this.fail(e);
    }
  }

  async command(sql: string): Promise<void> {
    this.check();
    try {
      await this.connection.query(sql);
    } catch (e) {
      throw this.fail(e);
    }
  }
}
