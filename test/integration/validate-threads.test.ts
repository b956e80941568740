/**
 * `validate --full` hashes SQLite's side in worker threads on a file large
 * enough to gain from them (each rowid table in ranges, merged): the same
 * digests as one thread, and a difference is still found and named by key.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { join } from "node:path";
import { cleanup, freshDatabase, tempDir } from "../helpers/db.js";
import { runCli } from "../helpers/daemon.js";
import { buildPlan } from "../../src/plan/plan.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { digestAll } from "../../src/migrate/copy-pool.js";
import { sqliteDigest } from "../../src/validate/digest.js";

afterEach(cleanup);

/** A file over the 32 MiB the threads start at: blobs, a rowid table with gaps and negative rowids, a WITHOUT ROWID table, an empty one. */
function bigFile(): string {
  const path = join(tempDir(), "big.db");
  const db = new Database(path);
  db.exec(`CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB, note TEXT);
    CREATE TABLE items (name TEXT, qty INTEGER, price REAL, at TEXT);
    CREATE TABLE tags (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
    CREATE TABLE empty (id INTEGER PRIMARY KEY, v TEXT);`);
  db.transaction(() => {
    const blob = db.prepare("INSERT INTO blobs (id, b, note) VALUES (?, randomblob(?), ?)");
    for (let i = 0; i < 40; i++) blob.run(i * 7 - 100, 1024 * 1024, `blob ${i}`);
    const item = db.prepare("INSERT INTO items (rowid, name, qty, price, at) VALUES (?, ?, ?, ?, ?)");
    for (let i = 1; i <= 20000; i++)
      item.run(i % 3 === 0 ? i * 1000 : i, `item ${i}`, i % 17, i / 7, `2024-01-${String((i % 28) + 1).padStart(2, "0")} 10:00:00`);
    const tag = db.prepare("INSERT INTO tags VALUES (?, ?)");
    for (let i = 0; i < 3000; i++) tag.run(`k${i}`, i % 5 ? `v${i}` : null);
  })();
  db.close();
  return path;
}

describe("validate --full in threads", () => {
  it("the threads' digests equal one thread's, table by table", async () => {
    const path = bigFile();
    const db = new Database(path, { readonly: true });
    try {
      const plan = buildPlan(db, readSchema(db), { schema: "public", preserveCase: false });
      const tables = plan.tables.map((_, i) => i);
      for (const hash of ["lookup3", "md5"] as const) {
        const threads = await digestAll(path, db, plan, tables, hash, 2);
        expect(threads).not.toBeNull();
        const one = [];
        for (const t of plan.tables) one.push(await sqliteDigest(db, t, hash));
        expect(threads).toEqual(one);
        expect(Object.fromEntries(plan.tables.map((t, i) => [t.source.name, threads![i]!.rows]))).toEqual({ blobs: 40, items: 20000, tags: 3000, empty: 0 });
      }
      // One job, or a small file: no threads (the caller hashes itself).
      expect(await digestAll(path, db, plan, tables, "lookup3", 1)).toBeNull();
    } finally {
      db.close();
    }
  });

  it("migrate, then validate --full: equal; one value changed in Postgres is named by key (exit 1)", async () => {
    const path = bigFile();
    const { url, client } = await freshDatabase();
    const m = await runCli(["migrate", "--sqlite", path, "--pg", url]);
    expect(m.code, m.stderr).toBe(0);
    const ok = await runCli(["validate", "--sqlite", path, "--pg", url, "--full", "--json"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(Object.fromEntries(JSON.parse(ok.stdout).tables.map((t: { table: string; digest: string }) => [t.table, t.digest]))).toEqual({
      blobs: "equal",
      empty: "equal",
      items: "equal",
      tags: "equal",
    });
    await client.query("UPDATE items SET price = price + 1e-9 WHERE name = 'item 3000'");
    await client.query("UPDATE blobs SET note = 'changed' WHERE id = 173");
    const bad = await runCli(["validate", "--sqlite", path, "--pg", url, "--full", "--json"]);
    expect(bad.code).toBe(1);
    const report = JSON.parse(bad.stdout) as { tables: { table: string; digest: string; note?: string; differences?: { key: string }[] }[] };
    const of = (name: string) => report.tables.find((t) => t.table === name)!;
    expect(of("items").digest).toBe("differs");
    // No rowid column in Postgres after migrate (no INTEGER PRIMARY KEY): the table differs as a whole.
    expect(of("items").note).toMatch(/no rowid column/);
    expect(of("blobs").differences?.map((d) => d.key)).toEqual(["id=173"]);
    expect(of("tags").digest).toBe("equal");
  });
});
