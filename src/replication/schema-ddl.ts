/**
 * The Postgres side of a schema change on one table: ALTER TABLE for
 * columns, indexes and constraints translated like the plan does, and the
 * unique keys built later, at a caught-up point.
 */
import Database from "better-sqlite3";
import type pg from "pg";
import { sourceError } from "../errors.js";
import type { Logger } from "../observe/logger.js";
import type { ColumnPlan, MigrationPlan, TablePlan } from "../plan/plan.js";
import { qualified, quoteIdent } from "../ident.js";
import { paramValue } from "../convert/copy-encode.js";
import { uniqueStatements } from "./keys.js";
import { isRetryable } from "./retry.js";
import { inTransaction } from "../postgres/transaction.js";

/** ALTER TABLE for renamed, dropped and added columns. */
export async function alterColumns(
  c: pg.Client,
  schema: string,
  o: TablePlan,
  t: TablePlan,
  ops: { renames: [string, string][]; drops: string[]; adds: string[] },
): Promise<void> {
  const table = qualified(schema, t.name);
  const pgOf = (plan: TablePlan, source: string) => plan.columns.find((x) => x.source.name === source)!.name;
  // Through temporary names, so names swapped between columns do not collide.
  const moves = ops.renames.map(([a, b]) => ({ from: pgOf(o, a), to: pgOf(t, b) })).filter((m) => m.from !== m.to);
  for (const [i, m] of moves.entries()) await c.query(`ALTER TABLE ${table} RENAME COLUMN ${quoteIdent(m.from)} TO ${quoteIdent(`_sqlite2pg_tmp_${i}`)}`);
  for (const [i, m] of moves.entries()) await c.query(`ALTER TABLE ${table} RENAME COLUMN ${quoteIdent(`_sqlite2pg_tmp_${i}`)} TO ${quoteIdent(m.to)}`);
  for (const d of ops.drops) await c.query(`ALTER TABLE ${table} DROP COLUMN IF EXISTS ${quoteIdent(pgOf(o, d))}`);
  for (const a of ops.adds) {
    const col = t.columns.find((x) => x.source.name === a)!;
    const q = quoteIdent(col.name);
    await c.query(`ALTER TABLE ${table} ADD COLUMN ${q} ${col.type.sql}`);
    // The rows already there read the column's constant default in SQLite
    // (with the column's affinity applied): the same value, encoded as COPY
    // would encode it, goes to every row here. Rows changed since are in the
    // changelog and are read again.
    const value = storedDefault(col);
    // An empty table has no row to fill (and its column's type came from the declaration alone).
    if (value !== null && (await c.query(`SELECT 1 FROM ${table} LIMIT 1`)).rowCount) {
      let param: string | Buffer | null;
      try {
        param = paramValue(value, col, t.columns.indexOf(col));
      } catch (e) {
        throw sourceError(
          "SCHEMA_CHANGE_REFUSED",
          `column ${a} added to table ${t.source.name}: its default ${col.source.defaultSql} cannot be stored as ${col.type.sql}: ${(e as Error).message}`,
          {
            context: { table: t.source.name, column: a },
            hint: "replication is paused and nothing is skipped; change the column's default in SQLite, and the daemon retries by itself",
          },
        );
      }
      await c.query(`UPDATE ${table} SET ${q} = $1::${col.type.sql}`, [param]);
    }
    if (col.notNull) await c.query(`ALTER TABLE ${table} ALTER COLUMN ${q} SET NOT NULL`);
    if (col.defaultSql) await c.query(`ALTER TABLE ${table} ALTER COLUMN ${q} SET DEFAULT ${col.defaultSql}`);
  }
}

/**
 * Indexes and constraints: drop those gone or changed (stage "drop", for
 * every table first), create the new ones. Unique keys are not created here
 * (only at a caught-up point does Postgres equal one state of SQLite):
 * returns whether one waits.
 */
export async function alterConstraints(c: pg.Client, plan: MigrationPlan, o: TablePlan, t: TablePlan, stage: "drop" | "create"): Promise<boolean> {
  let waits = false;
  const table = qualified(plan.schema, t.name);
  const sig = (s: { name: string; sql: string }) => `${s.name}\u0000${s.sql}`;
  const before = o.constraints.statements.filter((s) => s.kind !== "foreign key");
  const after = t.constraints.statements.filter((s) => s.kind !== "foreign key");
  const keep = new Set(after.map(sig));
  for (const s of stage === "drop" ? before : []) {
    if (keep.has(sig(s)) && o.name === t.name) continue;
    if (s.kind === "index") await c.query(`DROP INDEX IF EXISTS ${qualified(plan.schema, s.name)}`);
    else await c.query(`ALTER TABLE ${table} DROP CONSTRAINT IF EXISTS ${quoteIdent(s.name)}`);
  }
  const had = new Set(o.name === t.name ? before.map(sig) : []);
  const unique = new Set(uniqueStatements({ ...plan, tables: [t] }).map((u) => u.name));
  for (const s of stage === "create" ? after : []) {
    if (had.has(sig(s))) continue;
    if (unique.has(s.name)) waits = true;
    else await c.query(s.sql);
  }
  return waits;
}

/** The value SQLite reads for a row that existed before ADD COLUMN: the constant default, with the column's affinity. */
function storedDefault(col: ColumnPlan): unknown {
  const d = col.source.defaultSql;
  if (d === null) return null;
  const mem = new Database(":memory:");
  try {
    mem.exec(`CREATE TABLE t (v ${col.source.declaredType} DEFAULT ${d})`);
    mem.exec("INSERT INTO t DEFAULT VALUES");
    return (mem.prepare("SELECT v FROM t").raw(true).safeIntegers(true).get() as unknown[])[0];
  } finally {
    mem.close();
  }
}

/**
 * Build the unique keys that do not exist yet (deferred to a caught-up
 * point: only then does Postgres equal one state of SQLite). One that fails
 * (collation semantics differ) is left out with a warning: the data stays exact.
 */
export async function buildMissingUniques(c: pg.Client, p: MigrationPlan, log: Logger): Promise<void> {
  for (const { table, name, sql } of uniqueStatements(p)) {
    const exists = await c.query("SELECT 1 FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace WHERE n.nspname = $1 AND k.relname = $2", [
      p.schema,
      name,
    ]);
    if (exists.rowCount) continue;
    try {
      await inTransaction(c, async () => {
        await c.query("SET LOCAL maintenance_work_mem = '256MB'");
        await c.query(sql);
      });
    } catch (e) {
      if (isRetryable(e)) throw e;
      log.warn({ table, constraint: name, err: (e as Error).message }, `unique key ${name} not created: the rows break it in Postgres`);
    }
  }
}
