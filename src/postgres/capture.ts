/**
 * Change capture in PostgreSQL: the way back after the cutover. Installed in
 * the cutover's commit, read by the fallback's reverse apply
 * (src/fallback/apply.ts), removed by `finish` and by the rollback's commit.
 *
 * From the cutover commit on, the application writes to PostgreSQL; to keep
 * the SQLite file a usable fallback, every such write must reach SQLite.
 * Triggers on the replicated tables record, for each changed row, only the
 * table and the row's key in `sqlite2pg.pg_changes` — never the row's values.
 * The apply reads the row's current values from PostgreSQL by key:
 * a row that exists is written to SQLite as it is now, a row that does not is
 * deleted there. The change row is inserted by the writing transaction itself,
 * so it becomes visible exactly when the write does, and is lost exactly when
 * the write is rolled back.
 *
 * Why consume-and-delete and not a high-water mark: ids are taken from a
 * sequence when a transaction writes, not when it commits. Transaction A may
 * take id 10, B id 11; B commits, a consumer reads 11 and remembers "done up
 * to 11"; then A commits and its change 10 is never read. So there is no
 * position here: whatever is in the table is pending, whatever was deleted
 * was applied. The consumer reads what it can see ({@link readPgChanges}),
 * applies it to SQLite, and only then deletes exactly those ids
 * ({@link ackPgChanges}); A's change, invisible until A commits, stays in the
 * table and is read on a later pass. Nothing is skipped, whatever the commit
 * order.
 *
 * Why that is safe without more bookkeeping:
 * - A crash between applying and acknowledging applies the same changes
 *   again. Applying is by key and reads the current row, so doing it twice
 *   leaves SQLite as doing it once.
 * - Changes of one key read out of order (A's older change of key 7 after B's
 *   newer one) are harmless for the same reason: each apply copies the row as
 *   it is when the apply reads it, which is at least as new as every change
 *   already visible — the last apply of a key always leaves the current row.
 * - An UPDATE that changes the key is recorded as a delete of the old key and
 *   an insert of the new one, so both keys are brought up to date.
 * - Deleted change rows leave dead tuples for autovacuum; the table stays as
 *   small as the backlog.
 *
 * Keys are stored as a JSON array of the columns' text forms (JSON null for a
 * NULL), produced under fixed settings (ISO dates, UTC, exact floats, hex
 * bytea) whatever the writing session's, so every key type round-trips
 * exactly when given back to PostgreSQL as a parameter of its column's type;
 * int64 keys do not pass through a JavaScript number.
 *
 * Why statement triggers: a row trigger that inserts a change row runs an
 * INSERT through the executor for every row the application writes, 6–8 µs
 * of server CPU each — as much as the row's own write costs in a multi-row
 * statement, which then ran at half its rate (bench/fallback.mjs). Statement
 * triggers with transition tables record all the rows of a statement with
 * one INSERT … SELECT (under 2 µs a row). A key change needs the old and the
 * new key of the same row, which transition tables do not pair: a row
 * trigger that fires only for the rows whose key changed (its WHEN clause
 * compares the key's binary images, so it costs no function call otherwise)
 * records those, as a delete and an insert one after the other; the
 * statement trigger records every updated row's new key as an update (for
 * a moved row a repeat of its insert, which the apply merges).
 *
 * The trigger functions are SECURITY DEFINER with a fixed search_path: the
 * application's role needs no privilege on the `sqlite2pg` schema, and cannot
 * redirect what the functions call.
 */
import { createHash } from "node:crypto";
import type pg from "pg";
import { qualified, quoteIdent, quoteLiteral } from "../ident.js";
import { lockTables } from "./table-locks.js";

/**
 * A table to capture: its name in the target schema and its key columns
 * (primary key, or a unique key of NOT NULL columns). Without key columns
 * every statement that writes to it is recorded as a whole-table change
 * (op T, no key): the apply then copies the whole table.
 */
export interface PgCaptureTable {
  name: string;
  key: string[];
}

/** One captured change: `op` is I, U, D or T (TRUNCATE, `key` null). */
export interface PgChange {
  /** The row's id in `sqlite2pg.pg_changes`, as a decimal string (a bigint). */
  id: string;
  schema: string;
  table: string;
  op: "I" | "U" | "D" | "T";
  /** The key columns' text forms, in the order given at install; null for TRUNCATE. */
  key: (string | null)[] | null;
  /** The writing transaction's id (xid8, decimal). */
  txid: string;
  at: Date;
}

/** A keyed table's key changes (a row trigger), a keyless table's writes (a statement trigger). */
const ROW_TRIGGER = "_sqlite2pg_capture";
/** A keyed table's statement triggers, one per operation (transition tables allow one event each). */
const STATEMENT_TRIGGERS = { INSERT: "_sqlite2pg_capture_ins", UPDATE: "_sqlite2pg_capture_upd", DELETE: "_sqlite2pg_capture_del" } as const;
const TRUNCATE_TRIGGER = "_sqlite2pg_capture_truncate";
const ALL_TRIGGERS = [ROW_TRIGGER, ...Object.values(STATEMENT_TRIGGERS), TRUNCATE_TRIGGER];
/** The transition tables' names inside the trigger functions. */
const NEW_ROWS = "_sqlite2pg_new";
const OLD_ROWS = "_sqlite2pg_old";
const TRUNCATE_FUNCTION = "_sqlite2pg_capture_truncate";
const FUNCTION_PREFIX = "_sqlite2pg_capture_";
const CHANGES = "sqlite2pg.pg_changes";

/** Every trigger function runs with a fixed search_path (they are SECURITY DEFINER). */
const SEARCH_PATH = "SET search_path = pg_catalog, pg_temp";
/** The settings that fix the text forms of key values, whatever the writing session's. */
const TEXT_SETTINGS = {
  DateStyle: "'ISO, YMD'",
  IntervalStyle: "'postgres'",
  TimeZone: "'UTC'",
  extra_float_digits: "1",
  bytea_output: "'hex'",
} as const;
type TextSetting = keyof typeof TEXT_SETTINGS;
/** Key types whose text form no setting changes. */
const PLAIN_KEY_TYPES = new Set(["int2", "int4", "int8", "oid", "text", "varchar", "bpchar", "name", "char", "uuid", "bool", "numeric"]);

/**
 * The SET clauses of a table's trigger function: the search_path, and the
 * text settings its key types depend on — only those, as every SET clause is
 * saved and restored at every call (all five cost about 6 µs of the 18 µs of
 * server CPU the capture added to a single-row insert). A type not known here (a
 * domain, an array, a composite, an extension's type) gets all of them.
 */
async function keySettings(c: pg.ClientBase, schema: string, t: PgCaptureTable): Promise<string> {
  const r = await c.query<{ typname: string; typcategory: string; typtype: string }>(
    `SELECT t.typname, t.typcategory, t.typtype FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
      WHERE a.attrelid = $1::regclass AND a.attname = ANY($2::name[]) AND a.attnum > 0 AND NOT a.attisdropped`,
    [qualified(schema, t.name), t.key],
  );
  const need = new Set<TextSetting>();
  const all = Object.keys(TEXT_SETTINGS) as TextSetting[];
  if (r.rows.length < t.key.length) for (const k of all) need.add(k);
  for (const x of r.rows) {
    const base = x.typtype === "b";
    if (base && PLAIN_KEY_TYPES.has(x.typname)) continue;
    if (base && (x.typcategory === "D" || x.typcategory === "T")) for (const k of ["DateStyle", "IntervalStyle", "TimeZone"] as const) need.add(k);
    else if (base && (x.typname === "float4" || x.typname === "float8")) need.add("extra_float_digits");
    else if (base && x.typname === "bytea") need.add("bytea_output");
    else for (const k of all) need.add(k);
  }
  return [SEARCH_PATH, ...all.filter((k) => need.has(k)).map((k) => `SET ${k} = ${TEXT_SETTINGS[k]}`)].join(" ");
}

/**
 * The per-table row trigger function's name: readable while it fits
 * PostgreSQL's 63 bytes, else shortened with a hash of the full name.
 */
export function pgCaptureFunctionName(table: string): string {
  const name = FUNCTION_PREFIX + table;
  if (Buffer.byteLength(name) <= 63) return name;
  const hash = createHash("sha256").update(table).digest("hex").slice(0, 12);
  let head = name;
  while (Buffer.byteLength(`${head}_${hash}`) > 63) head = head.slice(0, -1);
  return `${head}_${hash}`;
}

/**
 * The change table. op is I, U, D or T, written only by the trigger
 * functions; no CHECK says so, as a CHECK is read back from its stored form
 * for every statement that inserts into the table (about 6 µs of the 18 µs of
 * server CPU the capture added to a single-row insert).
 */
const CHANGES_SQL = `
CREATE SCHEMA IF NOT EXISTS sqlite2pg;
CREATE TABLE IF NOT EXISTS ${CHANGES} (
  id   bigserial PRIMARY KEY,
  sch  text NOT NULL,
  tbl  text NOT NULL,
  op   "char" NOT NULL,
  k    jsonb,
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  at   timestamptz NOT NULL DEFAULT clock_timestamp()
);`;

/**
 * The per-table trigger function: called by the statement triggers with a
 * transition table of the rows written, and by the key-change row trigger
 * with OLD and NEW.
 */
function captureFunctionBody(schema: string, t: PgCaptureTable): string {
  const keyOf = (rec: string) => `jsonb_build_array(${t.key.map((c) => `${rec}.${quoteIdent(c)}::text`).join(", ")})`;
  const sch = quoteLiteral(schema);
  const tbl = quoteLiteral(t.name);
  return `
BEGIN
  IF TG_LEVEL = 'ROW' THEN
    -- Only for an UPDATE that changed the key (the trigger's WHEN): the old key deleted, the new one inserted.
    INSERT INTO ${CHANGES} (sch, tbl, op, k) VALUES (${sch}, ${tbl}, 'D', ${keyOf("OLD")}), (${sch}, ${tbl}, 'I', ${keyOf("NEW")});
  ELSIF TG_OP = 'INSERT' THEN
    INSERT INTO ${CHANGES} (sch, tbl, op, k) SELECT ${sch}, ${tbl}, 'I', ${keyOf("n")} FROM ${NEW_ROWS} n;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO ${CHANGES} (sch, tbl, op, k) SELECT ${sch}, ${tbl}, 'U', ${keyOf("n")} FROM ${NEW_ROWS} n;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO ${CHANGES} (sch, tbl, op, k) SELECT ${sch}, ${tbl}, 'D', ${keyOf("o")} FROM ${OLD_ROWS} o;
  END IF;
  RETURN NULL;
END`;
}

/**
 * The key-change row trigger's condition: the key's binary images differ
 * (stricter than =, as the recorded text forms are: 1.0 → 1.00 is a move).
 * The function, not its operator *=: between two row constructors an
 * operator compares column by column, and a dump prints the condition back
 * without a cast.
 */
function keyChanged(t: PgCaptureTable): string {
  const row = (rec: "OLD" | "NEW") => `ROW(${t.key.map((c) => `${rec}.${quoteIdent(c)}`).join(", ")})`;
  return `NOT pg_catalog.record_image_eq(${row("OLD")}, ${row("NEW")})`;
}

const TRUNCATE_BODY = `
BEGIN
  INSERT INTO ${CHANGES} (sch, tbl, op, k) VALUES (TG_ARGV[0], TG_ARGV[1], 'T', NULL);
  RETURN NULL;
END`;

/**
 * Install capture for `tables` of `schema`: the change table, one trigger
 * function per table, statement triggers with transition tables (AFTER
 * INSERT, UPDATE, DELETE) and a row trigger for key changes, and a statement
 * trigger for TRUNCATE. Idempotent (functions and triggers are replaced,
 * those of an earlier version too). Opens no transaction: run it inside the
 * caller's, so the capture starts exactly when that transaction commits.
 */
export async function installPgCapture(c: pg.ClientBase, schema: string, tables: PgCaptureTable[]): Promise<void> {
  await c.query(CHANGES_SQL);
  await c.query(
    `CREATE OR REPLACE FUNCTION sqlite2pg.${quoteIdent(TRUNCATE_FUNCTION)}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER ${SEARCH_PATH} AS ${quoteLiteral(TRUNCATE_BODY)}`,
  );
  for (const t of tables) {
    const table = qualified(schema, t.name);
    const fn = qualified(schema, pgCaptureFunctionName(t.name));
    if (t.key.length > 0)
      await c.query(
        `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER ${await keySettings(c, schema, t)} AS ${quoteLiteral(captureFunctionBody(schema, t))}`,
      );
    // DROP and CREATE rather than CREATE OR REPLACE TRIGGER, which needs PostgreSQL 14 (xid8 needs 13).
    for (const name of ALL_TRIGGERS) await c.query(`DROP TRIGGER IF EXISTS ${quoteIdent(name)} ON ${table}`);
    const whole = `FOR EACH STATEMENT EXECUTE FUNCTION sqlite2pg.${quoteIdent(TRUNCATE_FUNCTION)}(${quoteLiteral(schema)}, ${quoteLiteral(t.name)})`;
    if (t.key.length === 0) {
      // No key to name a row by: every writing statement is a whole-table change.
      await c.query(`CREATE TRIGGER ${quoteIdent(ROW_TRIGGER)} AFTER INSERT OR UPDATE OR DELETE ON ${table} ${whole}`);
    } else {
      const rows = { INSERT: `NEW TABLE AS ${NEW_ROWS}`, UPDATE: `NEW TABLE AS ${NEW_ROWS}`, DELETE: `OLD TABLE AS ${OLD_ROWS}` };
      for (const op of ["INSERT", "UPDATE", "DELETE"] as const)
        await c.query(
          `CREATE TRIGGER ${quoteIdent(STATEMENT_TRIGGERS[op])} AFTER ${op} ON ${table} REFERENCING ${rows[op]} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
        );
      await c.query(`CREATE TRIGGER ${quoteIdent(ROW_TRIGGER)} AFTER UPDATE ON ${table} FOR EACH ROW WHEN (${keyChanged(t)}) EXECUTE FUNCTION ${fn}()`);
    }
    await c.query(`CREATE TRIGGER ${quoteIdent(TRUNCATE_TRIGGER)} AFTER TRUNCATE ON ${table} ${whole}`);
  }
}

/**
 * Remove capture from `tables` of `schema`: their triggers and functions,
 * and the schema's pending changes. The change table and the shared
 * TRUNCATE function go too once no capture trigger is left in the database
 * (another schema's capture keeps them). Idempotent; opens no transaction.
 */
export async function uninstallPgCapture(c: pg.ClientBase, schema: string, tables: PgCaptureTable[]): Promise<void> {
  // Dropping a trigger takes its table's strongest lock while the application may be writing to
  // several of them in one transaction: every lock first, in an order that cannot deadlock with it.
  const present = await c.query<{ t: string }>("SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL", [
    tables.map((t) => qualified(schema, t.name)),
  ]);
  await lockTables(
    c,
    present.rows.map((r) => r.t),
    "ACCESS EXCLUSIVE",
  );
  for (const t of tables) {
    const exists = await c.query("SELECT to_regclass($1) IS NOT NULL AS e", [qualified(schema, t.name)]);
    if (exists.rows[0].e) {
      const table = qualified(schema, t.name);
      for (const name of ALL_TRIGGERS) await c.query(`DROP TRIGGER IF EXISTS ${quoteIdent(name)} ON ${table}`);
    }
    await c.query(`DROP FUNCTION IF EXISTS ${qualified(schema, pgCaptureFunctionName(t.name))}()`);
  }
  const left = await c.query("SELECT count(*)::int AS n FROM pg_catalog.pg_trigger WHERE tgname = ANY($1::name[])", [ALL_TRIGGERS]);
  if (left.rows[0].n > 0) {
    const table = await c.query("SELECT to_regclass('sqlite2pg.pg_changes') IS NOT NULL AS e");
    if (table.rows[0].e) await c.query(`DELETE FROM ${CHANGES} WHERE sch = $1`, [schema]);
    return;
  }
  await c.query(`DROP TABLE IF EXISTS ${CHANGES}`);
  await c.query(`DROP FUNCTION IF EXISTS sqlite2pg.${quoteIdent(TRUNCATE_FUNCTION)}()`);
}

/**
 * Up to `limit` pending changes of `schema` visible now, oldest id first.
 * Apply them, then {@link ackPgChanges} their ids; a change whose
 * transaction commits later than a newer id's is read on a later call.
 */
export async function readPgChanges(c: pg.ClientBase, schema: string, limit: number): Promise<PgChange[]> {
  const r = await c.query<{ id: string; sch: string; tbl: string; op: PgChange["op"]; k: string | null; txid: string; at: string }>(
    `SELECT id::text AS id, sch, tbl, op::text AS op, k::text AS k, txid::text AS txid, to_jsonb(at) #>> '{}' AS at FROM ${CHANGES} WHERE sch = $1 ORDER BY pg_changes.id LIMIT $2`,
    [schema, limit],
  );
  // at is read in ISO form (JSON's), whatever the session's DateStyle.
  // k is read as text and parsed here: its elements are strings or null, so JSON.parse loses nothing.
  return r.rows.map((x) => ({
    id: x.id,
    schema: x.sch,
    table: x.tbl,
    op: x.op,
    key: x.k === null ? null : (JSON.parse(x.k) as (string | null)[]),
    txid: x.txid,
    at: new Date(x.at),
  }));
}

/**
 * Give the planner statistics of the change table. Without any (a backlog
 * that grew before autovacuum first analysed the table: a burst in the first
 * minute after the cutover, a busy autovacuum) it takes `sch = $1` to match
 * 0.5 % of the rows, so {@link readPgChanges} seems never to reach its LIMIT
 * by the index on id: it reads and sorts the whole backlog at every batch
 * (bench/fallback.mjs: 90 ms per batch of 10,000 at 500,000 pending, 6 ms by
 * the index). Skipped with a warning, not an error, when another role owns it.
 */
export async function analyzePgChanges(c: pg.ClientBase): Promise<void> {
  await c.query(`ANALYZE ${CHANGES}`);
}

/** Delete applied changes by id; returns how many were deleted. Call only after their apply is durable. */
export async function ackPgChanges(c: pg.ClientBase, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const r = await c.query(`DELETE FROM ${CHANGES} WHERE id = ANY($1::bigint[])`, [ids]);
  return r.rowCount ?? 0;
}
