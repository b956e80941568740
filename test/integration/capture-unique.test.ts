/**
 * REPLACE conflict resolution deletes rows with no DELETE trigger. The
 * capture must see those rows through every form of unique index SQLite
 * has — expressions, partial indexes, generated columns, collations, a
 * WITHOUT ROWID key under NOCASE — and log key changes by their bytes, not
 * by the column's collation. Each test streams through the daemon (driven
 * by hand) and ends with Postgres equal to SQLite, value for value.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { cleanup, sqliteFrom, tempDir } from "../helpers/db.js";
import { CHANGES, captureProblems, captureTriggersSql, installCapture, replaceConflicts } from "../../src/sqlite/capture.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { liveSource, stopReplicators } from "../helpers/source.js";

afterEach(async () => {
  await stopReplicators();
  await cleanup();
});

/** A source with capture installed and a state row, as `init` leaves it; `exact()` syncs and compares. */
async function setup(sql: string, rows?: string) {
  const s = await liveSource(sql, { rows, options: { chunkRows: 7 } });
  const { path, db, url, client, rep, exact } = s;
  const count = (table: string) => (db.prepare(`SELECT count(*) AS n FROM "${table}"`).get() as { n: number }).n;
  const pgCount = async (table: string) => Number((await client.query(`SELECT count(*) AS n FROM "${table}"`)).rows[0].n);
  return { path, db, url, client, rep, exact, count, pgCount };
}

describe("REPLACE capture: every form of unique index", () => {
  it("expression indexes: lower(email), json_extract(data, '$.sku'), and one whose literal names a column", async () => {
    const s = await setup(
      `
      CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, name TEXT);
      CREATE UNIQUE INDEX users_email ON users (lower(email));
      CREATE TABLE items (id INTEGER PRIMARY KEY, data TEXT, note TEXT);
      CREATE UNIQUE INDEX items_sku ON items (json_extract(data, '$.sku'));
      CREATE TABLE tags (id INTEGER PRIMARY KEY, a TEXT, b TEXT);
      CREATE UNIQUE INDEX tags_ab ON tags (a || 'b' || b);
    `,
      `
      INSERT INTO users (email, name) VALUES ('Ann@X.org', 'ann'), ('bob@x.org', 'bob'), ('cy@x.org', 'cy');
      INSERT INTO items (data, note) VALUES ('{"sku":"A1"}', 'one'), ('{"sku":"B2"}', 'two'), ('{"sku":"C3"}', 'three');
      INSERT INTO tags (a, b) VALUES ('x', 'y'), ('p', 'q');
    `,
    );
    await s.exact();
    s.db.exec(`
      INSERT OR REPLACE INTO users (email, name) VALUES ('ANN@x.org', 'ann again');   -- evicts id 1 through lower(email)
      REPLACE INTO items (data, note) VALUES ('{"sku":"B2","v":2}', 'two again');      -- evicts id 2 through the JSON sku
      UPDATE OR REPLACE users SET email = 'CY@X.ORG' WHERE name = 'bob';               -- evicts cy
      UPDATE OR REPLACE items SET data = '{"sku":"C3"}' WHERE note = 'one';             -- evicts three
      INSERT OR REPLACE INTO tags (a, b) VALUES ('x', 'y');                             -- evicts id 1 through a || 'b' || b
    `);
    expect(s.count("users")).toBe(2);
    expect(s.count("items")).toBe(2);
    await s.exact();
    expect(await s.pgCount("users")).toBe(2);
  });

  it("partial unique indexes, made to conflict by an UPDATE of the WHERE column", async () => {
    const s = await setup(
      `
      CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT, deleted INTEGER NOT NULL DEFAULT 0);
      CREATE UNIQUE INDEX accounts_live ON accounts (email) WHERE deleted = 0;
    `,
      `INSERT INTO accounts (id, email, deleted) VALUES (1, 'a@x', 0), (5, 'a@x', 1), (6, 'b@x', 0), (7, 'b@x', 1);`,
    );
    await s.exact();
    s.db.exec("UPDATE OR REPLACE accounts SET deleted = 0 WHERE id = 5"); // evicts id 1
    s.db.exec("INSERT OR REPLACE INTO accounts (id, email, deleted) VALUES (8, 'b@x', 0)"); // evicts id 6, not 7
    expect((s.db.prepare("SELECT id FROM accounts ORDER BY id").all() as { id: number }[]).map((r) => r.id)).toEqual([5, 7, 8]);
    await s.exact();
    // The UPDATE trigger watches the WHERE column as well as the indexed one.
    expect(captureTriggersSql(readSchema(s.db).tables.find((t) => t.name === "accounts")!)).toMatch(/BEFORE UPDATE OF "email", "deleted" ON/);
  });

  it("unique indexes on virtual and stored generated columns, through their base columns", async () => {
    const s = await setup(
      `
      CREATE TABLE people (id INTEGER PRIMARY KEY, first TEXT, last TEXT,
        full TEXT GENERATED ALWAYS AS (lower(first || ' ' || last)) VIRTUAL UNIQUE,
        code TEXT GENERATED ALWAYS AS (upper(substr(last, 1, 3))) STORED);
      CREATE UNIQUE INDEX people_code ON people (code);
    `,
      `INSERT INTO people (first, last) VALUES ('Ann', 'Lee'), ('Bob', 'Marsh'), ('Cy', 'Young');`,
    );
    await s.exact();
    s.db.exec(`
      INSERT OR REPLACE INTO people (first, last) VALUES ('ANN', 'lee');   -- evicts Ann Lee through full (and code)
      UPDATE OR REPLACE people SET last = 'Marshall' WHERE first = 'Cy';  -- evicts Bob Marsh through code (MAR)
    `);
    expect(s.count("people")).toBe(2);
    await s.exact();
  });

  it("COLLATE NOCASE and RTRIM on an index term or on the column, on a table with several unique indexes", async () => {
    const s = await setup(
      `
      CREATE TABLE m (id INTEGER PRIMARY KEY, handle TEXT COLLATE NOCASE UNIQUE, code TEXT, pad TEXT COLLATE RTRIM, n INTEGER UNIQUE);
      CREATE UNIQUE INDEX m_code ON m (code COLLATE NOCASE);
      CREATE UNIQUE INDEX m_pad ON m (pad);
    `,
      `INSERT INTO m VALUES (1, 'ann', 'c1', 'p1', 1), (2, 'bob', 'c2', 'p2', 2), (3, 'cy', 'c3', 'p3', 3), (4, 'dee', 'c4', 'p4', 4);`,
    );
    await s.exact();
    s.db.exec(`
      INSERT OR REPLACE INTO m VALUES (10, 'ANN', 'C2', 'p3  ', 4);   -- evicts 1, 2, 3 and 4, one through each index
    `);
    expect(s.count("m")).toBe(1);
    await s.exact();
  });

  it("upserts (ON CONFLICT DO UPDATE) and INSERT OR REPLACE with an upsert clause", async () => {
    const s = await setup(
      `
      CREATE TABLE inv (id INTEGER PRIMARY KEY, sku TEXT UNIQUE, slug TEXT, qty INTEGER);
      CREATE UNIQUE INDEX inv_slug ON inv (lower(slug));
    `,
      `INSERT INTO inv VALUES (1, 'a', 'A', 1), (2, 'b', 'B', 1), (3, 'c', 'C', 1);`,
    );
    await s.exact();
    s.db.exec(`
      INSERT INTO inv (sku, slug, qty) VALUES ('a', 'z', 5) ON CONFLICT (sku) DO UPDATE SET qty = qty + excluded.qty;
      INSERT OR REPLACE INTO inv (sku, slug, qty) VALUES ('new', 'b', 9) ON CONFLICT (sku) DO UPDATE SET qty = 0; -- evicts id 2 through lower(slug)
      INSERT INTO inv (id, sku, slug, qty) VALUES (3, 'c', 'x', 1) ON CONFLICT (id) DO UPDATE SET slug = 'Z';
    `);
    await s.exact();
  });

  it("a WITHOUT ROWID key under NOCASE or RTRIM: a case-only key change, REPLACE across cases, and a coalesced batch", async () => {
    const s = await setup(
      `
      CREATE TABLE langs (k TEXT COLLATE NOCASE PRIMARY KEY, v INTEGER) WITHOUT ROWID;
      CREATE TABLE padded (k TEXT COLLATE RTRIM PRIMARY KEY, v INTEGER) WITHOUT ROWID;
      CREATE TABLE pairs (a TEXT COLLATE NOCASE, b INTEGER, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
    `,
      `INSERT INTO langs VALUES ('rust', 1), ('go', 2), ('zig', 3); INSERT INTO pairs VALUES ('x', 1, 'one'), ('y', 1, 'two'); INSERT INTO padded VALUES ('a', 1), ('b', 2);`,
    );
    await s.exact();
    s.db.exec("UPDATE padded SET k = 'a  ' WHERE k = 'a'; INSERT OR REPLACE INTO padded VALUES ('b ', 3);");
    expect(s.db.prepare("SELECT k FROM padded ORDER BY k").all()).toEqual([{ k: "a  " }, { k: "b " }]);
    s.db.exec("UPDATE langs SET k = 'Rust' WHERE k = 'rust'"); // no key change under NOCASE, a new key to Postgres
    await s.exact();
    s.db.exec(`
      INSERT OR REPLACE INTO langs VALUES ('GO', 20);           -- replaces 'go' by 'GO'
      UPDATE langs SET k = 'ZIG' WHERE k = 'zig';
      UPDATE langs SET k = 'Zig' WHERE k = 'zig';               -- both logged keys read the one row: applied once
      UPDATE pairs SET a = 'X' WHERE a = 'x';
      INSERT OR REPLACE INTO pairs VALUES ('Y', 1, 'two again');
    `);
    expect((s.db.prepare("SELECT k FROM langs ORDER BY k").all() as { k: string }[]).map((r) => r.k)).toEqual(["GO", "Rust", "Zig"]);
    await s.exact();
    expect((await s.client.query("SELECT k FROM langs ORDER BY k")).rows.map((r) => r.k)).toEqual(["GO", "Rust", "Zig"]);
    s.db.exec(`
      INSERT INTO langs VALUES ('c', 1);
      UPDATE OR REPLACE langs SET k = 'rust' WHERE k = 'c';   -- evicts 'Rust' through the NOCASE key
      INSERT INTO pairs VALUES ('z', 2, 'three');
      UPDATE OR REPLACE pairs SET a = 'x', b = 1 WHERE a = 'z'; -- evicts ('X', 1)
    `);
    expect((s.db.prepare("SELECT k FROM langs ORDER BY k").all() as { k: string }[]).map((r) => r.k)).toEqual(["GO", "rust", "Zig"]);
    await s.exact();
    // A value rewritten with the same bytes is no key change; another storage class is one.
    const before = (s.db.prepare(`SELECT count(*) AS n FROM ${CHANGES} WHERE op = 'K'`).get() as { n: number }).n;
    s.db.exec("UPDATE langs SET v = 7 WHERE k = 'GO'; UPDATE langs SET k = 'GO' WHERE k = 'go'");
    expect((s.db.prepare(`SELECT count(*) AS n FROM ${CHANGES} WHERE op = 'K'`).get() as { n: number }).n).toBe(before);
    await s.exact();
  });

  it("has nothing left to refuse among these forms, and looks each one up by its index", async () => {
    const dir = tempDir();
    const db = new Database(
      sqliteFrom(
        dir,
        `
      CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT, g TEXT AS (a || b), d INTEGER, "weird ""col" TEXT);
      CREATE UNIQUE INDEX t1 ON t (lower(a), b COLLATE NOCASE) WHERE d IS NULL;
      CREATE UNIQUE INDEX t2 ON t (g);
      CREATE UNIQUE INDEX t3 ON t (CAST("weird ""col" AS text), abs(d));
    `,
      ),
    );
    const t = readSchema(db).tables[0]!;
    expect(captureProblems(t)).toEqual([]);
    const of = /BEFORE UPDATE OF (.*) ON/.exec(captureTriggersSql(t))![1]!.split(", ").sort();
    expect(of).toEqual(['"a"', '"b"', '"d"', '"weird ""col"']);
    // Every lookup the triggers make goes through its index: no scan of the table per write.
    const { matches } = replaceConflicts(t);
    expect(matches).toHaveLength(3);
    for (const m of matches) {
      const sql = `EXPLAIN QUERY PLAN SELECT rowid FROM t WHERE ${m.replace(/NEW\."(?:[^"]|"")*"/g, "?")}`;
      const plan = (db.prepare(sql).all(...Array((m.match(/NEW\./g) ?? []).length).fill("x")) as { detail: string }[]).map((r) => r.detail).join("; ");
      expect(plan).toMatch(/^SEARCH t USING (COVERING )?INDEX t[123] /);
    }
    db.close();
  });

  it("refuses at init, naming the index, a unique value computed from the INTEGER PRIMARY KEY; the daemon pauses on one created later", async () => {
    const dir = tempDir();
    const db = new Database(sqliteFrom(dir, "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, g INTEGER AS (id % 10) UNIQUE);", "gen.db"));
    const err = (() => {
      try {
        installCapture(db, readSchema(db).tables);
      } catch (e) {
        return e;
      }
    })() as { code: string; message: string };
    expect(err.code).toBe("CAPTURE_INCOMPLETE");
    expect(err.message).toMatch(/UNIQUE \(g\) of table t cannot be matched by the REPLACE capture: it is computed from the INTEGER PRIMARY KEY id/);
    db.close();
    // Not every use of the key is one: the key itself in a unique index, or in a partial index's WHERE.
    const fine = new Database(
      sqliteFrom(dir, "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT); CREATE UNIQUE INDEX t_a ON t (a, id) WHERE id > 10;", "fine.db"),
    );
    expect(captureProblems(readSchema(fine).tables[0]!)).toEqual([]);
    fine.close();

    const s = await setup("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);", "INSERT INTO t (a) VALUES ('x'), ('y');");
    await s.exact();
    s.db.exec("CREATE UNIQUE INDEX t_mod ON t (a, id % 7); INSERT INTO t (a) VALUES ('z');");
    const paused = await s.rep.syncOnce().catch((e) => e);
    expect(paused.code).toBe("CAPTURE_INCOMPLETE"); // capture's own refusal; the daemon retries until the index is gone
    expect(paused.message).toMatch(/unique index t_mod of table t cannot be matched by the REPLACE capture/);
  });
});
