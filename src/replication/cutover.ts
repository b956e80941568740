/**
 * The cutover, as numbered steps, each resumable from the state:
 *
 *   1. catch up without freezing anything            (phase cutover-catch-up)
 *   2. freeze SQLite: one short write transaction installs the freeze
 *      triggers and writes the sentinel change; durable: it stays frozen
 *      if the daemon dies now                         (phase frozen)
 *   3. drain every change up to the sentinel: the sentinel applied is the
 *      proof that nothing before it is missing
 *   4. one Postgres transaction: sequences, foreign keys (NOT VALID),
 *      phase cut-over, NOTIFY sqlite2pg_cutover      (phase cut-over)
 *   5. validate (digests of every row by default; counts with --validate
 *      counts) in a snapshot taken
 *      before step 4 committed, validate the foreign keys, drop the rowid
 *      columns, write the marker file, run the hook   (phase done)
 *
 * The freeze lasts from the SQLite commit of step 2 to the Postgres commit
 * of step 4, and never longer than --max-freeze: every Postgres statement
 * inside it runs with a lock_timeout and statement_timeout of the time left,
 * a watchdog cancels the one still running at the deadline, and then the
 * freeze is undone exactly as `unfreeze` does it (state back to streaming
 * first, then SQLite) and the daemon tries again later. A restart after a
 * crash anywhere finishes the job; before step 4 commits, `sqlite2pg
 * unfreeze` aborts it instead.
 *
 * Why one file over 400 lines: the steps below, in order, are the runbook
 * of the cutover; each is resumable from the state, and reading them top to
 * bottom is how one checks that a crash at any line converges.
 */
import type BetterSqlite3 from "better-sqlite3";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import type pg from "pg";
import { Sqlite2pgError, sourceError, validationError } from "../errors.js";
import { quoteIdent, qualified } from "../ident.js";
import type { ChangelogReader } from "../sqlite/capture.js";
import { freeze, freezeInfo, markerPath, rollbackMarkerPath, unfreeze, unfrozenTables } from "../sqlite/freeze.js";
import { connectPg, redactUrl } from "../postgres/pg.js";
import { ROWID_COLUMN } from "../convert/row-encoder.js";
import { setSequences } from "../postgres/sequences.js";
import { validate, type ValidationReport } from "../validate/validate.js";
import { usesRowidColumn } from "./snapshot.js";
import { crashPoint } from "../observe/crash-points.js";
import { NOW, Phase, PhaseRaceError, transition } from "./phase.js";
import { inTransaction } from "../postgres/transaction.js";
import { runHook } from "./hook.js";
import { enterFallback, type FallbackHost, installFallbackCapture } from "../fallback/fallback.js";

/** How the cutover validates and what it runs after. */
export interface CutoverOptions {
  validate: "counts" | "full";
  /** The longest SQLite may stay frozen before the cutover commits, in ms (default 5000); past it the attempt is undone. */
  maxFreezeMs?: number;
  /** Shell command run after the cutover, with the result in its environment. */
  onCutover?: string;
  /** Keep SQLite following PostgreSQL after the cutover, as the way back (default true; --no-fallback: false). */
  fallback?: boolean;
}

/** What the daemon lends the cutover: what it lends the fallback, and the forward path's parts. */
export interface CutoverHost extends FallbackHost {
  changelog(): ChangelogReader;
  setPhase(to: Phase, extra?: { sql: string; params: unknown[] }): Promise<void>;
  streamOnce(): Promise<number>;
  /** Mirror a schema change (during the freeze: abort the cutover, loudly). */
  checkSchema?(): Promise<void>;
  /** Whether the SQLite schema moved since the plan last described it. */
  schemaMoved?(): boolean;
}

/** A catch-up batch this small means the application's steady trickle: freeze now. */
const CATCH_UP_RESIDUE = 100;

/** The default of --max-freeze. */
const DEFAULT_MAX_FREEZE_MS = 5000;

/** What {@link runCutover} returns when the freeze reached --max-freeze and was undone: try again later. */
export const CUTOVER_RETRY = -2;

/** The freeze reached its deadline (thrown inside the freeze, caught by it). */
class FreezeExpired extends Error {}
/** A freeze trigger went missing during the freeze: this freeze cannot be committed. */
class FreezeBroken extends Error {}

/**
 * Run the cutover from wherever the state says it is. Returns 0 when done,
 * -1 when `unfreeze` aborted it, {@link CUTOVER_RETRY} when the freeze hit
 * --max-freeze and was undone; throws on failure (the daemon retries).
 */
export async function runCutover(h: CutoverHost, opts: CutoverOptions): Promise<number> {
  const held: { client: pg.Client | null } = { client: null };
  try {
    return await cutoverSteps(h, opts, held);
  } catch (e) {
    await held.client?.end().catch(() => undefined);
    throw e;
  }
}

async function cutoverSteps(h: CutoverHost, opts: CutoverOptions, held: { client: pg.Client | null }): Promise<number> {
  const log = h.log.child({ cutover: true });
  if (h.state().phase === Phase.streaming) {
    // Only while the request stands, checked under the state row's lock:
    // a request withdrawn a moment ago (`unfreeze`) is not carried out.
    const c = h.client();
    const withdrawn = await inTransaction(c, async () => {
      const r = await c.query("SELECT cutover_requested_at FROM sqlite2pg.state WHERE source_id = $1 FOR UPDATE", [h.sourceId]);
      if (r.rows[0]?.cutover_requested_at == null && !freezeInfo(h.db())) return true; // nothing written: the commit only ends the row lock
      await h.setPhase(Phase.cutoverCatchUp);
      return false;
    });
    await h.reload();
    if (withdrawn) {
      log.info("cutover not started: the request was withdrawn");
      return -1;
    }
  }

  // The validation's connection is opened now, outside the freeze; its
  // snapshot is taken after the drain.
  let snapshotClient: pg.Client | null = null;
  if (h.state().phase === Phase.cutoverCatchUp || h.state().phase === Phase.frozen)
    snapshotClient = held.client = await connectPg(h.pgUrl, "sqlite2pg validate");
  let frozenLocal: number | null = null;
  let snapshotTaken = false;

  if (h.state().phase === Phase.cutoverCatchUp) {
    // 1. Catch up while the application still writes, so the freeze is short:
    // until a batch finds only a handful of changes (a steady writer never
    // leaves it empty), or for a minute at most.
    if (!freezeInfo(h.db())) {
      log.info("cutover step 1/5: catching up");
      const deadline = Date.now() + 60_000;
      // A batch ended by its byte budget is small though much may wait: go by what is left, too.
      const left = () => h.changelog().newestSeq() - h.state().appliedSeq;
      for (
        let n = await h.streamOnce();
        (n > CATCH_UP_RESIDUE || left() > CATCH_UP_RESIDUE) && Date.now() < deadline && !h.stopping();
        n = await h.streamOnce()
      ) {
        /* apply */
      }
      if (h.stopping()) {
        await snapshotClient?.end().catch(() => undefined);
        return 0;
      }
    }
    crashPoint("before-freeze");
    // 2. Freeze, holding the state row: `unfreeze` (which takes the same row
    // first) either ran before — then the request is gone and nothing is
    // frozen — or waits until the phase says frozen and undoes it properly.
    const tables = h.plan().tables.map((t) => t.source.name);
    const c = h.client();
    let withdrawn = false;
    await inTransaction(c, async () => {
      const r = await c.query("SELECT phase, cutover_requested_at FROM sqlite2pg.state WHERE source_id = $1 FOR UPDATE", [h.sourceId]);
      if (r.rows[0]?.phase !== Phase.cutoverCatchUp || r.rows[0].cutover_requested_at === null) {
        withdrawn = true;
        return;
      }
      const before = freezeInfo(h.db());
      const f = freeze(h.writer(), tables);
      // A freeze this process makes starts now; one found in place (a restart
      // after a crash that followed it) started when it was recorded, and its
      // --max-freeze deadline runs from then.
      frozenLocal = before ? performance.now() - Math.max(0, Date.now() - Date.parse(before.frozenAt)) : performance.now();
      log.info({ sentinel_seq: f.sentinelSeq }, "cutover step 2/5: SQLite frozen");
      crashPoint("after-freeze");
      await h.setPhase(Phase.frozen, {
        sql: "UPDATE sqlite2pg.state SET sentinel_seq = $2, frozen_at = $3 WHERE source_id = $1",
        params: [h.sourceId, f.sentinelSeq, f.frozenAt],
      });
    });
    if (withdrawn) {
      await h.reload();
      await snapshotClient?.end().catch(() => undefined);
      held.client = null;
      log.warn({ phase: h.state().phase }, "cutover withdrawn (sqlite2pg unfreeze) before SQLite was frozen");
      return -1;
    }
  }

  if (h.state().phase === Phase.frozen) {
    // The freeze's start: measured here when this process froze the file, else as recorded.
    const frozenAt = frozenLocal ?? performance.now() - (Date.now() - Date.parse(freezeInfo(h.db())?.frozenAt ?? String(h.state().frozenAt)));
    const maxFreeze = opts.maxFreezeMs ?? DEFAULT_MAX_FREEZE_MS;
    const deadline = frozenAt + maxFreeze;
    const c = h.client();
    // Each statement may wait at most the time left; a watchdog cancels the
    // one running at the deadline (a sum of statements each under its own
    // bound could still pass it).
    const bound = async (local = false) => {
      const left = Math.max(1, Math.floor(deadline - performance.now()));
      if (deadline - performance.now() <= 0) throw new FreezeExpired("the deadline passed between statements");
      await c.query(`SET ${local ? "LOCAL " : ""}lock_timeout = ${left}`);
      await c.query(`SET ${local ? "LOCAL " : ""}statement_timeout = ${left}`);
    };
    let expired = false;
    const watchdog = setTimeout(
      () => {
        expired = true;
        const pid = (c as unknown as { processID?: number }).processID;
        if (pid && snapshotClient) void snapshotClient.query("SELECT pg_cancel_backend($1)", [pid]).catch(() => undefined);
      },
      Math.max(0, deadline - performance.now()),
    );
    watchdog.unref();
    let committed: boolean;
    try {
      const sentinel = h.state().sentinelSeq!;
      // 3. Drain up to the sentinel.
      while (h.state().appliedSeq < sentinel) {
        await bound();
        await h.streamOnce();
        crashPoint("draining");
      }
      // The freeze blocks writes, not DDL: a schema change since the plan
      // aborts the cutover here. The deadline first: a restart that finds the
      // drain done must not let a freeze outlive --max-freeze.
      await bound();
      await h.checkSchema?.();
      log.info({ sentinel_seq: sentinel, applied_seq: h.state().appliedSeq }, "cutover step 3/5: drained up to the sentinel");
      // The validation's snapshot: everything drained, nothing the application
      // writes to Postgres after step 4.
      snapshotClient ??= held.client = await connectPg(h.pgUrl, "sqlite2pg validate");
      await snapshotClient.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      await snapshotClient.query("SELECT 1");
      snapshotTaken = true;
      crashPoint("before-commit");
      // 4. One transaction: sequences, foreign keys, the record, the notice.
      // The watchdog stops the moment the commit returns: a cancel landing after it must not undo a committed cutover.
      committed = await commitCutover(
        h,
        opts.fallback !== false,
        frozenAt,
        () => bound(true),
        () => clearTimeout(watchdog),
      );
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (!(e instanceof FreezeExpired) && !(e instanceof FreezeBroken) && !expired && code !== "55P03" && code !== "57014") throw e;
      await c.query("ROLLBACK").catch(() => undefined);
      if (snapshotClient) {
        await snapshotClient.query("ROLLBACK").catch(() => undefined);
        await snapshotClient.end().catch(() => undefined);
        held.client = null;
      }
      const why = e instanceof FreezeBroken ? e.message : `no Postgres commit within --max-freeze (${maxFreeze} ms): ${(e as Error).message}`;
      return abortFreeze(h, frozenAt, maxFreeze, why);
    } finally {
      clearTimeout(watchdog);
      await c.query("RESET lock_timeout").catch(() => undefined);
      await c.query("RESET statement_timeout").catch(() => undefined);
    }
    if (!committed) {
      await snapshotClient.query("ROLLBACK").catch(() => undefined);
      await snapshotClient.end().catch(() => undefined);
      log.warn("cutover aborted: the state left the frozen phase (sqlite2pg unfreeze); streaming again");
      await h.reload();
      return -1;
    }
    log.info({ freeze_ms: h.state().freezeMs }, "cutover step 4/5: cut over in Postgres; SQLite stays frozen");
    crashPoint("after-commit");
  }

  if (h.state().phase === Phase.cutOver) {
    if (snapshotTaken) return finish(h, opts, snapshotClient);
    await snapshotClient?.end().catch(() => undefined);
    return finish(h, opts, null);
  }
  await snapshotClient?.end().catch(() => undefined);
  return 0;
}

/**
 * Undo a freeze that reached --max-freeze, exactly as `unfreeze` does: the
 * state back to streaming first (so nothing can commit this cutover any
 * more), then SQLite takes writes again. The request stays: the daemon
 * tries again after a back-off. Logs why, with the freeze measured.
 */
async function abortFreeze(h: CutoverHost, frozenAt: number, maxFreeze: number, why: string): Promise<number> {
  const c = h.client();
  // The state row: only `unfreeze` could hold it, and briefly.
  await c.query("SET lock_timeout = 10000");
  try {
    const msg = `cutover aborted: ${why}; SQLite takes writes again, the cutover is tried again`;
    try {
      await transition(c, h.sourceId, [Phase.frozen, Phase.streaming], Phase.streaming, {
        set: { sentinel_seq: null, frozen_at: null, last_error: msg, last_error_at: NOW },
      });
    } catch (e) {
      if (e instanceof PhaseRaceError) await h.reload(); // the phase moved while the freeze was being undone
      throw e;
    }
    const triggers = unfreeze(h.writer());
    const freezeMs = +(performance.now() - frozenAt).toFixed(3);
    h.log.warn(
      { cutover: true, freeze_ms: freezeMs, max_freeze_ms: maxFreeze, reason: why, freeze_triggers_removed: triggers },
      `cutover aborted after a ${freezeMs} ms freeze: ${why}; SQLite takes writes again`,
    );
    h.onFreeze?.(freezeMs, false);
  } finally {
    await c.query("RESET lock_timeout").catch(() => undefined);
  }
  await h.reload();
  return CUTOVER_RETRY;
}

// Not inTransaction: under the freeze's deadline this transaction ends in
// three ways (ROLLBACK and false when the freeze moved, ROLLBACK and a throw,
// COMMIT then the bookkeeping that must follow the commit at once).
async function commitCutover(h: CutoverHost, fallback: boolean, frozenAtMs: number, bound: () => Promise<void>, onCommit: () => void): Promise<boolean> {
  const c = h.client();
  const plan = h.plan();
  await c.query("BEGIN");
  try {
    await bound();
    const moved = await c.query("SELECT sentinel_seq FROM sqlite2pg.state WHERE source_id = $1 AND phase = $2 FOR UPDATE", [h.sourceId, Phase.frozen]);
    // Commit only while SQLite is frozen by this very freeze: never cut over
    // with SQLite taking writes.
    const f = freezeInfo(h.db());
    if (moved.rowCount !== 1 || !f || Number(moved.rows[0].sentinel_seq) !== f.sentinelSeq) {
      await c.query("ROLLBACK");
      return false;
    }
    // Every replicated table still refuses writes: a freeze trigger dropped
    // meanwhile (DDL is not frozen) lets that table take writes the cutover
    // would never carry over. Undo this freeze; the retry makes a whole one.
    const open = unfrozenTables(
      h.db(),
      plan.tables.map((t) => t.source.name),
    );
    if (open.length) {
      await c.query("ROLLBACK");
      throw new FreezeBroken(`the freeze triggers of ${open.join(", ")} are gone: ${open.length === 1 ? "that table takes" : "those tables take"} writes`);
    }
    if (h.schemaMoved?.()) {
      // DDL since the drain's last look: not committed; the retry mirrors it or aborts the cutover.
      await c.query("ROLLBACK");
      throw sourceError("CUTOVER_SCHEMA_CHANGED", "the SQLite schema changed during the cutover's freeze, just before the commit; not committing", {
        hint: "the daemon retries: it aborts the cutover (SQLite takes writes again), mirrors the change, and runs the cutover again if it is still requested",
      });
    }
    const seqs = readSqliteSequence(h.db());
    await setSequences(c, plan, seqs, h.log);
    // Foreign keys: NOT VALID (no scan inside the freeze). One Postgres will
    // not take (its parent lost a unique key) is left out with a warning.
    for (const t of plan.tables) {
      for (const s of t.constraints.statements) {
        if (s.kind !== "foreign key") continue;
        await c.query("SAVEPOINT fk");
        try {
          await c.query(s.sql);
          await c.query("RELEASE SAVEPOINT fk");
        } catch (e) {
          await c.query("ROLLBACK TO SAVEPOINT fk");
          h.log.warn({ table: t.name, constraint: s.name, err: (e as Error).message }, `foreign key ${s.name} not created`);
        }
      }
    }
    // The way back: from this commit on, every write the application makes in Postgres is captured.
    if (fallback) await installFallbackCapture(c, plan);
    await transition(c, h.sourceId, Phase.frozen, Phase.cutOver, { set: { cutover_at: NOW } }); // the row is held FOR UPDATE: it is frozen
    await c.query("SELECT pg_notify('sqlite2pg_cutover', $1)", [JSON.stringify({ source_id: h.sourceId, schema: plan.schema })]);
    await c.query("COMMIT");
    onCommit();
    // The freeze ends here: from the SQLite commit that froze it to this commit, on this host's monotonic clock.
    const freezeMs = +(performance.now() - frozenAtMs).toFixed(3);
    h.onFreeze?.(freezeMs, true);
    await c
      .query("UPDATE sqlite2pg.state SET freeze_ms = $2 WHERE source_id = $1", [h.sourceId, freezeMs])
      .catch((e: Error) => h.log.warn({ freeze_ms: freezeMs, err: e.message }, "could not record the freeze duration"));
  } catch (e) {
    await c.query("ROLLBACK").catch(() => undefined);
    throw e;
  }
  await h.reload();
  return true;
}

function readSqliteSequence(db: BetterSqlite3.Database): Map<string, bigint | null> {
  const out = new Map<string, bigint | null>();
  const has = db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'sqlite_sequence'").get() as { n: number };
  if (!has.n) return out;
  for (const r of db.prepare("SELECT name, seq FROM sqlite_sequence").safeIntegers(true).all() as { name: string; seq: bigint }[])
    out.set(r.name, BigInt(r.seq));
  return out;
}

/** Step 5: validate, tidy up, marker, hook. */
async function finish(h: CutoverHost, opts: CutoverOptions, snapshotClient: pg.Client | null): Promise<number> {
  const log = h.log.child({ cutover: true });
  const plan = h.plan();
  const path = markerPath(h.sqlitePath);
  let result: ValidationReport & { note?: string };
  const stored = h.state().validation as (ValidationReport & { note?: string }) | null;
  if (stored && !snapshotClient) {
    // A restart after the validation was recorded (the hook failed or was
    // interrupted): keep that validation, run the hook again.
    result = stored;
  } else {
    if (snapshotClient) {
      result = await validate(h.db(), snapshotClient, plan, opts.validate);
      await snapshotClient.query("COMMIT").catch(() => undefined);
      await snapshotClient.end().catch(() => undefined);
    } else {
      // A restart after step 4: the application may already write to Postgres.
      const c = await connectPg(h.pgUrl, "sqlite2pg validate");
      try {
        result = await validate(h.db(), c, plan, "counts");
      } finally {
        await c.end().catch(() => undefined);
      }
      result.note = "validated after a restart that followed the cutover commit: rows the application wrote to Postgres since then count as differences";
    }
    log.info({ validation: result.mode, ok: result.ok }, "cutover step 5/5: validated");
    const c = h.client();
    for (const t of plan.tables) {
      for (const s of t.constraints.statements) {
        if (s.kind === "foreign key" && s.validateSql) {
          await c
            .query(s.validateSql)
            .catch((e: Error) => log.warn({ table: t.name, constraint: s.name }, `foreign key ${s.name} kept NOT VALID: ${e.message}`));
        }
      }
      if (usesRowidColumn(t)) await c.query(`ALTER TABLE ${qualified(plan.schema, t.name)} DROP COLUMN IF EXISTS ${quoteIdent(ROWID_COLUMN)}`);
    }
  }
  const state = h.state();
  const marker = {
    cutover_at: state.cutoverAt,
    frozen_at: state.frozenAt,
    freeze_ms: state.freezeMs,
    source_id: h.sourceId,
    sqlite: h.sqlitePath,
    pg: h.pgUrl ? redactUrl(h.pgUrl) : "PG* environment",
    schema: plan.schema,
    validation: result,
  };
  writeFileSync(path + ".tmp", JSON.stringify(marker, null, 2) + "\n");
  renameSync(path + ".tmp", path);
  rmSync(rollbackMarkerPath(h.sqlitePath), { force: true }); // an earlier attempt's way back is over
  // The validation is recorded before the hook runs: a restart keeps it.
  await h.client().query("UPDATE sqlite2pg.state SET validation = $2::jsonb, updated_at = now() WHERE source_id = $1", [h.sourceId, JSON.stringify(result)]);
  // The hook runs at least once, to success: its outcome is recorded, and
  // the job is "done" only after it succeeded. A restart after a failed or
  // interrupted hook runs it again (the command given now, else the one
  // recorded).
  const hook = opts.onCutover ?? state.hookCommand ?? undefined;
  // Once it succeeded, a restart before the next phase does not run it again.
  if (hook && !(stored && !snapshotClient && state.hookStatus === "ok")) {
    await h
      .client()
      .query("UPDATE sqlite2pg.state SET hook_command = $2, hook_status = 'running', hook_exit = NULL, hook_at = now() WHERE source_id = $1", [
        h.sourceId,
        hook,
      ]);
    if (state.hookStatus === "running" || state.hookStatus === "failed")
      log.warn({ previous: state.hookStatus, exit: state.hookExit }, "running the --on-cutover command again: its last run did not succeed");
    crashPoint("hook-running");
    const status = await runHook(hook, { ...marker, marker: path }, log);
    await h
      .client()
      .query("UPDATE sqlite2pg.state SET hook_status = $2, hook_exit = $3, hook_at = now(), updated_at = now() WHERE source_id = $1", [
        h.sourceId,
        status === 0 ? "ok" : "failed",
        status,
      ]);
    if (status !== 0) {
      await h.reload();
      throw new Sqlite2pgError("hook", "HOOK_FAILED", `the --on-cutover command exited with status ${status}`, {
        context: { command: hook },
        hint: "the cutover itself is committed (the application writes to Postgres); fix the command and start `sqlite2pg run` again: it runs the command again, and the job is done once it succeeds",
      });
    }
  }
  // The way back, when the capture was installed at the commit (not with --no-fallback); else done.
  const captured = await h
    .client()
    .query("SELECT 1 FROM sqlite2pg.pg_changes LIMIT 0")
    .then(
      () => true,
      () => false,
    );
  if (captured && opts.fallback !== false) await enterFallback(h);
  else await h.setPhase(Phase.done, { sql: "UPDATE sqlite2pg.state SET finished_at = now() WHERE source_id = $1", params: [h.sourceId] });
  log.info(
    { freeze_ms: state.freezeMs, validation: result.ok ? "equal" : "DIFFERS", marker: path, phase: h.state().phase },
    h.state().phase === Phase.fallback ? "cutover done: SQLite follows PostgreSQL (fallback)" : "cutover done",
  );
  if (!result.ok) {
    const bad = result.tables.filter((t) => t.sqlite_rows !== t.pg_rows || t.digest === "differs").map((t) => t.table);
    throw validationError("CUTOVER_VALIDATION", `cut over, but validation found differences in: ${bad.join(", ")}`, {
      hint: "SQLite stays frozen; run `sqlite2pg validate --full` for the rows that differ",
    });
  }
  return 0;
}
