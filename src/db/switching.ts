/**
 * A `Database` that starts on the replicated SQLite file and lands on
 * PostgreSQL at the cutover, by itself, without losing, doubling or
 * reordering a write.
 *
 * How it knows where the data lives (the target):
 *
 * - the state in PostgreSQL (`sqlite2pg.state.phase` of this file's source):
 *   `cut-over` or `done` means PostgreSQL, for good. It is read at start,
 *   after every NOTIFY (`sqlite2pg_cutover`, sent in the cutover's commit;
 *   `sqlite2pg_state`, sent by `unfreeze`), after every reconnect of the
 *   listening connection, and every few milliseconds while a write is held;
 * - the marker file the cutover writes next to the database;
 * - SQLite itself: a write refused with the freeze message never committed.
 *
 * While SQLite is frozen, the refused write, and every call made after it,
 * is held in order until the cutover commits (then they run on PostgreSQL,
 * one after another in the order they came, each whole: a refused
 * transaction is run again from its start) or is undone (then they run on
 * SQLite again); a call made once the data is in PostgreSQL goes there at
 * once. Held longer than `freezeWaitMs`, they fail with
 * {@link FreezeTimeoutError}: nothing of them committed anywhere. Once on
 * PostgreSQL it never reads SQLite again.
 *
 * The NOTIFY is a hint: it is heard on a connection of its own (never a
 * pooled one, which would lose its LISTEN), and the state is read again
 * after each one and after each reconnect. A lost connection during COMMIT
 * on PostgreSQL is the adapter's {@link CommitOutcomeUnknownError}, never
 * run again.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { existsSync, readFileSync } from "node:fs";
import pg from "pg";
import { quoteIdent } from "../ident.js";
import { META } from "../sqlite/capture.js";
import { markerPath } from "../sqlite/freeze.js";
import type { Database, ExecuteResult } from "./database.js";
import { DatabaseUsageError, FreezeTimeoutError } from "./errors.js";
import { isFrozenError } from "./frozen.js";
import { LOCK, type Lockable } from "./lock.js";
import { PostgresAdapter, type PostgresAdapterOptions } from "./postgres-adapter.js";
import { SqliteAdapter, type SqliteAdapterOptions } from "./sqlite-adapter.js";

/** Options of {@link SwitchingDatabase}. */
export interface SwitchingDatabaseOptions {
  /** The replicated SQLite file (or the SQLite adapter's options). */
  sqlite: string | SqliteAdapterOptions;
  /** The PostgreSQL the daemon replicates into: its URL (or the adapter's options; replicas are for reads after the cutover). */
  pg: string | PostgresAdapterOptions;
  /** The schema the tables are in; default: the one `sqlite2pg init` recorded. Statements run with it as `search_path`. */
  schema?: string;
  /** How long a write refused by the freeze is held for the cutover to commit or be undone (default 10 000 ms). */
  freezeWaitMs?: number;
  /** Told when the target changes. */
  onSwitch?: (to: Target) => void;
}

/** Where the data lives. */
type Target = "sqlite" | "postgres";

/** The phases (of `sqlite2pg.state`) in which PostgreSQL holds the data: the cutover committed. */
const CUT_OVER_PHASES = new Set(["cut-over", "done"]);
const CHANNELS = ["sqlite2pg_cutover", "sqlite2pg_state"];
/** How often the state is read while a write is held. */
const HOLD_POLL_MS = 20;

type Op<T> = (db: Database) => Promise<T>;

/** A {@link Database} that follows the cutover from SQLite to PostgreSQL. */
export class SwitchingDatabase implements Database, Lockable {
  private readonly sqliteDb: SqliteAdapter;
  private readonly sqlitePath: string;
  private pgDb: PostgresAdapter | null = null;
  private target: Target = "sqlite";
  private readonly freezeWaitMs: number;
  private started: Promise<void> | null = null;
  private sourceId: string | null = null;
  private schema: string | null;
  private listener: pg.Client | null = null;
  private closed = false;
  /** The end of the line of calls held for the cutover (null: no line, calls run side by side). */
  private line: Promise<void> | null = null;
  /** A wake-up for the hold loop (a NOTIFY). */
  private nudge: (() => void) | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private warmed = false;
  /** Whether a held write is waiting for the cutover to be decided (calls then join the line). */
  private holding = false;
  /** Set while a call of the line runs: a call it makes itself does not wait behind it. */
  private readonly inside = new AsyncLocalStorage<boolean>();
  private switching: Promise<void> | null = null;

  constructor(private readonly opts: SwitchingDatabaseOptions) {
    if (!opts || opts.sqlite === undefined || opts.pg === undefined) throw new DatabaseUsageError("sqlite", "SwitchingDatabase needs { sqlite, pg }");
    const s: SqliteAdapterOptions = typeof opts.sqlite === "string" ? { file: opts.sqlite } : opts.sqlite;
    this.sqlitePath = s.file;
    this.sqliteDb = new SqliteAdapter(s);
    this.freezeWaitMs = opts.freezeWaitMs ?? 10_000;
    this.schema = opts.schema ?? null;
  }

  /** The backend statements go to now. */
  get dialect(): Target {
    return this.target;
  }

  /** Connect and read where the data lives; called by the first statement, or ahead of it. */
  ready(): Promise<void> {
    this.started ??= this.start();
    return this.started;
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    return this.run((db) => db.query<T>(sql, params));
  }

  async execute(sql: string, params: unknown[] = []): Promise<ExecuteResult> {
    return this.run((db) => db.execute(sql, params));
  }

  /** A transaction on the current target. One that SQLite refused with the freeze is run again, from its start, where the data went. */
  async transaction<T>(fn: (tx: Database) => Promise<T>): Promise<T> {
    return this.run((db) => db.transaction(fn));
  }

  /**
   * `DatabaseManager.distributedLock` on the current target: SQLite's write
   * lock, then PostgreSQL's advisory lock. A locked section SQLite refused
   * with the freeze committed nothing and runs again, whole, under the
   * PostgreSQL lock.
   */
  [LOCK]<T>(name: string, fn: (tx: Database) => Promise<T>, timeoutMs: number | undefined): Promise<T> {
    return this.run((db) => (db as unknown as Lockable)[LOCK](name, fn, timeoutMs));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.nudge?.(); // a held call wakes up and fails: the database is closed
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    await this.started?.catch(() => undefined);
    await this.switching?.catch(() => undefined);
    await this.listener?.end().catch(() => undefined);
    this.listener = null;
    await this.pgDb?.close();
    await this.sqliteDb.close();
  }

  private async start(): Promise<void> {
    await this.source();
    // Bounded (a connect timeout): PostgreSQL down or unreachable leaves the handle on SQLite, listening again later.
    await this.listen().catch(() => this.scheduleReconnect());
    if (this.markerSaysPostgres()) await this.switchTo("postgres");
  }

  /**
   * The source id `sqlite2pg init` stored in the file, or null before
   * `init` ran: an application may start with this library first; until
   * capture is installed there is nothing to follow, and it works on SQLite.
   */
  private async source(): Promise<string | null> {
    if (this.sourceId) return this.sourceId;
    const rows = await this.sqliteDb.query<{ value: string }>(`SELECT value FROM ${quoteIdent(META)} WHERE key = 'source_id'`).catch(() => []);
    this.sourceId = rows[0]?.value ?? null;
    return this.sourceId;
  }

  /**
   * Whether the cutover marker next to the file is this source's (a marker
   * left by an earlier migration of the file, under another source id, is
   * not): then PostgreSQL holds the data, in the marker's schema.
   */
  private markerSaysPostgres(): boolean {
    const path = markerPath(this.sqlitePath);
    if (!existsSync(path)) return false;
    try {
      const m = JSON.parse(readFileSync(path, "utf8")) as { source_id?: unknown; schema?: unknown };
      if (!this.sourceId || m.source_id !== this.sourceId) return false;
      if (typeof m.schema === "string") this.schema ??= m.schema;
      return true;
    } catch {
      return false; // being written: the state or the next look decides
    }
  }

  /** The options of the primary, as the adapter gets them. */
  private pgOptions(): PostgresAdapterOptions {
    return typeof this.opts.pg === "string" ? { primary: this.opts.pg } : this.opts.pg;
  }

  /** The dedicated listening connection: LISTEN, then read the state (a NOTIFY missed while away is caught by the read). */
  private async listen(): Promise<void> {
    const given = this.pgOptions();
    const server = typeof given.primary === "string" ? { connectionString: given.primary } : given.primary;
    // The pool's settings (ssl, timeouts, a password function) apply to this connection too.
    const c = new pg.Client({
      ...given.pool,
      ...server,
      connectionTimeoutMillis: server.connectionTimeoutMillis ?? given.pool?.connectionTimeoutMillis ?? 5000,
    });
    c.on("error", () => undefined);
    c.on("end", () => {
      if (this.listener === c) {
        this.listener = null;
        this.scheduleReconnect();
      }
    });
    c.on("notification", () => {
      // A held call's loop reads the state itself when woken; otherwise read it here.
      if (this.nudge) this.nudge();
      else void this.refresh().catch(() => undefined);
    });
    try {
      await c.connect();
      for (const ch of CHANNELS) await c.query(`LISTEN ${quoteIdent(ch)}`);
    } catch (e) {
      await c.end().catch(() => undefined);
      throw e;
    }
    if (this.closed) {
      await c.end().catch(() => undefined);
      return;
    }
    this.listener = c;
    await this.refresh().catch(() => undefined); // no state yet (before `init`): nothing to follow
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.closed && !this.listener) this.listen().catch(() => this.scheduleReconnect());
    }, 1000);
    this.reconnectTimer.unref();
  }

  /** Read the phase: PostgreSQL once the cutover committed. */
  private async refresh(): Promise<void> {
    const c = this.listener;
    if (!c || this.target === "postgres") return;
    const id = await this.source();
    if (!id) return;
    const r = await c.query<{ phase: string; target_schema: string }>("SELECT phase, target_schema FROM sqlite2pg.state WHERE source_id = $1", [id]);
    const st = r.rows[0];
    if (!st) return;
    this.schema ??= st.target_schema;
    if (CUT_OVER_PHASES.has(st.phase)) await this.switchTo("postgres");
  }

  /** Switch once, however many readers of the state see the cutover at the same time. */
  private switchTo(to: "postgres"): Promise<void> {
    if (this.target === to) return Promise.resolve();
    this.switching ??= (async () => {
      await this.postgres();
      if (this.closed) return;
      this.target = to;
      this.opts.onSwitch?.(to);
    })().finally(() => {
      this.switching = null;
    });
    return this.switching;
  }

  /** The PostgreSQL adapter, its statements in the replicated schema (never a guessed one). */
  private async postgres(): Promise<PostgresAdapter> {
    if (this.pgDb) return this.pgDb;
    if (this.closed) throw new DatabaseUsageError("postgres", "the database is closed");
    const schema = this.schema;
    if (!schema) {
      throw new DatabaseUsageError("postgres", "the cutover committed but the schema the data is in is unknown (the state could not be read): pass { schema }");
    }
    const given = this.pgOptions();
    // libpq's options: a backslash escapes spaces (and itself) inside a value.
    const searchPath = `-c search_path=${quoteIdent(schema).replace(/[\\ ]/g, (c) => `\\${c}`)}`;
    const pool = { ...given.pool, options: [given.pool?.options, searchPath].filter(Boolean).join(" ") };
    this.pgDb = new PostgresAdapter({ ...given, pool });
    return this.pgDb;
  }

  /**
   * Run a call where the data lives. While a write SQLite refused with the
   * freeze is held, calls wait in line behind it (see {@link inLine}).
   */
  private async run<T>(op: Op<T>): Promise<T> {
    if (this.closed) throw new DatabaseUsageError(this.target, "the database is closed");
    await this.ready();
    // Once the data is in PostgreSQL, a new call goes there at once: the calls still in line were made
    // before it and none of them is acknowledged, so nothing the caller ordered is overtaken. The same
    // holds once the freeze is undone. A call made from inside a call of the line runs where it is.
    if (this.target === "postgres") return op(this.pgDb!);
    if (this.line && this.holding && !this.inside.getStore()) return this.inLine(op);
    try {
      return await op(this.sqliteDb);
    } catch (e) {
      if (!isFrozenError(e)) throw e;
      // Refused by the freeze: nothing of it committed.
      this.holding = true;
      return this.inLine(op);
    }
  }

  /**
   * The line: while SQLite is frozen and the cutover undecided, calls wait
   * here, and then run one at a time, in the order they came, so writes
   * keep their order across the switch. Each waits at most `freezeWaitMs`
   * for the decision. Once the line is empty, calls run side by side again.
   */
  private async inLine<T>(op: Op<T>): Promise<T> {
    const before = this.line ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((resolve) => {
      done = resolve;
    });
    this.line = mine;
    const until = Date.now() + this.freezeWaitMs;
    this.warm();
    try {
      await before;
      for (;;) {
        if (this.holding) await this.decided(until);
        const db: Database = this.target === "postgres" ? this.pgDb! : this.sqliteDb;
        try {
          return await this.inside.run(true, () => op(db));
        } catch (e) {
          if (db !== this.sqliteDb || !isFrozenError(e)) throw e;
          this.holding = true; // frozen again (a new attempt): wait for that one too
        }
      }
    } finally {
      done();
      if (this.line === mine) this.line = null;
    }
  }

  /**
   * Wait until SQLite takes writes again (the cutover was undone) or the
   * cutover committed (the target is PostgreSQL); past `until`, a
   * {@link FreezeTimeoutError}.
   */
  private async decided(until: number): Promise<void> {
    const since = Date.now();
    for (;;) {
      if (this.closed) throw new DatabaseUsageError(this.target, "the database was closed while a write was held for the cutover");
      await this.refresh().catch(() => undefined);
      if (this.target !== "postgres" && this.markerSaysPostgres()) await this.switchTo("postgres");
      if (this.target === "postgres" || !(await this.frozen())) {
        this.holding = false;
        return;
      }
      if (Date.now() >= until) {
        throw new FreezeTimeoutError(
          `SQLite stayed frozen for the cutover longer than freezeWaitMs (${this.freezeWaitMs} ms) and the cutover did not commit; nothing was written`,
          Date.now() - since,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(HOLD_POLL_MS, Math.max(1, until - Date.now())));
        this.nudge = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.nudge = null;
    }
  }

  /** While a write is held: open a PostgreSQL connection ahead, so the first call after the switch does not pay for it. */
  private warm(): void {
    if (this.warmed || !this.schema) return;
    this.warmed = true;
    void this.postgres()
      .then((db) => db.query("SELECT 1"))
      .catch(() => {
        this.warmed = false;
      });
  }

  /** Whether SQLite still refuses writes for the cutover. */
  private async frozen(): Promise<boolean> {
    const r = await this.sqliteDb.query(`SELECT 1 AS f FROM ${quoteIdent(META)} WHERE key = 'sentinel_seq'`);
    return r.length > 0;
  }
}
