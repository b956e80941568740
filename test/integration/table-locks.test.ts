/**
 * lockTables against a real PostgreSQL: the daemon's locks on several of
 * the application's tables, taken while an application transaction that
 * writes to them in another order is under way — one table after the
 * other would deadlock (shown first), lockTables never does.
 */
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { qualified } from "../../src/ident.js";
import { lockTables } from "../../src/postgres/table-locks.js";
import { waitFor } from "../helpers/daemon.js";
import { cleanup, freshDatabase } from "../helpers/db.js";

const clients: pg.Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
  await cleanup();
});

async function setup() {
  const { url, client } = await freshDatabase();
  await client.query("CREATE TABLE a (x int); CREATE TABLE b (x int)");
  const connect = async () => {
    const c = new pg.Client({ connectionString: url });
    clients.push(c);
    await c.connect();
    return c;
  };
  const app = await connect();
  const daemon = await connect();
  const pid = Number((await daemon.query("SELECT pg_backend_pid() AS p")).rows[0].p);
  /** The daemon's connection waits for a lock. */
  const waiting = () =>
    waitFor("the daemon waiting for a lock", 20_000, async () => {
      const r = await client.query("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", [pid]);
      return r.rows[0]?.wait_event_type === "Lock";
    });
  const held = async () =>
    (
      await client.query(
        "SELECT c.relname AS t, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE l.pid = $1 AND l.granted AND c.relname IN ('a', 'b') ORDER BY 1",
        [pid],
      )
    ).rows;
  return { app, daemon, waiting, held };
}

const B_THEN_A = [qualified("public", "b"), qualified("public", "a")];

describe("lockTables", () => {
  it("one table after the other deadlocks with an application writing them in the other order", async () => {
    const { app, daemon, waiting } = await setup();
    await app.query("BEGIN");
    await app.query("INSERT INTO a VALUES (1)");
    await daemon.query("BEGIN");
    await daemon.query(`LOCK TABLE ${B_THEN_A[0]} IN SHARE ROW EXCLUSIVE MODE`);
    const second = daemon.query(`LOCK TABLE ${B_THEN_A[1]} IN SHARE ROW EXCLUSIVE MODE`).then(
      () => null,
      (e: { code?: string }) => e.code,
    );
    await waiting();
    const write = app.query("INSERT INTO b VALUES (1)").then(
      () => null,
      (e: { code?: string }) => e.code,
    );
    const codes = await Promise.all([second, write]);
    expect(codes).toContain("40P01"); // one of the two is aborted by the deadlock detector
    await app.query("ROLLBACK");
    await daemon.query("ROLLBACK");
  });

  it("takes them without a deadlock: it lets the application's transaction through, then holds every table", async () => {
    const { app, daemon, waiting, held } = await setup();
    await app.query("BEGIN");
    await app.query("INSERT INTO a VALUES (1)");
    await daemon.query("BEGIN");
    await daemon.query("SET LOCAL lock_timeout = 30000");
    const locking = lockTables(daemon, B_THEN_A, "SHARE ROW EXCLUSIVE");
    await waiting();
    await app.query("INSERT INTO b VALUES (1)"); // would close the cycle
    await app.query("COMMIT");
    await locking;
    expect(await held()).toEqual([
      { t: "a", mode: "ShareRowExclusiveLock" },
      { t: "b", mode: "ShareRowExclusiveLock" },
    ]);
    // What is left of the caller's lock_timeout, not the short waits of the attempts.
    const lt = Number((await daemon.query("SELECT setting FROM pg_settings WHERE name = 'lock_timeout'")).rows[0].setting);
    expect(lt).toBeGreaterThan(20_000);
    await daemon.query("COMMIT");
    expect(Number((await app.query("SELECT count(*) AS n FROM b")).rows[0].n)).toBe(1);
  });

  it("gives up at the caller's lock_timeout with the lock timeout error, and does nothing outside a transaction", async () => {
    const { app, daemon, held } = await setup();
    await app.query("BEGIN");
    await app.query("INSERT INTO a VALUES (1)");
    await daemon.query("BEGIN");
    await daemon.query("SET LOCAL lock_timeout = 300");
    await expect(lockTables(daemon, B_THEN_A, "ACCESS EXCLUSIVE")).rejects.toMatchObject({ code: "55P03" });
    await daemon.query("ROLLBACK");
    await app.query("COMMIT");
    await lockTables(daemon, B_THEN_A, "ACCESS EXCLUSIVE");
    expect(await held()).toEqual([]);
  });
});
