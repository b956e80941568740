/**
 * SwitchingDatabase against a real daemon (a Replicator in this process),
 * a real SQLite file and a real PostgreSQL: writes keep going through the
 * cutover with none lost, none doubled and each writer's in order; a
 * write refused by the freeze is held and lands where the data went —
 * PostgreSQL when the cutover commits, SQLite when it is undone — or fails
 * with FreezeTimeoutError having written nothing.
 *
 * The moment between the freeze and the commit is held open with a
 * PostgreSQL lock the test takes on the replicated table (the drain cannot
 * apply), never with timing.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { setTimeout as sleep } from "node:timers/promises";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { liveSource, stopReplicators } from "../helpers/source.js";
import { waitFor } from "../helpers/daemon.js";
import { SwitchingDatabase } from "../../src/db/switching.js";
import { FreezeTimeoutError } from "../../src/db/errors.js";
import { DatabaseManager } from "../../src/db/lock.js";
import { freezeInfo, markerPath } from "../../src/sqlite/freeze.js";
import { writeFileSync } from "node:fs";
import { Phase } from "../../src/replication/phase.js";
import type { Replicator } from "../../src/replication/replicator.js";

const open: SwitchingDatabase[] = [];
afterEach(async () => {
  for (const db of open.splice(0)) await db.close();
  await stopReplicators();
  await cleanup();
});

const SCHEMA = "CREATE TABLE events (id INTEGER PRIMARY KEY, n INTEGER NOT NULL UNIQUE, writer TEXT NOT NULL);";

async function source(maxFreezeMs = 20_000) {
  const s = await liveSource(SCHEMA, {
    rows: "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 200) INSERT INTO events (n, writer) SELECT v, 'seed' FROM s;",
    // The forward cutover: the daemon ends at it (--no-fallback); db-switching-rollback.test.ts has the way back.
    options: { pollIntervalMs: 20, batchSize: 500, chunkRows: 1000, cutover: { validate: "counts", maxFreezeMs, fallback: false } },
  });
  s.db.close();
  const running = s.rep.run();
  await waitFor("streaming", 60_000, () => s.rep.live().phase === Phase.streaming);
  return { ...s, running };
}

function switching(path: string, url: string, freezeWaitMs = 10_000): SwitchingDatabase {
  const db = new SwitchingDatabase({ sqlite: path, pg: url, freezeWaitMs });
  open.push(db);
  return db;
}

function frozen(path: string): boolean {
  const db = new Database(path, { readonly: true });
  try {
    return freezeInfo(db) !== null;
  } finally {
    db.close();
  }
}

/** Take a lock on the replicated table that the cutover's drain needs: the cutover stays between freeze and commit. */
async function blockTheCommit(client: import("pg").Client): Promise<() => Promise<void>> {
  await client.query("BEGIN");
  await client.query("LOCK TABLE public.events IN ACCESS EXCLUSIVE MODE");
  return async () => {
    await client.query("COMMIT");
  };
}

async function requestAndWaitFrozen(rep: Replicator, path: string): Promise<void> {
  await rep.requestCutover();
  await waitFor("SQLite frozen", 60_000, () => frozen(path));
}

async function pgNs(client: import("pg").Client): Promise<number[]> {
  return (await client.query("SELECT n FROM public.events ORDER BY n")).rows.map((r) => Number(r.n));
}

function sqliteNs(path: string): number[] {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare("SELECT n FROM events ORDER BY n").all() as { n: number }[]).map((r) => r.n);
  } finally {
    db.close();
  }
}

describe("SwitchingDatabase", () => {
  it("knows the phases in which PostgreSQL holds the data by the names the daemon writes", () => {
    // src/db may not import the daemon; these are the names src/db/switching.ts looks for.
    expect([Phase.cutOver, Phase.done]).toEqual(["cut-over", "done"]);
  });

  it("works on SQLite before `sqlite2pg init` ran: nothing to follow yet", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, SCHEMA);
    const { url } = await freshDatabase();
    const db = switching(path, url);
    await db.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [1, "early"]);
    expect(await db.query("SELECT n, writer FROM events")).toEqual([{ n: 1, writer: "early" }]);
    expect(db.dialect).toBe("sqlite");
  });

  it("ignores a cutover marker left by an earlier migration of the file (another source id)", async () => {
    const s = await liveSource(SCHEMA);
    s.db.close();
    writeFileSync(markerPath(s.path), JSON.stringify({ source_id: "an-earlier-source", schema: "old" }));
    const db = switching(s.path, s.url);
    await db.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [1, "after a re-init"]);
    expect(db.dialect).toBe("sqlite");
    expect(sqliteNs(s.path)).toEqual([1]);
  });

  it("writes keep going through the cutover: every acknowledged write once in PostgreSQL, each writer's in order; then reads come from PostgreSQL", async () => {
    const s = await source();
    const db = switching(s.path, s.url);
    const switched: string[] = [];
    const watched = new SwitchingDatabase({ sqlite: s.path, pg: s.url, onSwitch: (to) => switched.push(to) });
    open.push(watched);
    await watched.ready();
    let next = 1000;
    const acked: { n: number; writer: string }[] = [];
    const errors: unknown[] = [];
    let stop = false;
    let afterSwitch = 0;
    const writer = async (name: string, inTransactions: boolean) => {
      while (!stop) {
        const n = next++;
        try {
          if (inTransactions) {
            await new DatabaseManager(db).distributedLock("writer-c", async (tx) => {
              await tx.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [n, name]);
              await tx.execute("UPDATE events SET writer = ? WHERE n = ?", [name, n]);
            });
          } else {
            await db.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [n, name]);
          }
          acked.push({ n, writer: name });
          if (db.dialect === "postgres") afterSwitch++;
        } catch (e) {
          errors.push(e);
        }
        await sleep(1);
      }
    };
    const writers = [writer("a", false), writer("b", false), writer("c", true)];
    await waitFor("writes on SQLite", 30_000, () => acked.length >= 30);
    await s.rep.requestCutover();
    await waitFor("the switch and 60 writes after it", 60_000, () => db.dialect === "postgres" && afterSwitch >= 60);
    stop = true;
    await Promise.all(writers);
    await s.running;
    expect(s.rep.current.phase).toBe(Phase.done);
    expect(errors).toEqual([]);

    // Exactly the acknowledged writes (and the seed), each once.
    const inPg = await pgNs(s.client);
    const expected = [...Array.from({ length: 200 }, (_, i) => i + 1), ...acked.map((a) => a.n)].sort((x, y) => x - y);
    expect(inPg).toEqual(expected);
    // SQLite holds what was written before the freeze, all of it in PostgreSQL; nothing after.
    const inSqlite = sqliteNs(s.path);
    expect(inSqlite.length).toBeLessThan(inPg.length);
    expect(new Set(inPg).size).toBe(inPg.length);
    for (const n of inSqlite) expect(inPg).toContain(n);
    // Each writer's writes in the order it made them: ids grow with n, across the switch.
    for (const w of ["a", "b", "c"]) {
      const rows = (await s.client.query("SELECT n FROM public.events WHERE writer = $1 ORDER BY id", [w])).rows.map((r) => Number(r.n));
      expect(rows).toEqual([...rows].sort((x, y) => x - y));
    }
    // Reads now come from PostgreSQL: a row only PostgreSQL has is seen.
    await s.client.query("INSERT INTO public.events (n, writer) VALUES (-1, 'pg only')");
    expect(await db.query("SELECT writer FROM events WHERE n = ?", [-1])).toEqual([{ writer: "pg only" }]);
    expect(switched).toEqual(["postgres"]); // a handle that only listened followed too
  }, 120_000);

  it("holds a write SQLite refused with the freeze, and runs it on PostgreSQL once the cutover commits", async () => {
    const s = await source();
    const db = switching(s.path, s.url);
    await db.ready();
    const release = await blockTheCommit(s.client);
    await requestAndWaitFrozen(s.rep, s.path);
    let settled = false;
    const write = db.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [5000, "held"]).finally(() => (settled = true));
    await sleep(300);
    expect(settled).toBe(false); // held: the cutover is neither committed nor undone
    const read = db.query<{ n: number }>("SELECT n FROM events WHERE n = ?", [5000]); // made while the write is held: in line behind it
    await release();
    expect((await write).rowsAffected).toBe(1);
    expect(await read).toEqual([{ n: 5000 }]);
    expect(db.dialect).toBe("postgres");
    await s.running;
    expect(await pgNs(s.client)).toContain(5000);
    expect(sqliteNs(s.path)).not.toContain(5000);

    // A new handle after the cutover starts on PostgreSQL.
    const later = switching(s.path, s.url);
    await later.ready();
    expect(later.dialect).toBe("postgres");
  }, 120_000);

  it("gives a held write back to SQLite when the cutover is undone", async () => {
    const s = await source(800);
    const db = switching(s.path, s.url);
    await db.ready();
    const release = await blockTheCommit(s.client);
    await requestAndWaitFrozen(s.rep, s.path);
    const write = db.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [6000, "held"]);
    // --max-freeze (0.8 s) undoes the attempt: SQLite takes writes again, and the held write lands there.
    expect((await write).rowsAffected).toBe(1);
    expect(sqliteNs(s.path)).toContain(6000);
    expect(db.dialect).toBe("sqlite");
    await release();
    await s.client.query("UPDATE sqlite2pg.state SET cutover_requested_at = NULL"); // withdraw the request
    s.rep.requestStop();
    await s.running;
  }, 120_000);

  it("fails a write held longer than freezeWaitMs with FreezeTimeoutError, having written nothing anywhere", async () => {
    const s = await source();
    const db = switching(s.path, s.url, 300);
    await db.ready();
    const release = await blockTheCommit(s.client);
    await requestAndWaitFrozen(s.rep, s.path);
    const e = await db.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [7000, "too late"]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FreezeTimeoutError);
    expect(e).toMatchObject({ kind: "freeze_timeout", retryable: true });
    await release();
    await s.running;
    expect(await pgNs(s.client)).not.toContain(7000);
    expect(sqliteNs(s.path)).not.toContain(7000);
    // Run again, it lands on PostgreSQL; so does a locked section (under PostgreSQL's advisory lock now).
    await db.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [7000, "again"]);
    expect(await pgNs(s.client)).toContain(7000);
    const locked = await new DatabaseManager(db).distributedLock("events", async (tx) => {
      await tx.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [7001, "locked"]);
      return (await tx.query<{ locks: number }>("SELECT count(*)::int AS locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"))[0]!
        .locks;
    });
    expect(locked).toBe(1);
    expect(await pgNs(s.client)).toContain(7001);
  }, 120_000);
});
