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
 *   5. validate (counts; digests with --validate full) in a snapshot taken
 *      before step 4 committed, validate the foreign keys, drop the rowid
 *      columns, write the marker file, run the hook   (phase done)
 *
 * The freeze lasts from the SQLite commit of step 2 to the Postgres commit
 * of step 4. A restart after a crash anywhere finishes the job; before step
 * 4 commits, `sqlite2pg unfreeze` aborts it instead.
 */
import type BetterSqlite3 from "better-sqlite3";
import { spawn } from "node:child_process";
import { renameSync, writeFileSync } from "node:fs";
import type pg from "pg";
import { Sqlite2pgError, sourceError, validationError } from "../errors.js";
import type { Logger } from "../observe/logger.js";
import type { MigrationPlan } from "../plan/plan.js";
import { quoteIdent, qualified } from "../sql/ident.js";
import type { ChangelogReader } from "../source/capture.js";
import { freeze, freezeInfo } from "../source/freeze.js";
import { connectPg, redactUrl } from "../target/pg.js";
import { ROWID_COLUMN } from "../target/row-encoder.js";
import { setSequences } from "../target/sequences.js";
import type { ReplicationState } from "../target/state.js";
import { validate, type ValidationReport } from "../validate/validate.js";
import { usesRowidColumn } from "./snapshot.js";

/** How the cutover validates and what it runs after. */
export interface CutoverOptions {
  validate: "counts" | "full";
  /** Shell command run after the cutover, with the result in its environment. */
  onCutover?: string;
}

/** What the daemon lends the cutover. */
export interface CutoverHost {
  readonly log: Logger;
  readonly sqlitePath: string;
  readonly pgUrl: string | undefined;
  readonly sourceId: string;
  db(): BetterSqlite3.Database;
  writer(): BetterSqlite3.Database;
  client(): pg.Client;
  changelog(): ChangelogReader;
  state(): ReplicationState;
  plan(): MigrationPlan;
  reload(): Promise<void>;
  setPhase(to: string, extra?: { sql: string; params: unknown[] }): Promise<void>;
  streamOnce(): Promise<number>;
  /** Mirror a schema change (during the freeze: abort the cutover, loudly). */
  checkSchema?(): Promise<void>;
  /** Whether the SQLite schema moved since the plan last described it. */
  schemaMoved?(): boolean;
  stopping(): boolean;
}

/** The marker file written next to the database when the cutover is done. */
export function markerPath(sqlite: string): string {
  return `${sqlite}-sqlite2pg-cutover.json`;
}

/** A catch-up batch this small means the application's steady trickle: freeze now. */
const CATCH_UP_RESIDUE = 100;

/** Test hook: `SQLITE2PG_CRASH_AT=<step>` makes the daemon die like `kill -9` at that step. */
function crashPoint(step: string): void {
  if (process.env.SQLITE2PG_CRASH_AT === step) process.kill(process.pid, "SIGKILL");
}

/**
 * Run the cutover from wherever the state says it is. Returns 0 when done,
 * -1 when `unfreeze` aborted it; throws on failure (the daemon retries).
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
  if (h.state().phase === "streaming") await h.setPhase("cutover-catch-up");

  // The validation's connection is opened now, outside the freeze; its
  // snapshot is taken after the drain.
  let snapshotClient: pg.Client | null = null;
  if (h.state().phase === "cutover-catch-up" || h.state().phase === "frozen") snapshotClient = held.client = await connectPg(h.pgUrl, "sqlite2pg validate");
  let frozenLocal: number | null = null;
  let snapshotTaken = false;

  if (h.state().phase === "cutover-catch-up") {
    // 1. Catch up while the application still writes, so the freeze is short:
    // until a batch finds only a handful of changes (a steady writer never
    // leaves it empty), or for a minute at most.
    if (!freezeInfo(h.db())) {
      log.info("cutover step 1/5: catching up");
      const deadline = Date.now() + 60_000;
      for (let n = await h.streamOnce(); n > CATCH_UP_RESIDUE && Date.now() < deadline && !h.stopping(); n = await h.streamOnce()) { /* apply */ }
      if (h.stopping()) {
        await snapshotClient?.end().catch(() => undefined);
        return 0;
      }
    }
    crashPoint("before-freeze");
    // 2. Freeze.
    const tables = h.plan().tables.map((t) => t.source.name);
    const f = freeze(h.writer(), tables);
    frozenLocal = performance.now();
    log.info({ sentinel_seq: f.sentinelSeq }, "cutover step 2/5: SQLite frozen");
    crashPoint("after-freeze");
    await h.setPhase("frozen", {
      sql: "UPDATE sqlite2pg.state SET sentinel_seq = $2, frozen_at = $3 WHERE source_id = $1",
      params: [h.sourceId, f.sentinelSeq, f.frozenAt],
    });
  }

  if (h.state().phase === "frozen") {
    // The freeze's start: measured here when this process froze the file, else as recorded.
    const frozenAt = frozenLocal ?? performance.now() - (Date.now() - Date.parse(freezeInfo(h.db())?.frozenAt ?? String(h.state().frozenAt)));
    const sentinel = h.state().sentinelSeq!;
    // 3. Drain up to the sentinel.
    while (h.state().appliedSeq < sentinel) {
      await h.streamOnce();
      crashPoint("draining");
    }
    // The freeze blocks writes, not DDL: a schema change since the plan aborts the cutover here.
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
    const committed = await commitCutover(h, frozenAt);
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

  if (h.state().phase === "cut-over") {
    if (snapshotTaken) return finish(h, opts, snapshotClient);
    await snapshotClient?.end().catch(() => undefined);
    return finish(h, opts, null);
  }
  await snapshotClient?.end().catch(() => undefined);
  return 0;
}

async function commitCutover(h: CutoverHost, frozenAtMs: number): Promise<boolean> {
  const c = h.client();
  const plan = h.plan();
  await c.query("BEGIN");
  try {
    const moved = await c.query("SELECT sentinel_seq FROM sqlite2pg.state WHERE source_id = $1 AND phase = 'frozen' FOR UPDATE", [h.sourceId]);
    // Commit only while SQLite is frozen by this very freeze: never cut over
    // with SQLite taking writes.
    const f = freezeInfo(h.db());
    if (moved.rowCount !== 1 || !f || Number(moved.rows[0].sentinel_seq) !== f.sentinelSeq) {
      await c.query("ROLLBACK");
      return false;
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
    await c.query("UPDATE sqlite2pg.state SET phase = 'cut-over', cutover_at = now(), updated_at = now() WHERE source_id = $1", [h.sourceId]);
    await c.query("SELECT pg_notify('sqlite2pg_cutover', $1)", [JSON.stringify({ source_id: h.sourceId, schema: plan.schema })]);
    await c.query("COMMIT");
    // The freeze ends here: from the SQLite commit that froze it to this commit, on this host's monotonic clock.
    const freezeMs = +(performance.now() - frozenAtMs).toFixed(3);
    await c.query("UPDATE sqlite2pg.state SET freeze_ms = $2 WHERE source_id = $1", [h.sourceId, freezeMs]).catch((e: Error) =>
      h.log.warn({ freeze_ms: freezeMs, err: e.message }, "could not record the freeze duration"));
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
  for (const r of db.prepare("SELECT name, seq FROM sqlite_sequence").safeIntegers(true).all() as { name: string; seq: bigint }[]) out.set(r.name, BigInt(r.seq));
  return out;
}

/** Step 5: validate, tidy up, marker, hook. */
async function finish(h: CutoverHost, opts: CutoverOptions, snapshotClient: pg.Client | null): Promise<number> {
  const log = h.log.child({ cutover: true });
  const plan = h.plan();
  let result: ValidationReport & { note?: string };
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
        await c.query(s.validateSql).catch((e: Error) => log.warn({ table: t.name, constraint: s.name }, `foreign key ${s.name} kept NOT VALID: ${e.message}`));
      }
    }
    if (usesRowidColumn(t)) await c.query(`ALTER TABLE ${qualified(plan.schema, t.name)} DROP COLUMN IF EXISTS ${quoteIdent(ROWID_COLUMN)}`);
  }
  const state = h.state();
  const marker = {
    cutover_at: state.cutoverAt, frozen_at: state.frozenAt, freeze_ms: state.freezeMs, source_id: h.sourceId,
    sqlite: h.sqlitePath, pg: h.pgUrl ? redactUrl(h.pgUrl) : "PG* environment", schema: plan.schema, validation: result,
  };
  const path = markerPath(h.sqlitePath);
  writeFileSync(path + ".tmp", JSON.stringify(marker, null, 2) + "\n");
  renameSync(path + ".tmp", path);
  let hookStatus = 0;
  if (opts.onCutover) hookStatus = await runHook(opts.onCutover, { ...marker, marker: path }, log);
  await h.setPhase("done", { sql: "UPDATE sqlite2pg.state SET validation = $2::jsonb, finished_at = now() WHERE source_id = $1", params: [h.sourceId, JSON.stringify(result)] });
  log.info({ freeze_ms: state.freezeMs, validation: result.ok ? "equal" : "DIFFERS", marker: path }, "cutover done");
  if (!result.ok) {
    const bad = result.tables.filter((t) => t.sqlite_rows !== t.pg_rows || t.digest === "differs").map((t) => t.table);
    throw validationError("CUTOVER_VALIDATION", `cut over, but validation found differences in: ${bad.join(", ")}`, {
      hint: "SQLite stays frozen; run `sqlite2pg validate --full` for the rows that differ",
    });
  }
  if (hookStatus !== 0) {
    throw new Sqlite2pgError("hook", "HOOK_FAILED", `the --on-cutover command exited with status ${hookStatus}`, { hint: "the cutover itself is done; run the command again by hand" });
  }
  return 0;
}

function runHook(cmd: string, result: Record<string, unknown>, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    const env = {
      ...process.env,
      SQLITE2PG_RESULT: JSON.stringify(result),
      SQLITE2PG_MARKER: String(result.marker),
      SQLITE2PG_SCHEMA: String(result.schema),
      SQLITE2PG_FREEZE_MS: String(result.freeze_ms),
      SQLITE2PG_VALIDATION: (result.validation as { ok: boolean }).ok ? "equal" : "differs",
    };
    const child = spawn("sh", ["-c", cmd], { env, stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", (e) => {
      log.error({ err: e.message }, "--on-cutover could not start");
      resolve(127);
    });
    child.on("exit", (code) => resolve(code ?? 1));
  });
}
