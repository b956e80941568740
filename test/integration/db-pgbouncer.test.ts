/**
 * PostgresAdapter behind a real PgBouncer in transaction pooling mode with
 * one server connection: every kind of statement the adapter sends
 * (queries and writes with parameters, transactions, savepoints, the
 * distributed lock with a timeout) works, and none leaves a named prepared
 * statement on the server session (PgBouncer 1.18 cannot carry one from a
 * transaction to the next), while a named statement sent by hand does show.
 */
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { DatabaseManager } from "../../src/db/lock.js";
import { PostgresAdapter } from "../../src/db/postgres-adapter.js";
import { cleanup, freshDatabase } from "../helpers/db.js";
import { type PgBouncer, startPgBouncer } from "../helpers/pgbouncer.js";

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
  await cleanup();
});

async function bouncerFor(url: string): Promise<PgBouncer> {
  const bouncer = await startPgBouncer({ target: url, poolMode: "transaction", poolSize: 1 });
  stops.push(() => bouncer.stop());
  return bouncer;
}

describe("PostgresAdapter through PgBouncer (transaction pooling, one server connection)", () => {
  it("runs every kind of statement with no named prepared statement on the server", async () => {
    const d = await freshDatabase();
    const bouncer = await bouncerFor(d.url);
    const db = new PostgresAdapter({ primary: bouncer.url, pool: { max: 4 } });
    stops.push(() => db.close());
    const manager = new DatabaseManager(db);

    await db.execute("CREATE TABLE t (id bigint PRIMARY KEY, v text, at timestamptz)");
    // Several clients of the adapter's pool at once, all over PgBouncer's one server connection.
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        i % 4 === 0
          ? db.transaction(async (tx) => {
              await tx.execute("INSERT INTO t (id, v, at) VALUES (?, ?, ?)", [i, `tx ${i}`, new Date()]);
              await tx.transaction((sp) => sp.execute("UPDATE t SET v = v || ? WHERE id = ?", [" (savepoint)", i]));
            })
          : i % 4 === 1
            ? manager.distributedLock("t", (tx) => tx.execute("INSERT INTO t (id, v) VALUES (?, ?)", [i, `locked ${i}`]), { timeoutMs: 10_000 })
            : db.execute("INSERT INTO t (id, v) VALUES (?, ?)", [i, `plain ${i}`]),
      ),
    );
    expect(await db.query("SELECT count(*)::int AS n FROM t WHERE id < ?", [40])).toStrictEqual([{ n: 40 }]);
    expect(await db.query("SELECT v FROM t WHERE id = ?", [4])).toStrictEqual([{ v: "tx 4 (savepoint)" }]);

    // The one server session every statement above ran on has no prepared statement.
    expect(await db.query("SELECT name FROM pg_prepared_statements")).toStrictEqual([]);
    const [{ server }] = await db.query<{ server: number }>("SELECT pg_backend_pid() AS server");
    const [{ again }] = await db.query<{ again: number }>("SELECT pg_backend_pid() AS again");
    expect(again).toBe(server);

    // The check would see one: a named statement sent by hand through the same PgBouncer stays on that session.
    const c = new pg.Client({ connectionString: bouncer.url });
    await c.connect();
    try {
      await c.query({ name: "by_hand", text: "SELECT $1::int AS n", values: [1] });
      expect((await c.query("SELECT name FROM pg_prepared_statements")).rows).toStrictEqual([{ name: "by_hand" }]);
    } finally {
      await c.end();
    }
  });
});
