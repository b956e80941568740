/**
 * The way back, as numbered steps, each resumable from the state.
 *
 * After the cutover (phase fallback), every write the application makes in
 * PostgreSQL is captured by key (installed in the cutover's own commit) and
 * applied to the SQLite file (./apply.ts), which stays frozen for the
 * application. Then one of:
 *
 * `finish` (phase fallback → done): the last changes applied, the capture
 *   removed from PostgreSQL in the commit that ends the phase; SQLite stays
 *   frozen as the last copy, its own triggers back in place.
 *
 * `rollback` (phase fallback → rolling-back → rolled-back):
 *   1. catch up while the application still writes to PostgreSQL
 *   2. one PostgreSQL transaction freezes the replicated tables (it waits,
 *      within --max-freeze, for every transaction that wrote to them) and
 *      records phase rolling-back                    (PostgreSQL frozen)
 *   3. drain every captured change into SQLite: PostgreSQL takes no more
 *   4. SQLite's sqlite_sequence past every key PostgreSQL handed out
 *   5. validate (counts, or digests of every row with --validate full); a
 *      difference undoes the rollback: PostgreSQL takes writes again
 *   6. one PostgreSQL transaction: phase rolled-back, capture removed,
 *      NOTIFY sqlite2pg_rollback                        (the decision)
 *   7. the cutover marker removed, the rollback marker written, SQLite
 *      unfrozen with its triggers back: the application writes there again
 *   8. the --on-rollback command, at least once, to success
 *
 * The freeze lasts from step 2 to step 7 and never longer than --max-freeze
 * before step 6 commits: past it the rollback is undone (PostgreSQL takes
 * writes again) and tried again later. A crash anywhere resumes from the
 * phase: before step 6 the drain goes on (or the deadline undoes it), after
 * it steps 7 and 8 are done again (both idempotent).
 */
import type BetterSqlite3 from "better-sqlite3";
import { existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import type pg from "pg";
import { Sqlite2pgError, validationError } from "../errors.js";
import { qualified } from "../ident.js";
import type { Logger } from "../observe/logger.js";
import { crashPoint } from "../observe/crash-points.js";
import type { MigrationPlan } from "../plan/plan.js";
import { installPgCapture, uninstallPgCapture } from "../postgres/capture.js";
import { freezePg, unfreezePg } from "../postgres/freeze.js";
import { redactUrl } from "../redact.js";
import { CHANGES } from "../sqlite/capture.js";
import { freezeForFallback, freezeInfo, markerPath, restoreTriggers, rollbackMarkerPath, unfreeze, withWriteWait } from "../sqlite/freeze.js";
import { validate, type ValidationReport } from "../validate/validate.js";
import { runHook } from "../replication/hook.js";
import { NOW, Phase, transition } from "../replication/phase.js";
import { notifyState, type ReplicationState } from "../replication/state.js";
import { type BatchResult, type Forms, ReverseApplier, captureTables, fallbackTables } from "./apply.js";
import { learnForms } from "./forms.js";

/** The channel of the rollback's commit (payload: JSON with source_id and schema). */
const ROLLBACK_CHANNEL = "sqlite2pg_rollback";

/** A catch-up batch this small means the application's steady trickle: freeze now. */
const CATCH_UP_RESIDUE = 100;

/** What the daemon lends the fallback. */
export interface FallbackHost {
  readonly log: Logger;
  readonly sqlitePath: string;
  readonly pgUrl: string | undefined;
  readonly sourceId: string;
  db(): BetterSqlite3.Database;
  writer(): BetterSqlite3.Database;
  client(): pg.Client;
  state(): ReplicationState;
  plan(): MigrationPlan;
  reload(): Promise<void>;
  stopping(): boolean;
  /** Changes applied, with the batch's duration. */
  applied?(changes: number, seconds: number): void;
  /** PostgreSQL was frozen this long by a rollback (committed, or undone). */
  onFreeze?(ms: number, committed: boolean): void;
}

/** Options of the way back. */
export interface FallbackOptions {
  batchSize?: number;
  /** The longest PostgreSQL may stay frozen before the rollback commits, in ms (default 5000). */
  maxFreezeMs?: number;
  /** Shell command run after the rollback. */
  onRollback?: string;
}

/** What a turn of the fallback ended with. */
export type FallbackTurn = "applied" | "idle" | "retry" | "exit";

/** The rollback reached --max-freeze or found a difference: undone. */
class RollbackUndone extends Error {}

/** Install the capture in PostgreSQL for a plan's tables (the cutover's commit does, in its own transaction). */
export async function installFallbackCapture(c: pg.ClientBase, plan: MigrationPlan): Promise<void> {
  await installPgCapture(c, plan.schema, captureTables(fallbackTables(plan)));
}

/** The columns of each replicated table in PostgreSQL, hashed: a schema change during the fallback changes one. */
async function pgFingerprints(c: pg.ClientBase, plan: MigrationPlan): Promise<Record<string, string>> {
  const r = await c.query<{ tbl: string; h: string }>(
    `SELECT c.relname AS tbl, md5(string_agg(format('%s:%s:%s', a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull), ',' ORDER BY a.attnum)) AS h
       FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = ANY($2::text[]) AND a.attnum > 0 AND NOT a.attisdropped
      GROUP BY c.relname`,
    [plan.schema, plan.tables.map((t) => t.name)],
  );
  return Object.fromEntries(r.rows.map((x) => [x.tbl, x.h]));
}

/**
 * Enter the fallback (the cutover's last step, phase cut-over → fallback):
 * SQLite's freeze in the fallback's form (only the daemon writes; the
 * application's triggers set aside), the file's forms learned, the
 * PostgreSQL columns fingerprinted, then the phase.
 */
export async function enterFallback(h: FallbackHost): Promise<void> {
  const plan = h.plan();
  const tables = plan.tables.map((t) => t.source.name);
  const { setAside } = freezeForFallback(h.writer(), tables);
  const forms: Forms = {};
  for (const t of plan.tables) forms[t.name] = learnForms(h.db(), t);
  const prints = await pgFingerprints(h.client(), plan);
  await transition(h.client(), h.sourceId, Phase.cutOver, Phase.fallback, {
    set: { fallback_forms: JSON.stringify(forms), fallback_fingerprint: JSON.stringify(prints), last_error: null },
  });
  await h.reload();
  const keyless = fallbackTables(plan)
    .filter((t) => !t.key)
    .map((t) => t.plan.name);
  h.log.info(
    { triggers_set_aside: setAside, whole_table_capture: keyless },
    "fallback: SQLite follows PostgreSQL until `sqlite2pg finish` or `sqlite2pg rollback`",
  );
  if (keyless.length)
    h.log.warn(
      { tables: keyless },
      `fallback: ${keyless.join(", ")} ${keyless.length === 1 ? "has" : "have"} no key in PostgreSQL: each write there copies the whole table back into SQLite`,
    );
}

/** The fallback's loop body, one turn at a time (the daemon calls it while the phase is fallback, rolling-back or rolled-back). */
export class Fallback {
  private applier: ReverseApplier | null = null;
  private prepared = false;
  private lagAt = 0;
  /** Pending changes and the age of the oldest, as last measured. */
  lag: { changes: number; seconds: number } | null = null;
  private retryAt = 0;
  private attempts = 0;

  constructor(
    private readonly h: FallbackHost,
    private opts: FallbackOptions,
  ) {}

  configure(next: FallbackOptions): void {
    this.opts = { ...this.opts, ...next };
  }

  private get log(): Logger {
    return this.h.log.child({ fallback: true });
  }

  private reverse(): ReverseApplier {
    if (this.applier) return this.applier;
    const forms = (this.h.state().fallback.forms ?? {}) as Forms;
    // A batch's changes are deleted in PostgreSQL once its SQLite commit returns: that commit must survive
    // a power loss too, not only a crash of this process (WAL's NORMAL syncs at checkpoints only).
    this.h.writer().pragma("synchronous = FULL");
    this.applier = new ReverseApplier(this.h.writer(), this.h.plan(), forms);
    return this.applier;
  }

  /** The file or the connections were opened again: prepared statements are per connection. */
  reset(): void {
    this.applier = null;
    this.prepared = false;
  }

  /** One turn: whatever the phase and the requests call for. */
  async turn(): Promise<FallbackTurn> {
    const phase = this.h.state().phase;
    if (phase === Phase.rolledBack) return this.completeRollback(null);
    if (phase === Phase.rollingBack) {
      // Resumed (a restart, or a turn that failed): an attempt of its own, numbered and backed off as one.
      this.attempts++;
      return this.drainAndCommit();
    }
    if (!this.prepared) {
      // Idempotent: a trigger the application's tools put back while no daemon ran is set aside again.
      freezeForFallback(
        this.h.writer(),
        this.h.plan().tables.map((t) => t.source.name),
      );
      this.prepared = true;
    }
    // The requests as the daemon read the state at the start of this turn.
    const r = this.h.state().fallback;
    if (r.rollbackRequestedAt && Date.now() >= this.retryAt) return this.rollback();
    if (r.finishRequestedAt && !r.rollbackRequestedAt) return this.finish();
    await this.checkSchema();
    const n = await this.applyOnce();
    // At most once a second, applying or not: the count reads every pending change.
    await this.measureLag();
    return n > 0 ? "applied" : "idle";
  }

  /** Apply one batch; returns the number of changes. */
  private async applyOnce(): Promise<number> {
    return (await this.applyCounted()).changes;
  }

  /** Apply one batch and count it (the metrics, `fallback_applied`). */
  private async applyCounted(): Promise<BatchResult> {
    const t0 = performance.now();
    const r = await this.reverse().applyBatch(this.h.client(), this.opts.batchSize ?? 10_000);
    if (r.changes > 0) {
      this.h.applied?.(r.changes, (performance.now() - t0) / 1000);
      await this.h
        .client()
        .query("UPDATE sqlite2pg.state SET fallback_applied = fallback_applied + $2, applied_at = now(), last_error = NULL WHERE source_id = $1", [
          this.h.sourceId,
          r.changes,
        ]);
    }
    return r;
  }

  /** Measure the fallback's lag (at most every second unless forced). */
  async measureLag(force = false): Promise<void> {
    if (!force && Date.now() - this.lagAt < 1000) return;
    this.lagAt = Date.now();
    const r = await this.h
      .client()
      .query<{ n: string; s: number | null }>(
        "SELECT count(*)::text AS n, extract(epoch FROM clock_timestamp() - min(at))::float8 AS s FROM sqlite2pg.pg_changes WHERE sch = $1",
        [this.h.plan().schema],
      )
      .catch((e: { code?: string }) => {
        if (e.code === "42P01") return { rows: [{ n: "0", s: null }] }; // no change table (finished, rolled back)
        throw e;
      });
    const n = Number(r.rows[0]?.n ?? 0);
    this.lag = { changes: n, seconds: n === 0 ? 0 : Math.max(0, +(r.rows[0]?.s ?? 0).toFixed(3)) };
  }

  /** A schema change in PostgreSQL during the fallback pauses it: the forms and columns no longer describe the tables. */
  private async checkSchema(): Promise<void> {
    const fp = this.h.state().fallback.fingerprint;
    if (!fp) return;
    const was = JSON.parse(fp) as Record<string, string>;
    const now = await pgFingerprints(this.h.client(), this.h.plan());
    const moved = this.h.plan().tables.filter((t) => was[t.name] !== now[t.name]);
    if (!moved.length) return;
    const names = moved.map((t) => qualified(this.h.plan().schema, t.name));
    throw new Sqlite2pgError(
      "target",
      "FALLBACK_SCHEMA_CHANGED",
      `fallback paused: the schema of ${names.join(", ")} changed in PostgreSQL during the fallback (${moved.map((t) => (now[t.name] ? "columns changed" : "table gone")).join(", ")}); SQLite cannot follow it`,
      {
        context: { tables: moved.map((t) => t.name).join(",") },
        hint: "undo the change in PostgreSQL (the fallback resumes by itself), or `sqlite2pg finish` to end the fallback and keep PostgreSQL",
        retryable: true,
      },
    );
  }

  /** `finish`: the last changes applied, the capture removed, the phase done; SQLite stays frozen as the last copy. */
  private async finish(): Promise<FallbackTurn> {
    const log = this.log;
    await this.checkSchema().catch((e: Error) => log.warn({ err: e.message }, "finishing with a schema change in PostgreSQL: SQLite keeps what it has"));
    for (let i = 0; i < 100 && !this.h.stopping(); i++) {
      const r = await this.applyCounted().catch((e: Error) => {
        log.warn({ err: e.message }, "finishing without the last changes: SQLite keeps what it has");
        return { changes: 0, drained: true };
      });
      if (r.drained) break;
    }
    const db = this.h.writer();
    withWriteWait(db, () => db.transaction(() => restoreTriggers(db)).immediate());
    crashPoint("finishing");
    const c = this.h.client();
    await c.query("BEGIN");
    try {
      await uninstallPgCapture(c, this.h.plan().schema, captureTables(fallbackTables(this.h.plan())));
      await transition(c, this.h.sourceId, Phase.fallback, Phase.done, { set: { finished_at: NOW, finish_requested_at: null } });
      await c.query("COMMIT");
    } catch (e) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw e;
    }
    await this.h.reload();
    log.info({ fallback_applied: this.h.state().fallback.applied }, "finished: the capture is gone from PostgreSQL; SQLite stays frozen as the last copy");
    return "exit";
  }

  /** The rollback, from phase fallback: catch up, then freeze PostgreSQL (steps 1 and 2). */
  private async rollback(): Promise<FallbackTurn> {
    const log = this.log;
    this.attempts++;
    await this.checkSchema();
    log.info({ attempt: this.attempts }, "rollback step 1/8: catching up");
    const deadline = Date.now() + 60_000;
    for (;;) {
      const n = await this.applyOnce();
      if (n <= CATCH_UP_RESIDUE || Date.now() > deadline || this.h.stopping()) break;
    }
    if (this.h.stopping()) return "retry";
    const maxFreeze = this.opts.maxFreezeMs ?? 5000;
    const c = this.h.client();
    const frozenAt = performance.now();
    const plan = this.h.plan();
    await c.query("BEGIN");
    try {
      await c.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(maxFreeze))}`);
      const st = await c.query("SELECT phase, rollback_requested_at FROM sqlite2pg.state WHERE source_id = $1 FOR UPDATE", [this.h.sourceId]);
      if (st.rows[0]?.phase !== Phase.fallback || !st.rows[0].rollback_requested_at) {
        await c.query("ROLLBACK");
        await this.h.reload();
        return "retry";
      }
      // freezePg takes every table's lock first, in a way that does not deadlock with the application's
      // transactions: the wait for writers happens there.
      await freezePg(
        c,
        plan.schema,
        plan.tables.map((t) => t.name),
      );
      await transition(c, this.h.sourceId, Phase.fallback, Phase.rollingBack, { set: { rollback_frozen_at: NOW } });
      await notifyState(c, this.h.sourceId);
      await c.query("COMMIT");
    } catch (e) {
      await c.query("ROLLBACK").catch(() => undefined);
      const code = (e as { code?: string }).code;
      // Should a deadlock happen all the same, the attempt is simply made again later.
      if (code === "40P01") return this.retryLater("a deadlock with an application transaction while freezing PostgreSQL", frozenAt, false);
      if (code !== "55P03") throw e;
      return this.retryLater(`PostgreSQL's tables stayed locked by the application's transactions for --max-freeze (${maxFreeze} ms)`, frozenAt, false);
    }
    await this.h.reload();
    log.info("rollback step 2/8: PostgreSQL frozen");
    crashPoint("rollback-frozen");
    return this.drainAndCommit(frozenAt);
  }

  /** Steps 3 to 6, from phase rolling-back (also after a restart). */
  private async drainAndCommit(frozenAtLocal?: number): Promise<FallbackTurn> {
    const log = this.log;
    const maxFreeze = this.opts.maxFreezeMs ?? 5000;
    const st = this.h.state();
    const frozenAt = frozenAtLocal ?? performance.now() - Math.max(0, Date.now() - (st.fallback.rollbackFrozenAt?.getTime() ?? Date.now()));
    const deadline = frozenAt + maxFreeze;
    const late = (step: string) => {
      if (performance.now() > deadline) throw new RollbackUndone(`--max-freeze (${maxFreeze} ms) reached ${step}`);
    };
    const plan = this.h.plan();
    try {
      // 3. Drain: PostgreSQL takes no more writes, so what is visible now is all there is.
      for (;;) {
        late("while draining");
        const n = await this.applyOnce();
        crashPoint("rollback-draining");
        if (n === 0) break;
      }
      log.info("rollback step 3/8: drained");
      // 4. Sequences.
      await this.setSqliteSequences();
      // 5. Validate.
      late("before validating");
      const mode = st.fallback.rollbackValidate ?? "counts";
      const result = await validate(this.h.db(), this.h.client(), plan, mode);
      log.info({ validation: mode, ok: result.ok }, "rollback step 5/8: validated");
      if (!result.ok) {
        const bad = result.tables.filter((t) => t.sqlite_rows !== t.pg_rows || t.digest === "differs").map((t) => t.table);
        throw new RollbackUndone(
          `validation (${mode}) found differences in ${bad.join(", ") || "the schema"}: ${JSON.stringify(result.tables.filter((t) => bad.includes(t.table)))}`,
          {
            cause: "differs",
          },
        );
      }
      late("before committing");
      // 6. The decision.
      const c = this.h.client();
      await c.query("BEGIN");
      try {
        await c.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(deadline - performance.now()))}`);
        await transition(c, this.h.sourceId, Phase.rollingBack, Phase.rolledBack, {
          set: { rolled_back_at: NOW, rollback_validation: JSON.stringify(result), rollback_requested_at: null, last_error: null },
        });
        await uninstallPgCapture(c, plan.schema, captureTables(fallbackTables(plan)));
        await c.query("SELECT pg_notify($1, $2)", [ROLLBACK_CHANNEL, JSON.stringify({ source_id: this.h.sourceId, schema: plan.schema })]);
        await c.query("COMMIT");
      } catch (e) {
        await c.query("ROLLBACK").catch(() => undefined);
        if ((e as { code?: string }).code === "55P03") throw new RollbackUndone(`--max-freeze (${maxFreeze} ms) reached while committing`);
        throw e;
      }
    } catch (e) {
      if (!(e instanceof RollbackUndone)) throw e;
      return this.undo(e.message, frozenAt, e.cause === "differs");
    }
    await this.h.reload();
    log.info("rollback step 6/8: committed in PostgreSQL");
    crashPoint("rollback-committed");
    return this.completeRollback(frozenAt);
  }

  /** PostgreSQL takes writes again (the rollback undone): the state back to fallback first, in the same commit as the unfreeze. */
  private async undo(why: string, frozenAt: number, withdraw: boolean): Promise<FallbackTurn> {
    const c = this.h.client();
    const plan = this.h.plan();
    await c.query("BEGIN");
    try {
      await c.query("SET LOCAL lock_timeout = 10000");
      await unfreezePg(
        c,
        plan.schema,
        plan.tables.map((t) => t.name),
      );
      await transition(c, this.h.sourceId, Phase.rollingBack, Phase.fallback, {
        set: {
          rollback_frozen_at: null,
          last_error: `rollback undone: ${why}`,
          last_error_at: NOW,
          ...(withdraw ? { rollback_requested_at: null } : {}),
        },
      });
      await notifyState(c, this.h.sourceId);
      await c.query("COMMIT");
    } catch (e) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw e;
    }
    await this.h.reload();
    const turn = this.retryLater(why, frozenAt, true, withdraw);
    if (withdraw)
      throw validationError("ROLLBACK_VALIDATION", `rollback refused: ${why}`, {
        hint: "nothing was lost: PostgreSQL takes the application's writes again and SQLite keeps following it once the daemon runs again; `sqlite2pg validate --full` names the rows that differ",
      });
    return turn;
  }

  private retryLater(why: string, frozenAt: number, wasFrozen: boolean, withdrawn = false): FallbackTurn {
    const ms = +(performance.now() - frozenAt).toFixed(3);
    if (wasFrozen) this.h.onFreeze?.(ms, false);
    const wait = Math.min(1000 * 2 ** (this.attempts - 1), 60_000);
    this.retryAt = Date.now() + wait;
    if (withdrawn)
      this.log.error(
        { freeze_ms: ms, reason: why },
        `rollback undone after a ${ms} ms freeze: ${why}; PostgreSQL takes writes again; the request is withdrawn`,
      );
    else
      this.log.warn(
        { freeze_ms: ms, reason: why, retry_in_ms: wait, attempt: this.attempts },
        `rollback attempt ${this.attempts} undone after ${ms} ms: ${why}; PostgreSQL takes writes again; next attempt in ${wait} ms`,
      );
    return "retry";
  }

  /** SQLite's AUTOINCREMENT counters past every key in SQLite and every value PostgreSQL's identity handed out. */
  private async setSqliteSequences(): Promise<void> {
    const plan = this.h.plan();
    const db = this.h.writer();
    const want: { table: string; seq: bigint }[] = [];
    for (const t of plan.tables) {
      const alias = t.source.rowidAlias;
      if (!alias) continue;
      const def = db.prepare("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?").get(t.source.name) as { sql: string } | undefined;
      if (!def || !/\bAUTOINCREMENT\b/i.test(def.sql)) continue;
      const col = t.columns.find((c) => c.source.name === alias)!;
      const r = await this.h.client().query<{ s: string | null }>("SELECT pg_get_serial_sequence($1, $2) AS s", [qualified(plan.schema, t.name), col.name]);
      let pgSeq = 0n;
      if (r.rows[0]?.s) {
        const v = await this.h.client().query<{ v: string; called: boolean }>(`SELECT last_value::text AS v, is_called AS called FROM ${r.rows[0].s}`);
        if (v.rows[0]?.called) pgSeq = BigInt(v.rows[0].v);
      }
      want.push({ table: t.source.name, seq: pgSeq });
    }
    if (!want.length) return;
    withWriteWait(db, () =>
      db
        .transaction(() => {
          for (const w of want) {
            const max = db
              .prepare(`SELECT max(_rowid_) AS m FROM main."${w.table.replace(/"/g, '""')}"`)
              .safeIntegers(true)
              .get() as { m: bigint | null };
            const cur = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = ?").safeIntegers(true).get(w.table) as { seq: bigint } | undefined;
            let seq = w.seq;
            if (max.m !== null && max.m > seq) seq = max.m;
            if (cur && cur.seq >= seq) continue;
            if (cur) db.prepare("UPDATE sqlite_sequence SET seq = ? WHERE name = ?").run(seq, w.table);
            else db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)").run(w.table, seq);
          }
        })
        .immediate(),
    );
    this.log.info({ tables: want.map((w) => w.table) }, "rollback step 4/8: sqlite_sequence past every key");
  }

  /** Steps 7 and 8, from phase rolled-back (also after a restart): markers, SQLite unfrozen, the hook. */
  private async completeRollback(frozenAt: number | null): Promise<FallbackTurn> {
    const log = this.log;
    const st = this.h.state();
    const plan = this.h.plan();
    const marker = {
      rolled_back_at: st.fallback.rolledBackAt,
      source_id: this.h.sourceId,
      sqlite: this.h.sqlitePath,
      pg: this.h.pgUrl ? redactUrl(this.h.pgUrl) : "PG* environment",
      schema: plan.schema,
      validation: st.fallback.rollbackValidation,
    };
    const path = rollbackMarkerPath(this.h.sqlitePath);
    writeFileSync(path + ".tmp", JSON.stringify(marker, null, 2) + "\n");
    renameSync(path + ".tmp", path);
    if (existsSync(markerPath(this.h.sqlitePath))) rmSync(markerPath(this.h.sqlitePath), { force: true });
    // 7. SQLite takes writes again, its triggers (the application's, the capture's) back in place; the changelog starts over.
    const db = this.h.writer();
    withWriteWait(db, () =>
      db
        .transaction(() => {
          // Only the first time: after that the application's own new changes are in the changelog.
          const first = freezeInfo(db) !== null;
          restoreTriggers(db);
          unfreeze(db);
          if (first) db.prepare(`DELETE FROM ${CHANGES}`).run();
        })
        .immediate(),
    );
    if (frozenAt !== null) {
      const ms = +(performance.now() - frozenAt).toFixed(3);
      this.h.onFreeze?.(ms, true);
      await this.h
        .client()
        .query("UPDATE sqlite2pg.state SET rollback_freeze_ms = $2 WHERE source_id = $1", [this.h.sourceId, ms])
        .catch((e: Error) => log.warn({ err: e.message }, "could not record the rollback's freeze duration"));
      log.info({ freeze_ms: ms }, `rollback step 7/8: SQLite takes writes again (PostgreSQL was frozen ${ms} ms)`);
    } else log.info("rollback step 7/8: SQLite takes writes again");
    crashPoint("rollback-unfrozen");
    await this.h.reload();
    // 8. The hook, at least once, to success.
    const s = this.h.state();
    const hook = this.opts.onRollback ?? s.fallback.rollbackHookCommand ?? undefined;
    if (hook && s.fallback.rollbackHookStatus !== "ok") {
      const c = this.h.client();
      await c.query("UPDATE sqlite2pg.state SET rollback_hook_command = $2, rollback_hook_status = 'running', rollback_hook_exit = NULL WHERE source_id = $1", [
        this.h.sourceId,
        hook,
      ]);
      const status = await runHook(
        hook,
        {
          ...marker,
          marker: path,
          freeze_ms: s.fallback.rollbackFreezeMs,
          validation: (s.fallback.rollbackValidation as ValidationReport | null) ?? { ok: true },
        },
        log,
        "--on-rollback",
      );
      await c.query("UPDATE sqlite2pg.state SET rollback_hook_status = $2, rollback_hook_exit = $3, updated_at = now() WHERE source_id = $1", [
        this.h.sourceId,
        status === 0 ? "ok" : "failed",
        status,
      ]);
      await this.h.reload();
      if (status !== 0)
        throw new Sqlite2pgError("hook", "HOOK_FAILED", `the --on-rollback command exited with status ${status}`, {
          context: { command: hook },
          hint: "the rollback itself is done (the application writes to SQLite); fix the command and start `sqlite2pg run` again: it runs the command again",
        });
    }
    log.info({ freeze_ms: this.h.state().fallback.rollbackFreezeMs, marker: path }, "rolled back: SQLite holds the data again; PostgreSQL stays frozen");
    return "exit";
  }
}
