/**
 * PostgreSQL through pg: one `pg.Pool` per server, with this library's type
 * parsers installed on the pool (never globally, so other users of pg in
 * the same process keep theirs).
 *
 * A transaction pins one client of the primary's pool: BEGIN, the
 * callback's statements, COMMIT or ROLLBACK, all on that client, which goes
 * back to the pool afterwards, or is destroyed when its connection broke.
 *
 * Reads go to {@link PostgresAdapter.readPool}, today the primary: the
 * replica routing of the options (`replicas`, `readYourWrites`,
 * `maxReplicaLagMs`) plugs in there.
 */
import pg from "pg";
import { TransactionHandle, prepare, runInside, type Database, type ExecuteResult, type TransactionConnection } from "./database.js";
import { lostBeforeCommit, mapPgError } from "./error-map.js";
import { CommitOutcomeUnknownError, ConnectionLostError, type DatabaseError, DatabaseUsageError, LockTimeoutError, TransactionAbortedError } from "./errors.js";
import { LOCK, pgAdvisoryLockKey, type Lockable } from "./lock.js";
import type { TranslatedSql } from "./placeholders.js";
import { pgParams, pgTypes } from "./values.js";

/** A server: a connection URL, or pg's pool settings. */
export type PostgresServer = string | pg.PoolConfig;

/** Options of {@link PostgresAdapter}. */
export interface PostgresAdapterOptions {
  /** The primary: writes, transactions, and (until replicas are configured) reads. */
  primary: PostgresServer;
  /** Streaming replicas for reads outside transactions. Not supported yet: only an empty list is accepted. */
  replicas?: PostgresServer[];
  /** With replicas: reads after this handle's commit only from replicas that replayed it. */
  readYourWrites?: boolean;
  /** With replicas: take a replica whose replay lag exceeds this out of rotation. */
  maxReplicaLagMs?: number;
  /** pg pool settings for every server (`max`, `idleTimeoutMillis`, `connectionTimeoutMillis`, …). */
  pool?: Omit<pg.PoolConfig, "connectionString" | "types">;
}

/** Command tags whose row count is rows changed. */
const WRITE_COMMANDS = new Set(["INSERT", "UPDATE", "DELETE", "MERGE"]);

function serverConfig(server: PostgresServer, pool: PostgresAdapterOptions["pool"]): pg.PoolConfig {
  const own = typeof server === "string" ? { connectionString: server } : server;
  return { ...pool, ...own, types: pgTypes };
}

function last(r: pg.QueryResult | pg.QueryResult[]): pg.QueryResult {
  // Several statements in one text (possible without parameters) give one result each: the last one counts.
  return Array.isArray(r) ? r[r.length - 1]! : r;
}

function executeResult(r: pg.QueryResult): ExecuteResult {
  return { rowsAffected: WRITE_COMMANDS.has(r.command) ? (r.rowCount ?? 0) : 0 };
}

function queryConfig(t: TranslatedSql, params: readonly unknown[]): pg.QueryConfig {
  return { text: t.text, values: pgParams(params) };
}

/** A {@link Database} on PostgreSQL. */
export class PostgresAdapter implements Database, Lockable {
  readonly dialect = "postgres" as const;
  private readonly primaryPool: pg.Pool;
  private closed = false;

  constructor(opts: PostgresAdapterOptions) {
    if (!opts || opts.primary === undefined) throw new DatabaseUsageError("postgres", "PostgresAdapter needs { primary }");
    if (opts.replicas !== undefined && opts.replicas.length > 0) {
      throw new DatabaseUsageError("postgres", "read replicas are not supported yet: pass replicas: [] or leave it out");
    }
    this.primaryPool = new pg.Pool(serverConfig(opts.primary, opts.pool));
    // A client that breaks while idle in the pool is dropped by the pool; its error must not end the process.
    this.primaryPool.on("error", () => undefined);
  }

  /** The pool a read outside a transaction goes to. */
  private readPool(): pg.Pool {
    return this.primaryPool;
  }

  private checkOpen(): void {
    if (this.closed) throw new DatabaseUsageError("postgres", "the database is closed");
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    const t = prepare(sql, params, "postgres");
    this.checkOpen();
    try {
      return last(await this.readPool().query(queryConfig(t, params))).rows as T[];
    } catch (e) {
      throw mapPgError(e);
    }
  }

  async execute(sql: string, params: unknown[] = []): Promise<ExecuteResult> {
    const t = prepare(sql, params, "postgres");
    this.checkOpen();
    try {
      return executeResult(last(await this.primaryPool.query(queryConfig(t, params))));
    } catch (e) {
      throw mapPgError(e);
    }
  }

  transaction<T>(fn: (tx: Database) => Promise<T>): Promise<T> {
    return this.runTransaction("BEGIN", fn, undefined);
  }

  [LOCK]<T>(name: string, fn: (tx: Database) => Promise<T>, timeoutMs: number | undefined): Promise<T> {
    // READ COMMITTED: every statement after the lock sees what the previous holder committed.
    return this.runTransaction("BEGIN ISOLATION LEVEL READ COMMITTED", fn, (conn) => takeAdvisoryLock(conn, name, timeoutMs));
  }

  private async runTransaction<T>(
    begin: string,
    fn: (tx: Database) => Promise<T>,
    before: ((conn: PgTransactionConnection) => Promise<void>) | undefined,
  ): Promise<T> {
    this.checkOpen();
    let client: pg.PoolClient;
    try {
      client = await this.primaryPool.connect();
    } catch (e) {
      throw mapPgError(e);
    }
    const conn = new PgTransactionConnection(client);
    const onError = (): void => {
      conn.broken = true;
    };
    // Checked out, a client's connection error is ours to catch (the pool listens only while it is idle).
    client.on("error", onError);
    try {
      try {
        await conn.command(begin);
      } catch (e) {
        throw lostBeforeCommit(e);
      }
      const tx = new TransactionHandle(conn, this, 0);
      let result: T;
      try {
        if (before) await before(conn);
        result = await runInside(tx, fn);
      } catch (e) {
        tx.finished = true;
        if (!conn.broken) {
          try {
            await client.query("ROLLBACK");
          } catch {
            conn.broken = true;
          }
        }
        throw conn.broken ? lostBeforeCommit(e) : e;
      }
      tx.finished = true;
      if (conn.broken) throw lostBeforeCommit(conn.lostError ?? new ConnectionLostError("postgres", "the connection was lost", { code: "CONNECTION_LOST" }));
      let done: pg.QueryResult;
      try {
        done = await client.query("COMMIT");
      } catch (e) {
        const m = mapPgError(e);
        if (m instanceof ConnectionLostError) {
          conn.broken = true;
          throw new CommitOutcomeUnknownError(
            "postgres",
            `the connection was lost during COMMIT: the transaction may or may not have committed (${m.message}); read the data to know`,
            { code: m.code, sqlState: m.sqlState, cause: e },
          );
        }
        throw m; // refused at COMMIT (a deferred constraint, a serialization failure): rolled back
      }
      if (done.command === "ROLLBACK") {
        throw new TransactionAbortedError("postgres", "the transaction was rolled back at COMMIT after an error inside it; nothing of it committed", {
          code: "25P02",
          sqlState: "25P02",
          cause: conn.lastError,
        });
      }
      return result;
    } finally {
      client.off("error", onError);
      client.release(conn.broken ? true : undefined);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.primaryPool.end();
  }
}

/** The pinned client of a transaction. */
class PgTransactionConnection implements TransactionConnection {
  readonly dialect = "postgres" as const;
  broken = false;
  lostError: DatabaseError | undefined;
  lastError: DatabaseError | undefined;

  constructor(readonly client: pg.PoolClient) {}

  fail(e: unknown): DatabaseError {
    const m = mapPgError(e);
    this.lastError = m;
    if (m instanceof ConnectionLostError) {
      this.broken = true;
      this.lostError = m;
    }
    return m;
  }

  async raw(text: string, values: unknown[] = []): Promise<pg.QueryResult> {
    try {
      return await this.client.query(text, values);
    } catch (e) {
      throw this.fail(e);
    }
  }

  async query(t: TranslatedSql, params: readonly unknown[]): Promise<Record<string, unknown>[]> {
    try {
      return last(await this.client.query(queryConfig(t, params))).rows;
    } catch (e) {
      throw this.fail(e);
    }
  }

  async execute(t: TranslatedSql, params: readonly unknown[]): Promise<ExecuteResult> {
    try {
      return executeResult(last(await this.client.query(queryConfig(t, params))));
    } catch (e) {
      throw this.fail(e);
    }
  }

  async command(sql: string): Promise<void> {
    await this.raw(sql);
  }
}

/** `pg_advisory_xact_lock` of the name's key in the open transaction, within `timeoutMs` when given. */
async function takeAdvisoryLock(conn: PgTransactionConnection, name: string, timeoutMs: number | undefined): Promise<void> {
  const key = pgAdvisoryLockKey(name).toString();
  const timedOut = (cause: unknown, code: string, sqlState: string | undefined): LockTimeoutError =>
    new LockTimeoutError("postgres", `distributed lock "${name}" was not granted within ${timeoutMs} ms`, { code, sqlState, lockName: name, cause });
  try {
    if (timeoutMs === undefined) {
      await conn.raw("SELECT pg_advisory_xact_lock($1::bigint)", [key]);
    } else if (timeoutMs === 0) {
      // lock_timeout 0 would mean "no limit": try once instead.
      const r = await conn.raw("SELECT pg_try_advisory_xact_lock($1::bigint) AS granted", [key]);
      if (r.rows[0]?.granted !== true) throw timedOut(undefined, "55P03", "55P03");
    } else {
      const r = await conn.raw("SELECT current_setting('lock_timeout') AS prev, set_config('lock_timeout', $1, true)", [`${Math.ceil(timeoutMs)}ms`]);
      // Then the lock, and the earlier lock_timeout back for the callback's statements (left to right, in one statement).
      await conn.raw("SELECT pg_advisory_xact_lock($1::bigint), set_config('lock_timeout', $2, true)", [key, r.rows[0].prev]);
    }
  } catch (e) {
    if (e instanceof LockTimeoutError && e.lockName === undefined) throw timedOut(e.cause, e.code, e.sqlState);
    throw e;
  }
}
