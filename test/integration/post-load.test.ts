import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { migrateFile } from "../helpers/migrate.js";
import { Sqlite2pgError } from "../../src/errors.js";

afterEach(cleanup);

/**
 * Keys, indexes and constraints of every shape the schedule of steps 5 and
 * 7 orders: foreign keys to a primary key, to a UNIQUE column and to a
 * unique index, one to its own table, two tables referencing each other, a
 * composite key of a WITHOUT ROWID table, CHECKs, a partial unique index,
 * an expression index, and a foreign key existing rows break.
 */
const SCHEMA = `
CREATE TABLE authors (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, handle TEXT, born INTEGER CHECK (born > 1000));
CREATE UNIQUE INDEX authors_handle ON authors (handle);
CREATE INDEX authors_lower_email ON authors (lower(email));
CREATE TABLE books (
  id INTEGER PRIMARY KEY,
  author_id INTEGER REFERENCES authors (id),
  author_email TEXT REFERENCES authors (email),
  author_handle TEXT REFERENCES authors (handle),
  sequel_of INTEGER REFERENCES books (id),
  price REAL CHECK (price >= 0),
  title TEXT NOT NULL
);
CREATE INDEX books_title ON books (title);
CREATE UNIQUE INDEX books_priced_title ON books (title, author_id) WHERE price > 0;
CREATE TABLE tags (book_id INTEGER NOT NULL REFERENCES books (id), tag TEXT NOT NULL, PRIMARY KEY (book_id, tag)) WITHOUT ROWID;
CREATE TABLE left_side (id INTEGER PRIMARY KEY, right_id INTEGER REFERENCES right_side (id));
CREATE TABLE right_side (id INTEGER PRIMARY KEY, left_id INTEGER REFERENCES left_side (id));
CREATE TABLE orphans (id INTEGER PRIMARY KEY, author_id INTEGER REFERENCES authors (id));
`;

function fill(path: string, n: number): void {
  const db = new Database(path);
  db.pragma("foreign_keys = OFF");
  db.transaction(() => {
    const a = db.prepare("INSERT INTO authors VALUES (?, ?, ?, ?)");
    const b = db.prepare("INSERT INTO books VALUES (?, ?, ?, ?, ?, ?, ?)");
    const t = db.prepare("INSERT INTO tags VALUES (?, ?)");
    const l = db.prepare("INSERT INTO left_side VALUES (?, ?)");
    const r = db.prepare("INSERT INTO right_side VALUES (?, ?)");
    for (let i = 1; i <= n; i++) a.run(i, `a${i}@example.com`, i % 3 ? `h${i}` : null, 1900 + (i % 100));
    for (let i = 1; i <= 3 * n; i++) {
      const au = 1 + (i % n);
      b.run(i, au, `a${au}@example.com`, au % 3 ? `h${au}` : null, i > 1 && i % 4 === 0 ? i - 1 : null, (i % 50) / 4, `title ${i % 97}-${i}`);
      t.run(i, "x");
      if (i % 2) t.run(i, "y");
    }
    for (let i = 1; i <= n; i++) {
      l.run(i, null);
      r.run(i, i);
    }
    db.prepare("UPDATE left_side SET right_id = id").run();
    // Foreign keys are off in SQLite by default: a row that breaks one is kept there, and the key in Postgres stays NOT VALID.
    db.prepare("INSERT INTO orphans VALUES (1, 1), (2, ?)").run(n + 1000);
  })();
  db.close();
}

describe("migrate: keys, indexes and constraints built side by side with the digests", () => {
  it("builds and validates every key, index, CHECK and foreign key, whatever the order they become possible in", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, SCHEMA);
    fill(path, 2_000);
    const { url, client } = await freshDatabase();
    const res = await migrateFile(path, url);
    expect(res.rows).toBe(2_000 + 6_000 + 9_000 + 2 * 2_000 + 2);

    const cons = await client.query<{ tbl: string; name: string; type: string; valid: boolean }>(
      `SELECT c.conrelid::regclass::text AS tbl, c.conname AS name, c.contype AS type, c.convalidated AS valid
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = 'public' AND c.contype IN ('p', 'u', 'f', 'c') ORDER BY 1, 2`,
    );
    const by = (type: string) => cons.rows.filter((r) => r.type === type);
    expect(by("p").map((r) => r.tbl)).toEqual(["authors", "books", "left_side", "orphans", "right_side", "tags"]);
    expect(by("f").map((r) => `${r.tbl} ${r.valid}`)).toEqual([
      "books true",
      "books true",
      "books true",
      "books true",
      "left_side true",
      "orphans false",
      "right_side true",
      "tags true",
    ]);
    expect(by("c").map((r) => `${r.tbl} ${r.valid}`)).toEqual(["authors true", "books true"]);
    expect(res.plan.decisions.some((d) => d.severity === "warning" && /orphans_author_id_fkey kept NOT VALID: existing rows break it/.test(d.text))).toBe(true);

    const idx = await client.query<{ def: string }>("SELECT indexdef AS def FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname");
    const defs = idx.rows.map((r) => r.def).join("\n");
    expect(defs).toMatch(/UNIQUE INDEX authors_handle ON public\.authors USING btree \(handle\)/);
    expect(defs).toMatch(/INDEX authors_lower_email ON public\.authors USING btree \(translate\(email, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'/);
    expect(defs).toMatch(/UNIQUE INDEX books_priced_title ON public\.books USING btree \(title, author_id\) WHERE \(price > /);
    expect(defs).toMatch(/INDEX books_title ON public\.books USING btree \(title\)/);

    // The keys are enforced: a row that breaks a foreign key is refused.
    await expect(client.query("INSERT INTO books (id, author_id, title) VALUES (100000, 999999, 't')")).rejects.toThrow(/foreign key/);
    await expect(client.query("INSERT INTO right_side VALUES (100000, 999999)")).rejects.toThrow(/foreign key/);
  });

  it("a key that cannot be built stops the migration with a typed error naming the table and the constraint", async () => {
    const dir = tempDir();
    // 'a' and 'a' with a NUL byte are two values in SQLite; --fix-text strips the NUL, and in Postgres both are 'a'.
    const path = sqliteFrom(
      dir,
      `CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT UNIQUE);
       CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id));
       INSERT INTO p VALUES (1, 'a'), (2, CAST(x'6100' AS TEXT));
       INSERT INTO c VALUES (1, 1);`,
    );
    const { url } = await freshDatabase();
    const e = await migrateFile(path, url, { fixText: true }).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(Sqlite2pgError);
    expect((e as Sqlite2pgError).code).toBe("PG_CONSTRAINT");
    expect((e as Sqlite2pgError).message).toMatch(/creating unique p_code_key on p failed/);
    expect((e as Sqlite2pgError).context).toMatchObject({ table: "p", constraint: "p_code_key" });
  });
});
