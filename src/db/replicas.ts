/**
 * The read replicas of a {@link PostgresAdapter}: which of them take reads
 * now (the rotation), in round-robin order, and the loop that keeps that
 * knowledge current.
 *
 * Every replica has one timer (unref'd, so it never keeps a process alive):
 * a replica that answers is checked every `checkIntervalMs` (its recovery
 * state, replay LSN and lag, in one query); one that does not is probed with
 * back-off, 100 ms doubling to 10 s, until it answers again. A replica is in
 * rotation while it answers, is still in recovery, and (with
 * `maxReplicaLagMs`) its measured lag is within the limit. Each change in or
 * out of rotation is logged once.
 *
 * Nothing here is process-wide: every adapter has its own pools, timers and
 * state, so many instances of an application share a cluster through their
 * own pools.
 */
import type pg from "pg";
import { mapPgError } from "./error-map.js";
import type { DatabaseError } from "./errors.js";

/** Where the adapter reports replicas leaving and rejoining the rotation; the project's pino logger fits, as does `console`. */
export interface PostgresAdapterLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** One server of a {@link PostgresAdapter}, as `replicaStatus()` reports it. */
export interface PostgresServerStatus {
  /** The server's URL, its password masked. */
  url: string;
  role: "primary" | "replica";
  /** Whether its last connection (a statement, a probe) worked. */
  healthy: boolean;
  /** Whether reads outside transactions go to it now (the primary: when no replica is in rotation). */
  inRotation: boolean;
  /** Replay lag measured on the replica itself, in milliseconds; 0 for the primary; null until measured. */
  lagMs: number | null;
  /** The replica's last known `pg_last_wal_replay_lsn()`, as PostgreSQL writes it (`0/3000148`); null for the primary. */
  replayLsn: string | null;
  /** The last connection or probe error seen, its message; null when none. */
  lastError: string | null;
}

/** A WAL position `X/Y` (two hex halves) as one number. */
export function parseLsn(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!m) throw new Error(`not a WAL position: ${text}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 10_000;

/**
 * A replica's state in one query: in recovery, its replay and receive
 * positions, and the age of the last transaction it replayed (its lag, while
 * WAL it received waits to be replayed).
 */
const CHECK_SQL = `SELECT pg_is_in_recovery() AS recovery, pg_last_wal_replay_lsn()::text AS replay, pg_last_wal_receive_lsn()::text AS receive,
  (extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::float8 AS since_ms`;

/** Whether the replica has replayed up to a position it had received. */
const CONFIRM_SQL = "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done";

/** How long a lag over the limit is given to turn out a mere replay under way. */
const CONFIRM_WAIT_MS = 20;

/** Only the replay position, for read-your-writes. */
const REPLAY_SQL = "SELECT pg_is_in_recovery() AS recovery, pg_last_wal_replay_lsn()::text AS replay";

/** One read replica. */
export class Replica {
  /** Whether its last connection worked. */
  reachable = true;
  /** pg_is_in_recovery(); null until checked. */
  recovering: boolean | null = null;
  lagMs: number | null = null;
  replayLsn: bigint | null = null;
  replayText: string | null = null;
  /** When replayLsn was read (Date.now()). */
  replayAt = 0;
  lastError: string | null = null;
  /** When a failure took it out (Date.now()); a probe begun before then does not bring it back. */
  downAt = 0;
  backoffMs = FIRST_BACKOFF_MS;
  timer: NodeJS.Timeout | null = null;
  probing = false;
  refreshing: Promise<void> | null = null;
  /**
   * Whether it was in rotation at the last logged change, for logging each
   * transition once. True at first: a replica that the first check finds
   * fit joins silently.
   */
  wasIn = true;

  constructor(
    readonly pool: pg.Pool,
    /** Its URL, password masked. */
    readonly url: string,
  ) {}
}

interface CheckRow {
  recovery: boolean;
  replay: string | null;
  receive?: string | null;
  since_ms?: number | null;
}

export interface ReplicaSetOptions {
  maxLagMs: number | undefined;
  checkIntervalMs: number;
  log: PostgresAdapterLog | undefined;
}

/** The replicas of one adapter; see the module's comment. */
export class ReplicaSet {
  readonly replicas: Replica[];
  private next = 0;
  private stopped = false;

  constructor(
    servers: { pool: pg.Pool; url: string }[],
    private readonly opts: ReplicaSetOptions,
  ) {
    this.replicas = servers.map((s) => new Replica(s.pool, s.url));
  }

  /** Start the checks: the first at once. */
  start(): void {
    for (const r of this.replicas) this.schedule(r, 0);
  }

  /** Stop every timer; a check under way finishes without scheduling another. */
  stop(): void {
    this.stopped = true;
    for (const r of this.replicas) {
      if (r.timer) clearTimeout(r.timer);
      r.timer = null;
    }
  }

  /** Whether reads may go to `r` now. */
  inRotation(r: Replica): boolean {
    if (!r.reachable || r.recovering === false) return false;
    const max = this.opts.maxLagMs;
    return max === undefined || (r.lagMs !== null && r.lagMs <= max);
  }

  /** The replicas in rotation, round-robin: each call starts one further along. */
  candidates(): Replica[] {
    const n = this.replicas.length;
    const start = this.next;
    this.next = (this.next + 1) % n;
    const out: Replica[] = [];
    for (let i = 0; i < n; i++) {
      const r = this.replicas[(start + i) % n]!;
      if (this.inRotation(r)) out.push(r);
    }
    return out;
  }

  /** Whether any replica is in rotation. */
  anyInRotation(): boolean {
    return this.replicas.some((r) => this.inRotation(r));
  }

  /**
   * Whether `r` has replayed the WAL up to `token` (and is still in
   * recovery), from its cached replay position when that is recent and far
   * enough; else, when `mayRead`, from one query on it.
   */
  async reached(r: Replica, token: bigint, mayRead: boolean): Promise<{ ok: boolean; read: boolean }> {
    const fresh = Date.now() - r.replayAt < this.opts.checkIntervalMs;
    if (fresh && r.recovering === true && r.replayLsn !== null && r.replayLsn >= token) return { ok: true, read: false };
    if (!mayRead) return { ok: false, read: false };
    r.refreshing ??= this.refresh(r).finally(() => {
      r.refreshing = null;
    });
    await r.refreshing;
    return { ok: this.inRotation(r) && r.recovering === true && r.replayLsn !== null && r.replayLsn >= token, read: true };
  }

  private async refresh(r: Replica): Promise<void> {
    const started = Date.now();
    try {
      const row = (await r.pool.query<CheckRow>(REPLAY_SQL)).rows[0]!;
      if (r.downAt > started) return;
      this.change(r, () => {
        r.reachable = true;
        this.record(r, row, started);
      });
    } catch (e) {
      this.failed(r, mapPgError(e), false);
    }
  }

  private record(r: Replica, row: CheckRow, at: number): void {
    r.recovering = row.recovery;
    if (row.replay !== null) {
      r.replayText = row.replay;
      r.replayLsn = parseLsn(row.replay);
      r.replayAt = at;
    }
  }

  /**
   * The lag a check measured: 0 when the replica has replayed all the WAL
   * it received (or receives none), else the age of the last transaction it
   * replayed (null when it replayed none since it started). After an idle
   * time, WAL that has just arrived and is being replayed reads as a lag as
   * long as the idle time: when that is over the limit, the replica gets
   * {@link CONFIRM_WAIT_MS} to replay what it had received, and if it did, its
   * lag is no more than that wait.
   */
  private async lagOf(r: Replica, row: CheckRow): Promise<number | null> {
    if (!row.recovery) return null;
    if (row.receive == null || row.replay === null || parseLsn(row.receive) <= parseLsn(row.replay)) return 0;
    const lag = row.since_ms == null ? null : Math.max(0, Math.round(row.since_ms));
    const max = this.opts.maxLagMs;
    if (max === undefined || (lag !== null && lag <= max)) return lag;
    const t0 = Date.now();
    await new Promise((resolve) => setTimeout(resolve, CONFIRM_WAIT_MS));
    const done = (await r.pool.query<{ done: boolean }>(CONFIRM_SQL, [row.receive])).rows[0]!.done;
    return done ? Date.now() - t0 : lag;
  }

  /**
   * `r` failed: a connection error on a read, a check or a probe. Out of
   * rotation and probed with back-off (doubling on every failed probe).
   */
  failed(r: Replica, e: DatabaseError, fromProbe: boolean): void {
    // After close(): the pools are ending, nothing to take out or report.
    if (this.stopped) return;
    r.lastError = e.message;
    if (!r.reachable) {
      if (fromProbe) r.backoffMs = Math.min(r.backoffMs * 2, MAX_BACKOFF_MS);
      return;
    }
    this.change(r, () => {
      r.reachable = false;
      r.downAt = Date.now();
      r.backoffMs = FIRST_BACKOFF_MS;
      r.replayAt = 0;
      r.lagMs = null;
    });
    // The next probe after the first back-off, unless one is under way (it schedules the next itself).
    if (!r.probing && !this.stopped) {
      if (r.timer) clearTimeout(r.timer);
      this.schedule(r, r.backoffMs);
    }
  }

  /** Apply `fn` to `r`'s state, and log once when that takes it out of rotation or brings it back. */
  private change(r: Replica, fn: () => void): void {
    fn();
    const now = this.inRotation(r);
    if (now === r.wasIn) return;
    r.wasIn = now;
    const log = this.opts.log;
    if (!log || this.stopped) return;
    try {
      this.report(log, r, now);
    } catch {
      // A logger that fails must not fail the read that noticed the change.
    }
  }

  private report(log: PostgresAdapterLog, r: Replica, now: boolean): void {
    if (now) {
      log.info({ replica: r.url, lagMs: r.lagMs }, "read replica back in rotation");
    } else if (!r.reachable) {
      log.warn({ replica: r.url, error: r.lastError }, "read replica out of rotation: it cannot be reached; probing it with back-off");
    } else if (r.recovering === false) {
      log.warn({ replica: r.url }, "read replica out of rotation: it is not in recovery (promoted?)");
    } else if (r.lagMs === null) {
      log.warn({ replica: r.url, maxReplicaLagMs: this.opts.maxLagMs }, "read replica out of rotation until its lag is measured");
    } else {
      log.warn({ replica: r.url, lagMs: r.lagMs, maxReplicaLagMs: this.opts.maxLagMs }, "read replica out of rotation: its replay lag exceeds maxReplicaLagMs");
    }
  }

  private schedule(r: Replica, delayMs: number): void {
    if (this.stopped) return;
    r.timer = setTimeout(() => {
      r.timer = null;
      void this.check(r);
    }, delayMs);
    r.timer.unref();
  }

  /** A check (or probe): SELECT of the recovery state, replay position and lag; then the next one. */
  private async check(r: Replica): Promise<void> {
    if (this.stopped) return;
    r.probing = true;
    const started = Date.now();
    try {
      const row = (await r.pool.query<CheckRow>(CHECK_SQL)).rows[0]!;
      const lag = await this.lagOf(r, row);
      // A read saw it fail after this check began: the back-off decides.
      if (r.downAt <= started) {
        this.change(r, () => {
          r.reachable = true;
          r.backoffMs = FIRST_BACKOFF_MS;
          r.lagMs = lag;
          this.record(r, row, started);
        });
      }
    } catch (e) {
      this.failed(r, mapPgError(e), true);
    } finally {
      r.probing = false;
      this.schedule(r, r.reachable ? this.opts.checkIntervalMs : r.backoffMs);
    }
  }

  /** What `replicaStatus()` reports of each replica. */
  status(): PostgresServerStatus[] {
    return this.replicas.map((r) => ({
      url: r.url,
      role: "replica",
      healthy: r.reachable,
      inRotation: this.inRotation(r),
      lagMs: r.lagMs,
      replayLsn: r.replayText,
      lastError: r.lastError,
    }));
  }
}
