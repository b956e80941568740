/**
 * Schema changes on the source while replicating. The schema cookie
 * (`PRAGMA schema_version`) moves with every change to sqlite_schema; when it
 * does, the live schema is compared with the stored plan (schema-diff.ts) and
 * Postgres is brought to the new shape BEFORE any change written after it is
 * applied: the stream reads the cookie inside the read transaction of each
 * batch and refuses a batch read under a schema the plan does not describe
 * ({@link SchemaMoved}).
 *
 * The order of one reconciliation, each step safe to repeat after a crash:
 *   1. SQLite, one short write transaction: capture (re)installed where it is
 *      missing or stale, pending changelog rows of renamed tables renamed and
 *      those of dropped tables deleted; recorded as this project's own change.
 *   2. Postgres, one transaction: the DDL (drop, rename, columns, indexes,
 *      tables to copy again created empty with a snapshot_progress row), the
 *      new plan, the new cookie.
 *   3. Tables to copy again are copied in chunks (snapshotTable, resumable);
 *      their keys are built with the last chunk, unique keys at the next
 *      caught-up point. Writes made meanwhile are in the changelog: capture
 *      was installed before the copy began.
 * What cannot be mirrored pauses replication with an error naming table,
 * column and key; the daemon retries by itself once the source is fixed.
 *
 * Why one file over 400 lines: the three steps above are one
 * reconciliation, and a reader checks that a crash between any two of them
 * converges by reading them in order; the comparison (schema-diff.ts) and
 * the DDL (schema-ddl.ts) are the parts that stand alone.
 */
import type BetterSqlite3 from "better-sqlite3";
import type pg from "pg";
import { sourceError, type Sqlite2pgError } from "../errors.js";
import type { Logger } from "../observe/logger.js";
import { buildPlan, type ColumnPlan, type TablePlan } from "../plan/plan.js";
import type { TableCensus } from "../sqlite/census.js";
import { CHANGES, META, noteOwnSchemaChange, SENTINEL_TABLE, triggerNames } from "../sqlite/capture.js";
import { freezeInfo, unfreeze } from "../sqlite/freeze.js";
import { qualified, quoteIdent } from "../ident.js";
import { ROWID_COLUMN, type TransformedValue } from "../convert/row-encoder.js";
import { loadProgress, resetProgress, toJson, type ReplicationState } from "./state.js";
import { keyStatements, schemaFingerprint } from "./keys.js";
import { diffSchema, readLive, type LiveSchema, type RootPages, type SchemaDiff, type StoredPlan } from "./schema-diff.js";
import { snapshotTable, snapshotTableSql, usesRowidColumn } from "./snapshot.js";
import { alterColumns, alterConstraints } from "./schema-ddl.js";
import { Phase, transition } from "./phase.js";
import { inTransaction } from "../postgres/transaction.js";

/** Thrown inside a batch's read transaction: the schema is not the one the plan describes. */
export class SchemaMoved extends Error {
  constructor(readonly version: number) {
    super(`the SQLite schema changed (schema_version ${version}); reconciling before applying more`);
  }
}

/** What the daemon lends the reconciler. */
export interface SchemaHost {
  readonly log: Logger;
  readonly sourceId: string;
  db(): BetterSqlite3.Database;
  writer(): BetterSqlite3.Database;
  client(): pg.Client;
  state(): ReplicationState;
  reload(): Promise<void>;
  /** The plan changed: prepared apply statements are stale. */
  planChanged(): void;
  chunkRows: number;
  fixText: boolean;
  transformed: TransformedValue[];
  stopping(): boolean;
  /** Rows and bytes per chunk as they are now (SIGHUP may change them). */
  limits?(): { rows: number; bytes?: number };
  /** A chunk was copied: the daemon made progress (its watchdog and health). */
  progress?(): void;
}

const PHASES_WITHOUT_KEYS = new Set<Phase>([Phase.new, Phase.snapshot]);

/** The root page of every table now. */
export function rootPages(db: BetterSqlite3.Database): RootPages {
  const out: RootPages = {};
  for (const r of db.prepare("SELECT name, rootpage FROM main.sqlite_schema WHERE type = 'table'").all() as { name: string; rootpage: number }[])
    out[r.name] = Number(r.rootpage);
  return out;
}

/** Keeps Postgres and the stored plan in step with the source's schema. */
export class SchemaChanges {
  /** The cookie and schema text the stored plan describes. */
  version: number;
  fingerprint: string;
  /** A table copy may be unfinished (after a restart): look before applying. */
  private recopyCheck = true;
  /** Unique keys may be missing (deferred to a caught-up point). */
  uniquesPending = true;
  /**
   * Compare once after a start even if the cookie did not move: capture
   * installed by an older version, or changed while no daemon ran, is found
   * (stale triggers re-installed, missing ones re-installed and the table copied).
   */
  private startupCheck = true;

  constructor(
    private readonly h: SchemaHost,
    version: number,
    fingerprint: string,
  ) {
    this.version = version;
    this.fingerprint = fingerprint;
  }

  private cookie(): number {
    return Number(this.h.db().pragma("schema_version", { simple: true }));
  }

  /** Inside a batch's read transaction: throw if the schema is not the plan's. */
  guard(): void {
    const v = this.cookie();
    if (v !== this.version) throw new SchemaMoved(v);
  }

  /** Whether the schema moved since the plan (for the cutover's last check). */
  moved(): boolean {
    return this.cookie() !== this.version;
  }

  /**
   * Bring Postgres and the plan to the schema as it is now, and finish any
   * table copy left. Returns false when stopped before a copy finished (apply
   * nothing then).
   */
  async reconcile(): Promise<boolean> {
    const phase = this.h.state().phase;
    if (phase === Phase.new || phase === Phase.cutOver || phase === Phase.done) return true;
    if (phase === Phase.frozen) this.startupCheck = false; // during the freeze only a moved cookie counts
    for (let attempt = 0; this.cookie() !== this.version || this.startupCheck; attempt++) {
      if (attempt >= 5)
        throw sourceError("SCHEMA_UNSETTLED", "the SQLite schema kept changing while it was being mirrored", {
          hint: "replication retries by itself once the application's migration is over",
        });
      try {
        await this.reconcileOnce();
        this.startupCheck = false;
      } catch (e) {
        if (!(e instanceof SchemaMoved)) throw e; // changed again meanwhile: look again
      }
    }
    if (!this.recopyCheck || PHASES_WITHOUT_KEYS.has(phase)) return true;
    const done = await this.finishCopies();
    if (done) this.recopyCheck = false;
    return done;
  }

  private async reconcileOnce(): Promise<void> {
    const h = this.h;
    const live = readLive(h.db());
    const plan = h.state().plan as StoredPlan;
    const fpChanged = live.fingerprint !== this.fingerprint;
    // Root pages are compared unless the file was rewritten (VACUUM renumbers them).
    const usePages = fpChanged || live.version === live.own || live.version === this.version;
    if (!fpChanged && live.version !== this.version) {
      // The cookie moved but no text did: VACUUM (it may renumber the rowids
      // of tables without an INTEGER PRIMARY KEY, which this replica keys by
      // rowid: changes from now on would name rows by their new rowids).
      const byRowid = plan.tables.filter((t) => usesRowidColumn(t)).map((t) => t.source.name);
      if (byRowid.length && live.version !== live.own) {
        throw sourceError(
          "SCHEMA_CHANGED",
          `the SQLite file was rewritten (VACUUM?): the rowids of ${byRowid.join(", ")} — tables without an INTEGER PRIMARY KEY, replicated by rowid — may have been renumbered`,
          {
            hint: "replication is paused to apply nothing to the wrong rows; run `sqlite2pg validate --full`, and if it differs, replicate again into a fresh schema (give such tables an INTEGER PRIMARY KEY to be immune to VACUUM)",
          },
        );
      }
    }
    const diff = fpChanged || usePages || this.startupCheck ? diffSchema(plan, live, usePages) : null;
    if (!diff?.any) {
      await this.accept(live);
      return;
    }
    if (h.state().phase === Phase.frozen || freezeInfo(h.db())) {
      await this.abortCutover(diff);
      return;
    }
    h.log.info({ changes: diff.summary }, "schema change on the source: mirroring it");
    const next = this.nextPlan(plan, live, diff);
    const after = this.captureFirst(live, diff);
    await this.applyDdl(next, diff, after);
    this.recopyCheck = true;
  }

  /** The new plan: unchanged tables exactly as they were, changed ones re-planned. */
  private nextPlan(plan: StoredPlan, live: LiveSchema, diff: SchemaDiff): StoredPlan {
    const censuses = new Map<string, TableCensus>();
    for (const k of diff.kept) if (!k.ops.renames.length && !k.ops.drops.length && !k.ops.adds.length) censuses.set(k.live.name, k.old.census);
    const fresh = buildPlan(this.h.db(), live.schema, { schema: plan.schema, preserveCase: plan.preserveCase }, censuses);
    // Columns whose type is chosen now: every column of a table planned again, the added ones of an altered table.
    const chosen = (table: string, column: string) =>
      diff.fresh.some((f) => f.live.name === table) || diff.kept.some((k) => k.live.name === table && k.ops.adds.includes(column));
    const refusal = fresh.refusals.find((r) => chosen(r.table, r.column));
    if (refusal) {
      throw sourceError(
        "SCHEMA_CHANGE_REFUSED",
        `the new shape of table ${refusal.table} cannot go to Postgres: column ${refusal.column}: ${refusal.reason} (${refusal.key})`,
        {
          context: { table: refusal.table, column: refusal.column, key: refusal.key },
          hint: "replication is paused and nothing is skipped: fix these values (or the column) in SQLite; the daemon retries by itself and mirrors the change once Postgres can hold it",
        },
      );
    }
    for (const f of diff.fresh) {
      const cap = live.capture.get(f.live.name);
      if (cap && "error" in cap) throw pauseWith(cap.error);
    }
    const tables: TablePlan[] = fresh.tables.map((nt) => {
      const k = diff.kept.find((x) => x.live.name === nt.source.name);
      if (!k) return { ...nt, bigIntegers: true };
      const o = k.old;
      const hasOps = k.ops.renames.length + k.ops.drops.length + k.ops.adds.length > 0;
      const fks = nt.constraints.statements.filter((s) => s.kind === "foreign key");
      if (!hasOps && !k.changed) {
        // Foreign keys are built at the cutover: take them from the new plan (a parent may have been renamed).
        return {
          ...o,
          source: nt.source,
          constraints: { ...o.constraints, statements: [...o.constraints.statements.filter((s) => s.kind !== "foreign key"), ...fks] },
        };
      }
      const renamedTo = new Map(k.ops.renames);
      const columns: ColumnPlan[] = nt.columns.map((nc) => {
        const from = [...renamedTo.entries()].find(([, b]) => b === nc.source.name)?.[0] ?? nc.source.name;
        const oc = k.ops.adds.includes(nc.source.name) ? undefined : o.columns.find((c) => c.source.name === from);
        return oc ? { ...oc, source: nc.source, name: nc.name } : nc;
      });
      return { ...nt, name: k.renamedFrom ? nt.name : o.name, columns, census: hasOps ? nt.census : o.census, bigIntegers: true };
    });
    return { ...fresh, tables, rootpages: live.pages };
  }

  /** Step 1: capture where it is missing or stale, and the changelog rows of renamed and dropped tables. */
  private captureFirst(live: LiveSchema, diff: SchemaDiff): { version: number; fingerprint: string } {
    const w = this.h.writer();
    const applied = this.h.state().appliedSeq;
    const install = [...diff.fresh.map((f) => f.live.name), ...diff.kept.filter((k) => k.reinstall).map((k) => k.live.name)];
    for (const name of install) {
      const cap = live.capture.get(name);
      if (cap && "error" in cap) throw pauseWith(cap.error);
    }
    const tx = w.transaction(() => {
      if (Number(w.pragma("schema_version", { simple: true })) !== live.version) throw new SchemaMoved(live.version);
      const put = w.prepare(`INSERT OR REPLACE INTO ${META} (key, value) VALUES (?, ?)`);
      const dropTriggers = (table: string) => {
        const n = triggerNames(table);
        for (const name of [n.ins, n.upd, n.del, n.binsert, n.bupdate]) w.exec(`DROP TRIGGER IF EXISTS main.${quoteIdent(name)}`);
        w.prepare(`DELETE FROM ${META} WHERE key = ?`).run(`triggers:${table}`);
      };
      for (const p of diff.dropped) {
        w.prepare(`DELETE FROM ${CHANGES} WHERE seq > ? AND tbl = ?`).run(applied, p.source.name);
        if (!live.schema.tables.some((t) => t.name === p.source.name)) w.prepare(`DELETE FROM ${META} WHERE key = ?`).run(`triggers:${p.source.name}`);
      }
      // The old triggers carry the old name as a string: what they recorded
      // belongs to the new name. One statement for all renames, so names
      // swapped between tables are not mixed up.
      const renames = Object.fromEntries(diff.kept.flatMap((k) => (k.renamedFrom ? [[k.renamedFrom, k.live.name]] : [])));
      for (const from of Object.keys(renames)) dropTriggers(from);
      const pairs = Object.entries(renames);
      if (pairs.length) {
        const cases = pairs.map(() => "WHEN ? THEN ?").join(" ");
        w.prepare(`UPDATE ${CHANGES} SET tbl = CASE tbl ${cases} END WHERE seq > ? AND tbl IN (${pairs.map(() => "?").join(", ")})`).run(
          ...pairs.flat(),
          applied,
          ...pairs.map(([from]) => from),
        );
      }
      // Every drop before any create: names may be swapped between tables.
      for (const name of install) {
        dropTriggers(name);
        // Capture triggers a rename brought along under another table's name would record changes under that name.
        for (const [trigger, on] of live.triggers) {
          if (on === name && /^_sqlite2pg_(ins|upd|del|rins|rupd)_/.test(trigger)) w.exec(`DROP TRIGGER IF EXISTS main.${quoteIdent(trigger)}`);
        }
      }
      for (const name of install) {
        const cap = live.capture.get(name) as { sql: string; hash: string };
        w.exec(cap.sql);
        put.run(`triggers:${name}`, cap.hash);
      }
      // Changes of tables that exist no more (dropped before the daemon saw them) have nothing to apply.
      const names = live.schema.tables.map((t) => t.name);
      w.prepare(`DELETE FROM ${CHANGES} WHERE seq > ? AND tbl <> ? AND tbl NOT IN (SELECT value FROM json_each(?))`).run(
        applied,
        SENTINEL_TABLE,
        JSON.stringify(names),
      );
      const v = Number(w.pragma("schema_version", { simple: true }));
      if (v !== live.version) noteOwnSchemaChange(w); // only a change made here
      // Read inside the transaction: a change the application makes right after is not taken for this one.
      return { version: v, fingerprint: schemaFingerprint(w) };
    });
    const before = w.pragma("busy_timeout", { simple: true });
    w.pragma("busy_timeout = 5000");
    try {
      return tx.immediate();
    } finally {
      w.pragma(`busy_timeout = ${Number(before)}`);
    }
  }

  /** Step 2: one Postgres transaction, DDL and the plan together. */
  private async applyDdl(next: StoredPlan, diff: SchemaDiff, live: { version: number; fingerprint: string }): Promise<void> {
    const c = this.h.client();
    const phase = this.h.state().phase;
    const withKeys = !PHASES_WITHOUT_KEYS.has(phase);
    const schema = next.schema;
    const tableOf = (source: string) => next.tables.find((t) => t.source.name === source)!;
    await inTransaction(c, async () => {
      for (const p of diff.dropped) {
        await c.query(`DROP TABLE IF EXISTS ${qualified(schema, p.name)}`);
        await c.query("DELETE FROM sqlite2pg.snapshot_progress WHERE source_id = $1 AND table_name = $2", [this.h.sourceId, p.source.name]);
      }
      // Renames go through temporary names, so names swapped between tables do not collide.
      const renamed = diff.kept.filter((k) => k.renamedFrom !== null);
      // The rowid index is named after its table (keys.ts): it follows, so a new table may take the old name.
      const rowidIndex = (name: string) => `${name}_${ROWID_COLUMN}`.slice(0, 63);
      for (const [i, k] of renamed.entries()) {
        if (usesRowidColumn(k.old))
          await c.query(`ALTER INDEX IF EXISTS ${qualified(schema, rowidIndex(k.old.name))} RENAME TO ${quoteIdent(`_sqlite2pg_tmpix_${i}`)}`);
        await c.query(`ALTER TABLE ${qualified(schema, k.old.name)} RENAME TO ${quoteIdent(`_sqlite2pg_tmp_${i}`)}`);
        await c.query("UPDATE sqlite2pg.snapshot_progress SET table_name = $3 WHERE source_id = $1 AND table_name = $2", [
          this.h.sourceId,
          k.renamedFrom,
          `_sqlite2pg_tmp_${i}`,
        ]);
      }
      for (const [i, k] of renamed.entries()) {
        await c.query(`ALTER TABLE ${qualified(schema, `_sqlite2pg_tmp_${i}`)} RENAME TO ${quoteIdent(tableOf(k.live.name).name)}`);
        if (usesRowidColumn(k.old))
          await c.query(`ALTER INDEX IF EXISTS ${qualified(schema, `_sqlite2pg_tmpix_${i}`)} RENAME TO ${quoteIdent(rowidIndex(tableOf(k.live.name).name))}`);
        await c.query("UPDATE sqlite2pg.snapshot_progress SET table_name = $3 WHERE source_id = $1 AND table_name = $2", [
          this.h.sourceId,
          `_sqlite2pg_tmp_${i}`,
          k.live.name,
        ]);
      }
      for (const f of diff.fresh) {
        const t = tableOf(f.live.name);
        if (f.old) await c.query(`DROP TABLE IF EXISTS ${qualified(schema, f.old.name)}`);
        await c.query(`DROP TABLE IF EXISTS ${qualified(schema, t.name)}`);
        await c.query(snapshotTableSql(next, t));
        if (f.old && f.old.source.name !== t.source.name)
          await c.query("DELETE FROM sqlite2pg.snapshot_progress WHERE source_id = $1 AND table_name = $2", [this.h.sourceId, f.old.source.name]);
        await resetProgress(c, this.h.sourceId, t.source.name, t.census.rows);
      }
      for (const k of diff.kept) await alterColumns(c, schema, k.old, tableOf(k.live.name), k.ops);
      if (withKeys) {
        // Every drop first: a name freed on one table may be taken on another (tables swapping names).
        for (const stage of ["drop", "create"] as const)
          for (const k of diff.kept) if (k.changed && (await alterConstraints(c, next, k.old, tableOf(k.live.name), stage))) this.uniquesPending = true;
      }
      await c.query("UPDATE sqlite2pg.state SET plan = $2::jsonb, schema_version = $3, schema_fingerprint = $4, updated_at = now() WHERE source_id = $1", [
        this.h.sourceId,
        toJson(next),
        live.version,
        live.fingerprint,
      ]);
    });
    this.version = live.version;
    this.fingerprint = live.fingerprint;
    await this.h.reload();
    this.h.planChanged();
    this.h.log.info({ schema_version: live.version }, "schema change mirrored in Postgres");
  }

  /** The cookie moved but nothing needs mirroring (the project's own change, or VACUUM of a file keyed by declared keys). */
  private async accept(live: LiveSchema): Promise<void> {
    // A table captured and dropped again between two looks leaves the schema
    // text as it was, and changes that name a table that exists no more.
    const names = JSON.stringify(live.schema.tables.map((t) => t.name));
    const orphan = "FROM " + CHANGES + " WHERE seq > ? AND tbl <> ? AND tbl NOT IN (SELECT value FROM json_each(?))";
    if (this.h.db().prepare(`SELECT 1 ${orphan} LIMIT 1`).get(this.h.state().appliedSeq, SENTINEL_TABLE, names)) {
      this.h.writer().prepare(`DELETE ${orphan}`).run(this.h.state().appliedSeq, SENTINEL_TABLE, names);
    }
    await this.h
      .client()
      .query(
        "UPDATE sqlite2pg.state SET schema_version = $2, schema_fingerprint = $3, plan = jsonb_set(plan, '{rootpages}', $4::jsonb), updated_at = now() WHERE source_id = $1",
        [this.h.sourceId, live.version, live.fingerprint, JSON.stringify(live.pages)],
      );
    this.version = live.version;
    this.fingerprint = live.fingerprint;
    await this.h.reload();
  }

  /**
   * A schema change after the freeze: the freeze triggers block writes, not
   * DDL, and a new or rebuilt table takes writes the cutover would miss. The
   * cutover is aborted (state back to streaming, then SQLite unfrozen, as
   * `sqlite2pg unfreeze` does) and this error says so; the daemon mirrors the
   * change as usual and a cutover still requested runs again.
   */
  private async abortCutover(diff: SchemaDiff): Promise<never> {
    const c = this.h.client();
    await inTransaction(c, async () => {
      await transition(c, this.h.sourceId, [Phase.cutoverCatchUp, Phase.frozen], Phase.streaming, {
        set: { sentinel_seq: null, frozen_at: null },
        optional: true,
      });
      unfreeze(this.h.writer());
    });
    await this.h.reload();
    this.h.log.error({ changes: diff.summary }, "the schema changed while SQLite was frozen for the cutover: cutover aborted, SQLite takes writes again");
    throw sourceError(
      "CUTOVER_SCHEMA_CHANGED",
      `the SQLite schema changed during the cutover's freeze (${diff.summary.join("; ")}): the cutover is aborted and SQLite takes writes again`,
      {
        hint: "the freeze blocks writes, not schema changes; the daemon mirrors the change and runs the cutover again if it is still requested — deploy schema migrations before or after the cutover, not during it",
      },
    );
  }

  /** Step 3: copy what a reconciliation (or a restart) left to copy, keys with the last chunk. */
  private async finishCopies(): Promise<boolean> {
    const h = this.h;
    const progress = await loadProgress(h.client(), h.sourceId);
    for (const p of progress) {
      if (p.done) continue;
      const plan = h.state().plan!;
      const t = plan.tables.find((x) => x.source.name === p.table);
      if (!t) continue;
      h.log.info(
        { table: t.source.name, rows: p.rows, total: p.total },
        p.rows ? "copy after a schema change: resuming table" : "copy after a schema change: copying table",
      );
      const done = await snapshotTable(h.db(), h.client(), plan, t, p, {
        sourceId: h.sourceId,
        chunkRows: h.chunkRows,
        fixText: h.fixText,
        transformed: h.transformed,
        stopping: () => h.stopping(),
        onChunk: () => h.progress?.(),
        limits: h.limits ? () => h.limits!() : undefined,
        finish: async (c) => {
          for (const sql of keyStatements({ ...plan, tables: [t] })) {
            await c.query(sql);
            h.progress?.();
          }
        },
      });
      if (!done) return false;
      this.uniquesPending = true;
    }
    return true;
  }
}

/** Capture's own refusal (code, message, table), with what pausing means here. */
function pauseWith(e: Sqlite2pgError): Error {
  return sourceError(e.code, `a table changed on the source cannot be captured: ${e.message}`, {
    context: e.context,
    hint: `${e.hint ? e.hint + "; " : ""}replication is paused and nothing is skipped: change the table in SQLite so it can be captured (or drop it), and the daemon retries by itself`,
  });
}
