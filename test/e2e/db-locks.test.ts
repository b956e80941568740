/**
 * DatabaseManager.distributedLock across real processes, on each backend —
 * SQLite, PostgreSQL directly, PostgreSQL through a real PgBouncer in
 * transaction pooling mode (2 server connections for 16 client ones), and
 * MySQL: 8 processes × 500 read-modify-write increments of one counter
 * under the lock end exactly at 4000; a holder killed with SIGKILL releases
 * the lock (and its transaction rolls back); a lock not granted within
 * timeoutMs is a LockTimeoutError naming it; and the lock each backend
 * really takes (the PostgreSQL advisory key derived from the name, the
 * MySQL GET_LOCK name).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/database.js";
import { LockTimeoutError, type Dialect } from "../../src/db/errors.js";
import { DatabaseManager, mysqlLockName, pgAdvisoryLockKey } from "../../src/db/lock.js";
import pg from "pg";
import { PostgresAdapter } from "../../src/db/postgres-adapter.js";
import { closeBackends, DIALECTS, freshBackend, tracked, unavailable, type Backend } from "../helpers/backends.js";
import { type PgBouncer, startPgBouncer } from "../helpers/pgbouncer.js";

/** The built library (the global setup compiles dist/ first), as an application process loads it. */
const ENTRY = resolve(__dirname, "../../dist/index.js");
const WORKER = resolve(__dirname, "../fixtures/lock-worker.mjs");

const children: ChildProcess[] = [];
const bouncers: PgBouncer[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await closeBackends();
  for (const b of bouncers.splice(0)) await b.stop();
});

/** Where the processes reach the database: each backend directly, and PostgreSQL also through PgBouncer. */
interface Route {
  name: string;
  dialect: Dialect;
  bouncer: boolean;
}
const ROUTES: Route[] = [
  ...DIALECTS.map((dialect) => ({ name: dialect as string, dialect, bouncer: false })),
  { name: "postgres through PgBouncer (transaction pooling)", dialect: "postgres", bouncer: true },
];

const PROCESSES = 8;
const INCREMENTS = 500;

const DDL: Record<Dialect, string> = {
  sqlite: "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
  postgres: "CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL)",
  mysql: "CREATE TABLE counter (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB",
};

function worker(
  b: Backend,
  mode: string,
  arg: string,
): { child: ChildProcess; lines: AsyncIterator<string>; exit: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(process.execPath, [WORKER, ENTRY, b.dialect, b.target.url, mode, arg], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (d) => {
    stderr += d;
  });
  const exit = new Promise<{ code: number | null; stderr: string }>((done) => child.on("close", (code) => done({ code, stderr })));
  return { child, lines: createInterface({ input: child.stdout! })[Symbol.asyncIterator](), exit };
}

async function counter(db: Database): Promise<number> {
  return ((await db.query<{ n: number }>("SELECT n FROM counter WHERE id = 1"))[0] as { n: number }).n;
}

/** A fresh database of `route`'s backend; through a new PgBouncer (2 server connections) in front of it when the route says so. */
async function open(route: Route): Promise<{ backend: Backend; bouncer: PgBouncer | null }> {
  const direct = await freshBackend(route.dialect);
  if (!route.bouncer) return { backend: direct, bouncer: null };
  const bouncer = await startPgBouncer({ target: direct.target.url, poolMode: "transaction", poolSize: 2 });
  bouncers.push(bouncer);
  const backend: Backend = {
    dialect: "postgres",
    open: () => tracked(new PostgresAdapter({ primary: bouncer.url, pool: { max: 4 } })),
    target: { dialect: "postgres", url: bouncer.url },
  };
  return { backend, bouncer };
}

async function setup(route: Route | Dialect): Promise<{ backend: Backend; db: Database; manager: DatabaseManager; bouncer: PgBouncer | null }> {
  const { backend, bouncer } = await open(typeof route === "string" ? { name: route, dialect: route, bouncer: false } : route);
  const dialect = backend.dialect;
  const db = backend.open();
  await db.execute(DDL[dialect]);
  await db.execute("INSERT INTO counter (id, n) VALUES (1, 0)");
  return { backend, db, manager: new DatabaseManager(db), bouncer };
}

/** The transactions PgBouncer has passed for the database `name` (its admin console's SHOW STATS). */
async function bouncerTransactions(bouncer: PgBouncer, name: string): Promise<number> {
  const c = new pg.Client({ connectionString: bouncer.adminUrl });
  await c.connect();
  try {
    const rows = (await c.query("SHOW STATS")).rows as { database: string; total_xact_count: string }[];
    return Number(rows.find((r) => r.database === name)?.total_xact_count ?? 0);
  } finally {
    await c.end();
  }
}

for (const route of ROUTES) {
  const dialect = route.dialect;
  describe.skipIf(unavailable(dialect))(`${route.name}: distributedLock`, () => {
    it(`${PROCESSES} processes × ${INCREMENTS} read-modify-write increments under the lock: exactly ${PROCESSES * INCREMENTS}`, async () => {
      const { backend, db, bouncer } = await setup(route);
      const started = Date.now();
      const runs = Array.from({ length: PROCESSES }, () => worker(backend, "increment", String(INCREMENTS)));
      const results = await Promise.all(runs.map((r) => r.exit));
      for (const r of results) expect(r).toStrictEqual({ code: 0, stderr: "" });
      expect(await counter(db)).toBe(PROCESSES * INCREMENTS);
      process.stdout.write(`${route.name}: ${PROCESSES} × ${INCREMENTS} increments under the lock in ${Date.now() - started} ms\n`);
      if (bouncer) {
        // They all went through PgBouncer: one transaction per increment at least.
        const name = new URL(backend.target.url).pathname.slice(1);
        expect(await bouncerTransactions(bouncer, name)).toBeGreaterThanOrEqual(PROCESSES * INCREMENTS);
      }
    });

    it("a holder killed with SIGKILL releases the lock, and its transaction does not commit", async () => {
      const { backend, db, manager } = await setup(route);
      const holder = worker(backend, "hold", "counter");
      expect((await holder.lines.next()).value).toBe("locked");
      // Held by the other process: not granted within the timeout, and the error names the lock.
      const e = await manager.distributedLock("counter", async () => "never", { timeoutMs: 200 }).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(LockTimeoutError);
      expect(e).toMatchObject({ kind: "lock_timeout", dialect, lockName: "counter", retryable: true });
      expect((e as Error).message).toContain('"counter"');
      await expect(manager.distributedLock("counter", async () => "never", { timeoutMs: 0 })).rejects.toBeInstanceOf(LockTimeoutError);
      // Another name is another lock, except on SQLite, where every lock is the file's one write lock.
      const other = manager.distributedLock("other", async () => "other", { timeoutMs: 0 });
      if (dialect === "sqlite") await expect(other).rejects.toMatchObject({ lockName: "other" });
      else expect(await other).toBe("other");

      holder.child.kill("SIGKILL");
      const granted = await manager.distributedLock(
        "counter",
        async (tx) => {
          await tx.execute("UPDATE counter SET n = n + 1 WHERE id = 1");
          return "granted";
        },
        { timeoutMs: 30_000 },
      );
      expect(granted).toBe("granted");
      expect((await holder.exit).code).toBe(null);
      // The killed holder's +1000 never committed.
      expect(await counter(db)).toBe(1);
    });

    it("a callback that throws rolls back and releases the lock at once", async () => {
      const { db, manager } = await setup(route);
      await expect(
        manager.distributedLock("counter", async (tx) => {
          await tx.execute("UPDATE counter SET n = 50 WHERE id = 1");
          throw new Error("the critical section failed");
        }),
      ).rejects.toThrow("the critical section failed");
      expect(await manager.distributedLock("counter", async () => "free", { timeoutMs: 0 })).toBe("free");
      expect(await counter(db)).toBe(0);
      await expect(manager.distributedLock("", async () => 1)).rejects.toMatchObject({ kind: "usage" });
      await expect(manager.distributedLock("x", async () => 1, { timeoutMs: -1 })).rejects.toMatchObject({ kind: "usage" });
      // Inside the lock's transaction, a lock of the same name on the same database waits for itself: refused on SQLite,
      // a timeout elsewhere.
      await manager.distributedLock("counter", async () => {
        await expect(manager.distributedLock("counter", async () => 1, { timeoutMs: 100 })).rejects.toMatchObject({
          kind: dialect === "sqlite" ? "usage" : "lock_timeout",
        });
      });
    });
  });
}

describe("the lock each backend takes", () => {
  it("postgres: pg_advisory_xact_lock of pgAdvisoryLockKey(name), held by the transaction's own connection", async () => {
    const { manager } = await setup("postgres");
    const held = await manager.distributedLock("jobs:nightly-report", (tx) =>
      tx.query<{ key: bigint | number; mine: boolean }>(
        "SELECT ((classid::bigint << 32) | objid::bigint) AS key, pid = pg_backend_pid() AS mine FROM pg_locks WHERE locktype = 'advisory' AND granted" +
          // pg_locks is the whole server's: this database's only (other tests may hold locks elsewhere).
          " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
      ),
    );
    const key = BigInt(held[0]!.key);
    expect(held).toHaveLength(1);
    expect(held[0]!.mine).toBe(true);
    expect(BigInt.asIntN(64, key)).toBe(pgAdvisoryLockKey("jobs:nightly-report"));
  });

  it.skipIf(unavailable("mysql"))("mysql: GET_LOCK on the transaction's own connection, long names hashed, released after COMMIT", async () => {
    const { db, manager } = await setup("mysql");
    const long = "tenant-42:".repeat(10);
    const seen = await manager.distributedLock(long, (tx) =>
      tx.query<{ mine: number | boolean }>("SELECT IS_USED_LOCK(?) = CONNECTION_ID() AS mine", [mysqlLockName(long)]),
    );
    expect(seen).toStrictEqual([{ mine: 1 }]);
    expect(await db.query("SELECT IS_USED_LOCK(?) AS holder", [mysqlLockName(long)])).toStrictEqual([{ holder: null }]);
  });
});
