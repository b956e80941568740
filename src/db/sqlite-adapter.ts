/**
 * SQLite through better-sqlite3: one connection in WAL mode per adapter.
 *
 * better-sqlite3 is synchronous and a transaction's callback is not, so the
 * adapter serializes: while a transaction is open, every other statement
 * of the adapter waits for it to end (none runs inside it by accident), and
 * transactions run one after another. Waiting for another process's write
 * lock never blocks the event loop: the connection's busy timeout is 0 and
 * a statement or `BEGIN IMMEDIATE` refused with SQLITE_BUSY is tried again
 * after a short sleep, up to `busyTimeoutMs`.
 */
import BetterSqlite3 from "better-sqlite3";
import { Gate, TransactionHandle, prepare, refuseSelfWait, runInside, type Database, type ExecuteResult, type TransactionConnection } from "./database.js";
import { mapSqliteError } from "./error-map.js";
import { DatabaseUsageError, LockTimeoutError, TransactionAbortedError, type DatabaseError } from "./errors.js";
import { LOCK, type Lockable } from "./lock.js";
import type { TranslatedSql } from "./placeholders.js";
import { integerValue, sqliteParams, sqliteRow } from "./values.js";

/** Options of {@link SqliteAdapter}. */
export interface SqliteAdapterOptions {
  /** The database file (created if missing). */
  file: string;
  /** How long a statement or a transaction waits for another connection's write lock before failing with `LockTimeoutError`. Default 5000. */
  busyTimeoutMs?: number;
  /**
   * SQLite's `synchronous` setting, set explicitly so durability never
   * depends on which connection first switched the file to WAL (the driver
   * leaves that one at FULL and every later one at NORMAL). `"full"` (the
   * default): a committed write survives a power loss. `"normal"`: faster
   * commits; in WAL mode a power loss may lose the last ones, never corrupt.
   */
  synchronous?: "full" | "normal";
}

const STATEMENT_CACHE = 200;
const WRITE_VERBS = new Set(["insert", "update", "delete", "replace"]);

function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_BUSY") && code !== "SQLITE_BUSY_SNAPSHOT";
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A {@link Database} on a SQLite file. */
export class SqliteAdapter implements Database, Lockable {
  readonly dialect = "sqlite" as const;
  private readonly db: BetterSqlite3.Database;
  private readonly gate = new Gate();
  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  private readonly busyTimeoutMs: number;
  private closed = false;

  constructor(opts: SqliteAdapterOptions) {
    if (!opts || typeof opts.file !== "string" || opts.file === "") throw new DatabaseUsageError("sqlite", "SqliteAdapter needs { file }");
    this.busyTimeoutMs = opts.busyTimeoutMs ?? 5000;
    if (opts.synchronous !== undefined && opts.synchronous !== "full" && opts.synchronous !== "normal") {
      throw new DatabaseUsageError("sqlite", `synchronous must be "full" or "normal", not ${String(opts.synchronous)}`);
    }
    try {
      // busy_timeout 0: waits for the lock are the adapter's own, asynchronous (see above).
      this.db = new BetterSqlite3(opts.file, { timeout: 0 });
      this.db.pragma("journal_mode = WAL");
      this.db.pragma(`synchronous = ${opts.synchronous === "normal" ? "NORMAL" : "FULL"}`);
    } catch (e) {
      throw mapSqliteError(e);
    }
  }

  private statement(text: string): BetterSqlite3.Statement {
    let s = this.statements.get(text);
    if (s === undefined) {
      s = this.db.prepare(text);
      s.safeIntegers(true);
      if (this.statements.size >= STATEMENT_CACHE) this.statements.delete(this.statements.keys().next().value!);
      this.statements.set(text, s);
    }
    return s;
  }

  /** Run a statement now (synchronously); the caller holds or passed the gate. */
  runQuery(t: TranslatedSql, params: readonly unknown[]): Record<string, unknown>[] {
    const s = this.statement(t.text);
    const p = sqliteParams(params);
    if (!s.reader) {
      s.run(...p);
      return [];
    }
    const rows = s.all(...p) as Record<string, unknown>[];
    for (const r of rows) sqliteRow(r);
    return rows;
  }

  runExecute(t: TranslatedSql, params: readonly unknown[]): ExecuteResult {
    const s = this.statement(t.text);
    const r = s.run(...sqliteParams(params));
    // sqlite3_changes() keeps the count of the last INSERT/UPDATE/DELETE: only those statements report it.
    const rowsAffected = WRITE_VERBS.has(t.verb) ? Number(r.changes) : 0;
    if ((t.verb === "insert" || t.verb === "replace") && rowsAffected > 0) {
      return { rowsAffected, insertId: integerValue(BigInt(r.lastInsertRowid)) };
    }
    return { rowsAffected };
  }

  get inTransaction(): boolean {
    return this.db.inTransaction;
  }

  /** Run a library statement (BEGIN, COMMIT, SAVEPOINT …). */
  command(sql: string): void {
    this.statement(sql).run();
  }

  private checkOpen(): void {
    if (this.closed) throw new DatabaseUsageError("sqlite", "the database is closed");
  }

  /**
   * Run `op` outside any transaction: after the open one ends, and again while another process holds the write lock.
   * The common case (no transaction open, the lock free) runs and returns synchronously, without a promise of its own:
   * the caller's `async` method is the one promise per statement.
   */
  private autocommit<T>(op: () => T): T | Promise<T> {
    this.checkOpen();
    if (this.gate.busy) return this.afterGate(op);
    try {
      return op();
    } catch (e) {
      if (!isBusy(e)) throw mapSqliteError(e);
    }
    return this.retryBusy(op);
  }

  private async afterGate<T>(op: () => T): Promise<T> {
    refuseSelfWait(this, this.gate, "sqlite");
    await this.gate.pass();
    this.checkOpen();
    try {
      return op();
    } catch (e) {
      if (!isBusy(e)) throw mapSqliteError(e);
    }
    return this.retryBusy(op);
  }

  /** Busy: hold the gate while trying again, so no transaction of this adapter starts in between. */
  private retryBusy<T>(op: () => T): Promise<T> {
    return this.gate.hold(async () => {
      this.checkOpen();
      return this.whileBusy(op, this.busyTimeoutMs, undefined);
    });
  }

  /** Try `op` until it is not refused with SQLITE_BUSY, sleeping in between, for up to `timeoutMs` (undefined: no limit). */
  private async whileBusy<T>(op: () => T, timeoutMs: number | undefined, lockName: string | undefined): Promise<T> {
    const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
    let pause = 1;
    for (;;) {
      try {
        return op();
      } catch (e) {
        if (!isBusy(e)) throw mapSqliteError(e);
        const left = deadline - Date.now();
        if (left <= 0) {
          const mapped = mapSqliteError(e);
          const what = lockName === undefined ? "the database's write lock" : `distributed lock "${lockName}" (the database's write lock)`;
          throw new LockTimeoutError("sqlite", `${what} was not granted within ${timeoutMs} ms: ${mapped.message}`, { code: mapped.code, lockName, cause: e });
        }
        await sleep(Math.min(pause, left));
        pause = Math.min(pause * 2, 10);
        this.checkOpen();
      }
    }
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    const t = prepare(sql, params, "sqlite");
    return this.autocommit(() => this.runQuery(t, params)) as T[] | Promise<T[]>;
  }

  async execute(sql: string, params: unknown[] = []): Promise<ExecuteResult> {
    const t = prepare(sql, params, "sqlite");
    return this.autocommit(() => this.runExecute(t, params));
  }

  transaction<T>(fn: (tx: Database) => Promise<T>): Promise<T> {
    return this.runTransaction(fn, this.busyTimeoutMs, undefined);
  }

  [LOCK]<T>(name: string, fn: (tx: Database) => Promise<T>, timeoutMs: number | undefined): Promise<T> {
    return this.runTransaction(fn, timeoutMs, name);
  }

  private async runTransaction<T>(fn: (tx: Database) => Promise<T>, timeoutMs: number | undefined, lockName: string | undefined): Promise<T> {
    this.checkOpen();
    refuseSelfWait(this, this.gate, "sqlite");
    return this.gate.hold(async () => {
      this.checkOpen();
      await this.whileBusy(() => this.command("BEGIN IMMEDIATE"), timeoutMs, lockName);
      const conn = new SqliteTransactionConnection(this);
      const tx = new TransactionHandle(conn, this, 0);
      let result: T;
      try {
        result = await runInside(tx, fn);
      } catch (e) {
        tx.finished = true;
        this.rollbackQuietly();
        throw e;
      }
      tx.finished = true;
      if (!this.db.inTransaction) {
        throw new TransactionAbortedError("sqlite", "the transaction was rolled back by SQLite after an error inside it; nothing of it committed", {
          code: conn.lastError?.code ?? "SQLITE_ABORT",
          cause: conn.lastError,
        });
      }
      try {
        this.command("COMMIT");
      } catch (e) {
        this.rollbackQuietly();
        throw mapSqliteError(e);
      }
      return result;
    });
  }

  private rollbackQuietly(): void {
    if (!this.db.inTransaction) return;
    try {
      this.command("ROLLBACK");
    } catch {
      // Nothing more to undo: the connection reports the transaction gone.
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.gate.pass();
    this.statements.clear();
    this.db.close();
  }
}

/** The adapter's one connection, inside a transaction. */
class SqliteTransactionConnection implements TransactionConnection {
  readonly dialect = "sqlite" as const;
  readonly broken = false;
  lastError: DatabaseError | undefined;

  constructor(private readonly adapter: SqliteAdapter) {}

  private run<T>(op: () => T): T {
    if (!this.adapter.inTransaction) {
      throw new TransactionAbortedError("sqlite", "the transaction was rolled back by SQLite after an error inside it; the statement was not run", {
        code: this.lastError?.code ?? "SQLITE_ABORT",
        cause: this.lastError,
      });
    }
    try {
      return op();
    } catch (e) {
      this.lastError = mapSqliteError(e);
      throw this.lastError;
    }
  }

  async query(t: TranslatedSql, params: readonly unknown[]): Promise<Record<string, unknown>[]> {
    return this.run(() => this.adapter.runQuery(t, params));
  }

  async execute(t: TranslatedSql, params: readonly unknown[]): Promise<ExecuteResult> {
    return this.run(() => this.adapter.runExecute(t, params));
  }

  async command(sql: string): Promise<void> {
    this.run(() => this.adapter.command(sql));
  }
}
