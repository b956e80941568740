/**
 * What the daemon builds in Postgres beside the rows, and when: change keys,
 * indexes and CHECKs when the snapshot ends, unique keys when the catch-up
 * ends, foreign keys at the cutover. And the fingerprint that tells a
 * rewrite of the SQLite file (VACUUM) from a schema change.
 */
import type BetterSqlite3 from "better-sqlite3";
import { createHash } from "node:crypto";
import type { PostLoadStatement } from "../plan/model.js";
import type { MigrationPlan, TablePlan } from "../plan/plan.js";
import { qualified, quoteIdent } from "../ident.js";
import { ROWID_COLUMN } from "../convert/row-encoder.js";
import { usesRowidColumn } from "./snapshot.js";

/** The schema as SQL text, the project's own triggers and tables included (so the freeze is a change, VACUUM is not). */
export function schemaFingerprint(db: BetterSqlite3.Database): string {
  const rows = db.prepare("SELECT type, name, sql FROM main.sqlite_schema ORDER BY type, name").all() as { type: string; name: string; sql: string | null }[];
  return createHash("md5")
    .update(rows.map((r) => `${r.type}\u0000${r.name}\u0000${r.sql ?? ""}`).join("\u0001"))
    .digest("hex");
}

/** A unique key other than the change key itself: two rows may share its value for a while during the snapshot. */
function isUniqueKey(t: TablePlan, s: PostLoadStatement): boolean {
  if (s.kind === "unique") return true;
  if (s.kind === "index") return /^CREATE UNIQUE/.test(s.sql);
  // A primary key that is not the change key (a rowid table's declared non-integer key).
  return s.kind === "primary key" && t.readOrder.kind === "rowid" && !t.source.rowidAlias;
}

/**
 * Built when the snapshot ends: the change keys (primary key, or the rowid
 * column), non-unique indexes and CHECKs. Unique keys wait for the end of
 * the catch-up, foreign keys for the cutover (SQLite may hold rows that
 * break them).
 */
export function keyStatements(plan: MigrationPlan): string[] {
  return keyBuilds(plan).map((k) => k.sql);
}

/** {@link keyStatements}, each with its table and the name of the index or constraint it creates. */
export function keyBuilds(plan: MigrationPlan): { table: string; name: string; sql: string }[] {
  const out: { table: string; name: string; sql: string }[] = [];
  for (const t of plan.tables) {
    const table = qualified(plan.schema, t.name);
    if (usesRowidColumn(t)) {
      const name = `${t.name}_${ROWID_COLUMN}`.slice(0, 63);
      out.push({ table: t.name, name, sql: `CREATE UNIQUE INDEX ${quoteIdent(name)} ON ${table} (${quoteIdent(ROWID_COLUMN)})` });
    }
    for (const s of t.constraints.statements) if (s.kind !== "foreign key" && !isUniqueKey(t, s)) out.push({ table: t.name, name: s.name, sql: s.sql });
  }
  return out;
}

/** The unique keys, built once caught up. */
export function uniqueStatements(plan: MigrationPlan): { table: string; name: string; sql: string }[] {
  return plan.tables.flatMap((t) => t.constraints.statements.filter((s) => isUniqueKey(t, s)).map((s) => ({ table: t.name, name: s.name, sql: s.sql })));
}
