/**
 * PostgreSQL through pg: one `pg.Pool` per server, with this library's type
 * parsers installed on the pool (never globally, so other users of pg in
 * the same process keep theirs). Statements are unnamed (pg's extended
 * protocol without a statement name): nothing is prepared by name, so the
 * adapter works behind PgBouncer in transaction pooling mode.
 *
 * A transaction pins one client of the primary's pool: BEGIN, the
 * callback's statements, COMMIT or ROLLBACK, all on that client, which goes
 * back to the pool afterwards, or is destroyed when its connection broke.
 *
 * With replicas, `query` outside a transaction goes round-robin over the
 * replicas in rotation (see replicas.ts); a replica that cannot be reached
 * is skipped and the read runs on the next one, then on the primary; a read
 * a replica refuses as a write (SQLSTATE 25006) runs on the primary.
 * `execute` and `transaction` always go to the primary. With
 * `readYourWrites`, every write of this adapter that commits leaves a
 * token, the primary's `pg_current_wal_insert_lsn()` read after the COMMIT
 * on the writing session; reads then go only to replicas whose replay
 * position has reached the newest token.
 */
import pg from "pg";
import { redactUrl } from "../redact.js";
import { TransactionHandle, prepare, runInside, type Database, type ExecuteResult, type TransactionConnection } from "./database.js";
import { lostBeforeCommit, mapPgError } from "./error-map.js";
import { CommitOutcomeUnknownError, ConnectionLostError, type DatabaseError, DatabaseUsageError, LockTimeoutError, TransactionAbortedError } from "./errors.js";
import { LOCK, pgAdvisoryLockKey, type Lockable } from "./lock.js";
import type { TranslatedSql } from "./placeholders.js";
import { parseLsn, type PostgresAdapterLog, type PostgresServerStatus, ReplicaSet } from "./replicas.js";
import { pgParams, pgTypes } from "./values.js";

/** A server: a connection URL, or pg's pool settings. */
export type PostgresServer = string | pg.PoolConfig;

/** Options of {@link PostgresAdapter}. */
export interface PostgresAdapterOptions {
  /** The primary: writes, transactions, and reads when no replica can take them. */
  primary: PostgresServer;
  /** Streaming replicas (hot standbys of the primary) for reads outside transactions, round-robin. */
  replicas?: PostgresServer[];
  /** With replicas: after this adapter's write commits, read only from replicas that replayed it (else from the primary). */
  readYourWrites?: boolean;
  /** With replicas: a replica whose replay lag (measured on it, about every second) exceeds this is out of rotation until it catches up. */
  maxReplicaLagMs?: number;
  /** pg pool settings for every server (`max`, `idleTimeoutMillis`, `connectionTimeoutMillis`, …); replicas default to a 5 s connection timeout. */
  pool?: Omit<pg.PoolConfig, "connectionString" | "types">;
  /** Where to report replicas leaving and rejoining the rotation (a pino logger, `console`, …); nothing is logged without it. */
  log?: PostgresAdapterLog;
  /** How often each replica's recovery state, replay position and lag are read, in milliseconds (default 1000). */
  replicaCheckIntervalMs?: number;
}

/** Command tags whose row count is rows changed. */
const WRITE_COMMANDS = new Set(["INSERT", "UPDATE", "DELETE", "MERGE"]);

/** The read-your-writes token: the primary's WAL insert position, read after a COMMIT. */
const TOKEN_SQL = "SELECT pg_current_wal_insert_lsn()::text AS lsn";

/** A replica's connection timeout unless the settings give one: a replica that does not answer must not hold reads up for long. */
const REPLICA_CONNECT_TIMEOUT_MS = 5_000;

function serverConfig(server: PostgresServer, pool: PostgresAdapterOptions["pool"], defaults: pg.PoolConfig = {}): pg.PoolConfig {
  const own = typeof server === "string" ? { connectionString: server } : server;
  return { ...defaults, ...pool, ...own, types: pgTypes };
}

/** A server's URL for people: the password masked. */
function describeServer(server: PostgresServer): string {
  if (typeof server === "string") return redactUrl(server);
  if (server.connectionString !== undefined) return describeServer(server.connectionString);
  const u = new URL("postgres://localhost");
  u.hostname = server.host ?? "localhost";
  if (server.port !== undefined) u.port = String(server.port);
  if (server.user !== undefined) u.username = encodeURIComponent(server.user);
  if (server.password !== undefined) u.password = "***";
  if (server.database !== undefined) u.pathname = "/" + encodeURIComponent(server.database);
  return u.toString();
}

function last(r: pg.QueryResult | pg.QueryResult[]): pg.QueryResult {
  // Several statements in one text (possible without parameters) give one result each: the last one counts.
  return Array.isArray(r) ? r[r.length - 1]! : r;
}

function executeResult(r: pg.QueryResult): ExecuteResult {
  return { rowsAffected: WRITE_COMMANDS.has(r.command) ? (r.rowCount ?? 0) : 0 };
}

/**
 * A statement and its values. Sent as `query(text, values)`, never as a
 * config object (pg copies one on every call), and with no `name`: an
 * unnamed statement, never a named prepared one (PgBouncer's transaction
 * pooling could not keep it).
 */
function queryConfig(t: TranslatedSql, params: readonly unknown[]): { text: string; values: unknown[] } {
  return { text: t.text, values: pgParams(params) };
}

/** Errors of a read on a replica that send it elsewhere without taking the replica out: a conflict with recovery cancelled it. */
const REPLICA_CONFLICT_STATES = new Set(["40001", "40P01"]);

/**
 * A {@link Database} on PostgreSQL: a primary, and optionally streaming
 * replicas for reads (see the module's comment and the README).
 */
export class PostgresAdapter implements Database, Lockable {
  readonly dialect = "postgres" as const;
  /**
   * The primary as a `Database` of its own, for a read that must be fresh:
   * the same pool and the same read-your-writes token as the adapter; its
   * `query` always runs on the primary. It is closed with the adapter.
   */
  readonly primary: Database;
  private readonly primaryPool: pg.Pool;
  private readonly primaryUrl: string;
  private primaryHealthy = true;
  private primaryError: string | null = null;
  private readonly replicaSet: ReplicaSet | null;
  private readonly readYourWrites: boolean;
  /** The newest read-your-writes token (0 before any write). */
  private token = 0n;
  /** Taking a token failed after a commit: reads go to the primary until a token taken after that failure. */
  private tokenLost = false;
  private tokenTicket = 0;
  private lostTicket = 0;
  private closed = false;

  constructor(opts: PostgresAdapterOptions) {
    if (!opts || opts.primary === undefined) throw new DatabaseUsageError("postgres", "PostgresAdapter needs { primary }");
    const replicas = opts.replicas ?? [];
    if (!Array.isArray(replicas)) throw new DatabaseUsageError("postgres", "replicas must be an array of servers (URLs or pg pool settings)");
    for (const r of replicas) {
      if (typeof r !== "string" && (typeof r !== "object" || r === null)) {
        throw new DatabaseUsageError("postgres", "each replica must be a URL or pg pool settings");
      }
    }
    const max = opts.maxReplicaLagMs;
    if (max !== undefined && !(typeof max === "number" && Number.isFinite(max) && max >= 0)) {
      throw new DatabaseUsageError("postgres", `maxReplicaLagMs must be a number of milliseconds ≥ 0, not ${String(max)}`);
    }
    const every = opts.replicaCheckIntervalMs ?? 1_000;
    if (!(typeof every === "number" && Number.isFinite(every) && every >= 10)) {
      throw new DatabaseUsageError("postgres", `replicaCheckIntervalMs must be a number of milliseconds ≥ 10, not ${String(every)}`);
    }
    this.primaryPool = new pg.Pool(serverConfig(opts.primary, opts.pool));
    // A client that breaks while idle in the pool is dropped by the pool; its error must not end the process.
    this.primaryPool.on("error", () => undefined);
    this.primaryUrl = describeServer(opts.primary);
    if (replicas.length > 0) {
      const servers = replicas.map((r) => {
        const pool = new pg.Pool(serverConfig(r, opts.pool, { connectionTimeoutMillis: REPLICA_CONNECT_TIMEOUT_MS }));
        pool.on("error", () => undefined);
        return { pool, url: describeServer(r) };
      });
      this.replicaSet = new ReplicaSet(servers, { maxLagMs: max, checkIntervalMs: every, log: opts.log });
      this.replicaSet.start();
    } else {
      this.replicaSet = null;
    }
    this.readYourWrites = opts.readYourWrites === true && this.replicaSet !== null;
    this.primary = new PrimaryView(this, (sql, params) => {
      const t = prepare(sql, params, "postgres");
      this.checkOpen();
      return this.queryPrimary(queryConfig(t, params), false);
    });
  }

  private checkOpen(): void {
    if (this.closed) throw new DatabaseUsageError("postgres", "the database is closed");
  }

  /** Note how a statement on the primary went: its health for `replicaStatus()`. */
  private primaryOutcome(e: DatabaseError | null): void {
    if (e === null) {
      this.primaryHealthy = true;
    } else if (e instanceof ConnectionLostError) {
      this.primaryHealthy = false;
      this.primaryError = e.message;
    }
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    const t = prepare(sql, params, "postgres");
    this.checkOpen();
    const cfg = queryConfig(t, params);
    let refused = false;
    const set = this.replicaSet;
    // Read-your-writes: only replicas that replayed the newest token (none while a token is lost).
    const token = this.readYourWrites ? this.token : 0n;
    if (set !== null && !(this.readYourWrites && this.tokenLost)) {
      // At most one replay position read on a replica per call.
      let mayRead = true;
      for (const r of set.candidates()) {
        if (token > 0n) {
          const seen = await set.reached(r, token, mayRead);
          if (seen.read) mayRead = false;
          if (!seen.ok) continue;
        }
        try {
          return last(await r.pool.query(cfg.text, cfg.values)).rows as T[];
        } catch (e) {
          const m = mapPgError(e);
          if (m instanceof ConnectionLostError) {
            set.failed(r, m, false);
            continue;
          }
          if (m.sqlState !== undefined && REPLICA_CONFLICT_STATES.has(m.sqlState)) continue;
          if (m.sqlState === "25006") {
            // read_only_sql_transaction: a write (nextval, INSERT … RETURNING, FOR UPDATE): the primary's.
            refused = true;
            break;
          }
          throw m;
        }
      }
    }
    return (await this.queryPrimary(cfg, refused)) as T[];
  }

  /**
   * A statement of `query` on the primary. With read-your-writes, one that
   * wrote (a replica refused it as a write, or its command is INSERT,
   * UPDATE, DELETE or MERGE) leaves a token, as `execute` does.
   */
  private async queryPrimary(cfg: { text: string; values: unknown[] }, wrote: boolean): Promise<Record<string, unknown>[]> {
    if (!this.readYourWrites) {
      try {
        const rows = last(await this.primaryPool.query(cfg.text, cfg.values)).rows;
        this.primaryOutcome(null);
        return rows;
      } catch (e) {
        const m = mapPgError(e);
        this.primaryOutcome(m);
        throw m;
      }
    }
    return this.onPrimaryClient(
      cfg,
      (r) => wrote || WRITE_COMMANDS.has(r.command),
      (r) => last(r).rows,
    );
  }

  async execute(sql: string, params: unknown[] = []): Promise<ExecuteResult> {
    const t = prepare(sql, params, "postgres");
    this.checkOpen();
    const cfg = queryConfig(t, params);
    if (this.readYourWrites)
      return this.onPrimaryClient(
        cfg,
        () => true,
        (r) => executeResult(last(r)),
      );
    try {
      const r = executeResult(last(await this.primaryPool.query(cfg.text, cfg.values)));
      this.primaryOutcome(null);
      return r;
    } catch (e) {
      const m = mapPgError(e);
      this.primaryOutcome(m);
      throw m;
    }
  }

  /**
   * Run a statement on a client checked out of the primary's pool and, when
   * `wrote` says it wrote, take the read-your-writes token on that same
   * client right after it (an autocommit statement has committed by then).
   */
  private async onPrimaryClient<R>(
    cfg: { text: string; values: unknown[] },
    wrote: (r: pg.QueryResult) => boolean,
    result: (r: pg.QueryResult | pg.QueryResult[]) => R,
  ): Promise<R> {
    const client = await this.connectPrimary();
    let broken = false;
    const onError = (): void => {
      broken = true;
    };
    client.on("error", onError);
    try {
      let r: pg.QueryResult | pg.QueryResult[];
      try {
        r = await client.query(cfg.text, cfg.values);
      } catch (e) {
        const m = mapPgError(e);
        if (m instanceof ConnectionLostError) broken = true;
        this.primaryOutcome(m);
        throw m;
      }
      this.primaryOutcome(null);
      if (wrote(last(r))) {
        if (!(await this.takeToken(client))) broken = true;
      }
      return result(r);
    } finally {
      client.off("error", onError);
      client.release(broken ? true : undefined);
    }
  }

  /**
   * Read the primary's WAL insert position on `client`, after a commit, as
   * the newest read-your-writes token. Should that fail, on another client
   * of the pool (the position is the server's, any session after the
   * COMMIT sees it at or past the commit); should that fail too, reads go
   * to the primary until a later token. Returns false when `client`'s
   * connection broke.
   */
  private async takeToken(client: pg.PoolClient): Promise<boolean> {
    const ticket = ++this.tokenTicket;
    let clientOk = true;
    try {
      this.noteToken((await client.query(TOKEN_SQL)).rows[0].lsn, ticket);
      return true;
    } catch (e) {
      clientOk = !(mapPgError(e) instanceof ConnectionLostError);
    }
    try {
      this.noteToken((await this.primaryPool.query(TOKEN_SQL)).rows[0].lsn, ticket);
    } catch {
      this.tokenLost = true;
      if (ticket > this.lostTicket) this.lostTicket = ticket;
    }
    return clientOk;
  }

  private noteToken(lsn: string, ticket: number): void {
    const t = parseLsn(lsn);
    if (t > this.token) this.token = t;
    // A token read after the failed one's commit covers it.
    if (this.tokenLost && ticket > this.lostTicket) this.tokenLost = false;
  }

  transaction<T>(fn: (tx: Database) => Promise<T>): Promise<T> {
    return this.runTransaction("BEGIN", fn, undefined);
  }

  [LOCK]<T>(name: string, fn: (tx: Database) => Promise<T>, timeoutMs: number | undefined): Promise<T> {
    // READ COMMITTED: every statement after the lock sees what the previous holder committed.
    return this.runTransaction("BEGIN ISOLATION LEVEL READ COMMITTED", fn, (conn) => takeAdvisoryLock(conn, name, timeoutMs));
  }

  /** A client of the primary's pool, checked out; a failure to connect is mapped (and noted for the replica routing). */
  private async connectPrimary(): Promise<pg.PoolClient> {
    try {
      return await this.primaryPool.connect();
    } catch (e) {
      const m = mapPgError(e);
      this.primaryOutcome(m);
      throw m;
    }
  }

  private async runTransaction<T>(
    begin: string,
    fn: (tx: Database) => Promise<T>,
    before: ((conn: PgTransactionConnection) => Promise<void>) | undefined,
  ): Promise<T> {
    this.checkOpen();
    const client = await this.connectPrimary();
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
        this.primaryOutcome(conn.lostError ?? null);
        throw lostBeforeCommit(e);
      }
      this.primaryOutcome(null);
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
          this.primaryOutcome(m);
          // Whether it committed is unknown: reads go to the primary until a later token.
          if (this.readYourWrites) {
            this.tokenLost = true;
            this.lostTicket = ++this.tokenTicket;
          }
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
      if (this.readYourWrites && !(await this.takeToken(client))) conn.broken = true;
      return result;
    } finally {
      client.off("error", onError);
      client.release(conn.broken ? true : undefined);
    }
  }

  /**
   * Each server's role, health, rotation and lag, as last seen (no query is
   * sent): the primary first, then the replicas in the order given.
   */
  replicaStatus(): PostgresServerStatus[] {
    const replicas = this.replicaSet?.status() ?? [];
    return [
      {
        url: this.primaryUrl,
        role: "primary",
        healthy: this.primaryHealthy,
        inRotation: !replicas.some((r) => r.inRotation),
        lagMs: 0,
        replayLsn: null,
        lastError: this.primaryError,
      },
      ...replicas,
    ];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.replicaSet?.stop();
    await Promise.all([this.primaryPool.end(), ...(this.replicaSet?.replicas.map((r) => r.pool.end()) ?? [])]);
  }
}

/** {@link PostgresAdapter.primary}: the adapter with every read on the primary. */
class PrimaryView implements Database, Lockable {
  readonly dialect = "postgres" as const;

  constructor(
    private readonly adapter: PostgresAdapter,
    private readonly read: (sql: string, params: unknown[]) => Promise<Record<string, unknown>[]>,
  ) {}

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.read(sql, params)) as T[];
  }

  execute(sql: string, params: unknown[] = []): Promise<ExecuteResult> {
    return this.adapter.execute(sql, params);
  }

  transaction<T>(fn: (tx: Database) => Promise<T>): Promise<T> {
    return this.adapter.transaction(fn);
  }

  [LOCK]<T>(name: string, fn: (tx: Database) => Promise<T>, timeoutMs: number | undefined): Promise<T> {
    return this.adapter[LOCK](name, fn, timeoutMs);
  }

  async close(): Promise<void> {
    throw new DatabaseUsageError("postgres", "db.primary is a view of its PostgresAdapter: close the adapter");
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
      return last(await this.client.query(t.text, pgParams(params))).rows;
    } catch (e) {
      throw this.fail(e);
    }
  }

  async execute(t: TranslatedSql, params: readonly unknown[]): Promise<ExecuteResult> {
    try {
      return executeResult(last(await this.client.query(t.text, pgParams(params))));
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
