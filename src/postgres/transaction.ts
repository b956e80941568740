import type pg from "pg";

/**
 * Run `fn` in one Postgres transaction on `c`: BEGIN, then COMMIT when it
 * returns, ROLLBACK when it throws (the error is rethrown; a failing
 * ROLLBACK, e.g. on a dead connection, does not hide it). `fn` may end the
 * transaction early itself with `ROLLBACK`; the COMMIT that follows is then
 * a no-op Postgres warns about, so such callers should rather throw.
 */
export async function inTransaction<T>(c: pg.ClientBase, fn: () => Promise<T>): Promise<T> {
  await c.query("BEGIN");
  try {
    const r = await fn();
    await c.query("COMMIT");
    return r;
  } catch (e) {
    await c.query("ROLLBACK").catch(() => undefined);
    throw e;
  }
}
