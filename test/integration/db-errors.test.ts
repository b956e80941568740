/**
 * Typed errors from real servers: each backend's own code (SQLSTATE, SQLite
 * extended result code, MySQL errno) under one `kind`, recognisable by
 * class: unique violations, lock timeouts, deadlocks, serialization
 * failures, a transaction the server already rolled back, connections
 * refused, and connections lost inside a transaction and during COMMIT.
 */
import pg from "pg";
import mysql from "mysql2/promise";
import { afterEach, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/database.js";
import {
  CommitOutcomeUnknownError,
  ConnectionLostError,
  DatabaseError,
  DeadlockError,
  LockTimeoutError,
  SerializationFailureError,
  TransactionAbortedError,
  UniqueViolationError,
  type Dialect,
} from "../../src/db/errors.js";
import { MysqlAdapter } from "../../src/db/mysql-adapter.js";
import { PostgresAdapter } from "../../src/db/postgres-adapter.js";
import { SqliteAdapter } from "../../src/db/sqlite-adapter.js";
import { closeBackends, DIALECTS, freshBackend, MYSQL_URL, tracked, unavailable } from "../helpers/backends.js";

afterEach(closeBackends);

const DDL: Record<Dialect, string> = {
  sqlite: "CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INTEGER, label TEXT NOT NULL DEFAULT 'x')",
  postgres: "CREATE TABLE t (id int PRIMARY KEY, email text CONSTRAINT t_email_key UNIQUE, n int, label text NOT NULL DEFAULT 'x')",
  mysql: "CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(100) UNIQUE, n INT, label VARCHAR(10) NOT NULL DEFAULT 'x') ENGINE=InnoDB",
};

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

/** Poll `check` until it returns true (a generous deadline, never a fixed sleep). */
async function until(check: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const dialect of DIALECTS) {
  describe.skipIf(unavailable(dialect))(`${dialect}: errors`, () => {
    it("a unique violation is a UniqueViolationError carrying the backend's code", async () => {
      const db = (await freshBackend(dialect)).open();
      await db.execute(DDL[dialect]);
      await db.execute("INSERT INTO t (id, email) VALUES (?, ?)", [1, "a@example.com"]);
      const byKey = await caught(db.execute("INSERT INTO t (id, email) VALUES (?, ?)", [1, "b@example.com"]));
      const byEmail = await caught(db.transaction((tx) => tx.execute("INSERT INTO t (id, email) VALUES (?, ?)", [2, "a@example.com"])));
      for (const e of [byKey, byEmail]) {
        expect(e).toBeInstanceOf(UniqueViolationError);
        expect(e).toBeInstanceOf(DatabaseError);
        expect(e).toMatchObject({ kind: "unique_violation", dialect, retryable: false });
      }
      const expected = {
        sqlite: [{ code: "SQLITE_CONSTRAINT_PRIMARYKEY" }, { code: "SQLITE_CONSTRAINT_UNIQUE" }],
        postgres: [
          { code: "23505", sqlState: "23505", constraint: "t_pkey" },
          { code: "23505", sqlState: "23505", constraint: "t_email_key" },
        ],
        mysql: [
          { code: "ER_DUP_ENTRY", errno: 1062, sqlState: "23000" },
          { code: "ER_DUP_ENTRY", errno: 1062, sqlState: "23000" },
        ],
      }[dialect];
      expect(byKey).toMatchObject(expected[0]!);
      expect(byEmail).toMatchObject(expected[1]!);
      // Other constraint kinds are named too.
      await expect(db.execute("INSERT INTO t (id, label) VALUES (?, ?)", [5, null])).rejects.toMatchObject({
        kind: "not_null_violation",
        code: { sqlite: "SQLITE_CONSTRAINT_NOTNULL", postgres: "23502", mysql: "ER_BAD_NULL_ERROR" }[dialect],
      });
    });

    it("a server that cannot be reached is a retryable ConnectionLostError", async () => {
      const refused: Record<Dialect, () => Database | null> = {
        sqlite: () => null,
        postgres: () => tracked(new PostgresAdapter({ primary: "postgres://postgres@127.0.0.1:1/none", pool: { connectionTimeoutMillis: 5000 } })),
        mysql: () => tracked(new MysqlAdapter({ url: "mysql://root@127.0.0.1:1/none", pool: { connectTimeout: 5000 } })),
      };
      const db = refused[dialect]();
      if (db === null) {
        // SQLite has no server: a file that cannot be opened is refused at once.
        expect(() => new SqliteAdapter({ file: "/nonexistent-dir/x.db" })).toThrow(DatabaseError);
        return;
      }
      const e = await caught(db.query("SELECT 1 AS one"));
      expect(e).toBeInstanceOf(ConnectionLostError);
      expect(e).toMatchObject({ kind: "connection_lost", code: "ECONNREFUSED", retryable: true });
      await expect(db.transaction(async () => 1)).rejects.toBeInstanceOf(ConnectionLostError);
    });
  });
}

describe("sqlite: lock timeouts", () => {
  it("a write while another connection holds the write lock fails after busyTimeoutMs with LockTimeoutError (SQLITE_BUSY)", async () => {
    const backend = await freshBackend("sqlite", { busyTimeoutMs: 150 });
    const holder = backend.open();
    const waiter = backend.open();
    await holder.execute(DDL.sqlite);
    const holding = deferred();
    const release = deferred();
    const held = holder.transaction(async (tx) => {
      await tx.execute("INSERT INTO t (id) VALUES (1)");
      holding.resolve();
      await release.promise;
    });
    await holding.promise;
    try {
      for (const attempt of [waiter.execute("INSERT INTO t (id) VALUES (2)"), waiter.transaction((tx) => tx.execute("INSERT INTO t (id) VALUES (3)"))]) {
        const e = await caught(attempt);
        expect(e).toBeInstanceOf(LockTimeoutError);
        expect(e).toMatchObject({ kind: "lock_timeout", dialect: "sqlite", code: "SQLITE_BUSY", retryable: true, lockName: undefined });
      }
      // Reads are not blocked by a writer in WAL mode.
      expect(await waiter.query("SELECT COUNT(*) AS n FROM t")).toStrictEqual([{ n: 0 }]);
    } finally {
      release.resolve();
      await held;
    }
    await waiter.execute("INSERT INTO t (id) VALUES (2)");
    expect(await waiter.query("SELECT id FROM t ORDER BY id")).toStrictEqual([{ id: 1 }, { id: 2 }]);
  });
});

describe("postgres: lock timeout, deadlock, serialization failure, aborted transactions, lost connections", () => {
  async function setup(): Promise<{ db: Database; url: string }> {
    const backend = await freshBackend("postgres");
    const db = backend.open();
    await db.execute(DDL.postgres);
    await db.execute("INSERT INTO t (id, n) VALUES (1, 0), (2, 0)");
    return { db, url: backend.target.url };
  }

  it("a row lock not granted within lock_timeout is a LockTimeoutError (55P03)", async () => {
    const { db } = await setup();
    const holding = deferred();
    const release = deferred();
    const held = db.transaction(async (tx) => {
      await tx.query("SELECT * FROM t WHERE id = 1 FOR UPDATE");
      holding.resolve();
      await release.promise;
    });
    await holding.promise;
    try {
      const e = await caught(
        db.transaction(async (tx) => {
          await tx.execute("SET LOCAL lock_timeout = '100ms'");
          await tx.execute("UPDATE t SET n = 1 WHERE id = 1");
        }),
      );
      expect(e).toBeInstanceOf(LockTimeoutError);
      expect(e).toMatchObject({ code: "55P03", sqlState: "55P03", retryable: true, lockName: undefined });
    } finally {
      release.resolve();
      await held;
    }
  });

  it("a deadlock is a retryable DeadlockError (40P01) for one of the two transactions", async () => {
    const { db } = await setup();
    const aLocked = deferred();
    const bLocked = deferred();
    const a = db.transaction(async (tx) => {
      await tx.execute("UPDATE t SET n = n + 1 WHERE id = 1");
      aLocked.resolve();
      await bLocked.promise;
      await tx.execute("UPDATE t SET n = n + 1 WHERE id = 2");
    });
    const b = db.transaction(async (tx) => {
      await tx.execute("UPDATE t SET n = n + 1 WHERE id = 2");
      bLocked.resolve();
      await aLocked.promise;
      await tx.execute("UPDATE t SET n = n + 1 WHERE id = 1");
    });
    const outcomes = await Promise.allSettled([a, b]);
    const failed = outcomes.filter((o) => o.status === "rejected").map((o) => (o as PromiseRejectedResult).reason);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toBeInstanceOf(DeadlockError);
    expect(failed[0]).toMatchObject({ kind: "deadlock", code: "40P01", retryable: true });
    expect(await db.query("SELECT n FROM t ORDER BY id")).toStrictEqual([{ n: 1 }, { n: 1 }]);
  });

  it("a serialization failure is a retryable SerializationFailureError (40001)", async () => {
    const { db } = await setup();
    const e = await caught(
      db.transaction(async (tx) => {
        await tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
        await tx.query("SELECT n FROM t WHERE id = 1"); // the snapshot
        await db.execute("UPDATE t SET n = 5 WHERE id = 1"); // another connection commits a change
        await tx.execute("UPDATE t SET n = n + 1 WHERE id = 1");
      }),
    );
    expect(e).toBeInstanceOf(SerializationFailureError);
    expect(e).toMatchObject({ kind: "serialization_failure", code: "40001", retryable: true });
  });

  it("a transaction whose error the callback swallowed is a TransactionAbortedError, and nothing of it commits", async () => {
    const { db } = await setup();
    const next = await caught(
      db.transaction(async (tx) => {
        await tx.execute("UPDATE t SET n = 9 WHERE id = 2");
        await tx.execute("INSERT INTO t (id) VALUES (1)").catch(() => undefined);
        await tx.query("SELECT 1 AS one");
      }),
    );
    expect(next).toBeInstanceOf(TransactionAbortedError);
    expect(next).toMatchObject({ code: "25P02" });
    const atCommit = await caught(
      db.transaction(async (tx) => {
        await tx.execute("UPDATE t SET n = 9 WHERE id = 2");
        await tx.execute("INSERT INTO t (id) VALUES (1)").catch(() => undefined);
      }),
    );
    expect(atCommit).toBeInstanceOf(TransactionAbortedError);
    expect(await db.query("SELECT n FROM t WHERE id = 2")).toStrictEqual([{ n: 0 }]);
  });

  it("the pinned connection terminated inside a transaction: ConnectionLostError, retryable, nothing committed, the pool goes on", async () => {
    const { db, url } = await setup();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const e = await caught(
        db.transaction(async (tx) => {
          await tx.execute("UPDATE t SET n = 7 WHERE id = 1");
          const [{ pid }] = (await tx.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")) as [{ pid: number }];
          await admin.query("SELECT pg_terminate_backend($1, 20000)", [pid]);
          await tx.query("SELECT 1 AS one");
        }),
      );
      expect(e).toBeInstanceOf(ConnectionLostError);
      expect(e).toMatchObject({ kind: "connection_lost", retryable: true });
      expect(await db.query("SELECT n FROM t WHERE id = 1")).toStrictEqual([{ n: 0 }]);
      // The broken client was destroyed, not returned: every later transaction works.
      for (let i = 0; i < 6; i++) await db.transaction((tx) => tx.query("SELECT 1 AS one"));
    } finally {
      await admin.end();
    }
  });

  it("the connection lost while COMMIT runs is a CommitOutcomeUnknownError, never retryable", async () => {
    const { db, url } = await setup();
    // A deferred constraint trigger makes COMMIT itself take long enough to be interrupted.
    await db.execute("CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(60); RETURN NULL; END $$");
    await db.execute("CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()");
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      let pid = 0;
      const work = caught(
        db.transaction(async (tx) => {
          pid = ((await tx.query<{ pid: number }>("SELECT pg_backend_pid() AS pid"))[0] as { pid: number }).pid;
          await tx.execute("INSERT INTO t (id) VALUES (3)");
        }),
      );
      await until(async () => {
        if (pid === 0) return false;
        const r = await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND query = 'COMMIT' AND wait_event = 'PgSleep'", [pid]);
        return r.rowCount === 1;
      }, "COMMIT to be under way");
      await admin.query("SELECT pg_terminate_backend($1, 20000)", [pid]);
      const e = await work;
      expect(e).toBeInstanceOf(CommitOutcomeUnknownError);
      expect(e).toMatchObject({ kind: "commit_outcome_unknown", retryable: false });
      expect((e as Error).message).toMatch(/may or may not have committed/);
    } finally {
      await admin.end();
    }
  });
});

describe.skipIf(!MYSQL_URL)("mysql: lock timeout, deadlock, lost connections", () => {
  async function setup(): Promise<{ db: Database; url: string }> {
    const backend = await freshBackend("mysql");
    const db = backend.open();
    await db.execute(DDL.mysql);
    await db.execute("INSERT INTO t (id, n) VALUES (1, 0), (2, 0)");
    return { db, url: backend.target.url };
  }

  it("a failed statement's error leads back to its caller, with mysql2's per-call stack capture off", async () => {
    const { db } = await setup();
    async function placeOrderForTheStackTrace(): Promise<void> {
      await db.execute("INSERT INTO no_such_table (id) VALUES (?)", [1]);
    }
    const e = await caught(placeOrderForTheStackTrace());
    expect(e).toBeInstanceOf(DatabaseError);
    expect((e as DatabaseError).errno).toBe(1146); // ER_NO_SUCH_TABLE
    expect((e as Error).stack).toMatch(/placeOrderForTheStackTrace/);
    // The driver's error (its cause) carries no call-site stack of its own: mysql2's `trace` is off by default.
    expect(((e as DatabaseError).cause as Error).stack).not.toMatch(/placeOrderForTheStackTrace/);
  });

  it("a row lock wait past innodb_lock_wait_timeout is a LockTimeoutError (1205)", async () => {
    const { db } = await setup();
    const holding = deferred();
    const release = deferred();
    const held = db.transaction(async (tx) => {
      await tx.query("SELECT * FROM t WHERE id = 1 FOR UPDATE");
      holding.resolve();
      await release.promise;
    });
    await holding.promise;
    try {
      const e = await caught(
        db.transaction(async (tx) => {
          await tx.execute("SET SESSION innodb_lock_wait_timeout = 1");
          await tx.execute("UPDATE t SET n = 1 WHERE id = 1");
        }),
      );
      expect(e).toBeInstanceOf(LockTimeoutError);
      expect(e).toMatchObject({ code: "ER_LOCK_WAIT_TIMEOUT", errno: 1205, retryable: true });
    } finally {
      release.resolve();
      await held;
    }
  });

  it("a deadlock is a retryable DeadlockError (1213); the victim's later statements are refused, as its COMMIT", async () => {
    const { db } = await setup();
    const aLocked = deferred();
    const bLocked = deferred();
    const run = (first: number, second: number, mine: ReturnType<typeof deferred>, theirs: ReturnType<typeof deferred>) =>
      db.transaction(async (tx) => {
        await tx.execute("UPDATE t SET n = n + 1 WHERE id = ?", [first]);
        mine.resolve();
        await theirs.promise;
        try {
          await tx.execute("UPDATE t SET n = n + 1 WHERE id = ?", [second]);
        } catch (e) {
          // MySQL rolled the whole transaction back: what follows must not run outside it.
          expect(e).toBeInstanceOf(DeadlockError);
          await expect(tx.execute("UPDATE t SET n = 100 WHERE id = ?", [first])).rejects.toBeInstanceOf(TransactionAbortedError);
          throw e;
        }
      });
    const outcomes = await Promise.allSettled([run(1, 2, aLocked, bLocked), run(2, 1, bLocked, aLocked)]);
    const failed = outcomes.filter((o) => o.status === "rejected").map((o) => (o as PromiseRejectedResult).reason);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ kind: "deadlock", code: "ER_LOCK_DEADLOCK", errno: 1213, sqlState: "40001", retryable: true });
    expect(await db.query("SELECT n FROM t ORDER BY id")).toStrictEqual([{ n: 1 }, { n: 1 }]);
  });

  it("the pinned connection killed inside a transaction: ConnectionLostError, retryable, nothing committed, the pool goes on", async () => {
    const { db, url } = await setup();
    const admin = await mysql.createConnection(url);
    try {
      const e = await caught(
        db.transaction(async (tx) => {
          await tx.execute("UPDATE t SET n = 7 WHERE id = 1");
          const [{ id }] = (await tx.query<{ id: number }>("SELECT CONNECTION_ID() AS id")) as [{ id: number }];
          await admin.query(`KILL ${Number(id)}`);
          await tx.query("SELECT 1 AS one");
        }),
      );
      expect(e).toBeInstanceOf(ConnectionLostError);
      expect(e).toMatchObject({ kind: "connection_lost", retryable: true });
      expect(await db.query("SELECT n FROM t WHERE id = 1")).toStrictEqual([{ n: 0 }]);
      for (let i = 0; i < 6; i++) await db.transaction((tx) => tx.query("SELECT 1 AS one"));
    } finally {
      await admin.end();
    }
  });
});
