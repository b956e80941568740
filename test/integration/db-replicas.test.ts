/**
 * PostgresAdapter's read replicas on a real cluster (test/helpers/pg-cluster.ts:
 * a primary and two streaming replicas): round-robin reads seen through
 * inet_server_port(); execute, transactions and db.primary on the primary;
 * a replica stopped and started under a read loop with no failed read; a
 * read a replica refuses as a write (25006) run on the primary;
 * read-your-writes under a write/read loop; maxReplicaLagMs taking a
 * replica whose replay is paused out of rotation and back; replicaStatus.
 */
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PostgresAdapter, type PostgresAdapterOptions } from "../../src/db/postgres-adapter.js";
import { type PostgresAdapterLog, parseLsn } from "../../src/db/replicas.js";
import { silentLogger } from "../../src/observe/logger.js";
import { freePort } from "../../src/postgres/embedded.js";
import { type PgCluster, startCluster } from "../helpers/pg-cluster.js";

let cluster: PgCluster;
const open: PostgresAdapter[] = [];

beforeAll(async () => {
  cluster = await startCluster({ replicas: 2 });
  await sql(cluster.primary.url, "CREATE TABLE items (n int PRIMARY KEY, note text)");
  await sql(cluster.primary.url, "CREATE SEQUENCE seq");
  await cluster.waitReplayed();
});
afterEach(async () => {
  for (const db of open.splice(0)) await db.close();
  // Whatever a test paused or stopped runs again for the next one.
  for (const r of cluster.replicas) {
    if (!r.running) await r.start();
    await sql(r.url, "SELECT pg_wal_replay_resume()");
  }
});
afterAll(async () => {
  await cluster?.stop();
});

async function sql<T = Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  c.on("error", () => undefined);
  await c.connect();
  try {
    return (await c.query(text, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/** Lines logged through the adapter's `log` option. */
function recorder(): PostgresAdapterLog & { lines: { level: string; obj: Record<string, unknown>; msg: string }[] } {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  return {
    lines,
    warn: (obj, msg) => lines.push({ level: "warn", obj: obj as Record<string, unknown>, msg }),
    info: (obj, msg) => lines.push({ level: "info", obj: obj as Record<string, unknown>, msg }),
  };
}

function adapter(opts: Partial<PostgresAdapterOptions> = {}): PostgresAdapter {
  const db = new PostgresAdapter({ primary: cluster.primary.url, replicas: cluster.replicas.map((r) => r.url), pool: { max: 4 }, ...opts });
  open.push(db);
  return db;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function port(db: { query: PostgresAdapter["query"] }): Promise<number> {
  return (await db.query<{ port: number }>("SELECT inet_server_port() AS port"))[0]!.port;
}

describe("PostgresAdapter with two read replicas", () => {
  it("reads outside transactions go round-robin over the replicas; execute, transactions and db.primary go to the primary", async () => {
    const db = adapter();
    const [r1, r2] = cluster.replicas.map((r) => r.port);
    const seen: number[] = [];
    for (let i = 0; i < 20; i++) seen.push(await port(db));
    expect(new Set(seen)).toStrictEqual(new Set([r1, r2]));
    // Strictly alternating while both are in rotation; never the primary.
    for (let i = 1; i < seen.length; i++) expect(seen[i]).not.toBe(seen[i - 1]);
    expect(seen).not.toContain(cluster.primary.port);

    const p = cluster.primary.port;
    expect(await port(db.primary)).toBe(p);
    expect(await db.transaction((tx) => port(tx))).toBe(p);
    await db.execute("INSERT INTO items (n, note) VALUES (?, ?)", [1, String(p)]);
    await db.execute("UPDATE items SET note = inet_server_port()::text WHERE n = ?", [1]);
    expect(await db.primary.query("SELECT note FROM items WHERE n = 1")).toStrictEqual([{ note: String(p) }]);
    await expect(db.primary.close()).rejects.toMatchObject({ kind: "usage" });

    // Another adapter on the same cluster has its own pools and state: closing one leaves the other working.
    const other = adapter();
    expect(new Set([await port(other), await port(other)])).toStrictEqual(new Set([r1, r2]));
    await other.close();
    expect(new Set([await port(db), await port(db)])).toStrictEqual(new Set([r1, r2]));
    await expect(other.query("SELECT 1")).rejects.toMatchObject({ kind: "usage" });
  });

  it("db.primary reads what was just written while the replicas have not replayed it", async () => {
    const db = adapter();
    for (const r of cluster.replicas) await sql(r.url, "SELECT pg_wal_replay_pause()");
    await db.execute("INSERT INTO items (n, note) VALUES (?, ?)", [2, "fresh"]);
    expect(await db.primary.query("SELECT note FROM items WHERE n = ?", [2])).toStrictEqual([{ note: "fresh" }]);
    // The replicas, paused, have not: a plain read does not see it yet.
    expect(await db.query("SELECT note FROM items WHERE n = ?", [2])).toStrictEqual([]);
    for (const r of cluster.replicas) await sql(r.url, "SELECT pg_wal_replay_resume()");
    await cluster.waitReplayed();
    expect(await db.query("SELECT note FROM items WHERE n = ?", [2])).toStrictEqual([{ note: "fresh" }]);
  });

  it("a read a replica refuses as a write (SQLSTATE 25006) runs on the primary, and the replica stays in rotation", async () => {
    const db = adapter();
    const a = await db.query<{ v: number }>("SELECT nextval('seq')::int AS v");
    const b = await db.query<{ v: number }>("SELECT nextval('seq')::int AS v");
    expect(b[0]!.v).toBe(a[0]!.v + 1);
    expect(await db.query("INSERT INTO items (n, note) VALUES (?, ?) RETURNING inet_server_port() AS port", [3, "via query"])).toStrictEqual([
      { port: cluster.primary.port },
    ]);
    expect(await db.query("SELECT n FROM items WHERE n = ? FOR UPDATE", [1])).toStrictEqual([{ n: 1 }]);
    expect(db.replicaStatus().filter((s) => s.role === "replica" && s.inRotation)).toHaveLength(2);
    // A SQL error that is no write is the caller's, from the replica, not run again elsewhere.
    await expect(db.query("SELECT * FROM no_such_table")).rejects.toMatchObject({ sqlState: "42P01" });
  });

  it("a replica stopped and started while reads continue: no read fails, it is out of rotation meanwhile and rejoins", async () => {
    const log = recorder();
    const db = adapter({ log });
    const [r1, r2] = cluster.replicas;
    let failures = 0;
    let reads = 0;
    const ports = new Map<number, number>();
    let running = true;
    const loop = async () => {
      while (running) {
        try {
          const p = await port(db);
          reads++;
          ports.set(p, (ports.get(p) ?? 0) + 1);
        } catch (e) {
          failures++;
          process.stderr.write(`read failed: ${(e as Error).message}\n`);
        }
      }
    };
    const loops = [loop(), loop(), loop(), loop()];
    try {
      await until("reads on both replicas", () => (ports.get(r1!.port) ?? 0) > 10 && (ports.get(r2!.port) ?? 0) > 10);
      await r1!.stop();
      await until("replica1 out of rotation", () => db.replicaStatus()[1]!.inRotation === false);
      const at = reads;
      await until("more reads while replica1 is down", () => reads > at + 200);
      const before = ports.get(r1!.port) ?? 0;
      await r1!.start();
      await until("replica1 back in rotation", () => db.replicaStatus()[1]!.inRotation);
      await until("reads on replica1 again", () => (ports.get(r1!.port) ?? 0) > before + 10);
    } finally {
      running = false;
      await Promise.all(loops);
    }
    expect(failures).toBe(0);
    expect(reads).toBeGreaterThan(200);
    const replica1 = db.replicaStatus()[1]!;
    expect(replica1).toMatchObject({ role: "replica", healthy: true, inRotation: true });
    expect(replica1.lastError).toEqual(expect.any(String));
    // Logged once out, once back.
    const about = log.lines.filter((l) => String(l.obj.replica).includes(`:${r1!.port}/`));
    expect(about.map((l) => [l.level, l.msg])).toStrictEqual([
      ["warn", "read replica out of rotation: it cannot be reached; probing it with back-off"],
      ["info", "read replica back in rotation"],
    ]);
  });

  it("readYourWrites: a read right after this adapter's write always finds it (500 writes and reads)", async () => {
    await sql(cluster.primary.url, "CREATE TABLE ryw (n int PRIMARY KEY)");
    const db = adapter({ readYourWrites: true });
    const from = new Map<number, number>();
    for (let i = 0; i < 500; i++) {
      if (i % 5 === 4) {
        await db.transaction(async (tx) => {
          await tx.execute("INSERT INTO ryw (n) VALUES (?)", [i]);
        });
      } else {
        await db.execute("INSERT INTO ryw (n) VALUES (?)", [i]);
      }
      const rows = await db.query<{ n: number; port: number }>("SELECT n, inet_server_port() AS port FROM ryw WHERE n = ?", [i]);
      expect(
        rows.map((r) => r.n),
        `read ${i}`,
      ).toStrictEqual([i]);
      from.set(rows[0]!.port, (from.get(rows[0]!.port) ?? 0) + 1);
    }
    process.stdout.write(`read-your-writes: 500 reads served by ${JSON.stringify(Object.fromEntries(from))} (primary ${cluster.primary.port})\n`);

    // Replicas that have not replayed the write are passed over for the primary ...
    for (const r of cluster.replicas) await sql(r.url, "SELECT pg_wal_replay_pause()");
    await db.execute("INSERT INTO ryw (n) VALUES (?)", [1000]);
    expect(await db.query("SELECT n, inet_server_port() AS port FROM ryw WHERE n = 1000")).toStrictEqual([{ n: 1000, port: cluster.primary.port }]);
    // ... also after a transaction and an INSERT … RETURNING through query ...
    await db.transaction((tx) => tx.execute("INSERT INTO ryw (n) VALUES (1001)"));
    expect(await db.query("SELECT n FROM ryw WHERE n = 1001")).toStrictEqual([{ n: 1001 }]);
    await db.query("INSERT INTO ryw (n) VALUES (1002) RETURNING n");
    expect(await db.query("SELECT n, inet_server_port() AS port FROM ryw WHERE n = 1002")).toStrictEqual([{ n: 1002, port: cluster.primary.port }]);
    // ... and, once they have replayed it, reads are theirs again.
    for (const r of cluster.replicas) await sql(r.url, "SELECT pg_wal_replay_resume()");
    // A write of another session first: should the last commit have ended on a WAL page boundary, the token points past
    // the next page's header, which the replicas reach only with more WAL (until then reads stay on the primary).
    await sql(cluster.primary.url, "INSERT INTO items (n, note) VALUES (4, 'more WAL')");
    await cluster.waitReplayed();
    const ports = new Set([await port(db), await port(db)]);
    expect(ports).toStrictEqual(new Set(cluster.replicas.map((r) => r.port)));
    // Another adapter's write is not this one's: it reads from the replicas at once (no token of its own).
    const plain = adapter({ readYourWrites: true });
    expect(cluster.replicas.map((r) => r.port)).toContain(await port(plain));
  });

  it("maxReplicaLagMs: a replica whose replay is paused leaves the rotation once its lag exceeds the limit, and rejoins when it catches up", async () => {
    const log = recorder();
    const db = adapter({ maxReplicaLagMs: 300, replicaCheckIntervalMs: 100, log });
    const [r1, r2] = cluster.replicas;
    await until("both replicas measured and in rotation", () => db.replicaStatus().filter((s) => s.inRotation).length === 2);
    expect(db.replicaStatus()[0]!.inRotation).toBe(false);

    await sql(r1!.url, "SELECT pg_wal_replay_pause()");
    await sql(cluster.primary.url, "INSERT INTO items (n, note) VALUES (10, 'after the pause')");
    await until("replica1 lagging beyond 300 ms", () => {
      const s = db.replicaStatus()[1]!;
      return !s.inRotation && (s.lagMs ?? 0) > 300;
    });
    expect(db.replicaStatus()[1]).toMatchObject({ healthy: true, inRotation: false });
    for (let i = 0; i < 10; i++) expect(await port(db)).toBe(r2!.port);
    // Its replay position stays where it was paused while the primary has moved on.
    const primaryLsn = parseLsn((await sql<{ l: string }>(cluster.primary.url, "SELECT pg_current_wal_lsn()::text AS l"))[0]!.l);
    expect(parseLsn(db.replicaStatus()[1]!.replayLsn!)).toBeLessThan(primaryLsn);

    await sql(r1!.url, "SELECT pg_wal_replay_resume()");
    await until("replica1 back in rotation", () => db.replicaStatus()[1]!.inRotation);
    expect(new Set([await port(db), await port(db)])).toStrictEqual(new Set([r1!.port, r2!.port]));
    const about = log.lines.filter((l) => String(l.obj.replica).includes(`:${r1!.port}/`));
    expect(about.map((l) => [l.level, l.msg])).toStrictEqual([
      ["warn", "read replica out of rotation: its replay lag exceeds maxReplicaLagMs"],
      ["info", "read replica back in rotation"],
    ]);
    expect(about[0]!.obj).toMatchObject({ maxReplicaLagMs: 300, lagMs: expect.any(Number) });
  });

  it("replicaStatus: each server's role, health, rotation, lag and replay position, passwords masked; an unreachable replica is out and reads go on", async () => {
    const dead = await freePort();
    const withPassword = cluster.replicas[0]!.url.replace("postgres@", "postgres:s3cret@");
    const db = adapter({
      primary: cluster.primary.url.replace("postgres@", "postgres:s3cret@"),
      replicas: [withPassword, { host: "127.0.0.1", port: dead, user: "postgres", password: "s3cret", database: "postgres" }],
      log: silentLogger(),
    });
    await until("the unreachable replica found out", () => db.replicaStatus()[2]!.healthy === false);
    await until("the live replica measured", () => db.replicaStatus()[1]!.replayLsn !== null);
    for (let i = 0; i < 6; i++) expect(await port(db)).toBe(cluster.replicas[0]!.port);
    const status = db.replicaStatus();
    expect(JSON.stringify(status)).not.toContain("s3cret");
    expect(status).toStrictEqual([
      {
        url: `postgres://postgres:***@127.0.0.1:${cluster.primary.port}/postgres`,
        role: "primary",
        healthy: true,
        inRotation: false,
        lagMs: 0,
        replayLsn: null,
        lastError: null,
      },
      {
        url: `postgres://postgres:***@127.0.0.1:${cluster.replicas[0]!.port}/postgres`,
        role: "replica",
        healthy: true,
        inRotation: true,
        lagMs: expect.any(Number),
        replayLsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/),
        lastError: null,
      },
      {
        url: `postgres://postgres:***@127.0.0.1:${dead}/postgres`,
        role: "replica",
        healthy: false,
        inRotation: false,
        lagMs: null,
        replayLsn: null,
        lastError: expect.stringContaining("ECONNREFUSED"),
      },
    ]);
    expect(status[1]!.lagMs).toBeLessThan(60_000);

    // Without replicas: the primary takes every read, and says so.
    const single = new PostgresAdapter({ primary: cluster.primary.url });
    open.push(single);
    expect(await port(single)).toBe(cluster.primary.port);
    expect(single.replicaStatus()).toStrictEqual([expect.objectContaining({ role: "primary", inRotation: true, healthy: true })]);
    expect(() => new PostgresAdapter({ primary: cluster.primary.url, maxReplicaLagMs: -1 })).toThrow(/maxReplicaLagMs/);
  });
});
