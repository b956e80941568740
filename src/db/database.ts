/**
 * The `Database` every backend implements, and the transaction handle the
 * three share: savepoints for nested transactions, one gate per handle so
 * that statements wait while a transaction on that handle is open, and the
 * detection of a statement that would wait for its own transaction.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { DatabaseUsageError, ParameterCountError, type Dialect } from "./errors.js";
import { translateCached, type TranslatedSql } from "./placeholders.js";

/** What `execute` reports. */
export interface ExecuteResult {
  /** Rows inserted, updated or deleted (rows matched by an UPDATE, on every backend); 0 for other statements. */
  rowsAffected: number;
  /** The id of the inserted row: SQLite's rowid, MySQL's AUTO_INCREMENT value; never on PostgreSQL (use RETURNING). */
  insertId?: number | bigint;
}

/**
 * A database: SQLite, PostgreSQL or MySQL behind one interface, with `?`
 * placeholders and the same JavaScript values on all three.
 */
export interface Database {
  /** Which backend this is. */
  readonly dialect: Dialect;
  /** Run a statement and return its rows (none for a statement that returns none). */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Run a statement and report the rows it changed and the inserted id. */
  execute(sql: string, params?: unknown[]): Promise<ExecuteResult>;
  /**
   * Run `fn` in a transaction on one connection: committed when `fn`
   * resolves, rolled back when it throws (the error is rethrown). `fn`
   * receives the transaction's own handle; a `transaction` on that handle is
   * a savepoint.
   */
  transaction<T>(fn: (tx: Database) => Promise<T>): Promise<T>;
  /** Close the connections; a transaction under way finishes first. */
  close(): Promise<void>;
}

/** The translation of a statement, or a {@link ParameterCountError} before anything is sent. */
export function prepare(sql: string, params: readonly unknown[], dialect: Dialect): TranslatedSql {
  if (typeof sql !== "string") throw new DatabaseUsageError(dialect, "the statement must be a string");
  if (!Array.isArray(params)) throw new DatabaseUsageError(dialect, "the parameters must be an array");
  const t = translateCached(sql, dialect);
  if (t.params !== params.length) throw new ParameterCountError(dialect, t.params, params.length, sql);
  return t;
}

/**
 * Lets statements through while no transaction holds it; while one does,
 * they wait for it to end, in the order they came.
 */
export class Gate {
  private held: Promise<void> | null = null;

  get busy(): boolean {
    return this.held !== null;
  }

  /** Wait until no transaction holds the gate. */
  async pass(): Promise<void> {
    while (this.held) await this.held;
  }

  /** Run `fn` holding the gate. */
  async hold<T>(fn: () => Promise<T>): Promise<T> {
    while (this.held) await this.held;
    let open!: () => void;
    this.held = new Promise<void>((resolve) => {
      open = resolve;
    });
    try {
      return await fn();
    } finally {
      this.held = null;
      open();
    }
  }
}

/** The innermost open transaction of the current async context. */
const current = new AsyncLocalStorage<TransactionHandle>();

/**
 * Refuse a statement on `owner` (an adapter or a transaction handle) that
 * would wait for a transaction it is itself running inside: it would wait
 * forever.
 */
export function refuseSelfWait(owner: object, gate: Gate, dialect: Dialect): void {
  if (!gate.busy) return;
  for (let t = current.getStore(); t !== undefined && !t.finished; t = t.owner instanceof TransactionHandle ? t.owner : undefined) {
    if (t.owner === owner) {
      throw new DatabaseUsageError(
        dialect,
        "a statement on a handle whose transaction is open, from inside that transaction: it would wait for itself; run it on the transaction's handle (tx)",
      );
    }
  }
}

/** Run `fn(tx)` with `tx` as the current transaction of its async context. */
export function runInside<T>(tx: TransactionHandle, fn: (tx: Database) => Promise<T>): Promise<T> {
  return current.run(tx, () => fn(tx));
}

/** One connection inside a transaction, as the transaction handle drives it. */
export interface TransactionConnection {
  readonly dialect: Dialect;
  query(t: TranslatedSql, params: readonly unknown[]): Promise<Record<string, unknown>[]>;
  execute(t: TranslatedSql, params: readonly unknown[]): Promise<ExecuteResult>;
  /** Run a statement of the library's own (SAVEPOINT …), without parameters. */
  command(sql: string): Promise<void>;
  /** Whether the connection is known to be gone (nothing more can run on it). */
  readonly broken: boolean;
}

/** The `tx` a transaction's callback receives; `transaction` on it is a savepoint. */
export class TransactionHandle implements Database {
  /** Set when the transaction (or savepoint) ended: the handle refuses statements from then on. */
  finished = false;
  private readonly gate = new Gate();

  constructor(
    private readonly conn: TransactionConnection,
    /** The handle this transaction was opened on: an adapter, or the outer transaction for a savepoint. */
    readonly owner: object,
    private readonly depth: number,
  ) {}

  get dialect(): Dialect {
    return this.conn.dialect;
  }

  private async ready(): Promise<void> {
    this.checkOpen();
    if (this.gate.busy) {
      refuseSelfWait(this, this.gate, this.dialect);
      await this.gate.pass();
      this.checkOpen();
    }
  }

  private checkOpen(): void {
    if (this.finished) throw new DatabaseUsageError(this.dialect, "the transaction has ended: its handle (tx) cannot run statements any more");
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    const t = prepare(sql, params, this.dialect);
    await this.ready();
    return (await this.conn.query(t, params)) as T[];
  }

  async execute(sql: string, params: unknown[] = []): Promise<ExecuteResult> {
    const t = prepare(sql, params, this.dialect);
    await this.ready();
    return this.conn.execute(t, params);
  }

  async transaction<T>(fn: (tx: Database) => Promise<T>): Promise<T> {
    await this.ready();
    return this.gate.hold(async () => {
      this.checkOpen();
      const name = `sqlite2pg_sp${this.depth + 1}`;
      await this.conn.command(`SAVEPOINT ${name}`);
      const inner = new TransactionHandle(this.conn, this, this.depth + 1);
      let result: T;
      try {
        result = await runInside(inner, fn);
      } catch (e) {
        inner.finished = true;
        if (!this.conn.broken) {
          try {
            await this.conn.command(`ROLLBACK TO SAVEPOINT ${name}`);
            await this.conn.command(`RELEASE SAVEPOINT ${name}`);
          } catch {
            // The whole transaction is gone (MySQL rolls it back on a deadlock): the outer COMMIT reports it.
          }
        }
        throw e;
      }
      inner.finished = true;
      await this.conn.command(`RELEASE SAVEPOINT ${name}`);
      return result;
    });
  }

  async close(): Promise<void> {
    throw new DatabaseUsageError(this.dialect, "a transaction handle is not closed: its transaction ends when the callback returns");
  }
}
