/**
 * The snapshot's prefetch thread: chunks arrive in key order from where the
 * progress says, a value the column cannot hold stops it with the same
 * named error the daemon reports, and --fix-text's repairs reach the
 * daemon. Real SQLite files; the thread is the compiled one the daemon runs.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { join } from "node:path";
import { cleanup, freshDatabase, tempDir } from "../helpers/db.js";
import { buildPlan, type MigrationPlan } from "../../src/plan/plan.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { PrefetchedChunks, type PrefetchInit } from "../../src/replication/snapshot-prefetch.js";
import { Sqlite2pgError } from "../../src/errors.js";
import { ensureStateSchema, loadProgress, resetProgress, toJson } from "../../src/replication/state.js";
import { snapshotTable, snapshotTableSql } from "../../src/replication/snapshot.js";
import { createState } from "../../src/replication/phase.js";
import type { TransformedValue } from "../../src/convert/row-encoder.js";

afterEach(cleanup);

function fixture(sql: string, fill: (db: Database.Database) => void): { path: string; plan: MigrationPlan } {
  const path = join(tempDir(), "app.db");
  const db = new Database(path);
  db.exec(sql);
  fill(db);
  const plan = buildPlan(db, readSchema(db), { schema: "public", preserveCase: false });
  for (const t of plan.tables) t.bigIntegers = true;
  db.close();
  return { path, plan };
}

async function drain(init: PrefetchInit): Promise<{ rows: number; lastKey: unknown[]; bytes: number; transformed: number; framed: boolean }[]> {
  const chunks = new PrefetchedChunks(init);
  const out = [];
  try {
    for (let c = await chunks.next(); c; c = await chunks.next())
      out.push({
        rows: c.rows,
        lastKey: c.lastKey,
        bytes: c.data.length,
        transformed: c.transformed.length,
        // Each chunk is a whole binary COPY: the signature first, the -1 trailer last.
        framed: c.data.subarray(0, 11).equals(Buffer.from("PGCOPY\n\xff\r\n\0", "latin1")) && c.data.readInt16BE(c.data.length - 2) === -1,
      });
  } finally {
    await chunks.close();
  }
  return out;
}

const base = { chunkRows: 100, fixText: false, raw: false, ahead: 1, table: 0, after: null };

describe("snapshot prefetch", () => {
  it("hands over every row in key order, in chunks, from the key the progress gives", async () => {
    const { path, plan } = fixture("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", (db) => {
      const ins = db.prepare("INSERT INTO t VALUES (?, ?)");
      db.transaction(() => {
        for (let i = 1; i <= 1050; i++) ins.run(i * 2, `row ${i}`);
      })();
    });
    const all = await drain({ ...base, sqlite: path, plan });
    expect(all.map((c) => c.rows)).toEqual([...Array(10).fill(100), 50]);
    expect(all.map((c) => c.lastKey)).toEqual([...Array.from({ length: 10 }, (_, i) => [BigInt((i + 1) * 200)]), [2100n]]);
    expect(all.every((c) => c.framed)).toBe(true);
    const resumed = await drain({ ...base, sqlite: path, plan, after: [2000n] });
    expect(resumed.map((c) => [c.rows, c.lastKey])).toEqual([[50, [2100n]]]);
  });

  it("stops on a value the column cannot hold with the table, column and key", async () => {
    const { path, plan } = fixture("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)", (db) => {
      const ins = db.prepare("INSERT INTO t VALUES (?, ?)");
      for (let i = 1; i <= 300; i++) ins.run(i, i);
    });
    // After the plan chose bigint, the application writes text there.
    const db = new Database(path);
    db.prepare("UPDATE t SET n = 'twelve' WHERE id = 250").run();
    db.close();
    const err = await drain({ ...base, sqlite: path, plan }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Sqlite2pgError);
    expect((err as Sqlite2pgError).code).toBe("VALUE_REFUSED");
    expect((err as Sqlite2pgError).context).toMatchObject({ table: "t", column: "n", key: "id=250" });
  });

  it("passes --fix-text's repairs on with their chunk", async () => {
    const { path, plan } = fixture("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", (db) => {
      const ins = db.prepare("INSERT INTO t VALUES (?, ?)");
      for (let i = 1; i <= 150; i++) ins.run(i, i === 120 ? "a\u0000b" : "ok");
    });
    const chunks = await drain({ ...base, sqlite: path, plan, fixText: true });
    expect(chunks.map((c) => c.transformed)).toEqual([0, 1]);
  });

  it("hands blob keys and values over as Buffers: the progress stores them, the generated-column check reads them", async () => {
    const { path, plan } = fixture("CREATE TABLE t (id BLOB PRIMARY KEY, v INTEGER, w INTEGER GENERATED ALWAYS AS (v * 2) VIRTUAL) WITHOUT ROWID", (db) => {
      const ins = db.prepare("INSERT INTO t (id, v) VALUES (?, ?)");
      for (let i = 1; i <= 250; i++) ins.run(Buffer.from([0, i >> 8, i & 255]), i);
    });
    const chunks = new PrefetchedChunks({ ...base, sqlite: path, plan, raw: true });
    try {
      const first = (await chunks.next())!;
      expect(Buffer.isBuffer(first.lastKey[0])).toBe(true);
      expect(toJson(first.lastKey)).toBe(JSON.stringify([{ $bytes: "000064" }]));
      expect(first.raw!.every((r) => Buffer.isBuffer(r[0]))).toBe(true);
    } finally {
      await chunks.close();
    }
    // Resumed from the stored key: the rest, exactly.
    const rest = await drain({ ...base, sqlite: path, plan, after: [Buffer.from([0, 0, 100])] });
    expect(rest.map((c) => c.rows)).toEqual([100, 50]);
  });

  it("reports a failure to start (a missing file) as the daemon's own error, category and all", async () => {
    const { plan } = fixture("CREATE TABLE t (id INTEGER PRIMARY KEY)", () => undefined);
    const err = await drain({ ...base, sqlite: join(tempDir(), "gone.db"), plan }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Sqlite2pgError);
    expect((err as Sqlite2pgError).category).toBe("source");
  });

  it("hands over a chunk with more repaired values than a call takes arguments", async () => {
    const { path, plan } = fixture(`CREATE TABLE t (id INTEGER PRIMARY KEY, ${Array.from({ length: 8 }, (_, i) => `c${i} TEXT`).join(", ")})`, (db) => {
      const ins = db.prepare(`INSERT INTO t VALUES (?${", ?".repeat(8)})`);
      db.transaction(() => {
        for (let i = 1; i <= 20000; i++) ins.run(i, ...Array.from({ length: 8 }, () => "ab\u0000\u0000"));
      })();
    });
    const chunks = await drain({ ...base, sqlite: path, plan, fixText: true, chunkRows: 20000 });
    expect(chunks.map((c) => c.transformed)).toEqual([160000]);
    // And the daemon's snapshot takes them all, into a real server.
    const { client } = await freshDatabase();
    await ensureStateSchema(client);
    await createState(client, { sourceId: "src", sqlitePath: path, targetSchema: "public", preserveCase: false });
    const t = plan.tables[0]!;
    await client.query(snapshotTableSql(plan, t));
    await resetProgress(client, "src", "t", 20000);
    const transformed: TransformedValue[] = [];
    const db = new Database(path, { readonly: true });
    try {
      const progress = (await loadProgress(client, "src"))[0]!;
      const done = await snapshotTable(db, client, plan, t, progress, {
        sourceId: "src",
        chunkRows: 20000,
        fixText: true,
        transformed,
        stopping: () => false,
        sqlitePath: path,
      });
      expect(done).toBe(true);
    } finally {
      db.close();
    }
    expect(transformed.length).toBe(160000);
    const r = await client.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE c7 = 'ab')::int AS fixed FROM public.t");
    expect(r.rows[0]).toEqual({ n: 20000, fixed: 20000 });
  });
});
