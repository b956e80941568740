/**
 * The snapshot copies a large rowid table in parts (rowid ranges) on its
 * lanes side by side. Each part keeps its own progress; the last part to
 * end builds the table's keys, whichever it is and however close together
 * they end; a stop or crash resumes every part where it was.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import pg from "pg";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { liveSource } from "../helpers/source.js";
import { silentLogger } from "../../src/observe/logger.js";
import { buildPlan, type MigrationPlan } from "../../src/plan/plan.js";
import { Replicator } from "../../src/replication/replicator.js";
import { snapshotParts, snapshotTable, snapshotTableSql } from "../../src/replication/snapshot.js";
import { createState } from "../../src/replication/phase.js";
import { ensureStateSchema, loadProgress, splitProgress } from "../../src/replication/state.js";
import { readSchema } from "../../src/sqlite/schema.js";

const reps: Replicator[] = [];
afterEach(async () => {
  for (const r of reps.splice(0)) await r.stop().catch(() => undefined);
  await cleanup();
});

const keysOf = async (c: pg.ClientBase, table: string) =>
  (await c.query<{ n: string }>("SELECT indexname AS n FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1 ORDER BY 1", [table])).rows.map(
    (r) => r.n,
  );

describe("snapshot parts", () => {
  it("splits a rowid table of two chunks or more at the middle of its rowids; a smaller one, or one read in key order, stays whole", () => {
    const path = sqliteFrom(
      tempDir(),
      `CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT);
       CREATE TABLE small (id INTEGER PRIMARY KEY, v TEXT);
       CREATE TABLE keyed (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
       INSERT INTO big SELECT i * 10, 'v' || i FROM n;
       INSERT INTO small VALUES (1, 'a'), (2, 'b');
       INSERT INTO keyed SELECT 'k' || id, v FROM big;`,
    );
    const db = new Database(path);
    try {
      const plan = buildPlan(db, readSchema(db), { schema: "public", preserveCase: false });
      const t = (name: string) => plan.tables.find((x) => x.source.name === name)!;
      // Rowids 10..1000: the first part ends at the middle of the span.
      expect(snapshotParts(db, t("big"), 10)).toEqual([
        { after: null, upTo: [505n], total: 50 },
        { after: [505n], upTo: null, total: 50 },
      ]);
      expect(snapshotParts(db, t("big"), 51)).toEqual([{ after: null, upTo: null, total: 100 }]);
      expect(snapshotParts(db, t("small"), 2)).toEqual([{ after: null, upTo: null, total: 2 }]);
      expect(snapshotParts(db, t("keyed"), 10)).toEqual([{ after: null, upTo: null, total: 100 }]);
    } finally {
      db.close();
    }
  });

  it("copies a table in two parts with writes on both sides of the split while it copies, and ends exact", async () => {
    const s = await liveSource("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE, n REAL); CREATE INDEX t_n ON t (n);", {
      rows: "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) INSERT INTO t SELECT i, 'v' || i, i / 3.0 FROM n;",
      options: { chunkRows: 20 },
    });
    reps.push(s.rep);
    // Between chunks of the main lane, the application writes in both parts' ranges (the split is at 201).
    let chunks = 0;
    const wrap = () => {
      const cl = (s.rep as unknown as { client: { query: (...a: unknown[]) => Promise<unknown> } }).client;
      const query = cl.query.bind(cl);
      cl.query = (...a: unknown[]) => {
        if (typeof a[0] === "string" && a[0].startsWith("UPDATE sqlite2pg.snapshot_progress SET last_key")) {
          chunks++;
          s.db.prepare("UPDATE t SET v = v || '+', n = n + 1 WHERE id IN (?, ?)").run(chunks * 7, 400 - chunks * 7);
          s.db.prepare("DELETE FROM t WHERE id = ?").run(200 + chunks);
          s.db.prepare("INSERT INTO t (v, n) VALUES (?, ?)").run(`new ${chunks}`, chunks);
          // A unique value moved from a row not yet copied to one already copied, across the split.
          s.db.prepare("UPDATE t SET v = 'moved' || ? WHERE id = ?").run(chunks, 390 - chunks);
        }
        return query(...a);
      };
    };
    await s.rep.start();
    wrap();
    const cmp = await s.exact();
    expect(chunks).toBeGreaterThan(5);
    expect(cmp.differences).toEqual([]);
    const parts = await loadProgress(s.client, s.sourceId);
    expect(parts.map((p) => [p.table, p.part, p.upTo, p.done])).toEqual([
      ["t", 0, [201n], true],
      ["t", 1, null, true],
    ]);
    expect(await keysOf(s.client, "t")).toEqual(["t_n", "t_pkey", "t_v_key"]);
    expect(s.rep.live().snapshot).toBeNull();
  });

  it("resumes every part where it was after a stop, and builds the keys once", async () => {
    const s = await liveSource("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE u (id INTEGER PRIMARY KEY, w BLOB);", {
      rows: `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
             INSERT INTO t SELECT i, 'v' || i FROM n;
             INSERT INTO u SELECT id, randomblob(20) FROM t WHERE id <= 150;`,
      options: { chunkRows: 25 },
    });
    reps.push(s.rep);
    await s.rep.start();
    const cl = (s.rep as unknown as { client: { query: (...a: unknown[]) => Promise<unknown> } }).client;
    const query = cl.query.bind(cl);
    let chunks = 0;
    cl.query = (...a: unknown[]) => {
      if (typeof a[0] === "string" && a[0].startsWith("UPDATE sqlite2pg.snapshot_progress SET last_key") && ++chunks === 3) s.rep.requestStop();
      return query(...a);
    };
    await s.rep.syncOnce();
    const stopped = await loadProgress(s.client, s.sourceId);
    expect(stopped.filter((p) => p.table === "t").map((p) => p.part)).toEqual([0, 1]);
    expect(stopped.some((p) => !p.done && p.rows > 0)).toBe(true);
    expect(stopped.some((p) => !p.done)).toBe(true);
    await s.rep.stop();
    s.db.exec("UPDATE t SET v = 'changed' WHERE id IN (1, 150, 151, 300); DELETE FROM t WHERE id = 149; INSERT INTO t (v) VALUES ('last')");
    const again = new Replicator({ sqlite: s.path, pg: s.url, log: silentLogger(), pollIntervalMs: 0, watch: false, batchSize: 50, chunkRows: 25 });
    reps.push(again);
    await again.syncOnce();
    const done = await loadProgress(s.client, s.sourceId);
    expect(done.every((p) => p.done)).toBe(true);
    // Each part's rows counted once: what was copied before the stop is not copied again.
    const copied = (table: string) => done.filter((p) => p.table === table).reduce((n, p) => n + p.rows, 0);
    expect(copied("t")).toBeLessThanOrEqual(301);
    expect(copied("u")).toBe(150);
    const r = await s.client.query("SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM t");
    expect(r.rows[0]).toEqual({ n: 300, d: 300 });
    expect(await keysOf(s.client, "t")).toEqual(["t_pkey"]);
    const { compareDatabases } = await import("../helpers/compare.js");
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
  });

  it("builds a table's keys in the last part's transaction, whichever part ends last and however close together", async () => {
    const path = sqliteFrom(
      tempDir(),
      `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT INTO t SELECT i, 'v' || i FROM n;`,
    );
    const db = new Database(path);
    const plan: MigrationPlan = buildPlan(db, readSchema(db), { schema: "public", preserveCase: false });
    for (const t of plan.tables) t.bigIntegers = true;
    const t = plan.tables[0]!;
    try {
      for (const order of ["1 then 0", "0 then 1", "together"] as const) {
        // Two connections to one database: the lanes.
        const { client: c1, url } = await freshDatabase();
        const c2 = new pg.Client({ connectionString: url });
        await c2.connect();
        try {
          await ensureStateSchema(c1);
          await createState(c1, { sourceId: "src", sqlitePath: path, targetSchema: "public", preserveCase: false });
          await c1.query(snapshotTableSql(plan, t));
          await splitProgress(c1, "src", "t", snapshotParts(db, t, 50));
          const parts = await loadProgress(c1, "src");
          expect(parts).toHaveLength(2);
          const finished: number[] = [];
          const copy = (c: pg.Client, part: number) =>
            snapshotTable(db, c, plan, t, parts[part]!, {
              sourceId: "src",
              chunkRows: 30,
              fixText: false,
              transformed: [],
              stopping: () => false,
              sqlitePath: path,
              finish: async (cl) => {
                finished.push(part);
                await cl.query('ALTER TABLE public.t ADD PRIMARY KEY ("id")');
              },
            });
          if (order === "1 then 0") {
            await copy(c1, 1);
            await copy(c2, 0);
            expect(finished).toEqual([0]);
          } else if (order === "0 then 1") {
            await copy(c1, 0);
            await copy(c2, 1);
            expect(finished).toEqual([1]);
          } else {
            await Promise.all([copy(c1, 0), copy(c2, 1)]);
            expect(finished).toHaveLength(1);
          }
          expect((await loadProgress(c1, "src")).map((p) => [p.part, p.rows, p.done])).toEqual([
            [0, 101, true],
            [1, 99, true],
          ]);
          expect(await keysOf(c1, "t")).toEqual(["t_pkey"]);
          expect((await c1.query("SELECT count(DISTINCT id)::int AS n FROM t")).rows[0].n).toBe(200);
        } finally {
          await c2.end();
        }
      }
    } finally {
      db.close();
    }
  });

  it("upgrades a state from before parts: each table's progress becomes its part 0, resumed where it was", async () => {
    const { client } = await freshDatabase();
    await client.query(`CREATE SCHEMA sqlite2pg;
      CREATE TABLE sqlite2pg.state (source_id text PRIMARY KEY, sqlite_path text NOT NULL, target_schema text NOT NULL, phase text NOT NULL);
      CREATE TABLE sqlite2pg.snapshot_progress (
        source_id text NOT NULL REFERENCES sqlite2pg.state (source_id) ON DELETE CASCADE, table_name text NOT NULL,
        last_key jsonb, rows bigint NOT NULL DEFAULT 0, total bigint NOT NULL DEFAULT 0, done boolean NOT NULL DEFAULT false,
        PRIMARY KEY (source_id, table_name));
      INSERT INTO sqlite2pg.state VALUES ('src', '/x.db', 'public', 'snapshot');
      INSERT INTO sqlite2pg.snapshot_progress VALUES ('src', 't', '[{"$bigint":"40"}]', 40, 100, false), ('src', 'u', NULL, 0, 5, false);`);
    await ensureStateSchema(client);
    await ensureStateSchema(client); // twice: nothing left to do the second time
    expect((await loadProgress(client, "src")).map((p) => [p.table, p.part, p.upTo, p.lastKey, p.rows])).toEqual([
      ["t", 0, null, [40n], 40],
      ["u", 0, null, null, 0],
    ]);
    const pk = await client.query(
      "SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint WHERE conrelid = 'sqlite2pg.snapshot_progress'::regclass AND contype = 'p'",
    );
    expect(pk.rows).toEqual([{ d: "PRIMARY KEY (source_id, table_name, part)" }]);
  });
});
