/**
 * Locks on several of the application's tables at once, for the daemon's
 * DDL on a database the application is using (the rollback's freeze and
 * its undo, the removal of the capture): taken so that the daemon never
 * deadlocks with the application's transactions.
 *
 * Why: DDL on one table after another waits for each table in turn while
 * holding the ones before it. An application transaction that wrote to
 * table A and then writes to table B, while the daemon holds B and waits
 * for A, is a deadlock: PostgreSQL aborts one of the two after
 * `deadlock_timeout` — the rollback's freeze, or the application's
 * transaction.
 *
 * How: the first table is waited for while holding none of the others
 * (a wait that holds nothing the application wants cannot close a cycle).
 * The rest are then taken within half of `deadlock_timeout` in all, so an
 * application transaction queued behind a held lock never waits long
 * enough to be checked for a deadlock. When one of them is not free in
 * that time, every lock of this attempt is released (a savepoint) and the
 * next attempt waits for that table first: for an application that writes
 * its tables in one order, the attempts converge on that order. Should
 * they not (transactions writing the tables in every order at once), the
 * tenth attempt waits for each table in turn, as plain DDL would: progress
 * over the rare deadlock, which PostgreSQL then breaks. The caller's
 * `lock_timeout` bounds the whole (0: no limit), and ends it with the
 * usual lock timeout error (55P03).
 */
import type pg from "pg";

const SAVEPOINT = "_sqlite2pg_table_locks";
/** Attempts in the deadlock-free way before the last, which waits for each table in turn. */
const MAX_ATTEMPTS = 10;

/** A lock mode of LOCK TABLE that the daemon's DDL needs. */
export type TableLockMode = "SHARE ROW EXCLUSIVE" | "ACCESS EXCLUSIVE";

function lockTimeoutError(): Error {
  return Object.assign(new Error("canceling statement due to lock timeout (taking the tables' locks)"), { code: "55P03" });
}

/**
 * Lock `tables` (qualified, quoted names) in `mode` for the rest of the
 * caller's transaction, as the module comment says. Runs inside the
 * caller's transaction (it uses a savepoint); leaves `lock_timeout` at what
 * is left of the caller's. Outside a transaction block it does nothing:
 * there the caller's statements never hold one table while waiting for
 * another.
 */
export async function lockTables(c: pg.ClientBase, tables: readonly string[], mode: TableLockMode): Promise<void> {
  if (!tables.length) return;
  const s = await c.query<{ lt: number; dt: number }>(
    "SELECT (SELECT setting::float8 FROM pg_catalog.pg_settings WHERE name = 'lock_timeout') AS lt, (SELECT setting::float8 FROM pg_catalog.pg_settings WHERE name = 'deadlock_timeout') AS dt",
  );
  const { lt, dt } = s.rows[0]!;
  const deadline = lt > 0 ? Date.now() + lt : Number.POSITIVE_INFINITY;
  const left = () => deadline - Date.now();
  const ms = (x: number) => (Number.isFinite(x) ? Math.max(1, Math.floor(x)) : 0);
  const rest = Math.max(1, Math.floor(dt / 2));
  let order = [...tables];
  for (let attempt = 1; ; attempt++) {
    const patient = attempt >= MAX_ATTEMPTS;
    try {
      await c.query(`SAVEPOINT ${SAVEPOINT}`);
    } catch (e) {
      // No transaction block: each of the caller's statements commits on its own, holding one table's lock at a time.
      if ((e as { code?: string }).code === "25P01") return;
      throw e;
    }
    let blocked: string | null = null;
    let restBy = 0;
    for (const [i, t] of order.entries()) {
      if (left() <= 0) throw lockTimeoutError();
      const wait = i === 0 || patient ? left() : Math.min(left(), restBy - Date.now());
      if (i > 0 && wait <= 0) {
        blocked = t;
        break;
      }
      await c.query(`SET LOCAL lock_timeout = ${ms(wait)}`);
      try {
        await c.query(`LOCK TABLE ${t} IN ${mode} MODE`);
      } catch (e) {
        if ((e as { code?: string }).code !== "55P03" || i === 0 || patient) throw e;
        blocked = t;
        break;
      }
      if (i === 0) restBy = Date.now() + rest;
    }
    if (blocked === null) {
      await c.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
      await c.query(`SET LOCAL lock_timeout = ${ms(left())}`);
      return;
    }
    // Everything this attempt took is released (and its lock_timeout settings undone); the blocked table goes first.
    await c.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
    await c.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
    order = [blocked, ...order.filter((x) => x !== blocked)];
  }
}
