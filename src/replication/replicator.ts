/**
 * The replication daemon's one state machine. Phases, in order:
 *
 *   new        `init` ran: capture is installed, nothing copied yet
 *   snapshot   the plan is stored and the tables exist; rows are copied in
 *              chunks, each committed with its table's progress
 *   catch-up   every table copied, keys and indexes built; the changes made
 *              since the snapshot began are being applied
 *   streaming  caught up once; each change is applied as it comes
 *   cutover-catch-up
 *              the cutover is asked for: the last changes before the freeze
 *   frozen     SQLite refuses writes; draining up to the sentinel
 *   cut-over   committed in Postgres: the application writes there now
 *   done       validated, marker written, hook run
 *
 * The phase and positions live in `sqlite2pg.state`, written in the same
 * transaction as the data, so `kill -9` at any instant and a restart
 * converge to the source's contents. The allowed transitions are one table
 * in ./phase.ts, and its `transition` is the only writer of the phase: here
 * through `setPhase` (conditional on the phase this daemon believes in),
 * and in the cutover's commit, `init`, `unfreeze` and the cutover's aborts.
 *
 * Why one file over 400 lines: the class is the state machine — the run
 * loop and the phase steps share the connections, the state and the stop
 * and wake-up signals, and splitting the loop from them would only pass
 * all of that around. What stands alone lives beside it: the phase table
 * (phase.ts), the source's lock (lock.ts), the file's identity
 * (source-file.ts), the prune schedule (prune.ts), the begin step
 * (begin.ts), lag reporting (lag.ts), the WAL watch (wal-watch.ts), the
 * options (options.ts), and each phase's work (snapshot.ts, stream.ts,
 * cutover.ts, schema-changes.ts).
 */
import type BetterSqlite3 from "better-sqlite3";
import { type WalWatch, watchWal } from "./wal-watch.js";
import { DEFAULT_CHECKPOINT_FRAMES, WalCheckpointer } from "./checkpoint.js";
import type { ReplicatorOptions, ReplicatorTunables } from "./options.js";

export type { ReplicatorOptions } from "./options.js";
import type pg from "pg";
import { setTimeout as sleep } from "node:timers/promises";
import { Sqlite2pgError, errorKind, usageError, internalError, isRetryableError, targetError } from "../errors.js";
import type { Logger } from "../observe/logger.js";
import type { MigrationPlan } from "../plan/plan.js";
import { type ChangelogReader, pruneChanges } from "../sqlite/capture.js";
import { connectPg, withPg } from "../postgres/pg.js";
import type { TransformedValue } from "../convert/row-encoder.js";
import {
  ensureStateSchema,
  loadProgress,
  loadState,
  recordError,
  requestCutoverInState,
  requestInState,
  type ReplicationState,
  type TableProgress,
} from "./state.js";
import { selfIdentity } from "./signals.js";
import { isRetryable } from "./retry.js";
import { DEFAULT_CHUNK_BYTES } from "../sqlite/reader.js";
import { snapshotTable } from "./snapshot.js";
import { Applier } from "./stream.js";
import { CUTOVER_RETRY, runCutover, type CutoverHost } from "./cutover.js";
import { keyBuilds, schemaFingerprint } from "./keys.js";
import { SchemaChanges, SchemaMoved } from "./schema-changes.js";
import { buildMissingUniques } from "./schema-ddl.js";
import { freezeInfo, unfreeze } from "../sqlite/freeze.js";
import { crashPoint } from "../observe/crash-points.js";
import { Phase, PhaseRaceError, transition } from "./phase.js";
import { SourceLock } from "./lock.js";
import { LagMeter, type LiveNumbers } from "./lag.js";
import { beginSnapshot } from "./begin.js";
import { inTransaction } from "../postgres/transaction.js";
import { PruneSchedule } from "./prune.js";
import { fileIdentity, openReplicatedSource, sourceIdOf } from "./source-file.js";
import { Fallback, type FallbackHost } from "../fallback/fallback.js";

export { Phase } from "./phase.js";

/** The phases of the way back: the fallback's loop runs instead of the forward one. */
const FALLBACK_PHASES: readonly Phase[] = [Phase.fallback, Phase.rollingBack, Phase.rolledBack];
/** The fallback looks for new changes in PostgreSQL at least this often (ms). */
const FALLBACK_POLL_MS = 200;

/** Errors the daemon stops on instead of retrying: waiting would not fix them, and going on could apply changes wrongly. */
const FATAL_CODES = ["SCHEMA_CHANGED", "FILE_REPLACED", "CUTOVER_VALIDATION", "HOOK_FAILED", "ROLLBACK_VALIDATION"];

/** How often the daemon looks at the WAL's frame count (a read of the -shm header), ms. */
const CHECKPOINT_CHECK_MS = 10;
/** Phases in which the application writes SQLite, so the daemon checkpoints its WAL (see checkpoint.ts). */
const CHECKPOINT_PHASES: readonly string[] = [Phase.new, Phase.snapshot, Phase.catchUp, Phase.streaming, Phase.cutoverCatchUp];

/** Default of ReplicatorOptions.batchDelayMs (ms). */
const DEFAULT_BATCH_DELAY_MS = 25;

/** Tables the snapshot copies side by side (each on its own connection and prefetch thread): one per core of a small machine. */
const SNAPSHOT_LANES = 2;

/** The replication daemon: snapshot, catch-up, streaming. */
export class Replicator {
  private db: BetterSqlite3.Database | null = null;
  private writer: BetterSqlite3.Database | null = null;
  private client: pg.Client | null = null;
  private lock: SourceLock | null = null;
  private watcher: WalWatch | null = null;
  private changelog: ChangelogReader | null = null;
  private applier: Applier | null = null;
  private state: ReplicationState | null = null;
  private sourceId = "";
  private stopRequested = false;
  private nudged = false;
  /** A NOTIFY on the state channel arrived: re-read the cutover request now, not at the next poll. */
  private stateDirty = false;
  private lastRequestCheck = 0;
  /** After a cutover aborted at --max-freeze: not before this time (back-off), and how many attempts so far. */
  private cutoverRetryAt = 0;
  private cutoverAttempts = 0;
  private active = false;
  /** Exit status the run ends with (0, or 1 when the cutover's validation differs). */
  exitStatus = 0;
  private wake: (() => void) | null = null;
  /** Ends the wait between batches (batchDelayMs) early: a stop, or a request for the cutover or the way back. */
  private hurry: (() => void) | null = null;
  /** Whether the last batch took every change there was (see batchDelayMs). */
  private lastCaughtUp = false;
  private schema: SchemaChanges | null = null;
  /** Device and inode of the file the connections have open. */
  private fileId = "";
  private readonly prune: PruneSchedule;
  private readonly checkpointer: WalCheckpointer;
  private checkpointTimer: NodeJS.Timeout | null = null;
  /** The way back, once the phase is fallback or later. */
  private fallback: Fallback | null = null;
  readonly transformed: TransformedValue[] = [];
  private readonly log: Logger;

  constructor(private readonly opts: ReplicatorOptions) {
    this.log = opts.log;
    this.prune = new PruneSchedule(opts.pruneIntervalMs ?? 60_000, opts.pruneBacklog ?? 500_000, opts.log);
    this.checkpointer = new WalCheckpointer(`${opts.sqlite}-shm`, opts.checkpointFrames ?? DEFAULT_CHECKPOINT_FRAMES, opts.log);
  }

  /**
   * Checkpoint the application's WAL when enough frames wait, before its own
   * commits would (checkpoint.ts). Not while a freeze or the way back is
   * under way (the application does not write SQLite then, and a freeze is
   * kept short), nor inside a transaction of the daemon's writing connection.
   */
  checkpointWal(): { busy: boolean; frames: number; copied: number } | null {
    const w = this.writer;
    if (!w || !this.state || !this.active || w.inTransaction || !CHECKPOINT_PHASES.includes(this.state.phase)) return null;
    try {
      const r = this.checkpointer.maybe(w);
      if (r) this.opts.events?.checkpoint?.(r.copied);
      return r;
    } catch (e) {
      // The loop reports a file that is gone or broken; a checkpoint is only tried again.
      this.log.debug({ err: (e as Error).message }, "no checkpoint of the WAL");
      return null;
    }
  }

  /** Checkpoints run, and the frames they copied into the database file. */
  get checkpoints(): { checkpoints: number; frames: number } {
    return { checkpoints: this.checkpointer.checkpoints, frames: this.checkpointer.framesCopied };
  }

  /** The current state (after `start`). */
  get current(): ReplicationState {
    if (!this.state) throw internalError("NOT_STARTED", "the replicator was used before start()");
    return this.state;
  }

  /** Ask the loop to stop after the current batch. Safe from a signal handler. */
  requestStop(): void {
    this.stopRequested = true;
    this.hurry?.();
    this.wake?.();
  }

  /**
   * Ask for the cutover (SIGUSR2, `--cutover`, the library): written to the
   * state at once, on a connection of its own — the request lives there
   * only, so `unfreeze` withdraws it for good, and the active daemon sees it
   * (NOTIFY, or its next poll) even when this process is a standby. During
   * the snapshot it waits until caught up.
   */
  async requestCutover(): Promise<void> {
    const id = this.sourceId || sourceIdOf(this.opts.sqlite);
    const phase = await withPg(this.opts.pg, (c) => requestCutoverInState(c, id));
    if (phase === null)
      throw usageError("NO_STATE", `no replication state for source ${id} in this Postgres database`, {
        hint: "run `sqlite2pg init` with the same --pg first",
      });
    this.requestChanged();
  }

  /**
   * Ask for the way back (SIGUSR1, `sqlite2pg rollback`) or for the end of
   * the fallback (`sqlite2pg finish`): recorded in the state, like the
   * cutover's request, so it survives a restart and reaches the active
   * daemon wherever it runs.
   */
  async requestFallbackEnd(what: "rollback" | "finish", validate?: "counts" | "full"): Promise<Phase> {
    const id = this.sourceId || sourceIdOf(this.opts.sqlite);
    const phase = await withPg(this.opts.pg, async (c) => {
      await ensureStateSchema(c);
      return requestInState(c, id, what, validate);
    });
    if (phase === null)
      throw usageError("NO_STATE", `no replication state for source ${id} in this Postgres database`, {
        hint: "run `sqlite2pg init` with the same --pg first",
      });
    this.requestChanged();
    return phase;
  }

  /**
   * A request in the state changed (cutover, the way back, a NOTIFY): the
   * loop re-reads it now, ending a wait between batches.
   */
  private requestChanged(): void {
    this.stateDirty = true;
    this.hurry?.();
    this.nudge();
  }

  /** Wake the loop now (a WAL change). */
  nudge(): void {
    // A nudge while a batch runs is remembered: the next idle returns at once.
    if (this.wake) this.wake();
    else this.nudged = true;
  }

  /**
   * Open connections, take the source's advisory lock (a second daemon waits
   * here as a standby), and load the state. Idempotent.
   */
  async start(): Promise<void> {
    if (this.client) return;
    this.sourceId = this.openFile();
    await this.takeLock();
    this.client = await connectPg(this.opts.pg, "sqlite2pg");
    await ensureStateSchema(this.client);
    this.state = await loadState(this.client, this.sourceId);
    if (!this.state) {
      throw usageError("NO_STATE", `no replication state for source ${this.sourceId} in this Postgres database`, {
        hint: "run `sqlite2pg init` with the same --pg first",
      });
    }
    await this.becomeActive();
    // Compared against what the plan last saw, stored with the state, so a
    // schema change (or VACUUM) made while no daemon ran is caught as well.
    this.schema = new SchemaChanges(
      {
        log: this.log,
        sourceId: this.sourceId,
        db: () => this.db!,
        writer: () => this.writer!,
        client: () => this.client!,
        state: () => this.current,
        reload: () => this.reload(),
        planChanged: () => {
          this.applier = null;
        },
        chunkRows: this.opts.chunkRows ?? 20000,
        fixText: this.opts.fixText ?? false,
        transformed: this.transformed,
        stopping: () => this.stopRequested,
        limits: () => ({ rows: this.opts.chunkRows ?? 20000, bytes: this.opts.chunkBytes }),
        progress: () => this.markProgress(),
      },
      this.state.schemaVersion ?? Number(this.db!.pragma("schema_version", { simple: true })),
      this.state.schemaFingerprint ?? schemaFingerprint(this.db!),
    );
    if (this.opts.watch !== false) this.watcher = watchWal(this.opts.sqlite, () => this.nudge());
    if (this.opts.pollIntervalMs !== 0) {
      this.checkpointTimer = setInterval(() => this.checkpointWal(), CHECKPOINT_CHECK_MS);
      this.checkpointTimer.unref();
    }
  }

  /** Open the reading and the writing connection to the file, and remember which file they are. Returns its source id. */
  private openFile(): string {
    this.db?.close();
    this.writer?.close();
    this.db = this.writer = null;
    this.changelog = null; // read by live() between turns: never a closed connection
    const f = openReplicatedSource(this.opts.sqlite);
    ({ db: this.db, writer: this.writer, changelog: this.changelog, fileId: this.fileId } = f);
    this.applier = null;
    this.fallback?.reset();
    return f.sourceId;
  }

  /** The path names another file than the one open (see ./source-file.ts): reopen, and check it is the same database. */
  private checkFile(): void {
    if (fileIdentity(this.opts.sqlite) === this.fileId) return;
    this.log.warn({ sqlite: this.opts.sqlite }, "the SQLite file was replaced on disk: reopening it and checking it is the database being replicated");
    this.openFile();
    this.changelog!.snapshot(() => this.changelog!.verifyCheckpoint(this.sourceId, this.current.appliedSeq, this.current.appliedToken));
  }

  /** Take the source's lock (again): a standby waits here. */
  private async takeLock(): Promise<void> {
    await this.lock?.release().catch(() => undefined);
    this.lock = new SourceLock(
      this.opts.pg,
      this.sourceId,
      this.log,
      () => this.requestChanged(),
      () => {
        this.waiting = true;
        this.opts.events?.role?.("standby");
      },
    );
    try {
      await this.lock.take();
    } finally {
      this.waiting = false;
    }
    this.markProgress();
  }

  /**
   * Holding the lock: record who this daemon is (pid, host, process start
   * time) in the state, so `sqlite2pg cutover` can tell it from a stale pid
   * file's pid or a standby; the first time, let the CLI write its pid file.
   */
  private async becomeActive(): Promise<void> {
    const me = selfIdentity();
    await this.client!.query("UPDATE sqlite2pg.state SET daemon_pid = $2, daemon_host = $3, daemon_start = $4, daemon_since = now() WHERE source_id = $1", [
      this.sourceId,
      me.pid,
      me.host,
      me.start,
    ]);
    if (!this.active) {
      this.active = true;
      this.opts.onActive?.();
    }
    this.opts.events?.role?.("active");
  }

  /**
   * Re-read the cutover request from the state: at once after a NOTIFY,
   * else at most once per poll interval. The state is the only place a
   * request lives, so a withdrawal (`unfreeze`) is final.
   */
  private async refreshRequest(): Promise<void> {
    const every = this.opts.pollIntervalMs ?? 1000;
    if (!this.stateDirty && Date.now() - this.lastRequestCheck < every) return;
    this.stateDirty = false;
    this.lastRequestCheck = Date.now();
    if (!this.client) throw targetError("PG_RECONNECTING", "no connection to PostgreSQL: reconnecting", { retryable: true });
    const r = await this.client.query("SELECT cutover_requested_at FROM sqlite2pg.state WHERE source_id = $1", [this.sourceId]);
    const at: Date | null = r.rows[0]?.cutover_requested_at ?? null;
    const before = this.current.cutoverRequestedAt;
    this.state = { ...this.current, cutoverRequestedAt: at };
    if (at && !before) {
      this.log.info({ phase: this.current.phase }, this.current.phase === Phase.streaming ? "cutover requested" : "cutover requested: queued until caught up");
    } else if (!at && before) {
      this.log.info({ phase: this.current.phase }, "cutover request withdrawn");
      this.cutoverRetryAt = 0;
      this.cutoverAttempts = 0;
    }
  }

  /** Change the phase, from the one this daemon believes in (see ./phase.ts). */
  async setPhase(to: Phase, extra: { sql: string; params: unknown[] } | null = null): Promise<void> {
    const from = this.current.phase;
    // Conditional on the phase this daemon believes in: `unfreeze` (or another
    // daemon) may have moved it meanwhile, and then this change must not land.
    try {
      await transition(this.client!, this.sourceId, from, to);
    } catch (e) {
      if (e instanceof PhaseRaceError) await this.reload();
      throw e;
    }
    if (extra) await this.client!.query(extra.sql, extra.params);
    this.state = (await loadState(this.client!, this.sourceId))!;
    this.log.info({ phase: to, from }, `phase ${to}`);
  }

  private plan(): MigrationPlan {
    return this.current.plan!;
  }

  /** Phase new → snapshot (see ./begin.ts). */
  private async begin(): Promise<void> {
    await beginSnapshot({
      sqlite: this.opts.sqlite,
      db: this.db!,
      writer: this.writer!,
      client: this.client!,
      sourceId: this.sourceId,
      state: this.current,
      schema: this.schema!,
      setPhase: (to, extra) => this.setPhase(to, extra),
    });
    await this.reload();
  }

  /**
   * Phase snapshot: copy what is left, then build keys and indexes and move
   * to catch-up. Tables are copied side by side, largest first, on
   * {@link SNAPSHOT_LANES} connections (each with its own prefetch thread),
   * as long as the schema stays as planned: a schema change lets the tables
   * under way finish, is mirrored, and the copy goes on.
   */
  private async snapshot(): Promise<boolean> {
    const lanes: pg.Client[] = [];
    try {
      for (;;) {
        this.checkFile();
        await this.schema!.reconcile(); // a table or column added now is copied too
        const plan = this.plan();
        const progress = await loadProgress(this.client!, this.sourceId);
        this.snapshotProgress = progress;
        this.markProgress();
        const queue = progress.filter((x) => !x.done && plan.tables.some((t) => t.source.name === x.table));
        if (queue.length === 0) break;
        queue.sort((a, b) => b.total - b.rows - (a.total - a.rows));
        const n = Math.min(SNAPSHOT_LANES, queue.length);
        while (lanes.length < n - 1) lanes.push(await connectPg(this.opts.pg, "sqlite2pg"));
        const version = this.db!.pragma("schema_version", { simple: true });
        let failed = false;
        let stopped = false;
        const lane = async (client: pg.Client) => {
          for (let p = queue.shift(); p && !failed && !stopped; p = queue.shift()) {
            // A table is started only under the schema it was planned for.
            if (this.db!.pragma("schema_version", { simple: true }) !== version) return;
            const t = plan.tables.find((x) => x.source.name === p.table)!;
            this.log.info({ table: t.source.name, rows: p.rows, total: p.total }, p.rows ? "snapshot: resuming table" : "snapshot: copying table");
            const done = await snapshotTable(this.db!, client, plan, t, p, {
              sourceId: this.sourceId,
              chunkRows: this.opts.chunkRows ?? 20000,
              chunkBytes: this.opts.chunkBytes,
              fixText: this.opts.fixText ?? false,
              transformed: this.transformed,
              stopping: () => this.stopRequested || failed,
              onChunk: (rows) => {
                p.rows += rows;
                this.markProgress();
              },
              limits: () => ({ rows: this.opts.chunkRows ?? 20000, bytes: this.opts.chunkBytes }),
              sqlitePath: this.opts.sqlite,
              // The table's keys are built as it is marked done, while other tables are still copied.
              finish: async (cl) => {
                const keys = await this.missingKeys(cl, { ...plan, tables: [t] });
                if (keys.length > 0) await cl.query("SET LOCAL maintenance_work_mem = '256MB'");
                for (const k of keys) await cl.query(k.sql);
              },
            });
            if (!done) stopped = true;
          }
        };
        const results = await Promise.allSettled(
          [this.client!, ...lanes.slice(0, n - 1)].map((c) =>
            lane(c).catch((e: unknown) => {
              failed = true; // the other lanes stop after their chunk in flight
              throw e;
            }),
          ),
        );
        const err = results.find((r) => r.status === "rejected");
        if (err) throw (err as PromiseRejectedResult).reason;
        if (stopped) return false;
      }
      await this.buildKeys(lanes);
    } finally {
      await Promise.all(lanes.map((c) => c.end().catch(() => undefined)));
    }
    this.snapshotProgress = null;
    this.state = (await loadState(this.client!, this.sourceId))!;
    return true;
  }

  /** The keys, indexes and CHECKs of the end of the snapshot (see keyBuilds) that do not exist yet. */
  private async missingKeys(c: pg.ClientBase, plan: MigrationPlan): Promise<{ table: string; name: string; sql: string }[]> {
    const builds = keyBuilds(plan);
    if (builds.length === 0) return [];
    // One query for all of them: the names among the schema's relations and constraints.
    const r = await c.query<{ name: string }>(
      `SELECT relname AS name FROM pg_class WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) AND relname = ANY($2::text[])
       UNION SELECT conname FROM pg_constraint WHERE connamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) AND conname = ANY($2::text[])`,
      [plan.schema, builds.map((k) => k.name)],
    );
    const exist = new Set(r.rows.map((x) => x.name));
    return builds.filter((k) => !exist.has(k.name));
  }

  /**
   * The keys, indexes and CHECKs of the end of the snapshot, side by side on
   * this daemon's connection and `more`, each in its own transaction: one a
   * crash left built is not built again. Then phase catch-up.
   */
  private async buildKeys(more: pg.Client[]): Promise<void> {
    const plan = this.plan();
    const c = this.client!;
    // Building keys and indexes on large tables can take long: progress, not a stall.
    await this.longRunning(async () => {
      const todo = await this.missingKeys(c, plan);
      // Tables in turn, so that side-by-side builds rarely wait for each other's table.
      const byTable = new Map<string, typeof todo>();
      for (const k of todo) byTable.set(k.table, [...(byTable.get(k.table) ?? []), k]);
      const order: typeof todo = [];
      for (let i = 0; order.length < todo.length; i++) for (const ks of byTable.values()) if (ks[i]) order.push(ks[i]!);
      await Promise.all(
        [c, ...more].map(async (l) => {
          for (let k = order.shift(); k; k = order.shift()) {
            await inTransaction(l, async () => {
              await l.query("SET LOCAL maintenance_work_mem = '256MB'");
              await l.query(k.sql);
            });
          }
        }),
      );
      crashPoint("key-build");
      await this.setPhase(Phase.catchUp);
    });
  }

  /**
   * Apply one batch (catch-up or streaming) and prune what is applied.
   * Returns the number of changes applied (0: caught up).
   */
  async streamOnce(): Promise<number> {
    this.checkFile();
    let r: { changes: number; lastSeq: number; lastToken: number | null };
    for (let attempt = 0; ; attempt++) {
      // Schema changes are mirrored first, and a table copy they started is finished.
      if (!(await this.schema!.reconcile())) return 0;
      this.applier ??= new Applier(this.db!, this.plan(), {
        fixText: this.opts.fixText ?? false,
        transformed: this.transformed,
        schemaGuard: () => this.schema!.guard(),
      });
      try {
        const t0 = performance.now();
        r = await this.applyGrowing(this.opts.batchSize ?? 10000);
        if (r.changes > 0) this.opts.events?.applied?.(r.changes, (performance.now() - t0) / 1000);
        break;
      } catch (e) {
        if (!(e instanceof SchemaMoved) || attempt >= 5) throw e; // the batch was read under another schema: nothing applied
      }
    }
    this.markProgress();
    if (r.changes > 0)
      this.state = { ...this.current, appliedSeq: r.lastSeq, appliedToken: r.lastToken, changesApplied: this.current.changesApplied + r.changes };
    if (r.changes > 0 && this.current.phase === Phase.catchUp) crashPoint("catch-up-batch-committed");
    const caughtUp = r.changes < (this.opts.batchSize ?? 10000) && !this.applier!.cutByBytes;
    this.lastCaughtUp = caughtUp;
    if (this.current.phase === Phase.catchUp && caughtUp) await this.caughtUp();
    else if (this.schema!.uniquesPending && this.current.phase !== Phase.frozen && caughtUp) {
      // A caught-up point: unique keys of tables copied again after a schema change.
      this.schema!.uniquesPending = false;
      await this.longRunning(() => buildMissingUniques(this.client!, this.plan(), this.log));
    }
    this.prune.maybe(this.writer!, this.current.appliedSeq);
    return r.changes;
  }

  /**
   * Catch-up → streaming. Postgres now equals one state of SQLite (the one
   * the last batch read), so unique keys can be built: during the snapshot a
   * unique value moving from a copied row to a row not yet copied is, for a
   * while, in both. One that still fails (collation semantics differ) is
   * left out with a warning: the data stays exact.
   */
  private async caughtUp(): Promise<void> {
    await this.longRunning(() => buildMissingUniques(this.client!, this.plan(), this.log));
    this.schema!.uniquesPending = false;
    await this.setPhase(Phase.streaming);
  }

  /**
   * Apply one batch; if Postgres finds a unique key or foreign key broken
   * at commit, the batch probably ends inside a source transaction that
   * swapped values (the other half is in the next changes): apply again
   * with twice as many changes, until it covers the whole transaction. A
   * real violation still fails once the batch has grown past every change.
   */
  private async applyGrowing(limit: number): Promise<{ changes: number; lastSeq: number; lastToken: number | null }> {
    // The byte budget grows with the batch: a budget that stayed put would end every retry at the same change.
    const bytes = this.opts.batchBytes ?? DEFAULT_CHUNK_BYTES;
    for (let n = limit, b = bytes; ; n *= 2, b *= 2) {
      try {
        return await this.applier!.applyBatch(this.changelog!, this.client!, this.sourceId, this.current.appliedSeq, n, this.current.appliedToken, b);
      } catch (e) {
        const code = (e as { code?: string }).code;
        const pending = this.changelog!.newestSeq() - this.current.appliedSeq;
        if ((code !== "23505" && code !== "23503") || (n >= pending && !this.applier!.cutByBytes)) throw e;
        this.markProgress(); // each larger attempt is progress: a long backlog is not a stall
        this.log.debug({ batch: n, sqlstate: code }, "constraint broken inside the batch; applying a larger batch");
      }
    }
  }

  /**
   * Bring Postgres up to date once, by hand: the phases still to do, then
   * batches until the changelog has nothing new. For tests and tools that
   * drive the daemon step by step (`pollIntervalMs: 0`).
   */
  async syncOnce(): Promise<number> {
    await this.start();
    if (this.current.phase === Phase.new) await this.begin();
    if (this.current.phase === Phase.snapshot) await this.snapshot();
    let total = 0;
    for (let n = await this.streamOnce(); n > 0; n = await this.streamOnce()) total += n;
    return total;
  }

  /**
   * Run the cutover now, by hand (tests, tools). Returns the exit status, or
   * -1 (aborted by `unfreeze`) or {@link CUTOVER_RETRY} (undone at --max-freeze).
   */
  async cutoverNow(): Promise<number> {
    await this.start();
    await this.client!.query("UPDATE sqlite2pg.state SET cutover_requested_at = coalesce(cutover_requested_at, now()) WHERE source_id = $1", [this.sourceId]);
    await this.reload();
    return runCutover(this.host(), this.opts.cutover ?? { validate: "full" });
  }

  /** Run until stopped: every phase in order, then stream forever. */
  async run(): Promise<void> {
    await this.start();
    let backoff = 100;
    let failing: string | null = null;
    let lastLogged = 0;
    while (!this.stopRequested) {
      this.markProgress();
      try {
        if (this.lock?.lost) {
          this.log.warn({ source_id: this.sourceId }, "lost the connection holding the source's lock: taking it again before applying more");
          await this.takeLock();
          if (this.client) {
            await this.reload(); // another daemon may have applied meanwhile
            await this.becomeActive();
          }
          this.applier = null;
        }
        if (!this.client) await this.reconnectIfNeeded(new Error("no connection"));
        // Still none (the server is down): say so, rather than fail on a missing connection further in.
        if (!this.client) throw targetError("PG_RECONNECTING", "no connection to PostgreSQL: reconnecting", { retryable: true });
        if (FALLBACK_PHASES.includes(this.current.phase)) {
          // After the cutover: SQLite follows PostgreSQL until `finish` or `rollback`.
          const turn = await this.fallbackTurn();
          if (turn === "exit") {
            this.exitStatus = 0;
            return;
          }
          if (failing) {
            this.log.info({ phase: this.current.phase }, "recovered");
            failing = null;
            this.lastFailure = null;
            await recordError(this.client!, this.sourceId, null).catch(() => undefined);
          }
          backoff = 100;
          if (turn !== "applied") await this.idle(Math.min(this.opts.pollIntervalMs ?? 1000, FALLBACK_POLL_MS));
          continue;
        }
        await this.refreshRequest();
        if (this.current.phase === Phase.new) await this.begin();
        if (this.current.phase === Phase.snapshot && !(await this.snapshot())) break;
        if (this.current.phase === Phase.streaming && !this.current.cutoverRequestedAt && freezeInfo(this.db!)) await this.undoStrayFreeze();
        if (this.cutoverPending()) {
          this.cutoverAttempts++;
          if (this.current.phase === Phase.streaming) {
            this.log.info({ attempt: this.cutoverAttempts }, `cutover attempt ${this.cutoverAttempts}`);
            this.opts.events?.cutoverAttempt?.();
          }
          // Bounded by --max-freeze while SQLite is frozen; the validation after the commit may take long.
          const status = await this.longRunning(() => runCutover(this.host(), this.opts.cutover ?? { validate: "full" }));
          if (status >= 0 && this.current.phase === Phase.fallback) continue; // the way back starts now
          if (status >= 0) {
            this.exitStatus = status;
            return;
          }
          if (status === CUTOVER_RETRY) {
            // gh-ost style: the freeze hit --max-freeze and was undone; try
            // again later, waiting longer each time (1 s, 2 s, 4 s … 60 s).
            const wait = Math.min(1000 * 2 ** (this.cutoverAttempts - 1), 60_000);
            this.cutoverRetryAt = Date.now() + wait;
            this.log.warn(
              { attempt: this.cutoverAttempts, retry_in_ms: wait },
              `cutover attempt ${this.cutoverAttempts} aborted at --max-freeze; SQLite takes writes again; next attempt in ${wait} ms`,
            );
          }
          await this.reload(); // aborted: by unfreeze (the request is withdrawn) or by --max-freeze (it stands)
          if (this.current.phase === Phase.frozen && !freezeInfo(this.db!)) {
            // The state says frozen but SQLite is not (an `unfreeze` whose
            // Postgres commit was lost after it unfroze SQLite): nothing can
            // commit this cutover; the state follows SQLite, and the request,
            // which `unfreeze` meant to withdraw, is withdrawn.
            await transition(this.client!, this.sourceId, [Phase.frozen], Phase.streaming, {
              set: { sentinel_seq: null, frozen_at: null, cutover_requested_at: null },
              optional: true,
            });
            await this.reload();
            this.log.warn("the state said frozen but SQLite was not: back to streaming, cutover request withdrawn");
          }
          if (status === -1) await this.idle(this.opts.pollIntervalMs ?? 1000);
          continue;
        }
        const streamingBefore = this.current.phase === Phase.streaming;
        const n = await this.streamOnce();
        if (failing) {
          this.log.info({ applied_seq: this.current.appliedSeq }, "recovered");
          failing = null;
          this.lastFailure = null;
          await recordError(this.client!, this.sourceId, null).catch(() => undefined);
        }
        backoff = 100;
        if (n === 0) await this.idle(this.opts.pollIntervalMs ?? 1000);
        else if (this.lastCaughtUp && streamingBefore) await this.betweenBatches();
      } catch (e) {
        if (e instanceof Sqlite2pgError && FATAL_CODES.includes(e.code)) {
          this.opts.events?.error?.(e.code);
          // Never stop with SQLite frozen for a cutover Postgres has not
          // committed: the application could not write anywhere, and a
          // restart meeting the same error would stop the same way.
          await this.releaseFreeze(e.message);
          // Said once in the state too, so `status` shows why the daemon stopped.
          if (this.client) await recordError(this.client, this.sourceId, e.message).catch(() => undefined);
          throw e;
        }
        const msg = e instanceof Error ? e.message : String(e);
        this.opts.events?.error?.(errorKind(e));
        if (msg !== failing || Date.now() - lastLogged > 30000) {
          this.log.error({ err: msg, retryable: isRetryable(e) || isRetryableError(e), backoff_ms: backoff }, "apply failed; will retry");
          lastLogged = Date.now();
        }
        failing = msg;
        this.lastFailure = msg;
        await this.reconnectIfNeeded(e);
        if (this.client) await this.reload().catch(() => undefined); // the state may have moved (unfreeze, another daemon)
        if (this.client) await recordError(this.client, this.sourceId, msg).catch(() => undefined);
        await this.idle(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  /**
   * SQLite is frozen, the state says streaming and no cutover is asked for:
   * a freeze that lost a race with `unfreeze` (or whose undo failed half
   * way). Nothing can commit it (the state is not frozen), and the
   * application must not stay locked out: unfreeze SQLite, holding the
   * state row so a new request cannot slip in between.
   */
  /**
   * Before stopping on an error: a cutover not committed in Postgres is
   * undone as `unfreeze` undoes it (the state back to streaming first, then
   * SQLite takes writes). The request stays recorded.
   */
  private async releaseFreeze(why: string): Promise<void> {
    const c = this.client;
    if (!c || !this.writer) return;
    try {
      await this.reload();
      if (this.current.phase !== Phase.cutoverCatchUp && this.current.phase !== Phase.frozen) return;
      await inTransaction(c, async () => {
        await c.query("SET LOCAL lock_timeout = 10000");
        await transition(c, this.sourceId, [Phase.cutoverCatchUp, Phase.frozen], Phase.streaming, {
          set: { sentinel_seq: null, frozen_at: null },
          optional: true,
        });
        unfreeze(this.writer!);
      });
      await this.reload();
      this.log.error({ err: why }, "stopping during a cutover Postgres has not committed: cutover undone, SQLite takes writes again");
    } catch (e) {
      this.log.error({ err: (e as Error).message }, "could not undo the cutover's freeze before stopping: run `sqlite2pg unfreeze`");
    }
  }

  private async undoStrayFreeze(): Promise<void> {
    const c = this.client!;
    await inTransaction(c, async () => {
      await c.query("SET LOCAL lock_timeout = 10000");
      const r = await c.query("SELECT phase, cutover_requested_at FROM sqlite2pg.state WHERE source_id = $1 FOR UPDATE", [this.sourceId]);
      if (r.rows[0]?.phase === Phase.streaming && r.rows[0].cutover_requested_at === null) {
        const n = unfreeze(this.writer!);
        this.log.warn(
          { freeze_triggers_removed: n },
          "SQLite was frozen with no cutover asked for (withdrawn by unfreeze): unfrozen, the application can write to it again",
        );
      }
    });
    await this.reload();
  }

  /** Whether the cutover should run now: asked for and streaming, or already under way. */
  private cutoverPending(): boolean {
    const p = this.current.phase;
    if (p === Phase.cutoverCatchUp || p === Phase.frozen || p === Phase.cutOver || p === Phase.done) return true;
    if (p === Phase.streaming && freezeInfo(this.db!)) return true; // frozen, but the state was not written before a crash
    return p === Phase.streaming && this.current.cutoverRequestedAt !== null && Date.now() >= this.cutoverRetryAt;
  }

  /** Re-read the state. */
  async reload(): Promise<void> {
    this.state = (await loadState(this.client!, this.sourceId))!;
  }

  private host(): CutoverHost {
    return {
      ...this.fallbackHost(),
      changelog: () => this.changelog!,
      setPhase: (to, extra) => this.setPhase(to, extra ?? null),
      streamOnce: () => this.streamOnce(),
      checkSchema: async () => {
        await this.schema!.reconcile();
      },
      schemaMoved: () => this.schema!.moved(),
    };
  }

  private fallbackHost(): FallbackHost {
    return {
      log: this.log,
      sqlitePath: this.opts.sqlite,
      pgUrl: this.opts.pg,
      sourceId: this.sourceId,
      db: () => this.db!,
      writer: () => this.writer!,
      client: () => this.client!,
      state: () => this.current,
      plan: () => this.plan(),
      reload: () => this.reload(),
      stopping: () => this.stopRequested,
      applied: (n, secs) => this.opts.events?.applied?.(n, secs),
      onFreeze: (ms, committed) => this.opts.events?.freeze?.(ms, committed),
    };
  }

  /**
   * One turn of the way back, by hand (tests and tools that drive the daemon
   * step by step): applies what PostgreSQL captured, or carries out a
   * requested `finish` or `rollback`. "exit" once one of them is done.
   */
  async fallbackOnce(): Promise<"applied" | "idle" | "retry" | "exit"> {
    await this.start();
    return this.fallbackTurn();
  }

  /** One turn of the way back (see ../fallback/fallback.ts). */
  private async fallbackTurn(): Promise<"applied" | "idle" | "retry" | "exit"> {
    this.checkFile();
    this.fallback ??= new Fallback(this.fallbackHost(), this.fallbackOptions());
    // The state without the plan (it does not change after the cutover): one small read per turn.
    const st = await loadState(this.client!, this.sourceId, false);
    if (st) this.state = { ...st, plan: this.current.plan };
    const turn = await this.fallback.turn();
    this.markProgress();
    return turn;
  }

  private fallbackOptions() {
    return { batchSize: this.opts.batchSize, maxFreezeMs: this.opts.cutover?.maxFreezeMs, onRollback: this.opts.onRollback };
  }

  /** The fallback's lag, measured now (the daemon's report timer). */
  private async fallbackReport(): Promise<void> {
    if (!this.fallback || !this.client || !this.state || !FALLBACK_PHASES.includes(this.state.phase)) return;
    await this.fallback.measureLag(true);
    const l = this.fallback.lag;
    if (l)
      this.log.info(
        { phase: this.state.phase, fallback_lag_changes: l.changes, fallback_lag_seconds: l.seconds, fallback_applied: this.state.fallback.applied },
        "fallback lag",
      );
  }

  /**
   * Streaming, after a batch that took every change there was: wait
   * batchDelayMs before reading the next, so that under a steady stream of
   * commits each batch gathers that long's changes (see the option). Not
   * in catch-up nor after its last batch (a backlog is read in full batches
   * anyway), and never while a stop or a cutover waits: a request ends the
   * wait at once, and a request already made skips it.
   */
  private async betweenBatches(): Promise<void> {
    const ms = this.opts.batchDelayMs ?? DEFAULT_BATCH_DELAY_MS;
    if (ms <= 0 || this.stopRequested || this.stateDirty || this.current.phase !== Phase.streaming || this.current.cutoverRequestedAt) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.hurry = done;
    });
    this.hurry = null;
  }

  private async idle(ms: number): Promise<void> {
    if (this.stopRequested || ms <= 0) return;
    if (this.nudged) {
      this.nudged = false;
      return;
    }
    // Waiting on purpose (a long --poll-ms, a back-off) is not a stall.
    await this.longRunning(
      () =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(done, ms);
          function done() {
            clearTimeout(timer);
            resolve();
          }
          this.wake = () => {
            this.wake = null;
            done();
          };
        }),
    );
    this.wake = null;
  }

  private async reconnectIfNeeded(e: unknown): Promise<void> {
    if (!isRetryable(e) && this.client) return;
    await this.client?.end().catch(() => undefined);
    this.client = null;
    try {
      this.client = await connectPg(this.opts.pg, "sqlite2pg");
      this.state = (await loadState(this.client, this.sourceId))!;
      this.applier = null;
    } catch {
      this.client = null;
      await sleep(0);
    }
  }

  private readonly lag = new LagMeter();
  private lastFailure: string | null = null;

  /** The live numbers for the metrics endpoint and the service manager (no Postgres round trip). */
  live(): LiveNumbers {
    return {
      ...this.lag.live(this.state, this.changelog, this.lastFailure),
      // Waiting first: a daemon that lost the lock and waits for it again is a standby now.
      role: this.waiting ? "standby" : this.active ? "active" : "starting",
      snapshot: this.snapshotProgress?.map((p) => ({ table: p.table, rows: p.rows, total: p.total, done: p.done })) ?? null,
      seconds_since_progress: this.sinceProgress(),
      frozen_at: this.state?.phase === Phase.frozen && this.state.frozenAt ? new Date(this.state.frozenAt).toISOString() : null,
      fallback_lag_changes: this.state && FALLBACK_PHASES.includes(this.state.phase) ? (this.fallback?.lag?.changes ?? null) : null,
      fallback_lag_seconds: this.state && FALLBACK_PHASES.includes(this.state.phase) ? (this.fallback?.lag?.seconds ?? null) : null,
    };
  }

  private progressAt = Date.now();
  private longOps = 0;
  private waiting = false;
  private snapshotProgress: TableProgress[] | null = null;

  /** The loop moved on: a batch, a chunk, an idle wake-up. */
  private markProgress(): void {
    this.progressAt = Date.now();
  }

  /**
   * Seconds since the loop last made progress. A standby waiting for the
   * lock, and a statement known to be long (key builds, the cutover's
   * validation) count as progress: they are waiting on Postgres, not stuck.
   */
  sinceProgress(): number {
    if (this.waiting || this.longOps > 0) return 0;
    return +((Date.now() - this.progressAt) / 1000).toFixed(3);
  }

  private async longRunning<T>(f: () => Promise<T>): Promise<T> {
    this.longOps++;
    try {
      return await f();
    } finally {
      this.longOps--;
      this.markProgress();
    }
  }

  /**
   * Change settings of the running daemon (SIGHUP): batch and chunk sizes,
   * the poll and prune intervals, the cutover's options. Used from the next
   * batch, chunk or cutover attempt on.
   */
  configure(next: ReplicatorTunables): void {
    const o = this.opts as { -readonly [K in keyof ReplicatorOptions]: ReplicatorOptions[K] };
    if (next.pollIntervalMs !== undefined) o.pollIntervalMs = next.pollIntervalMs;
    if (next.batchSize !== undefined) o.batchSize = next.batchSize;
    if (next.batchDelayMs !== undefined) {
      o.batchDelayMs = next.batchDelayMs;
      this.hurry?.(); // a wait under the old setting ends now; the next one follows the new
    }
    if (next.chunkRows !== undefined) o.chunkRows = next.chunkRows;
    if (next.batchBytes !== undefined) o.batchBytes = next.batchBytes;
    if (next.chunkBytes !== undefined) o.chunkBytes = next.chunkBytes;
    if (next.cutover !== undefined) o.cutover = { ...o.cutover, ...next.cutover };
    if (next.pruneIntervalMs !== undefined) this.prune.setInterval(next.pruneIntervalMs);
    if (next.checkpointFrames !== undefined) this.checkpointer.frames = next.checkpointFrames;
    if (next.onRollback !== undefined) o.onRollback = next.onRollback;
    this.fallback?.configure(this.fallbackOptions());
    this.nudge();
  }

  /** Log the lag and store the apply rate (every few seconds, from the daemon). */
  async report(): Promise<void> {
    if (this.state && FALLBACK_PHASES.includes(this.state.phase)) return this.fallbackReport();
    if (!this.client || !this.state || !this.changelog) return;
    const rate = this.lag.report(this.current, this.changelog, this.log);
    if (this.applier) this.applier.rate = rate; // stored with the next batch: one connection, one query at a time
  }

  /**
   * Release everything (watcher, connections, lock, files), going on when
   * one fails, then throw the first failure. Idempotent. The last prune and
   * clearing the daemon's record are best effort (the next run prunes, and
   * `cutover` checks a recorded daemon is alive): their failures are logged.
   */
  async stop(): Promise<void> {
    this.stopRequested = true;
    const failures: unknown[] = [];
    const release = async (f: () => unknown): Promise<void> => {
      try {
        await f();
      } catch (e) {
        failures.push(e);
      }
    };
    // A last prune of what is applied, so a stopped daemon leaves a short changelog.
    if (this.writer && this.state && this.changelog && !FALLBACK_PHASES.includes(this.state.phase) && this.state.phase !== Phase.done) {
      try {
        // Only in the file this state describes: never in one put in its place (FILE_REPLACED).
        const st = this.state;
        this.changelog.snapshot(() => this.changelog!.verifyCheckpoint(this.sourceId, st.appliedSeq, st.appliedToken));
        pruneChanges(this.writer, this.state.appliedSeq);
      } catch (e) {
        this.log.debug({ err: (e as Error).message }, "no last prune: the file is gone or locked; the next run prunes");
      }
    }
    await release(() => this.watcher?.close());
    this.watcher = null;
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    this.checkpointTimer = null;
    if (this.active && this.client) {
      // No daemon is recorded once this one is gone (a kill -9 leaves the record; `cutover` checks it is alive).
      await this.client
        .query(
          "UPDATE sqlite2pg.state SET daemon_pid = NULL, daemon_host = NULL, daemon_start = NULL WHERE source_id = $1 AND daemon_pid = $2 AND daemon_host = $3",
          [this.sourceId, process.pid, selfIdentity().host],
        )
        .catch((e: Error) => this.log.debug({ err: e.message }, "could not clear the daemon's record in the state"));
    }
    this.active = false;
    const client = this.client;
    this.client = null;
    await release(() => client?.end());
    const lock = this.lock;
    this.lock = null;
    await release(() => lock?.release());
    const db = this.db;
    this.db = null;
    await release(() => db?.close());
    const writer = this.writer;
    this.writer = null;
    await release(() => writer?.close());
    if (failures.length) throw failures[0];
  }
}
