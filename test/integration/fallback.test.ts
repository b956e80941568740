/**
 * The way back, in process against a real PostgreSQL and a real SQLite
 * file: after the cutover, every write the application makes in
 * PostgreSQL reaches SQLite in the form the file used; `finish` ends it;
 * `rollback` gives SQLite back to the application with nothing lost.
 */
import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { FROZEN_MESSAGE, ROLLBACK_FROZEN_MESSAGE } from "../../src/db/frozen.js";
import { markerPath, rollbackMarkerPath } from "../../src/sqlite/freeze.js";
import { uninstallCapture } from "../../src/sqlite/capture.js";
import { compareDatabases } from "../helpers/compare.js";
import { cleanup } from "../helpers/db.js";
import { liveSource, stopReplicators } from "../helpers/source.js";

afterEach(async () => {
  await stopReplicators();
  await cleanup();
});

const SCHEMA = `
CREATE TABLE users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  email TEXT NOT NULL UNIQUE COLLATE NOCASE,
  active BOOLEAN,
  created DATETIME,
  seen TIMESTAMP,
  score REAL,
  big INTEGER,
  data BLOB,
  note TEXT
);
CREATE TABLE log (msg TEXT);
CREATE TABLE kv (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
CREATE TRIGGER users_audit AFTER INSERT ON users BEGIN INSERT INTO audit (what) VALUES ('user ' || NEW.email); END;`;

const ROWS = `
INSERT INTO users (email, active, created, seen, score, big, data, note) VALUES
  ('a@x', 'yes', '2024-01-02T03:04:05Z', 1700000000, 1.5, 9223372036854775807, x'00ff', 'one'),
  ('b@x', 'no', '2024-02-03T04:05:06+02:00', 1700000001, -0.0, -9223372036854775808, x'', 'two'),
  ('c@x', 'yes', '2024-03-04T05:06:07.250Z', 1700000002, 0.1, 42, NULL, NULL);
INSERT INTO log VALUES ('x'), ('y');
INSERT INTO kv VALUES ('p', 1), ('q', 'text');`;

async function cutOver() {
  const s = await liveSource(SCHEMA, { rows: ROWS });
  await s.rep.syncOnce();
  expect(await s.rep.cutoverNow()).toBe(0);
  expect(s.rep.current.phase).toBe("fallback");
  return s;
}

async function drain(s: Awaited<ReturnType<typeof cutOver>>): Promise<void> {
  for (let i = 0; i < 50; i++) if ((await s.rep.fallbackOnce()) === "idle") return;
  throw new Error("the fallback did not drain");
}

async function exact(s: Awaited<ReturnType<typeof cutOver>>): Promise<void> {
  const cmp = await compareDatabases(s.path, s.client, "public", { ignoreColumns: ["_sqlite2pg_rowid"] });
  // The audit table is SQLite's own trigger's: PostgreSQL has the table, and both sides must agree on it too.
  expect(cmp.differences).toEqual([]);
}

function sqliteRows(path: string, sql: string): Record<string, unknown>[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare(sql).safeIntegers(true).all() as Record<string, unknown>[];
  } finally {
    db.close();
  }
}

describe("fallback", () => {
  it("applies inserts, updates, deletes, key moves, identity values and TRUNCATE in the file's own forms", async () => {
    const s = await cutOver();
    const c = s.client;
    // The application's triggers are set aside during the fallback: PostgreSQL's rows are copied, not recomputed.
    expect(sqliteRows(s.path, "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name = 'users_audit'")).toEqual([]);
    await c.query(
      "INSERT INTO users (email, active, created, seen, score, big, data, note) VALUES ('d@x', true, '2025-05-06 07:08:09.5+00', '2024-01-01 00:00:10+00', 2.25, 7, '\\x0102', 'four')",
    );
    await c.query("UPDATE users SET note = 'changed', active = false WHERE email = 'a@x'");
    await c.query("DELETE FROM users WHERE email = 'c@x'");
    await c.query("UPDATE users SET id = 100 WHERE email = 'b@x'"); // a key move
    await c.query("TRUNCATE log");
    await c.query("INSERT INTO log VALUES ('after truncate')");
    await c.query("UPDATE kv SET k = 'r' WHERE k = 'p'");
    await drain(s);
    await exact(s);
    const u = sqliteRows(s.path, "SELECT id, email, active, created, seen, typeof(score) AS st, score, big, note FROM users ORDER BY id");
    expect(u.map((r) => r.email)).toEqual(["a@x", "d@x", "b@x"]);
    // The file's forms: boolean words, ISO text with a T and Z, unix seconds as integers.
    expect(u[0]).toMatchObject({ active: "no", created: "2024-01-02T03:04:05Z", note: "changed", big: 9223372036854775807n });
    expect(u[1]).toMatchObject({ active: "yes", seen: 1704067210n, st: "real", score: 2.25 });
    expect(String(u[1]!.created)).toMatch(/^2025-05-06T07:08:09\.50*Z$/);
    // Unchanged values keep their spelling, the +02:00 zone included.
    expect(u[2]).toMatchObject({ id: 100n, created: "2024-02-03T04:05:06+02:00" });
    // Only the three rows written before the cutover fired it.
    expect(sqliteRows(s.path, "SELECT count(*) AS n FROM audit")[0]!.n).toBe(3n);
    // The application still cannot write to SQLite.
    const app = new Database(s.path);
    expect(() => app.prepare("INSERT INTO log VALUES ('app')").run()).toThrow(FROZEN_MESSAGE);
    app.close();
  });

  it("never skips a change whose transaction commits after a newer one", async () => {
    const s = await cutOver();
    const a = new pg.Client({ connectionString: s.url });
    await a.connect();
    try {
      await a.query("BEGIN");
      await a.query("INSERT INTO kv VALUES ('early', 'takes the lower id, commits last')");
      await s.client.query("INSERT INTO kv VALUES ('late', 'takes the higher id, commits first')");
      await drain(s);
      expect(sqliteRows(s.path, "SELECT k FROM kv ORDER BY k").map((r) => r.k)).toEqual(["late", "p", "q"]);
      await a.query("COMMIT");
      await drain(s);
      await exact(s);
    } finally {
      await a.end();
    }
  });

  it("pauses on a value the file's form cannot hold, naming table, column and key, and resumes once it is fixed", async () => {
    const s = await cutOver();
    await s.client.query("UPDATE users SET seen = '2024-01-01 00:00:10.5+00' WHERE email = 'a@x'");
    const before = sqliteRows(s.path, "SELECT seen FROM users WHERE email = 'a@x'");
    await expect(s.rep.fallbackOnce()).rejects.toThrow(/users\.seen at id=1: .*second/);
    expect(sqliteRows(s.path, "SELECT seen FROM users WHERE email = 'a@x'")).toEqual(before);
    await s.client.query("UPDATE users SET seen = '2024-01-01 00:00:11+00' WHERE email = 'a@x'");
    await drain(s);
    await exact(s);
  });

  it("pauses on a schema change in PostgreSQL", async () => {
    const s = await cutOver();
    await s.client.query("ALTER TABLE users ADD COLUMN extra text");
    await expect(s.rep.fallbackOnce()).rejects.toThrow(/FALLBACK_SCHEMA_CHANGED|schema of "public"\."users" changed/);
    await expect(s.rep.fallbackOnce()).rejects.toThrow(/changed in PostgreSQL/); // paused, not skipped
    await s.client.query("ALTER TABLE users DROP COLUMN extra");
    await s.client.query("UPDATE users SET note = 'after the schema is back' WHERE email = 'a@x'");
    await drain(s);
    await exact(s);
  });

  it("refuses a unique value SQLite's NOCASE index cannot hold, and goes on once it is changed", async () => {
    const s = await cutOver();
    await s.client.query("INSERT INTO users (email) VALUES ('A@X')"); // PostgreSQL's text is case-sensitive
    await expect(s.rep.fallbackOnce()).rejects.toThrow(/FALLBACK_CONFLICT|UNIQUE constraint failed: users\.email/);
    await s.client.query("UPDATE users SET email = 'other@x' WHERE email = 'A@X'");
    await drain(s);
    await exact(s);
  });

  it("rollback: PostgreSQL frozen, drained, sequences past every key, SQLite writable with its triggers back", async () => {
    const s = await cutOver();
    await s.client.query("INSERT INTO users (email) SELECT 'bulk' || g || '@x' FROM generate_series(1, 50) g");
    await s.client.query("DELETE FROM users WHERE email LIKE 'bulk4%'"); // the highest ids handed out stay taken
    const maxId = (await s.client.query("SELECT last_value::int AS v FROM users_id_seq")).rows[0].v as number;
    await s.rep.requestFallbackEnd("rollback", "full");
    expect(await s.rep.fallbackOnce()).toBe("exit");
    expect(s.rep.current.phase).toBe("rolled-back");
    await exact(s);
    expect(Number(sqliteRows(s.path, "SELECT seq FROM sqlite_sequence WHERE name = 'users'")[0]!.seq)).toBeGreaterThanOrEqual(maxId);
    // PostgreSQL refuses writes; SQLite takes them, its own trigger firing again.
    await expect(s.client.query("INSERT INTO log VALUES ('late')")).rejects.toThrow(ROLLBACK_FROZEN_MESSAGE);
    await expect(s.client.query("TRUNCATE log")).rejects.toThrow(ROLLBACK_FROZEN_MESSAGE);
    const app = new Database(s.path);
    const audits = (app.prepare("SELECT count(*) AS n FROM audit").get() as { n: number }).n;
    const id = app.prepare("INSERT INTO users (email) VALUES ('new@x')").run().lastInsertRowid;
    expect(Number(id)).toBeGreaterThan(maxId);
    expect(app.prepare("SELECT count(*) AS n FROM audit").get()).toEqual({ n: audits + 1 });
    app.close();
    expect(existsSync(rollbackMarkerPath(s.path))).toBe(true);
    expect(existsSync(markerPath(s.path))).toBe(false);
    const left = await s.client.query("SELECT to_regclass('sqlite2pg.pg_changes') AS t");
    expect(left.rows[0].t).toBeNull();
    // Capture is back in SQLite: the application's write is recorded for a later attempt.
    expect(sqliteRows(s.path, "SELECT count(*) AS n FROM _sqlite2pg_changes WHERE tbl = 'users'")[0]!.n).toBeGreaterThan(0n);
  });

  it("finish: the capture leaves PostgreSQL, SQLite stays frozen as the last copy", async () => {
    const s = await cutOver();
    await s.client.query("INSERT INTO kv VALUES ('last', 'applied before finishing')");
    await s.rep.requestFallbackEnd("finish");
    expect(await s.rep.fallbackOnce()).toBe("exit");
    expect(s.rep.current.phase).toBe("done");
    await exact(s);
    const left = await s.client.query(
      "SELECT to_regclass('sqlite2pg.pg_changes') AS t, (SELECT count(*)::int FROM pg_trigger WHERE tgname LIKE '_sqlite2pg%') AS n",
    );
    expect(left.rows[0]).toEqual({ t: null, n: 0 });
    await s.client.query("INSERT INTO kv VALUES ('after', 'PostgreSQL is the database now')");
    const app = new Database(s.path);
    expect(() => app.prepare("DELETE FROM kv").run()).toThrow(FROZEN_MESSAGE);
    expect(app.prepare("SELECT name FROM sqlite_schema WHERE name = 'users_audit'").get()).toEqual({ name: "users_audit" });
    app.close();
  });

  it("uninstall during the fallback puts the application's triggers back", async () => {
    const s = await cutOver();
    s.db.close();
    const db = new Database(s.path);
    try {
      uninstallCapture(db);
      expect(db.prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'").all()).toEqual([{ name: "users_audit" }]);
    } finally {
      db.close();
    }
  });

  it("--no-fallback: the cutover ends in done, with no capture in PostgreSQL", async () => {
    const s = await liveSource(SCHEMA, { rows: ROWS, options: { cutover: { validate: "counts", fallback: false } } });
    await s.rep.syncOnce();
    expect(await s.rep.cutoverNow()).toBe(0);
    expect(s.rep.current.phase).toBe("done");
    const r = await s.client.query(
      "SELECT to_regclass('sqlite2pg.pg_changes') AS t, (SELECT count(*)::int FROM pg_trigger WHERE tgname LIKE '_sqlite2pg%') AS n",
    );
    expect(r.rows[0]).toEqual({ t: null, n: 0 });
  });
});
