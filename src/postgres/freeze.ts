/**
 * The freeze of the way back: while `sqlite2pg rollback` drains the last
 * changes from PostgreSQL into SQLite, and for good after it, every write to
 * a replicated table in PostgreSQL fails with {@link ROLLBACK_FROZEN_MESSAGE}
 * (the application, or the switching database, then writes to SQLite).
 *
 * BEFORE row triggers refuse INSERT, UPDATE and DELETE, and a BEFORE
 * statement trigger refuses TRUNCATE. Creating a trigger takes a SHARE ROW
 * EXCLUSIVE lock on its table, which waits for every transaction that wrote
 * to it: once the installing transaction commits, every write that ever
 * reached these tables is committed (and captured), and none can follow.
 * Every table's lock is taken before any trigger is made, by
 * {@link lockTables}, so the wait never deadlocks with an application
 * transaction that writes to several of them. The caller bounds that wait
 * with its own `lock_timeout`.
 *
 * The function is SECURITY DEFINER with a fixed search_path, like the
 * capture's; it only raises.
 */
import type pg from "pg";
import { ROLLBACK_FROZEN_MESSAGE } from "../db/frozen.js";
import { qualified, quoteIdent, quoteLiteral } from "../ident.js";
import { lockTables } from "./table-locks.js";

const ROW_TRIGGER = "_sqlite2pg_frozen";
const TRUNCATE_TRIGGER = "_sqlite2pg_frozen_truncate";
const FUNCTION = "sqlite2pg._sqlite2pg_frozen";

const BODY = `
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = ${quoteLiteral(ROLLBACK_FROZEN_MESSAGE)},
    DETAIL = format('table %I.%I is frozen: the data moved back to SQLite', TG_TABLE_SCHEMA, TG_TABLE_NAME);
END`;

/**
 * Freeze `tables` of `schema`: install the refusing triggers. Idempotent;
 * opens no transaction (run it in the caller's, with a `lock_timeout`).
 */
export async function freezePg(c: pg.ClientBase, schema: string, tables: readonly string[]): Promise<void> {
  await c.query("CREATE SCHEMA IF NOT EXISTS sqlite2pg");
  // Every table's lock first, taken so as never to deadlock with the application; a freeze
  // trigger left in place (a repeated call) is dropped, which takes the stronger lock.
  const frozen = await frozenPgTables(c, schema, tables);
  await lockTables(
    c,
    tables.map((t) => qualified(schema, t)),
    frozen.length ? "ACCESS EXCLUSIVE" : "SHARE ROW EXCLUSIVE",
  );
  await c.query(
    `CREATE OR REPLACE FUNCTION ${FUNCTION}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${quoteLiteral(BODY)}`,
  );
  for (const t of tables) {
    const table = qualified(schema, t);
    if (frozen.includes(t)) {
      await c.query(`DROP TRIGGER IF EXISTS ${quoteIdent(ROW_TRIGGER)} ON ${table}`);
      await c.query(`DROP TRIGGER IF EXISTS ${quoteIdent(TRUNCATE_TRIGGER)} ON ${table}`);
    }
    await c.query(`CREATE TRIGGER ${quoteIdent(ROW_TRIGGER)} BEFORE INSERT OR UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION ${FUNCTION}()`);
    await c.query(`CREATE TRIGGER ${quoteIdent(TRUNCATE_TRIGGER)} BEFORE TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION ${FUNCTION}()`);
  }
}

/** Unfreeze `tables` of `schema` (the rollback undone): drop the triggers. Idempotent; opens no transaction. */
export async function unfreezePg(c: pg.ClientBase, schema: string, tables: readonly string[]): Promise<void> {
  const frozen = await frozenPgTables(c, schema, tables);
  await lockTables(
    c,
    frozen.map((t) => qualified(schema, t)),
    "ACCESS EXCLUSIVE",
  );
  for (const t of frozen) {
    const table = qualified(schema, t);
    await c.query(`DROP TRIGGER IF EXISTS ${quoteIdent(ROW_TRIGGER)} ON ${table}`);
    await c.query(`DROP TRIGGER IF EXISTS ${quoteIdent(TRUNCATE_TRIGGER)} ON ${table}`);
  }
}

/** The tables among `tables` of `schema` that have a freeze trigger of either kind. */
async function frozenPgTables(c: pg.ClientBase, schema: string, tables: readonly string[]): Promise<string[]> {
  const r = await c.query<{ tbl: string }>(
    `SELECT DISTINCT c.relname AS tbl FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND g.tgname = ANY($2::name[])`,
    [schema, [ROW_TRIGGER, TRUNCATE_TRIGGER]],
  );
  const have = new Set(r.rows.map((x) => x.tbl));
  return tables.filter((t) => have.has(t));
}

/** The tables among `tables` of `schema` that lack a freeze trigger (DDL can drop one). */
export async function unfrozenPgTables(c: pg.ClientBase, schema: string, tables: readonly string[]): Promise<string[]> {
  const r = await c.query<{ tbl: string }>(
    `SELECT c.relname AS tbl FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND g.tgname = $2`,
    [schema, ROW_TRIGGER],
  );
  const have = new Set(r.rows.map((x) => x.tbl));
  return tables.filter((t) => !have.has(t));
}
