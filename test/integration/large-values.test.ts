/**
 * Resource limits: batches and snapshot chunks are bounded by bytes as well
 * as rows, and COPY data goes as Buffers, so a source transaction writing
 * hundreds of megabytes of blobs, or one blob of 200 MiB, streams through
 * instead of failing forever on V8's string limit.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { Replicator } from "../../src/replication/replicator.js";
import { silentLogger } from "../../src/observe/logger.js";
import { installCapture } from "../../src/sqlite/capture.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { ensureStateSchema, loadState } from "../../src/replication/state.js";
import { validate } from "../../src/validate/validate.js";
import { buildPlan } from "../../src/plan/plan.js";
import { ChunkReader, rowBytes } from "../../src/sqlite/reader.js";
import { Sqlite2pgError } from "../../src/errors.js";
import { migrateFile } from "../helpers/migrate.js";

const MiB = 1024 * 1024;
const reps: Replicator[] = [];
afterEach(async () => {
  while (reps.length) await reps.pop()!.stop();
  await cleanup();
});

async function setup(sql: string, opts: { batchBytes?: number; chunkBytes?: number; batchSize?: number }, rows?: (db: Database.Database) => void) {
  const dir = tempDir();
  const path = sqliteFrom(dir, sql);
  const db = new Database(path);
  rows?.(db);
  const sourceId = installCapture(db, readSchema(db).tables);
  const { url, client } = await freshDatabase();
  await ensureStateSchema(client);
  await client.query("INSERT INTO sqlite2pg.state (source_id, sqlite_path, target_schema, phase) VALUES ($1, $2, 'public', 'new')", [sourceId, path]);
  const rep = new Replicator({
    sqlite: path,
    pg: url,
    log: silentLogger(),
    pollIntervalMs: 0,
    watch: false,
    batchSize: opts.batchSize ?? 10000,
    chunkRows: 20000,
    ...opts,
  });
  reps.push(rep);
  /** Every blob's md5 on both sides, and validate --full with the replication's plan. */
  const sameBlobs = async (table: string) => {
    const mine = new Map<string, string>();
    for (const r of db.prepare(`SELECT id, b FROM ${table}`).iterate() as Iterable<{ id: number; b: Buffer | null }>)
      mine.set(String(r.id), r.b === null ? "null" : createHash("md5").update(r.b).digest("hex"));
    const theirs = new Map<string, string>();
    for (const r of (await client.query(`SELECT id::text, coalesce(md5(b), 'null') AS h FROM ${table}`)).rows) theirs.set(r.id, r.h);
    expect(theirs).toEqual(mine);
    const report = await validate(db, client, (await loadState(client, sourceId))!.plan!, "full");
    expect(report.ok).toBe(true);
  };
  return { path, db, url, client, rep, sourceId, sameBlobs };
}

const blob = (n: number, seed: number) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i + 4 <= n; i += 4096) b.writeUInt32BE((seed * 2654435761 + i) >>> 0, i);
  return b;
};

describe("batches and chunks bounded by bytes", () => {
  it("a snapshot chunk ends at its byte budget, always with at least one row", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, "CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB, t TEXT);");
    const db = new Database(path);
    const ins = db.prepare("INSERT INTO big VALUES (?, ?, ?)");
    db.transaction(() => {
      for (let i = 1; i <= 60; i++) ins.run(i, i % 10 === 0 ? blob(3 * MiB, i) : blob(i * 1000, i), "x".repeat(i));
    })();
    const plan = buildPlan(db, readSchema(db), { schema: "public", preserveCase: false });
    const t = plan.tables[0]!;
    const reader = new ChunkReader(
      db,
      t,
      t.columns.map((c) => c.source.name),
      20000,
    );
    reader.maxBytes = 2 * MiB;
    const seen: number[] = [];
    for (let rows = reader.read(); rows; rows = reader.read()) {
      const bytes = rows.map(rowBytes);
      // Under the budget until the last row, which may pass it.
      expect(bytes.slice(0, -1).reduce((a, b) => a + b, 0)).toBeLessThan(2 * MiB);
      seen.push(...rows.map((r) => Number(r[0])));
    }
    expect(seen).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    db.close();
  });

  it("snapshots a table of large blobs with a small chunk budget", async () => {
    const s = await setup("CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB, note TEXT);", { chunkBytes: 3 * MiB }, (db) => {
      const ins = db.prepare("INSERT INTO big VALUES (?, ?, ?)");
      db.transaction(() => {
        for (let i = 1; i <= 24; i++) ins.run(i, blob(MiB + i, i), `row ${i}`);
      })();
    });
    await s.rep.syncOnce();
    await s.sameBlobs("big");
  });

  it("streams a source transaction of 300 × 1 MiB blobs, and one updating them all, in bounded batches", async () => {
    const s = await setup("CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB, note TEXT);", { batchBytes: 16 * MiB });
    await s.rep.syncOnce();
    const ins = s.db.prepare("INSERT INTO big VALUES (?, ?, ?)");
    s.db.transaction(() => {
      for (let i = 1; i <= 300; i++) ins.run(i, blob(MiB, i), `row ${i}`);
    })();
    // One batch takes only what fits its budget (about 8 rows of 2 MiB of hex each), not all 300 changes.
    const first = await s.rep.streamOnce();
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(20);
    await s.rep.syncOnce();
    expect((await s.client.query("SELECT count(*)::int AS n FROM big")).rows[0].n).toBe(300);
    const upd = s.db.prepare("UPDATE big SET b = ?, note = note || '!' WHERE id = ?");
    s.db.transaction(() => {
      for (let i = 1; i <= 300; i++) upd.run(blob(MiB + 2, i + 1000), i);
    })();
    await s.rep.syncOnce();
    await s.sameBlobs("big");
  }, 180_000);

  it("a budget that ends a batch inside a transaction swapping unique values still applies it", async () => {
    const s = await setup("CREATE TABLE u (id INTEGER PRIMARY KEY, code INTEGER UNIQUE, b BLOB);", { batchBytes: MiB, batchSize: 1 }, (db) => {
      const ins = db.prepare("INSERT INTO u VALUES (?, ?, ?)");
      for (let i = 1; i <= 4; i++) ins.run(i, i, blob(MiB, i));
    });
    await s.rep.syncOnce();
    expect((await loadState(s.client, s.sourceId))!.phase).toBe("streaming");
    // Swap the codes of rows 1 and 2 (through a free value, as SQLite checks each row).
    s.db.transaction(() => {
      s.db.prepare("UPDATE u SET code = 0 WHERE id = 1").run();
      s.db.prepare("UPDATE u SET code = 1 WHERE id = 2").run();
      s.db.prepare("UPDATE u SET code = 2 WHERE id = 1").run();
    })();
    await s.rep.syncOnce();
    expect((await s.client.query("SELECT id::int, code::int FROM u ORDER BY id")).rows).toEqual([
      { id: 1, code: 2 },
      { id: 2, code: 1 },
      { id: 3, code: 3 },
      { id: 4, code: 4 },
    ]);
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
  });

  it("streams a single 200 MiB value", async () => {
    const s = await setup("CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB);", { batchBytes: 16 * MiB });
    await s.rep.syncOnce();
    s.db.prepare("INSERT INTO big VALUES (1, ?)").run(blob(200 * MiB, 7));
    await s.rep.syncOnce();
    await s.sameBlobs("big");
  }, 180_000);

  it("copies a 300 MB text value, with migrate and with the snapshot (threads whose heap no cap stops short of the process's)", async () => {
    // 314,572,800 ASCII characters: a string V8 keeps whole in the heap of the thread that reads it.
    const fill = (db: Database.Database) => db.exec("INSERT INTO big VALUES (1, replace(hex(zeroblob(150 * 1024 * 1024)), '0', 'a')), (2, 'x')");
    const s = await setup("CREATE TABLE big (id INTEGER PRIMARY KEY, t TEXT);", {}, fill);
    await s.rep.syncOnce();
    const check = async (client: typeof s.client) => {
      const r = await client.query("SELECT id, length(t) AS n, md5(t) = md5(repeat('a', 314572800)) AS same FROM big ORDER BY id");
      expect(r.rows).toEqual([
        { id: "1", n: 314572800, same: true },
        { id: "2", n: 1, same: false },
      ]);
    };
    await check(s.client);
    const m = await freshDatabase();
    const result = await migrateFile(s.path, m.url);
    expect(result.rows).toBe(2);
    await check(m.client);
  }, 180_000);

  it("a value too big to read (written by another program) stops with a typed error naming table, column and key", async () => {
    const s = await setup("CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB, note TEXT);", {}, (db) => {
      db.prepare("INSERT INTO big VALUES (1, x'00', 'small')").run();
    });
    await s.rep.syncOnce();
    const before = (await loadState(s.client, s.sourceId))!.appliedSeq;
    // 540 MB: past the 512 MiB better-sqlite3 reads (V8's longest string). SQLite writes a zeroblob without the memory.
    execFileSync("python3", [
      "-c",
      "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute('INSERT INTO big VALUES (2, zeroblob(540000000), ?)', ('huge',))\nc.commit()",
      s.path,
    ]);
    const e = await s.rep.syncOnce().then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(Sqlite2pgError);
    expect((e as Sqlite2pgError).code).toBe("VALUE_TOO_BIG");
    expect((e as Sqlite2pgError).message).toContain("table big, column b, id=2: a value of 540000000 bytes");
    expect((await loadState(s.client, s.sourceId))!.appliedSeq).toBe(before);
    // Once the value is replaced by one that fits, the kept change applies.
    s.db.prepare("UPDATE big SET b = x'0102' WHERE id = 2").run();
    await s.rep.syncOnce();
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
  }, 120_000);
});
