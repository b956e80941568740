/**
 * A `Database` that follows the data of a replicated SQLite file: it starts
 * on the file, lands on PostgreSQL at the cutover and comes back to SQLite
 * if the migration is rolled back, by itself, without losing, doubling or
 * reordering a write.
 *
 * Where the data lives (the target) is the phase of this file's source in
 * `sqlite2pg.state`: PostgreSQL in `cut-over`, `fallback`, `rolling-back`
 * and `done`; SQLite before the cutover and in `rolled-back`. It is read at
 * start, after every NOTIFY (`sqlite2pg_cutover`, sent in the cutover's
 * commit; `sqlite2pg_rollback`, in the rollback's; `sqlite2pg_state`, when
 * a freeze is undone or the rollback's starts), after every reconnect of
 * the listening connection, and every few milliseconds while a write is
 * held. When the state cannot be read, the marker files next to the
 * database say: the rollback's before the cutover's (a cutover marker can
 * outlive the way back), each only when it names this file's source.
 *
 * The side the data leaves refuses writes: SQLite with the cutover's freeze
 * triggers (until a rollback unfreezes it), PostgreSQL with the rollback's.
 * A refused write committed nothing. It is held, and every call made after
 * it, in one line until the move is decided: committed (the cutover: run
 * on PostgreSQL; the rollback: run on SQLite once SQLite takes writes
 * again) or undone (run where they were, which takes writes again). The
 * held calls then run one after another in the order they came, each
 * whole: a refused transaction is run again from its start. A call made
 * once the move is decided goes where the data is at once. Held longer
 * than `freezeWaitMs`, they fail with {@link FreezeTimeoutError}: nothing
 * of them committed anywhere. During the rollback's freeze, reads not in
 * line still go to PostgreSQL: its data is complete and cannot change.
 * Nothing runs on both: the daemon lifts one side's freeze only once the
 * other's is in place.
 *
 * The NOTIFY is a hint: it is heard on a connection of its own (never a
 * pooled one, which would lose its LISTEN), and the state is read again
 * after each one and after each reconnect; the reads are made one at a
 * time, so an older answer never undoes a newer one. A lost connection
 * during COMMIT on PostgreSQL is the adapter's
 * {@link CommitOutcomeUnknownError}, never run again.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import pg from "pg";
import { quoteIdent } from "../ident.js";
import { META } from "../sqlite/capture.js";
import type { Database, ExecuteResult } from "./database.js";
import { DatabaseUsageError, FreezeTimeoutError } from "./errors.js";
import { LOCK, type Lockable } from "./lock.js";
import { PostgresAdapter, type PostgresAdapterOptions } from "./postgres-adapter.js";
import { SqliteAdapter, type SqliteAdapterOptions } from "./sqlite-adapter.js";
import { isRefusal, markersSay, postgresTakesWrites, type Target, targetOf } from "./whereabouts.js";

/** Options of {@link SwitchingDatabase}. */
export interface SwitchingDatabaseOptions {
  /** The replicated SQLite file (or the SQLite adapter's options). */
  sqlite: string | SqliteAdapterOptions;
  /** The PostgreSQL the daemon replicates into: its URL (or the adapter's options; replicas are for reads after the cutover). */
  pg: string | PostgresAdapterOptions;
  /** The schema the tables are in; default: the one `sqlite2pg init` recorded. Statements run with it as `search_path`. */
  schema?: string;
  /** How long a write refused by a freeze (the cutover's or the rollback's) is held for the move to be decided (default 10 000 ms). */
  freezeWaitMs?: number;
  /** Told when the target changes: "postgres" at the cutover, "sqlite" on the way back. */
  onSwitch?: (to: Target) => void;
}

const CHANNELS = ["sqlite2pg_cutover", "sqlite2pg_rollback", "sqlite2pg_state"];
/** How often the state is read while a write is held. */
const HOLD_POLL_MS = 20;

type Op<T> = (db: Database) => Promise<T>;

/** A {@link Database} that follows the data from SQLite to PostgreSQL at the cutover, and back at a rollback. */
export class SwitchingDatabase implements Database, Lockable {
  private readonly sqliteDb: SqliteAdapter;
  private readonly sqlitePath: string;
  private pgDb: PostgresAdapter | null = null;
  private target: Target = "sqlite";
  private readonly freezeWaitMs: number;
  private started: Promise<void> | null = null;
  private sourceId: string | null = null;
  private schema: string | null;
  /** The phase the state said at the last look (null: it could not be read, or there is none yet). */
  private phase: string | null = null;
  private listener: pg.Client | null = null;
  private closed = false;
  /** The end of the line of calls held for a move (null: no line, calls run side by side). */
  private line: Promise<void> | null = null;
  /** A wake-up for the hold loop (a NOTIFY). */
  private nudge: (() => void) | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private warmed = false;
  /** Whether a held write is waiting for the move to be decided (calls then join the line). */
  private holding = false;
  /** Set while a call of the line runs: a call it makes itself does not wait behind it. */
  private readonly inside = new AsyncLocalStorage<boolean>();
  /** The looks at where the data is, one at a time (see {@link locate}). */
  private locating: Promise<void> = Promise.resolve();

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

  /** Whether a write refused by a freeze is held for the move of the data to be decided: a call made now waits in line behind it. */
  get held(): boolean {
    return this.holding && this.line !== null;
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

  /** A transaction on the current target. One that a freeze refused is run again, from its start, where the data went. */
  async transaction<T>(fn: (tx: Database) => Promise<T>): Promise<T> {
    return this.run((db) => db.transaction(fn));
  }

  /**
   * `DatabaseManager.distributedLock` on the current target: SQLite's write
   * lock, or PostgreSQL's advisory lock. A locked section a freeze refused
   * committed nothing and runs again, whole, under the lock of the side the
   * data went to.
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
    await this.listener?.end().catch(() => undefined);
    this.listener = null;
    await this.locating;
    await this.pgDb?.close();
    await this.sqliteDb.close();
  }

  private async start(): Promise<void> {
    await this.source();
    // Bounded (a connect timeout): PostgreSQL down or unreachable leaves the handle where the markers say, listening again later.
    await this.listen().catch(() => this.scheduleReconnect());
    // Listening, it has read the state; without it, the markers say.
    if (!this.listener) await this.locate();
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
      else void this.locate().catch(() => undefined);
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
    await this.locate().catch(() => undefined); // no state yet (before `init`): nothing to follow
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.closed && !this.listener) this.listen().catch(() => this.scheduleReconnect());
    }, 1000);
    this.reconnectTimer.unref();
  }

  /**
   * Look where the data is and go there. One look at a time, in the order
   * asked: a NOTIFY and the hold loop may both look, and an answer read
   * before a move must never be applied after a newer one.
   */
  private locate(): Promise<void> {
    const look = this.locating.then(() => this.find());
    this.locating = look.catch(() => undefined);
    return look;
  }

  /**
   * One look: the phase when the state can be read (it wins over any
   * marker; a phase this version does not know leaves it where it is), else
   * the markers.
   */
  private async find(): Promise<void> {
    if (this.closed) return;
    this.phase = await this.readPhase().catch(() => null);
    let to: Target | null;
    if (this.phase !== null) to = targetOf(this.phase);
    else {
      const m = markersSay(this.sqlitePath, await this.source());
      if (m?.schema) this.schema ??= m.schema;
      to = m?.to ?? null;
    }
    if (to) await this.switchTo(to);
  }

  /** The phase of this file's source, on the listening connection; null when it cannot be read or there is none. */
  private async readPhase(): Promise<string | null> {
    const c = this.listener;
    if (!c) return null;
    const id = await this.source();
    if (!id) return null;
    const r = await c.query<{ phase: string; target_schema: string }>("SELECT phase, target_schema FROM sqlite2pg.state WHERE source_id = $1", [id]);
    const st = r.rows[0];
    if (!st) return null;
    this.schema ??= st.target_schema;
    return st.phase;
  }

  /** Change the target (only {@link find} does, one look at a time). */
  private async switchTo(to: Target): Promise<void> {
    if (this.target === to) return;
    if (to === "postgres") await this.postgres();
    if (this.closed) return;
    this.target = to;
    this.opts.onSwitch?.(to);
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

  /** The adapter of the target. */
  private current(): Database {
    return this.target === "postgres" ? this.pgDb! : this.sqliteDb;
  }

  /**
   * Run a call where the data lives. While a write refused by a freeze is
   * held, calls wait in line behind it (see {@link inLine}).
   */
  private async run<T>(op: Op<T>): Promise<T> {
    if (this.closed) throw new DatabaseUsageError(this.target, "the database is closed");
    await this.ready();
    // Once the move is decided, a new call goes where the data is at once: the calls still in line were
    // made before it and none of them is acknowledged, so nothing the caller ordered is overtaken.
    // A call made from inside a call of the line runs where it is.
    if (this.line && this.holding && !this.inside.getStore()) return this.inLine(op);
    try {
      return await op(this.current());
    } catch (e) {
      // Refused by a freeze: nothing of it committed. Made from inside a call of the line, the refusal
      // goes to that call, which is run again whole (in line, this one would wait for it, and it for this).
      if (!isRefusal(e) || this.inside.getStore()) throw e;
      this.holding = true;
      return this.inLine(op);
    }
  }

  /**
   * The line: while a freeze refuses writes and the move is undecided,
   * calls wait here, and then run one at a time, in the order they came,
   * so writes keep their order across the switch. Each waits at most
   * `freezeWaitMs` for the decision. Once the line is empty, calls run side
   * by side again.
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
      for (let again = false; ; again = true) {
        if (this.holding) await this.decided(until, again);
        const db = this.current();
        try {
          return await this.inside.run(true, () => op(db));
        } catch (e) {
          if (!isRefusal(e)) throw e;
          this.holding = true; // refused again (a new freeze): wait for that one too
        }
      }
    } finally {
      done();
      if (this.line === mine) this.line = null;
    }
  }

  /**
   * Wait until the target takes writes: SQLite not frozen (the cutover
   * undone, or a rollback finished), or PostgreSQL not frozen for a
   * rollback (the cutover committed, or the rollback undone). Past
   * `until`, a {@link FreezeTimeoutError}. `pause`: a call just refused
   * again waits one look before it is tried again.
   */
  private async decided(until: number, pause: boolean): Promise<void> {
    const since = Date.now();
    for (let look = !pause; ; look = true) {
      if (this.closed) throw new DatabaseUsageError(this.target, "the database was closed while a write was held for a move of the data");
      if (look) {
        await this.locate().catch(() => undefined);
        if (await this.takesWrites()) {
          this.holding = false;
          return;
        }
      }
      if (Date.now() >= until) throw this.timedOut(Date.now() - since);
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

  /**
   * Whether the target takes writes now: SQLite by its own record of the
   * freeze; PostgreSQL by the phase (its freeze is installed and dropped in
   * the transactions that enter and leave `rolling-back`). With no state to
   * read, PostgreSQL is tried: a refusal is held again.
   */
  private async takesWrites(): Promise<boolean> {
    if (this.target === "sqlite") return !(await this.frozen());
    return this.phase === null || postgresTakesWrites(this.phase);
  }

  /** The error of a call held past `freezeWaitMs`, saying which move did not end. */
  private timedOut(waitedMs: number): FreezeTimeoutError {
    const limit = `freezeWaitMs (${this.freezeWaitMs} ms)`;
    if (this.target === "postgres") {
      return new FreezeTimeoutError(
        `PostgreSQL stayed frozen for the rollback longer than ${limit}: the rollback neither finished nor was undone; nothing was written`,
        waitedMs,
        "postgres",
      );
    }
    if (this.phase === "rolled-back") {
      return new FreezeTimeoutError(`the rollback committed but SQLite stayed frozen longer than ${limit}; nothing was written`, waitedMs);
    }
    return new FreezeTimeoutError(`SQLite stayed frozen for the cutover longer than ${limit} and the cutover did not commit; nothing was written`, waitedMs);
  }

  /** While a write is held on SQLite: open a PostgreSQL connection ahead, so the first call after the switch does not pay for it. */
  private warm(): void {
    if (this.warmed || !this.schema || this.target !== "sqlite") return;
    this.warmed = true;
    void this.postgres()
      .then((db) => db.query("SELECT 1"))
      .catch(() => {
        this.warmed = false;
      });
  }

  /** Whether SQLite refuses writes (frozen for the cutover, and after it until a rollback unfreezes it). */
  private async frozen(): Promise<boolean> {
    const r = await this.sqliteDb.query(`SELECT 1 AS f FROM ${quoteIdent(META)} WHERE key = 'sentinel_seq'`);
    return r.length > 0;
  }
}
