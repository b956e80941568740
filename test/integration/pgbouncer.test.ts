/**
 * The test PgBouncer (test/helpers/pgbouncer.ts) in front of the tests'
 * server: queries go through it to the database the client names, and it
 * pools by transaction — clients share the few server connections, so
 * session state (a SET, a session advisory lock) leaks from one client to
 * the next while a transaction-level advisory lock still excludes.
 */
import { existsSync } from "node:fs";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cleanup, freshDatabase, serverUrl } from "../helpers/db.js";
import { type PgBouncer, startPgBouncer } from "../helpers/pgbouncer.js";

const clients: pg.Client[] = [];
async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on("error", () => undefined); // a server that goes away: seen by the query that fails
  await c.connect();
  clients.push(c);
  return c;
}
afterEach(async () => {
  while (clients.length) await clients.pop()!.end();
  await cleanup();
});

/** Where a database URL points to, for the database of `name`. */
function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

describe("PgBouncer in transaction pooling mode, 2 server connections", () => {
  let bouncer: PgBouncer;
  beforeAll(async () => {
    bouncer = await startPgBouncer({ target: serverUrl() });
  });
  afterAll(async () => {
    await bouncer?.stop();
  });

  it("passes queries, with and without parameters, to the database the client names", async () => {
    const direct = await connect(serverUrl());
    const c = await connect(bouncer.url);
    expect(new URL(bouncer.url).port).toBe(String(bouncer.port));
    expect((await c.query("SELECT 1 + 1 AS two")).rows).toEqual([{ two: 2 }]);
    expect((await c.query("SELECT $1::int * 3 AS n, $2::text AS s", [7, "é"])).rows).toEqual([{ n: 21, s: "é" }]);
    const [row] = (await c.query("SELECT current_database() AS db, inet_server_port() AS port")).rows;
    const [want] = (await direct.query("SELECT current_database() AS db, inet_server_port() AS port")).rows;
    expect(row).toEqual(want);

    const fresh = await freshDatabase();
    await fresh.client.query("CREATE TABLE t (id int PRIMARY KEY, v text)");
    const viaBouncer = await connect(withDatabase(bouncer.url, fresh.name));
    await viaBouncer.query("INSERT INTO t VALUES ($1, $2)", [1, "through the bouncer"]);
    expect((await fresh.client.query("SELECT v FROM t")).rows).toEqual([{ v: "through the bouncer" }]);
  });

  it("its admin console says transaction pooling with a pool of 2", async () => {
    const admin = await connect(bouncer.adminUrl);
    const config = new Map((await admin.query("SHOW CONFIG")).rows.map((r: { key: string; value: string }) => [r.key, r.value]));
    expect(config.get("pool_mode")).toBe("transaction");
    expect(config.get("default_pool_size")).toBe("2");
    expect(bouncer.poolMode).toBe("transaction");
    expect(bouncer.version).toMatch(/^\d+\.\d+/);
  });

  it("six connected clients share at most two server backends", async () => {
    const six = await Promise.all(Array.from({ length: 6 }, () => connect(bouncer.url)));
    const pids = new Set<number>();
    // One after another, every client staying connected: in session mode the third would wait for a free server forever.
    for (const c of six) pids.add((await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid);
    expect(pids.size).toBeGreaterThanOrEqual(1);
    expect(pids.size).toBeLessThanOrEqual(2);
    const admin = await connect(bouncer.adminUrl);
    const pools = (await admin.query("SHOW POOLS")).rows.filter((r: { database: string }) => r.database === new URL(bouncer.url).pathname.slice(1));
    expect(pools).toHaveLength(1);
    expect(Number(pools[0].cl_active) + Number(pools[0].cl_waiting)).toBeGreaterThanOrEqual(6);
    expect(Number(pools[0].sv_active) + Number(pools[0].sv_idle) + Number(pools[0].sv_used)).toBeLessThanOrEqual(2);
  });

  it("a transaction-level advisory lock excludes another client; it is released at COMMIT", async () => {
    const a = await connect(bouncer.url);
    const b = await connect(bouncer.url);
    await a.query("BEGIN");
    await a.query("SELECT pg_advisory_xact_lock(4242)");
    await b.query("BEGIN");
    expect((await b.query("SELECT pg_try_advisory_xact_lock(4242) AS got")).rows).toEqual([{ got: false }]);
    await b.query("COMMIT");
    await a.query("COMMIT");
    await b.query("BEGIN");
    expect((await b.query("SELECT pg_try_advisory_xact_lock(4242) AS got")).rows).toEqual([{ got: true }]);
    await b.query("COMMIT");
  });

  it("stop() ends it and removes its files", async () => {
    const other = await startPgBouncer({ target: serverUrl(), poolSize: 1 });
    const c = await connect(other.url);
    expect((await c.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    await other.stop();
    await expect(c.query("SELECT 1")).rejects.toThrow();
    await expect(connect(other.url)).rejects.toThrow();
    expect(existsSync(other.log)).toBe(false);
    await other.stop(); // idempotent
  });
});

describe("PgBouncer in transaction pooling mode, 1 server connection", () => {
  let bouncer: PgBouncer;
  beforeAll(async () => {
    bouncer = await startPgBouncer({ target: serverUrl(), poolSize: 1 });
  });
  afterAll(async () => {
    await bouncer?.stop();
  });

  it("session state leaks from one client to the next: a SET and a session advisory lock are not the client's", async () => {
    const a = await connect(bouncer.url);
    const b = await connect(bouncer.url);
    const pidA = (await a.query("SELECT pg_backend_pid() AS pid")).rows[0].pid;
    const pidB = (await b.query("SELECT pg_backend_pid() AS pid")).rows[0].pid;
    expect(pidB).toBe(pidA); // two clients, one server backend
    await a.query("SET sqlite2pg.tag = 'set by a'");
    expect((await b.query("SELECT current_setting('sqlite2pg.tag', true) AS tag")).rows).toEqual([{ tag: "set by a" }]);
    // A session lock taken by a is "held" by b too: it does not exclude behind transaction pooling.
    expect((await a.query("SELECT pg_try_advisory_lock(4343) AS got")).rows).toEqual([{ got: true }]);
    expect((await b.query("SELECT pg_try_advisory_lock(4343) AS got")).rows).toEqual([{ got: true }]);
    await b.query("SELECT pg_advisory_unlock_all()");
    await b.query("RESET sqlite2pg.tag");
  });
});
