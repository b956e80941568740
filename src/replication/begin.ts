/**
 * Phase new → snapshot: plan, create the tables, remember where the
 * changelog stands — one Postgres transaction, so a crash leaves either
 * nothing or a snapshot ready to copy.
 */
import type BetterSqlite3 from "better-sqlite3";
import type pg from "pg";
import { sourceError } from "../errors.js";
import { qualified, quoteIdent } from "../ident.js";
import { buildPlan } from "../plan/plan.js";
import { censusAll } from "../migrate/copy-pool.js";
import { inTransaction } from "../postgres/transaction.js";
import { markPosition, tablesChangedSince } from "../sqlite/capture.js";
import { readSchema } from "../sqlite/schema.js";
import { schemaFingerprint } from "./keys.js";
import { Phase } from "./phase.js";
import { rootPages, type SchemaChanges } from "./schema-changes.js";
import { snapshotTableSql } from "./snapshot.js";
import { loadInitCensus, resetProgress, toJson, type ReplicationState } from "./state.js";
import type { TableCensus } from "../sqlite/census.js";

/** What the begin step works with: the daemon's connections and its phase change. */
export interface BeginHost {
  /** The file's path (the census of a large file runs in threads that open it). */
  sqlite: string;
  db: BetterSqlite3.Database;
  writer: BetterSqlite3.Database;
  client: pg.Client;
  sourceId: string;
  state: ReplicationState;
  schema: SchemaChanges;
  setPhase(to: Phase, extra: { sql: string; params: unknown[] }): Promise<void>;
}

/** Plan the tables, create them empty, record the plan and the changelog position, and move to `snapshot`. */
export async function beginSnapshot(h: BeginHost): Promise<void> {
  const { db, client: c } = h;
  const schema = readSchema(db);
  // What init counted still holds for the tables no change was captured for since (same schema): only the others are read again.
  const counted = await loadInitCensus(c, h.sourceId);
  const kept = new Map<string, TableCensus>();
  if (counted && counted.fingerprint === schemaFingerprint(db)) {
    const changed = tablesChangedSince(db, counted.position);
    for (const t of schema.tables) {
      const census = counted.tables.get(t.name);
      if (census && !changed.has(t.name)) kept.set(t.name, census);
    }
  }
  const fresh = await censusAll(
    h.sqlite,
    db,
    schema.tables.filter((t) => !kept.has(t.name)),
  );
  const plan = buildPlan(db, schema, { schema: h.state.targetSchema, preserveCase: h.state.preserveCase }, new Map([...kept, ...fresh]));
  if (plan.refusals.length) {
    const r = plan.refusals[0]!;
    throw sourceError("VALUES_REFUSED", `table ${r.table}, column ${r.column}: ${r.reason} (${r.key})`, {
      context: { table: r.table, column: r.column, key: r.key },
    });
  }
  for (const t of plan.tables) t.bigIntegers = true;
  // Recorded before anything is read: every change from here on is applied by the stream.
  const { seq: snapshotSeq, token: snapshotToken } = markPosition(h.writer);
  await inTransaction(c, async () => {
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(plan.schema)}`);
    for (const t of plan.tables) {
      await c.query(`DROP TABLE IF EXISTS ${qualified(plan.schema, t.name)}`);
      await c.query(snapshotTableSql(plan, t));
      await resetProgress(c, h.sourceId, t.source.name, t.census.rows);
    }
    // What the plan describes: the schema cookie, its text, and each table's root page (which tells a renamed table from a rebuilt one).
    h.schema.version = Number(db.pragma("schema_version", { simple: true }));
    h.schema.fingerprint = schemaFingerprint(db);
    await h.setPhase(Phase.snapshot, {
      sql: "UPDATE sqlite2pg.state SET plan = $2::jsonb, snapshot_seq = $3, applied_seq = $3, applied_token = $6, schema_version = $4, schema_fingerprint = $5 WHERE source_id = $1",
      params: [h.sourceId, toJson({ ...plan, rootpages: rootPages(db) }), snapshotSeq, h.schema.version, h.schema.fingerprint, snapshotToken],
    });
  });
}
