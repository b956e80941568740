/**
 * The snapshot's prefetch thread: chunks arrive in key order from where the
 * progress says, a value the column cannot hold stops it with the same
 * named error the daemon reports, and --fix-text's repairs reach the
 * daemon. Real SQLite files; the thread is the compiled one the daemon runs.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { join } from "node:path";
import { cleanup, tempDir } from "../helpers/db.js";
import { buildPlan, type MigrationPlan } from "../../src/plan/plan.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { PrefetchedChunks, type PrefetchInit } from "../../src/replication/snapshot-prefetch.js";
import { Sqlite2pgError } from "../../src/errors.js";

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
});
