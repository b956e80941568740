/**
 * Keys as SQLite compares them, and names SQLite gives special meaning to:
 * an untyped key column where 1 and '1' are two keys (refused by the plan,
 * and by the live apply when a number arrives later, instead of deleting
 * the other row); a user column named rowid (the real rowid is read as
 * _rowid_ or oid); user tables whose names start with _sqlite2pg_ (copied
 * like any other; uninstall removes only this project's own triggers).
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { runCli } from "../helpers/daemon.js";
import { migrate } from "../../src/migrate/migrate.js";
import { silentLogger } from "../../src/observe/logger.js";
import { CHANGES, installCapture, uninstallCapture } from "../../src/sqlite/capture.js";
import { readSchema, rowidName } from "../../src/sqlite/schema.js";
import { loadState } from "../../src/replication/state.js";
import { liveSource, stopReplicators } from "../helpers/source.js";

afterEach(async () => {
  await stopReplicators();
  await cleanup();
});

function setup(sql: string, rows?: string) {
  return liveSource(sql, { rows, options: { chunkRows: 3 } });
}

const runMigrate = (sqlite: string, url: string) =>
  migrate({ sqlite, pg: url, schema: "public", jobs: 2, preserveCase: false, dropExisting: false, fixText: false, log: silentLogger() });

describe("keys: SQLite's storage classes", () => {
  it("refuses, naming table, column and keys, a key column holding both 1 and '1'", async () => {
    const s = await setup(
      `
      CREATE TABLE kv (k PRIMARY KEY, v TEXT) WITHOUT ROWID;
      CREATE TABLE codes (id INTEGER PRIMARY KEY, code UNIQUE);
    `,
      `INSERT INTO kv VALUES (1, 'integer one'), ('1', 'text one'); INSERT INTO codes (code) VALUES ('7'), (8);`,
    );
    const err = await s.rep.syncOnce().catch((e) => e);
    expect(err.code).toBe("VALUES_REFUSED");
    expect(err.message).toMatch(/table kv, column k: a key column .* 1 and '1'.*k='1'.*k=1/);
    const m = await runMigrate(s.path, (await freshDatabase()).url).catch((e) => e);
    expect(m.code).toBe("VALUES_REFUSED");
    expect(m.message).toMatch(/table kv, column k: a key column/);
    expect(m.message).toMatch(/table codes, column code: a key column .*id=1 \('7'\).*id=2 \(8\)/);
  });

  it("refuses a number arriving in a text key while streaming, keeps the change, and resumes once it is fixed", async () => {
    const s = await setup("CREATE TABLE kv (k PRIMARY KEY, v TEXT) WITHOUT ROWID;", "INSERT INTO kv VALUES ('1', 'text one'), ('a', 'x');");
    await s.exact();
    s.db.exec("INSERT INTO kv VALUES (1, 'integer one')");
    const err = await s.rep.syncOnce().catch((e) => e);
    expect(err.code).toBe("VALUE_REFUSED");
    expect(err.message).toMatch(/table kv, column k, k=1: an integer in a key column of text/);
    // Nothing was deleted in Postgres, and the change is still there.
    expect((await s.client.query("SELECT k, v FROM kv ORDER BY k")).rows).toEqual([
      { k: "1", v: "text one" },
      { k: "a", v: "x" },
    ]);
    const applied = (await loadState(s.client, s.sourceId))!.appliedSeq;
    expect((s.db.prepare(`SELECT count(*) AS n FROM ${CHANGES} WHERE seq > ?`).get(applied) as { n: number }).n).toBe(1);
    // Fixed in SQLite: the number is gone (and one that came and went names no Postgres row).
    s.db.exec("DELETE FROM kv WHERE k = 1; INSERT INTO kv VALUES (2, 'brief'); DELETE FROM kv WHERE k = 2; INSERT INTO kv VALUES ('b', 'y');");
    await s.exact();
    expect((await s.client.query("SELECT k FROM kv ORDER BY k")).rows.map((r) => r.k)).toEqual(["1", "a", "b"]);
  });
});

describe("names: a column named rowid, tables named _sqlite2pg_*", () => {
  const SCHEMA = `
    CREATE TABLE r1 (rowid TEXT, v INTEGER UNIQUE);
    CREATE TABLE r2 ("ROWID" TEXT, _rowid_ INTEGER, v TEXT);
    CREATE TABLE r3 (rowid TEXT, _rowid_ TEXT, oid TEXT, id INTEGER PRIMARY KEY);
    CREATE TABLE _sqlite2pg_foo (id INTEGER PRIMARY KEY, v TEXT);
    CREATE TABLE _sqlite2pg_bar (v TEXT);
  `;
  const ROWS = `
    INSERT INTO r1 VALUES ('x', 1), ('y', 2), ('z', 3), ('w', 4);
    INSERT INTO r2 VALUES ('a', 100, 'p'), ('b', 200, 'q'), ('c', 300, 'r');
    INSERT INTO r3 VALUES ('1', '2', '3', 10), ('4', '5', '6', 20);
    INSERT INTO _sqlite2pg_foo VALUES (1, 'one'), (2, 'two');
    INSERT INTO _sqlite2pg_bar VALUES ('a'), ('b');
  `;

  it("reads the real rowid by a name no column takes, and replicates user tables named _sqlite2pg_*, while streaming", async () => {
    const s = await setup(SCHEMA, ROWS);
    const names = Object.fromEntries(readSchema(s.db).tables.map((t) => [t.name, t.withoutRowid ? null : rowidName(t)]));
    expect(names).toMatchObject({ r1: "_rowid_", r2: "oid", r3: '"id"', _sqlite2pg_foo: "rowid" });
    await s.exact();
    s.db.exec(`
      UPDATE r1 SET rowid = 'changed' WHERE v = 2;
      UPDATE r1 SET _rowid_ = 99 WHERE v = 3;           -- moves the real rowid
      INSERT OR REPLACE INTO r1 VALUES ('new', 1);       -- evicts the row holding v = 1
      DELETE FROM r1 WHERE v = 4;
      INSERT INTO r2 VALUES ('d', 400, 's');
      UPDATE r2 SET v = 'Q', _rowid_ = 7 WHERE "ROWID" = 'b';
      DELETE FROM r2 WHERE "ROWID" = 'a';
      UPDATE r3 SET oid = 'o' WHERE id = 10;
      UPDATE r3 SET id = 30 WHERE id = 20;
      INSERT INTO _sqlite2pg_foo VALUES (3, 'three');
      UPDATE _sqlite2pg_foo SET v = 'ONE' WHERE id = 1;
      DELETE FROM _sqlite2pg_bar WHERE v = 'a';
      INSERT INTO _sqlite2pg_bar VALUES ('c');
    `);
    await s.exact();
    expect((await s.client.query("SELECT v FROM _sqlite2pg_foo ORDER BY id")).rows.map((r) => r.v)).toEqual(["ONE", "two", "three"]);
    expect((await s.client.query("SELECT v FROM _sqlite2pg_bar ORDER BY v")).rows.map((r) => r.v)).toEqual(["b", "c"]);
    // validate reads the real rowid too, and names a differing row by it.
    const ok = await runCli(["validate", "--sqlite", s.path, "--pg", s.url, "--full", "--json"]);
    expect(ok.code, ok.stderr).toBe(0);
    await s.client.query("UPDATE r1 SET v = 42 WHERE v = 2");
    const bad = await runCli(["validate", "--sqlite", s.path, "--pg", s.url, "--full", "--json"]);
    expect(bad.code).not.toBe(0);
    const r1 = (JSON.parse(bad.stdout) as { tables: { table: string; differences?: { key: string; kind: string }[] }[] }).tables.find((t) => t.table === "r1")!;
    expect(r1.differences).toEqual([{ key: "_rowid_=2", kind: "values differ" }]);
  });

  it("migrates them exactly", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, SCHEMA + ROWS);
    const { url, client } = await freshDatabase();
    await runMigrate(path, url);
    expect((await compareDatabases(path, client)).differences).toEqual([]);
    expect(Number((await client.query("SELECT count(*) AS n FROM _sqlite2pg_foo")).rows[0].n)).toBe(2);
  });

  it("refuses, naming the table, one whose columns take rowid, _rowid_ and oid with no INTEGER PRIMARY KEY", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, "CREATE TABLE ok (id INTEGER PRIMARY KEY); CREATE TABLE hidden (rowid TEXT, _rowid_ TEXT, OID TEXT);");
    const db = new Database(path);
    let err = (() => {
      try {
        installCapture(db, readSchema(db).tables);
      } catch (e) {
        return e;
      }
    })() as { code: string; message: string };
    expect(err.code).toBe("CAPTURE_INCOMPLETE");
    expect(err.message).toMatch(/table hidden has columns named rowid, _rowid_ and oid and no INTEGER PRIMARY KEY/);
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name LIKE '%sqlite2pg%'").get()).toEqual({ n: 0 }); // nothing half-installed
    db.close();
    const init = await runCli(["init", "--sqlite", path, "--pg", (await freshDatabase()).url]);
    expect(init.code).not.toBe(0);
    expect(init.stderr).toMatch(/table hidden has columns named rowid, _rowid_ and oid/);
    err = await runMigrate(path, (await freshDatabase()).url).catch((e) => e);
    expect(err.code).toBe("ROWID_SHADOWED");
    expect(err.message).toMatch(/table hidden/);
  });

  it("refuses to install over an application's trigger that takes a capture trigger's name", async () => {
    const dir = tempDir();
    const db = new Database(
      sqliteFrom(
        dir,
        `CREATE TABLE t (id INTEGER PRIMARY KEY); CREATE TABLE log (x);
      CREATE TRIGGER _sqlite2pg_ins_t AFTER INSERT ON t BEGIN INSERT INTO log VALUES (NEW.id); END;`,
      ),
    );
    const err = (() => {
      try {
        installCapture(db, readSchema(db).tables);
      } catch (e) {
        return e;
      }
    })() as { code: string; message: string };
    expect(err.code).toBe("TRIGGER_NAME_TAKEN");
    expect(err.message).toMatch(/table t: a trigger named _sqlite2pg_ins_t, not made by sqlite2pg/);
    expect((db.prepare("SELECT sql FROM sqlite_schema WHERE name = '_sqlite2pg_ins_t'").get() as { sql: string }).sql).toMatch(/INSERT INTO log/);
    db.close();
  });

  it("uninstall removes only this project's triggers and tables, never a user's _sqlite2pg_* objects", async () => {
    const s = await setup(
      SCHEMA +
        `
      CREATE TABLE log (what TEXT);
      CREATE TRIGGER _sqlite2pg_audit AFTER INSERT ON _sqlite2pg_foo BEGIN INSERT INTO log VALUES ('foo ' || NEW.id); END;
    `,
      ROWS,
    );
    expect(readSchema(s.db).triggers.map((t) => t.name)).toEqual(["_sqlite2pg_audit"]);
    await s.exact();
    s.db.exec("INSERT INTO _sqlite2pg_foo VALUES (4, 'four')");
    await s.exact();
    await s.rep.stop();
    uninstallCapture(s.db);
    const left = s.db.prepare("SELECT type, name FROM sqlite_schema WHERE name LIKE '%sqlite2pg%' ORDER BY name").all() as { type: string; name: string }[];
    expect(left).toEqual([
      { type: "trigger", name: "_sqlite2pg_audit" },
      { type: "table", name: "_sqlite2pg_bar" },
      { type: "table", name: "_sqlite2pg_foo" },
    ]);
  });
});
