/**
 * The traits of the real-world corpus, and the schema features the issue
 * names, in fixtures these tests build themselves: a fresh clone with no
 * corpus beside it still proves every one.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { migrate } from "../../src/migrate/migrate.js";
import { silentLogger } from "../../src/observe/logger.js";

afterEach(cleanup);

const run = (sqlite: string, url: string, extra: Partial<Parameters<typeof migrate>[0]> = {}) =>
  migrate({ sqlite, pg: url, schema: "public", jobs: 2, preserveCase: false, dropExisting: false, fixText: false, log: silentLogger(), ...extra });

const SCHEMA = `
  CREATE TABLE "user" (id INTEGER PRIMARY KEY, "references" TEXT, "order" INT, "select" TEXT DEFAULT 'x');
  CREATE TABLE "Camel Case; ""quoted""" ("Mixed Col" TEXT, "ünïcødé" INTEGER, "semi;colon" REAL);
  CREATE TABLE odd_types (
    a unsigned big int, b "smallint unsigned", c char(5), d varying character(255), e double precision,
    f numeric(12,4), g nvarchar(10), h tinyint(1), i clob, j, k datetime DEFAULT (datetime('now')),
    l TEXT DEFAULT CURRENT_TIMESTAMP, m INTEGER DEFAULT (strftime('%s','now')), n INTEGER DEFAULT -1
  );
  CREATE TABLE mismatch (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL);
  CREATE TABLE nokey (a INTEGER, b TEXT);
  CREATE TABLE wr (k1 TEXT, k2 INTEGER, v BLOB, PRIMARY KEY (k1, k2)) WITHOUT ROWID;
  CREATE TABLE strict_t (id INTEGER PRIMARY KEY, n INT NOT NULL, s TEXT, r REAL, any_v ANY) STRICT;
  CREATE TABLE gen (id INTEGER PRIMARY KEY, price REAL, qty INTEGER, total REAL GENERATED ALWAYS AS (price * qty) STORED, label TEXT AS (upper(typeof(price))) VIRTUAL);
  CREATE TABLE checked (id INTEGER PRIMARY KEY, n INTEGER CHECK (n >= 0), s TEXT, CONSTRAINT s_len CHECK (length(s) <= 10));
  CREATE TABLE a_cycle (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b_cycle(id));
  CREATE TABLE b_cycle (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a_cycle(id) ON DELETE SET NULL);
  CREATE TABLE storage (id INTEGER PRIMARY KEY, file_b64 TEXT, raw BLOB);
  CREATE INDEX idx_partial ON nokey(a) WHERE b IS NOT NULL;
  CREATE INDEX idx_expr ON nokey(lower(b));
  CREATE UNIQUE INDEX idx_uniq_desc ON "user"("order" DESC);
  CREATE INDEX idx_nocase ON "user"("references" COLLATE NOCASE);
  CREATE VIEW v_users AS SELECT id, "references" FROM "user";
  CREATE VIRTUAL TABLE docs USING fts5(body);
  CREATE TRIGGER app_trigger AFTER INSERT ON nokey BEGIN SELECT 1; END;
`;

function fill(path: string): void {
  const db = new Database(path);
  db.pragma("foreign_keys = OFF");
  const tx = db.transaction(() => {
    db.prepare(`INSERT INTO "user" VALUES (?, ?, ?, ?)`).run(1, "ref", 5, "sel");
    db.prepare(`INSERT INTO "user" VALUES (?, ?, ?, ?)`).run(2, null, 6, null);
    db.prepare(`INSERT INTO "Camel Case; ""quoted""" VALUES (?, ?, ?)`).run("x", 1, 1.5);
    db.prepare(`INSERT INTO odd_types (a, b, c, d, e, f, g, h, i, j) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
      18446744073709551n > 0n ? 9223372036854775807n : 0n,
      65535,
      "abc",
      "long text",
      1 / 3,
      1234.5678,
      "nv",
      1,
      "clob",
      42,
    );
    db.prepare(`INSERT INTO odd_types (a, j) VALUES (?, ?)`).run(1, "text in untyped");
    db.prepare("INSERT INTO mismatch VALUES (?, ?)").run(1, 10);
    db.prepare("INSERT INTO mismatch VALUES (?, ?)").run(2, "abc");
    for (let i = 0; i < 5; i++) db.prepare("INSERT INTO nokey VALUES (?, ?)").run(1, "dup"); // duplicates
    db.prepare("INSERT INTO nokey VALUES (?, ?)").run(2, null);
    db.prepare("INSERT INTO wr VALUES (?, ?, ?)").run("a", 1, Buffer.from([0, 1]));
    db.prepare("INSERT INTO wr VALUES (?, ?, ?)").run("a", 2, Buffer.alloc(0));
    db.prepare("INSERT INTO wr VALUES (?, ?, ?)").run("b", -5, null);
    db.prepare("INSERT INTO strict_t VALUES (?, ?, ?, ?, ?)").run(1, 7, "s", 2.5, "any");
    db.prepare("INSERT INTO gen (id, price, qty) VALUES (?, ?, ?)").run(1, 2.5, 4);
    db.prepare("INSERT INTO checked VALUES (?, ?, ?)").run(1, 3, "short");
    db.prepare("INSERT INTO a_cycle VALUES (?, ?)").run(1, 1);
    db.prepare("INSERT INTO b_cycle VALUES (?, ?)").run(1, 1);
    db.prepare("INSERT INTO storage VALUES (?, ?, ?)").run(1, Buffer.from("hello world").toString("base64"), Buffer.from("hello"));
    db.prepare("INSERT INTO docs VALUES (?)").run("full text");
  });
  tx();
  db.close();
}

describe("corpus traits, built here", () => {
  it("migrates odd types, reserved and quoted names, keyless duplicates, WITHOUT ROWID, STRICT, generated columns, checks and FK cycles exactly", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, SCHEMA, "my db with spaces.sqlite");
    fill(path);
    const { url, client } = await freshDatabase();
    const res = await run(path, url);
    const cmp = await compareDatabases(path, client);
    expect(cmp.differences).toEqual([]);
    expect(cmp.rows).toBe(res.rows);

    const rels = (
      await client.query("SELECT relname, relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'public' ORDER BY relname")
    ).rows.map((r) => `${r.relname}:${r.relkind}`);
    expect(rels).toContain('camel case; "quoted":r'); // folded, quotes and semicolons kept
    expect(rels).toContain("user:r");
    expect(rels).not.toContain("docs:r"); // virtual table skipped
    expect(rels.some((r) => r.startsWith("docs_"))).toBe(false); // and its shadow tables
    expect(rels).not.toContain("v_users:v"); // views reported, not translated
    expect(rels).toContain("idx_partial:i");
    expect(rels).toContain("idx_expr:i");
    const idx = (await client.query("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")).rows as {
      indexname: string;
      indexdef: string;
    }[];
    expect(idx.find((i) => i.indexname === "idx_partial")!.indexdef).toMatch(/WHERE \(b IS NOT NULL\)/);
    // SQLite's lower() folds ASCII only; the translation says exactly that.
    expect(idx.find((i) => i.indexname === "idx_expr")!.indexdef).toMatch(
      /translate\(b, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'::text, 'abcdefghijklmnopqrstuvwxyz'::text\)/,
    );
    expect(idx.find((i) => i.indexname === "idx_uniq_desc")!.indexdef).toMatch(/UNIQUE INDEX .* \("order" DESC\)/);

    const cols = (await client.query("SELECT table_name, column_name, data_type, is_generated FROM information_schema.columns WHERE table_schema = 'public'"))
      .rows as Record<string, string>[];
    const type = (t: string, c: string) => cols.find((x) => x.table_name === t && x.column_name === c)?.data_type;
    expect(type("mismatch", "qty")).toBe("text"); // 'abc' in INTEGER NOT NULL keeps its row
    expect(type("odd_types", "a")).toBe("bigint");
    expect(type("odd_types", "f")).toBe("numeric");
    expect(type("odd_types", "j")).toBe("text");
    expect(type("wr", "v")).toBe("bytea");
    expect(cols.find((x) => x.table_name === "gen" && x.column_name === "total")!.is_generated).toBe("ALWAYS");

    const cons = (await client.query("SELECT conname, contype, convalidated FROM pg_constraint WHERE connamespace = 'public'::regnamespace")).rows as {
      conname: string;
      contype: string;
      convalidated: boolean;
    }[];
    expect(
      cons
        .filter((c) => c.contype === "p")
        .map((c) => c.conname)
        .sort(),
    ).toEqual(["a_cycle_pkey", "b_cycle_pkey", "checked_pkey", "gen_pkey", "mismatch_pkey", "storage_pkey", "strict_t_pkey", "user_pkey", "wr_pkey"]);
    expect(cons.filter((c) => c.contype === "f").length).toBe(2); // the cycle, both ways
    expect(cons.filter((c) => c.contype === "c").map((c) => c.conname)).toContain("s_len");
    expect(cons.every((c) => c.convalidated)).toBe(true);
    // Constraints hold in Postgres as in SQLite.
    await expect(client.query("INSERT INTO checked VALUES (2, -1, 'x')")).rejects.toThrow(/check/);
    await expect(client.query("INSERT INTO a_cycle VALUES (2, 99)")).rejects.toThrow(/foreign key/);
  });

  it("keeps case with --preserve-case", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, `CREATE TABLE "CamelTable" ("SomeId" INTEGER PRIMARY KEY, "Value" TEXT); INSERT INTO "CamelTable" VALUES (1, 'a');`);
    const { url, client } = await freshDatabase();
    await run(path, url, { preserveCase: true });
    expect((await client.query(`SELECT "SomeId", "Value" FROM "CamelTable"`)).rows).toEqual([{ SomeId: "1", Value: "a" }]);
  });

  it("refuses names that collide after Postgres' 63-byte cut, naming both", async () => {
    const dir = tempDir();
    const long = "c".repeat(62);
    const path = sqliteFrom(dir, `CREATE TABLE t ("${long}xa" INTEGER, "${long}xb" INTEGER);`);
    const { url } = await freshDatabase();
    const err = await run(path, url).catch((e) => e);
    expect(err.code).toBe("NAME_COLLISION");
    expect(err.message).toContain(`"${long}xa" and "${long}xb" both become "${long}x"`);
  });

  it("refuses invalid UTF-8 stored as a blob in a TEXT column, naming the key", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, `CREATE TABLE files (id INTEGER PRIMARY KEY, filename TEXT); INSERT INTO files VALUES (1, 'ok.txt'), (2, x'66696c6596');`);
    const { url } = await freshDatabase();
    const err = await run(path, url).catch((e) => e);
    expect(err.category).toBe("source");
    expect(err.message).toMatch(/table files, column filename: blobs mixed with text.*id=2 \(x'66696c6596'\)/s);
  });

  it("copies a foreign key that SQLite data already breaks as NOT VALID, loudly", async () => {
    const dir = tempDir();
    const path = sqliteFrom(
      dir,
      `CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id)); INSERT INTO c VALUES (1, 99);`,
    );
    const { url, client } = await freshDatabase();
    const res = await run(path, url);
    expect(res.plan.decisions.some((d) => d.severity === "warning" && /c_p_id_fkey kept NOT VALID: existing rows break it/.test(d.text))).toBe(true);
    const fk = (await client.query("SELECT convalidated FROM pg_constraint WHERE contype = 'f'")).rows[0];
    expect(fk.convalidated).toBe(false);
    expect((await client.query("SELECT p_id FROM c")).rows).toEqual([{ p_id: "99" }]);
  });

  it("builds keys, unique constraints, checks and foreign keys (both ways, self, composite, broken) alike with one connection or several", async () => {
    const dir = tempDir();
    const path = sqliteFrom(
      dir,
      `CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id), parent INTEGER REFERENCES a(id), code TEXT UNIQUE, n INTEGER CHECK (n >= 0));
       CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id), x TEXT NOT NULL, y TEXT NOT NULL, UNIQUE (x, y));
       CREATE TABLE c (x TEXT, y TEXT, FOREIGN KEY (x, y) REFERENCES b(x, y));
       CREATE INDEX c_x ON c(x);
       WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 300)
       INSERT INTO b SELECT i, 301 - i, 'x' || (i % 17), 'y' || i FROM s;
       WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 300)
       INSERT INTO a SELECT i, i, CASE WHEN i > 1 THEN i - 1 END, 'code' || i, i FROM s;
       INSERT INTO c VALUES ('x1', 'y1'), ('x2', 'y2'), ('nope', 'none');`,
    );
    const constraints = async (jobs: number) => {
      const { url, client } = await freshDatabase();
      const res = await run(path, url, { jobs });
      const rows = (
        await client.query(
          `SELECT conrelid::regclass::text AS t, conname, contype, convalidated, conindid::regclass::text AS ix
             FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype <> 'n' ORDER BY 1, 2`,
        )
      ).rows;
      const indexes = (await client.query("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")).rows;
      return {
        rows,
        indexes,
        warnings: res.plan.decisions
          .filter((d) => d.severity === "warning")
          .map((d) => d.text)
          .sort(),
      };
    };
    const one = await constraints(1);
    const several = await constraints(3);
    expect(several).toEqual(one);
    const kinds = Object.fromEntries(one.rows.map((r) => [r.conname, `${r.contype}${r.convalidated ? "" : " not valid"}${r.ix !== "-" ? ` on ${r.ix}` : ""}`]));
    expect(kinds).toEqual({
      a_pkey: "p on a_pkey",
      b_pkey: "p on b_pkey",
      a_code_key: "u on a_code_key",
      b_x_y_key: "u on b_x_y_key",
      a_check1: "c",
      a_b_id_fkey: "f on b_pkey",
      a_parent_fkey: "f on a_pkey",
      b_a_id_fkey: "f on a_pkey",
      c_x_y_fkey: "f not valid on b_x_y_key",
    });
    expect(one.indexes.map((r) => r.indexname)).toEqual(["a_code_key", "a_pkey", "b_pkey", "b_x_y_key", "c_x"]);
    expect(one.warnings.some((w) => /c_x_y_fkey kept NOT VALID: existing rows break it/.test(w))).toBe(true);
  });
});
