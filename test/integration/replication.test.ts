/**
 * Change capture and streaming, driven by hand (`syncOnce`): every kind of
 * statement SQLite accepts arrives in Postgres exactly.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { execFileSync } from "node:child_process";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { Replicator } from "../../src/replication/replicator.js";
import { silentLogger } from "../../src/observe/logger.js";
import { installCapture, uninstallCapture, CHANGES } from "../../src/sqlite/capture.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { ensureStateSchema, loadState } from "../../src/replication/state.js";
import { readStatus } from "../../src/replication/status.js";

const reps: Replicator[] = [];
afterEach(async () => {
  while (reps.length) await reps.pop()!.stop();
  await cleanup();
});

const SCHEMA = `
  CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT UNIQUE, score REAL, data BLOB);
  CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE, note TEXT);
  CREATE TABLE kv (k TEXT, n INTEGER, v BLOB, PRIMARY KEY (k, n)) WITHOUT ROWID;
  CREATE TABLE bkey (k BLOB PRIMARY KEY, v TEXT) WITHOUT ROWID;
  CREATE TABLE textpk (code TEXT PRIMARY KEY, label TEXT);
  CREATE TABLE nokey (a INTEGER, b TEXT);
  CREATE TABLE audit (at INTEGER, what TEXT);
  CREATE TRIGGER app_audit AFTER UPDATE ON parent BEGIN INSERT INTO audit VALUES (1, 'parent ' || NEW.id); END;
`;

/** A source with capture installed and a state row, as `init` leaves it. */
async function setup(sql = SCHEMA, rows?: (db: Database.Database) => void) {
  const dir = tempDir();
  const path = sqliteFrom(dir, sql);
  const db = new Database(path);
  db.pragma("foreign_keys = ON");
  rows?.(db);
  const sourceId = installCapture(db, readSchema(db).tables);
  const { url, client } = await freshDatabase();
  await ensureStateSchema(client);
  await client.query("INSERT INTO sqlite2pg.state (source_id, sqlite_path, target_schema, phase) VALUES ($1, $2, 'public', 'new')", [sourceId, path]);
  const rep = new Replicator({ sqlite: path, pg: url, log: silentLogger(), pollIntervalMs: 0, watch: false, batchSize: 50, chunkRows: 7, pruneIntervalMs: 0 });
  reps.push(rep);
  const exact = async () => {
    await rep.syncOnce();
    const cmp = await compareDatabases(path, client);
    expect(cmp.differences).toEqual([]);
    return cmp;
  };
  return { path, db, url, client, rep, sourceId, exact };
}

describe("replication: every statement arrives", () => {
  it("snapshots existing rows, then streams inserts, updates (keys too), deletes and their variants", async () => {
    const s = await setup(SCHEMA, (db) => {
      const p = db.prepare("INSERT INTO parent (name, score, data) VALUES (?, ?, ?)");
      for (let i = 0; i < 40; i++) p.run(`p${i}`, i / 3, i % 2 ? Buffer.from([0, i]) : null);
      for (let i = 0; i < 30; i++) db.prepare("INSERT INTO nokey VALUES (?, ?)").run(i % 3, "dup");
    });
    await s.exact();
    expect((await loadState(s.client, s.sourceId))!.phase).toBe("streaming");
    const db = s.db;
    db.exec(`
      INSERT INTO parent (id, name, score) VALUES (1000, 'new', -0.0);
      UPDATE parent SET score = 1e308, data = x'00' WHERE id = 2;
      UPDATE parent SET id = 2000 WHERE id = 3;             -- key change
      DELETE FROM parent WHERE id = 4;
      INSERT OR REPLACE INTO parent (id, name, score) VALUES (5, 'replaced', 5);
      INSERT OR REPLACE INTO parent (id, name, score) VALUES (6, 'p7', 6); -- replaces row 6 and deletes row 8 ('p7') by UNIQUE
      INSERT INTO parent (id, name) VALUES (9, 'up') ON CONFLICT(id) DO UPDATE SET name = excluded.name;
      INSERT OR IGNORE INTO parent (id, name) VALUES (10, 'ignored');
      INSERT INTO kv VALUES ('a', 1, x'01'), ('a', 2, NULL), ('b', 1, x'ff00');
      UPDATE kv SET n = 3 WHERE k = 'a' AND n = 1;
      INSERT INTO bkey VALUES (x'00', 'zero'), (x'0001', 'one');
      UPDATE bkey SET k = x'02' WHERE k = x'00';
      INSERT INTO textpk VALUES ('A', 'a'), ('B', 'b');
      INSERT OR REPLACE INTO textpk VALUES ('A', 'replaced');   -- a new rowid for 'A'; the old row is deleted silently
      UPDATE OR REPLACE textpk SET code = 'A' WHERE code = 'B'; -- deletes the row holding 'A'
      UPDATE nokey SET b = 'changed' WHERE rowid % 2 = 0;
      DELETE FROM nokey WHERE rowid > 25;
      INSERT INTO nokey VALUES (1, 'dup'), (1, 'dup');
    `);
    await s.exact();
  });

  it("applies rows swapped between keys in one transaction, cascades and the application's own triggers", async () => {
    const s = await setup();
    s.db.exec(`INSERT INTO parent (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd');
      INSERT INTO child (parent_id, note) VALUES (3, 'x'), (3, 'y'), (4, 'z');
      INSERT INTO textpk VALUES ('A', 'first'), ('B', 'second');`);
    await s.exact();
    const swap = s.db.transaction(() => {
      s.db.exec("UPDATE parent SET id = -1 WHERE id = 1; UPDATE parent SET id = 1 WHERE id = 2; UPDATE parent SET id = 2 WHERE id = -1;");
      s.db.exec("UPDATE parent SET name = 'tmp' WHERE id = 1; UPDATE parent SET name = 'a' WHERE id = 2; UPDATE parent SET name = 'b' WHERE id = 1;");
      s.db.exec("UPDATE textpk SET code = 'T' WHERE code = 'A'; UPDATE textpk SET code = 'A' WHERE code = 'B'; UPDATE textpk SET code = 'B' WHERE code = 'T';");
    });
    swap();
    s.db.exec("DELETE FROM parent WHERE id = 3; DELETE FROM parent WHERE id = 4;"); // cascades to child rows
    expect((s.db.prepare("SELECT count(*) AS n FROM child").get() as { n: number }).n).toBe(0);
    await s.exact();
    expect((s.db.prepare("SELECT count(*) AS n FROM audit").get() as { n: number }).n).toBeGreaterThan(0);
  });

  it("applies a multi-table transaction and a DELETE without WHERE", async () => {
    const s = await setup();
    s.db.exec("INSERT INTO parent (name) VALUES ('a'), ('b'); INSERT INTO nokey VALUES (1, 'x'), (2, 'y');");
    await s.exact();
    s.db.transaction(() => {
      s.db.exec("DELETE FROM nokey; INSERT INTO kv VALUES ('k', 1, NULL); UPDATE parent SET score = 0.1 + 0.2;");
    })();
    await s.exact();
  });

  it("refuses a value Postgres cannot hold, keeps the change, and resumes once it is fixed", async () => {
    const s = await setup("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);", (db) => db.exec("INSERT INTO notes VALUES (1, 'ok')"));
    await s.exact();
    s.db.prepare("INSERT INTO notes VALUES (2, ?)").run("bad\u0000nul");
    const err = await s.rep.syncOnce().catch((e) => e);
    expect(err.message).toMatch(/table notes, column body, id=2: text with a NUL byte/);
    const applied = (await loadState(s.client, s.sourceId))!.appliedSeq;
    expect((s.db.prepare(`SELECT count(*) AS n FROM ${CHANGES} WHERE seq > ?`).get(applied) as { n: number }).n).toBe(1);
    s.db.prepare("UPDATE notes SET body = 'fixed' WHERE id = 2").run();
    await s.exact();
  });

  it("prunes applied changes without letting seq go back", async () => {
    const s = await setup("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER);");
    await s.exact();
    const ins = s.db.prepare("INSERT INTO t (v) VALUES (?)");
    for (let i = 0; i < 300; i++) ins.run(i);
    await s.exact();
    await s.rep.streamOnce(); // nothing new: prunes
    const left = s.db.prepare(`SELECT count(*) AS n, max(seq) AS m FROM ${CHANGES}`).get() as { n: number; m: number };
    expect(left.n).toBe(1); // only the newest applied change stays, so seq never restarts below it
    const applied = (await loadState(s.client, s.sourceId))!.appliedSeq;
    expect(left.m).toBe(applied);
    ins.run(1);
    expect((s.db.prepare(`SELECT max(seq) AS m FROM ${CHANGES}`).get() as { m: number }).m).toBe(applied + 1);
    await s.exact();
  });

  it("writes one changelog row per changed row, two when an update moves a row", async () => {
    const s = await setup("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, qty INTEGER);", (db) =>
      db.exec("INSERT INTO u VALUES (1, 'a@x', 0), (2, 'b@x', 0)"),
    );
    await s.exact();
    const count = () => (s.db.prepare(`SELECT count(*) AS n FROM ${CHANGES} WHERE op <> 'S'`).get() as { n: number }).n;
    const before = count();
    s.db.exec("UPDATE u SET qty = qty + 1 WHERE id = 1");
    expect(count() - before).toBe(1);
    s.db.exec("UPDATE u SET email = 'c@x' WHERE id = 1"); // a unique column, no conflict
    expect(count() - before).toBe(2);
    s.db.exec("UPDATE u SET id = 10 WHERE id = 2");
    expect(count() - before).toBe(4);
    await s.exact();
  });

  it("stops, naming the tables, when VACUUM may have renumbered the rowids it replicates by", async () => {
    const s = await setup("CREATE TABLE logs (msg TEXT); CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);", (db) =>
      db.exec("INSERT INTO logs VALUES ('a'), ('b'), ('c'); INSERT INTO t VALUES (1, 'x')"),
    );
    await s.exact();
    s.db.exec("DELETE FROM logs WHERE msg = 'a'; CREATE INDEX t_v ON t (v);"); // an index: a schema change, not a rewrite
    await s.exact();
    s.db.exec("VACUUM");
    s.db.exec("UPDATE logs SET msg = 'B' WHERE msg = 'b'");
    const err = await s.rep.syncOnce().catch((e) => e);
    expect(err.code).toBe("SCHEMA_CHANGED");
    expect(err.message).toMatch(/rewritten \(VACUUM\?\): the rowids of logs/);
  });

  it("keeps identifiers' case when init was given --preserve-case", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, `CREATE TABLE "CamelTable" ("SomeId" INTEGER PRIMARY KEY, "Value" TEXT); INSERT INTO "CamelTable" VALUES (1, 'a');`);
    const { url, client } = await freshDatabase();
    const { initCommand } = await import("../../src/cli/init.js");
    const out = process.stdout.write;
    process.stdout.write = (() => true) as typeof process.stdout.write; // init prints a summary
    try {
      await initCommand({ sqlite: path, pg: url, preserveCase: true });
    } finally {
      process.stdout.write = out;
    }
    const rep = new Replicator({ sqlite: path, pg: url, log: silentLogger(), pollIntervalMs: 0, watch: false });
    reps.push(rep);
    await rep.syncOnce();
    expect((await client.query(`SELECT "SomeId", "Value" FROM "CamelTable"`)).rows).toEqual([{ SomeId: "1", Value: "a" }]);
  });

  it("catches a schema change made while no daemon ran, and mirrors it", async () => {
    const s = await setup("CREATE TABLE logs (msg TEXT); CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);", (db) =>
      db.exec("INSERT INTO logs VALUES ('a'), ('b'); INSERT INTO t VALUES (1, 'x')"),
    );
    await s.exact();
    await s.rep.stop();
    installCapture(s.db, readSchema(s.db).tables); // init again changes nothing
    const again = new Replicator({ sqlite: s.path, pg: s.url, log: silentLogger(), pollIntervalMs: 0, watch: false });
    reps.push(again);
    await again.syncOnce();
    await again.stop();
    s.db.exec("ALTER TABLE t ADD COLUMN extra TEXT");
    const third = new Replicator({ sqlite: s.path, pg: s.url, log: silentLogger(), pollIntervalMs: 0, watch: false });
    reps.push(third);
    s.db.exec("UPDATE t SET extra = 'set later' WHERE id = 1");
    await third.syncOnce();
    expect((await s.client.query("SELECT id, v, extra FROM t")).rows).toEqual([{ id: "1", v: "x", extra: "set later" }]);
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
  });

  it("reports status with or without a daemon", async () => {
    const s = await setup("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER);", (db) => db.exec("INSERT INTO t VALUES (1, 1), (2, 2)"));
    await s.exact();
    s.db.exec("INSERT INTO t VALUES (3, 3); UPDATE t SET v = 9 WHERE id = 1;");
    const st = await readStatus(s.path, s.url);
    expect(st).toMatchObject({ phase: "streaming", lag_changes: 2, last_error: null });
    expect(st.daemon_running).toBe(true); // this test's replicator holds the lock
    expect(st.lag_seconds).toBeGreaterThanOrEqual(0);
    expect(st.snapshot).toEqual([{ table: "t", rows: 2, total: 2, done: true }]);
    await s.exact();
    expect((await readStatus(s.path, s.url)).lag_changes).toBe(0);
  });

  it("uninstall leaves the application's database as it was", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, SCHEMA);
    const dump = () => execFileSync("sqlite3", [path, ".schema"]).toString();
    const before = dump();
    const db = new Database(path);
    installCapture(db, readSchema(db).tables);
    expect(dump()).not.toBe(before);
    // 3 AFTER triggers per table, 2 BEFORE triggers for the tables with unique keys REPLACE can hit (parent, textpk)
    expect(uninstallCapture(db)).toEqual({ triggers: 25, tables: 2 });
    db.close();
    expect(dump()).toBe(before);
  });
});
