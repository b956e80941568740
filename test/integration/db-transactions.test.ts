/**
 * Transactions of the application library on real SQLite, PostgreSQL and
 * MySQL/MariaDB: commit, rollback on throw, savepoints for nested
 * transactions, a handle that outlives its transaction, a statement that
 * would wait for its own transaction, and SQLite's serialization of
 * concurrent async callers on its one connection.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/database.js";
import { DatabaseUsageError, type Dialect } from "../../src/db/errors.js";
import { closeBackends, DIALECTS, freshBackend, unavailable } from "../helpers/backends.js";

afterEach(closeBackends);

const DDL: Record<Dialect, string> = {
  sqlite: "CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT)",
  postgres: "CREATE TABLE t (id int PRIMARY KEY, note text)",
  mysql: "CREATE TABLE t (id INT PRIMARY KEY, note TEXT) ENGINE=InnoDB",
};

async function ids(db: Database): Promise<number[]> {
  return (await db.query<{ id: number }>("SELECT id FROM t ORDER BY id")).map((r) => r.id);
}

/** A promise and its resolve function. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

class Boom extends Error {}

for (const dialect of DIALECTS) {
  describe.skipIf(unavailable(dialect))(`${dialect}: transactions`, () => {
    async function setup(): Promise<Database> {
      const db = (await freshBackend(dialect)).open();
      await db.execute(DDL[dialect]);
      return db;
    }

    it("commits what the callback did and returns its value; rolls back and rethrows when it throws", async () => {
      const db = await setup();
      const value = await db.transaction(async (tx) => {
        expect(tx.dialect).toBe(dialect);
        await tx.execute("INSERT INTO t (id) VALUES (?)", [1]);
        await tx.execute("INSERT INTO t (id) VALUES (?)", [2]);
        return "done";
      });
      expect(value).toBe("done");
      expect(await ids(db)).toStrictEqual([1, 2]);
      const boom = new Boom("the callback failed");
      await expect(
        db.transaction(async (tx) => {
          await tx.execute("INSERT INTO t (id) VALUES (?)", [3]);
          await tx.execute("DELETE FROM t WHERE id = ?", [1]);
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await ids(db)).toStrictEqual([1, 2]);
    });

    it("a transaction on the handle is a savepoint: rolled back alone when it throws, kept when it returns, to any depth", async () => {
      const db = await setup();
      await db.transaction(async (tx) => {
        await tx.execute("INSERT INTO t (id) VALUES (?)", [1]);
        await expect(
          tx.transaction(async (sp) => {
            await sp.execute("INSERT INTO t (id) VALUES (?)", [2]);
            throw new Boom("inner");
          }),
        ).rejects.toBeInstanceOf(Boom);
        expect(await ids(tx)).toStrictEqual([1]);
        const kept = await tx.transaction(async (sp) => {
          await sp.execute("INSERT INTO t (id) VALUES (?)", [3]);
          await expect(
            sp.transaction(async (sp2) => {
              await sp2.execute("INSERT INTO t (id) VALUES (?)", [4]);
              // A unique violation inside the savepoint: the savepoint undoes it and the transaction goes on (PostgreSQL too).
              await sp2.execute("INSERT INTO t (id) VALUES (?)", [1]);
            }),
          ).rejects.toMatchObject({ kind: "unique_violation" });
          await sp.execute("INSERT INTO t (id) VALUES (?)", [5]);
          return "kept";
        });
        expect(kept).toBe("kept");
      });
      expect(await ids(db)).toStrictEqual([1, 3, 5]);
      // An outer rollback undoes a released savepoint too.
      await expect(
        db.transaction(async (tx) => {
          await tx.transaction((sp) => sp.execute("INSERT INTO t (id) VALUES (?)", [6]));
          throw new Boom("outer");
        }),
      ).rejects.toBeInstanceOf(Boom);
      expect(await ids(db)).toStrictEqual([1, 3, 5]);
    });

    it("a handle refuses statements after its transaction ended, and cannot be closed", async () => {
      const db = await setup();
      let kept: Database | undefined;
      await db.transaction(async (tx) => {
        kept = tx;
        await expect(tx.close()).rejects.toBeInstanceOf(DatabaseUsageError);
      });
      await expect(kept!.query("SELECT 1 AS one")).rejects.toThrow(/transaction has ended/);
      await expect(kept!.transaction(async () => 1)).rejects.toBeInstanceOf(DatabaseUsageError);
    });

    it("a statement on the outer handle from inside its savepoint is refused, not left waiting for itself", async () => {
      const db = await setup();
      await db.transaction(async (tx) => {
        await tx.transaction(async () => {
          await expect(tx.query("SELECT id FROM t")).rejects.toThrow(/would wait for itself/);
        });
        // Once the savepoint ended, the outer handle works again.
        expect(await ids(tx)).toStrictEqual([]);
      });
    });

    it("close lets the open transaction finish, then refuses new work", async () => {
      const db = await setup();
      const go = deferred();
      const started = deferred();
      const work = db.transaction(async (tx) => {
        await tx.execute("INSERT INTO t (id) VALUES (?)", [1]);
        started.resolve();
        await go.promise;
        await tx.execute("INSERT INTO t (id) VALUES (?)", [2]);
      });
      await started.promise;
      const closing = db.close();
      go.resolve();
      await work;
      await closing;
      await expect(db.query("SELECT 1 AS one")).rejects.toThrow(/closed/);
    });
  });
}

describe("sqlite: one connection, serialized", () => {
  it("statements outside a transaction wait for it: none runs inside it, and a rollback does not undo them", async () => {
    const db = (await freshBackend("sqlite")).open();
    await db.execute(DDL.sqlite);
    const inTx = deferred();
    const release = deferred();
    const tx = db.transaction(async (t) => {
      await t.execute("INSERT INTO t (id, note) VALUES (?, ?)", [1, "tx"]);
      inTx.resolve();
      await release.promise;
      throw new Boom("roll back");
    });
    await inTx.promise;
    let outsideDone = false;
    const outside = db.execute("INSERT INTO t (id, note) VALUES (?, ?)", [2, "outside"]).then((r) => {
      outsideDone = true;
      return r;
    });
    const read = db.query<{ id: number }>("SELECT id FROM t ORDER BY id");
    // Many turns of the event loop later, the outside write still waits: it cannot run while the transaction is open.
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(outsideDone).toBe(false);
    release.resolve();
    await expect(tx).rejects.toBeInstanceOf(Boom);
    expect(await outside).toStrictEqual({ rowsAffected: 1, insertId: 2 });
    // The waiting statements ran in the order they came, after the rollback.
    expect((await read).map((r) => r.id)).toStrictEqual([2]);
    expect(await ids(db)).toStrictEqual([2]);
  });

  it("concurrent transactions run one after another: read-modify-write loses no update", async () => {
    const db = (await freshBackend("sqlite")).open();
    await db.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, n INTEGER)");
    await db.execute("INSERT INTO c VALUES (1, 0)");
    await Promise.all(
      Array.from({ length: 25 }, () =>
        db.transaction(async (tx) => {
          const [row] = await tx.query<{ n: number }>("SELECT n FROM c WHERE id = 1");
          await new Promise((r) => setImmediate(r));
          await tx.execute("UPDATE c SET n = ? WHERE id = 1", [row!.n + 1]);
        }),
      ),
    );
    expect(await db.query("SELECT n FROM c")).toStrictEqual([{ n: 25 }]);
  });

  it("the adapter itself, from inside its own transaction, is refused rather than waiting forever", async () => {
    const db = (await freshBackend("sqlite")).open();
    await db.execute(DDL.sqlite);
    await db.transaction(async () => {
      await expect(db.query("SELECT id FROM t")).rejects.toThrow(/would wait for itself/);
      await expect(db.transaction(async () => 1)).rejects.toBeInstanceOf(DatabaseUsageError);
    });
    // Work started inside a transaction but run after it ended is not refused: it simply ran after.
    let later: Promise<unknown> | undefined;
    await db.transaction(async (tx) => {
      await tx.execute("INSERT INTO t (id) VALUES (1)");
      later = new Promise((r) => setTimeout(r, 0)).then(() => ids(db));
    });
    expect(await later).toStrictEqual([1]);
  });

  it("another connection's write lock is waited for without blocking the event loop, then the transaction runs", async () => {
    const backend = await freshBackend("sqlite");
    const a = backend.open();
    const b = backend.open();
    await a.execute(DDL.sqlite);
    const holding = deferred();
    const release = deferred();
    const first = a.transaction(async (tx) => {
      await tx.execute("INSERT INTO t (id) VALUES (1)");
      holding.resolve();
      await release.promise;
    });
    await holding.promise;
    // b waits for a's write lock (another connection): the event loop keeps turning meanwhile.
    const second = b.transaction((tx) => tx.execute("INSERT INTO t (id) VALUES (2)"));
    let turns = 0;
    while (turns < 50) {
      await new Promise((r) => setTimeout(r, 1));
      turns++;
    }
    release.resolve();
    await first;
    await second;
    expect(await ids(a)).toStrictEqual([1, 2]);
  });
});
