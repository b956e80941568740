/**
 * Schema changes on the source while replicating, driven by hand
 * (`syncOnce`): each is mirrored in Postgres in order with the data — writes
 * before, inside the same transaction and after the change all arrive — or
 * pauses with a message naming table, column and key, and resumes by itself
 * once the source is fixed.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import pino from "pino";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { runCli } from "../helpers/daemon.js";
import { Replicator } from "../../src/replication/replicator.js";
import { silentLogger } from "../../src/observe/logger.js";
import { CHANGES, installCapture, triggerNames } from "../../src/sqlite/capture.js";
import { freezeInfo } from "../../src/sqlite/freeze.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { ensureStateSchema, loadProgress, loadState } from "../../src/replication/state.js";
import { validate } from "../../src/validate/validate.js";

const reps: Replicator[] = [];
afterEach(async () => {
  while (reps.length) await reps.pop()!.stop();
  await cleanup();
});

async function setup(sql: string, opts: { chunkRows?: number; log?: pino.Logger } = {}) {
  const dir = tempDir();
  const path = sqliteFrom(dir, sql);
  const db = new Database(path);
  const sourceId = installCapture(db, readSchema(db).tables);
  const { url, client } = await freshDatabase();
  await ensureStateSchema(client);
  await client.query("INSERT INTO sqlite2pg.state (source_id, sqlite_path, target_schema, phase) VALUES ($1, $2, 'public', 'new')", [sourceId, path]);
  const make = (log = opts.log ?? silentLogger()) => {
    const r = new Replicator({
      sqlite: path,
      pg: url,
      log,
      pollIntervalMs: 0,
      watch: false,
      batchSize: 50,
      chunkRows: opts.chunkRows ?? 7,
      pruneIntervalMs: 0,
      cutover: { validate: "full" },
    });
    reps.push(r);
    return r;
  };
  const rep = make();
  /** Sync, then: Postgres equals SQLite value for value, and `validate --full` agrees (schema included). */
  const exact = async (r = rep) => {
    await r.syncOnce();
    const cmp = await compareDatabases(path, client);
    expect(cmp.differences).toEqual([]);
    const state = (await loadState(client, sourceId))!;
    const report = await validate(db, client, state.plan!, "full");
    expect(report.schema).toEqual([]);
    expect(report.ok).toBe(true);
    return report;
  };
  return { path, db, url, client, rep, sourceId, exact, make };
}

const rowsOf = async (c: { query: (s: string) => Promise<{ rows: unknown[] }> }, sql: string) => (await c.query(sql)).rows;

describe("schema changes while replicating", () => {
  it("ADD COLUMN: existing rows get the default exactly, writes in the same transaction and after arrive, updates of the new column too", async () => {
    const s = await setup("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE other (id INTEGER PRIMARY KEY, n INT);");
    for (let i = 1; i <= 30; i++) s.db.prepare("INSERT INTO t (v) VALUES (?)").run(`v${i}`);
    await s.exact();
    s.db.exec("INSERT INTO t (v) VALUES ('before'); INSERT INTO other (n) VALUES (1)");
    s.db.exec(`BEGIN;
      UPDATE t SET v = 'during' WHERE id = 2;
      ALTER TABLE t ADD COLUMN score REAL NOT NULL DEFAULT 1.5;
      ALTER TABLE t ADD COLUMN label TEXT DEFAULT 'it''s';
      ALTER TABLE t ADD COLUMN big INTEGER DEFAULT 9007199254740993;
      ALTER TABLE t ADD COLUMN raw BLOB;
      ALTER TABLE t ADD COLUMN flag BOOLEAN NOT NULL DEFAULT 0;
      ALTER TABLE t ADD COLUMN at DATETIME DEFAULT '2024-01-02 03:04:05.25';
      ALTER TABLE t ADD COLUMN n NUMERIC DEFAULT '12';
      UPDATE t SET score = 1e-300, label = NULL WHERE id = 3;
      INSERT INTO t (v, score, raw) VALUES ('inside', 2.25, x'00ff');
      COMMIT;`);
    s.db.exec("UPDATE t SET label = 'after', big = 1 WHERE id = 4; INSERT INTO other (n) VALUES (2)");
    await s.exact();
    expect(await rowsOf(s.client, "SELECT flag, at::text, n::text FROM t WHERE id = 1")).toEqual([{ flag: false, at: "2024-01-02 03:04:05.25", n: "12" }]);
    const r = await rowsOf(s.client, "SELECT score::text, label, big::text FROM t WHERE id IN (1, 3, 4) ORDER BY id");
    expect(r).toEqual([
      { score: "1.5", label: "it's", big: "9007199254740993" },
      { score: "1e-300", label: null, big: "9007199254740993" },
      { score: "1.5", label: "after", big: "1" },
    ]);
    // The Postgres column carries the default and NOT NULL too.
    const col = await rowsOf(s.client, "SELECT is_nullable, column_default FROM information_schema.columns WHERE table_name = 't' AND column_name = 'score'");
    expect(col).toEqual([{ is_nullable: "NO", column_default: "1.5" }]);
    s.db.exec("UPDATE t SET score = 7 WHERE id = 10");
    await s.exact();
  });

  it("ADD COLUMN to an empty table, with a default its declared type cannot hold", async () => {
    const s = await setup("CREATE TABLE e (id INTEGER PRIMARY KEY, v TEXT);");
    await s.exact();
    s.db.exec("ALTER TABLE e ADD COLUMN n INTEGER DEFAULT 'none'; ALTER TABLE e ADD COLUMN m INTEGER DEFAULT 4");
    await s.exact();
    s.db.exec("INSERT INTO e (v, n) VALUES ('a', 1)");
    await s.exact();
  });

  it("DROP COLUMN and RENAME COLUMN, with writes around them", async () => {
    const s = await setup("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INT, c BLOB); CREATE INDEX t_b ON t (b);");
    for (let i = 1; i <= 20; i++) s.db.prepare("INSERT INTO t (a, b, c) VALUES (?, ?, ?)").run(`a${i}`, i, Buffer.from([i]));
    await s.exact();
    s.db.exec("BEGIN; UPDATE t SET a = 'x' WHERE id = 1; ALTER TABLE t DROP COLUMN c; INSERT INTO t (a, b) VALUES ('new', 99); COMMIT;");
    await s.exact();
    s.db.exec(
      "BEGIN; ALTER TABLE t RENAME COLUMN a TO title; UPDATE t SET title = 'renamed' WHERE id = 2; COMMIT; UPDATE t SET title = 'later', b = 5 WHERE id = 3",
    );
    await s.exact();
    expect(await rowsOf(s.client, "SELECT title FROM t WHERE id = 2")).toEqual([{ title: "renamed" }]);
    expect(await rowsOf(s.client, "SELECT indexname FROM pg_indexes WHERE tablename = 't' AND indexname = 't_b'")).toEqual([{ indexname: "t_b" }]);
  });

  it("RENAME COLUMN of a WITHOUT ROWID key column and of a unique column: capture follows, REPLACE through the renamed unique column is captured", async () => {
    const s = await setup(
      "CREATE TABLE kv (k TEXT, n INT, v BLOB, PRIMARY KEY (k, n)) WITHOUT ROWID; CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, x INT);",
    );
    s.db.exec("INSERT INTO kv VALUES ('a', 1, x'01'), ('b', 2, NULL); INSERT INTO u (email, x) VALUES ('p', 1), ('q', 2)");
    await s.exact();
    s.db.exec("BEGIN; ALTER TABLE kv RENAME COLUMN k TO key; UPDATE kv SET key = 'c' WHERE key = 'a'; ALTER TABLE u RENAME COLUMN email TO mail; COMMIT;");
    s.db.exec("INSERT OR REPLACE INTO u (id, mail, x) VALUES (5, 'q', 9); INSERT INTO kv VALUES ('d', 4, x'04')");
    await s.exact();
    expect(await rowsOf(s.client, "SELECT id::int, mail FROM u ORDER BY id")).toEqual([
      { id: 1, mail: "p" },
      { id: 5, mail: "q" },
    ]);
    s.db.exec("INSERT OR REPLACE INTO u (id, mail, x) VALUES (6, 'p', 10)"); // evicts row 1 through the renamed unique column
    await s.exact();
    expect(await rowsOf(s.client, "SELECT conname FROM pg_constraint WHERE conrelid = 'public.u'::regclass AND contype = 'u'")).toEqual([
      { conname: "u_mail_key" },
    ]);
  });

  it("CREATE TABLE (planned, captured, copied) and DROP TABLE with changes still pending", async () => {
    const s = await setup("CREATE TABLE keep (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE gone (id INTEGER PRIMARY KEY, v TEXT);");
    s.db.exec("INSERT INTO gone (v) VALUES ('a'), ('b')");
    await s.exact();
    s.db.exec("INSERT INTO gone (v) VALUES ('pending'); UPDATE gone SET v = 'z' WHERE id = 1; INSERT INTO keep (v) VALUES ('k1')");
    s.db.exec(`BEGIN;
      CREATE TABLE fresh (code TEXT PRIMARY KEY, n INTEGER, data BLOB) WITHOUT ROWID;
      INSERT INTO fresh VALUES ('a', 1, x'01'), ('b', 2, NULL);
      DROP TABLE gone;
      INSERT INTO keep (v) VALUES ('k2');
      COMMIT;`);
    s.db.exec("INSERT INTO fresh VALUES ('c', 3, x'00'); UPDATE fresh SET n = 20 WHERE code = 'b'; DELETE FROM fresh WHERE code = 'a'");
    await s.exact();
    expect(await rowsOf(s.client, "SELECT to_regclass('public.gone') AS t")).toEqual([{ t: null }]);
    expect(await rowsOf(s.client, "SELECT code, n::int FROM fresh ORDER BY code")).toEqual([
      { code: "b", n: 20 },
      { code: "c", n: 3 },
    ]);
    // The new table is captured: later writes arrive.
    s.db.exec("INSERT INTO fresh VALUES ('d', 4, NULL)");
    await s.exact();
  });

  it("ALTER TABLE RENAME TO, written to under the new name at once (same transaction) and after", async () => {
    const s = await setup("CREATE TABLE old_name (id INTEGER PRIMARY KEY, v TEXT UNIQUE); CREATE TABLE nokey (a INT, b TEXT);");
    s.db.exec("INSERT INTO old_name (v) VALUES ('a'), ('b'), ('c'); INSERT INTO nokey VALUES (1, 'x'), (1, 'x')");
    await s.exact();
    s.db.exec("UPDATE old_name SET v = 'pending' WHERE id = 1");
    s.db.exec(`BEGIN;
      ALTER TABLE old_name RENAME TO new_name;
      INSERT INTO new_name (v) VALUES ('inside');
      INSERT OR REPLACE INTO new_name (id, v) VALUES (10, 'b');
      ALTER TABLE nokey RENAME TO nokey2;
      DELETE FROM nokey2 WHERE rowid = 1;
      COMMIT;`);
    s.db.exec("UPDATE new_name SET v = 'after' WHERE id = 3; INSERT INTO nokey2 VALUES (2, 'y')");
    await s.exact();
    // The old name is free again in Postgres, for a new table without a key too.
    s.db.exec("CREATE TABLE nokey (a INT); INSERT INTO nokey VALUES (5), (5)");
    await s.exact();
    expect(await rowsOf(s.client, "SELECT to_regclass('public.old_name') AS t")).toEqual([{ t: null }]);
    // The capture triggers were installed under the new name; nothing is recorded under the old one.
    const names = (s.db.prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'").all() as { name: string }[]).map((r) => r.name);
    expect(names).toContain(triggerNames("new_name").ins);
    expect(names.some((n) => n.endsWith("_old_name"))).toBe(false);
    s.db.exec("DELETE FROM new_name WHERE id = 2");
    expect(s.db.prepare(`SELECT count(*) AS n FROM ${CHANGES} WHERE tbl = 'old_name'`).get()).toEqual({ n: 0 });
    await s.exact();
  });

  it("names that need quoting survive a rename and a new column", async () => {
    const s = await setup('CREATE TABLE "we""ird Name" (id INTEGER PRIMARY KEY, "a b" TEXT);');
    s.db.exec(`INSERT INTO "we""ird Name" ("a b") VALUES ('x'), ('y')`);
    await s.exact();
    s.db.exec(`UPDATE "we""ird Name" SET "a b" = 'pending' WHERE id = 1`);
    s.db.exec(
      `BEGIN; ALTER TABLE "we""ird Name" RENAME TO "new ""one"; ALTER TABLE "new ""one" ADD COLUMN "c.d" INT DEFAULT 3; INSERT INTO "new ""one" ("a b") VALUES ('z'); COMMIT;`,
    );
    await s.exact();
    s.db.exec(`UPDATE "new ""one" SET "c.d" = 4 WHERE id = 2`);
    await s.exact();
  });

  it("two tables swapping names (through a temporary name) keep their own rows and changes", async () => {
    const s = await setup("CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT);");
    s.db.exec("INSERT INTO a (v) VALUES ('a1'), ('a2'); INSERT INTO b (v) VALUES ('b1')");
    await s.exact();
    s.db.exec("UPDATE a SET v = 'a1 pending' WHERE id = 1; INSERT INTO b (v) VALUES ('b2 pending')");
    s.db.exec("BEGIN; ALTER TABLE a RENAME TO tmp; ALTER TABLE b RENAME TO a; ALTER TABLE tmp RENAME TO b; INSERT INTO b (v) VALUES ('was a'); COMMIT;");
    s.db.exec("UPDATE a SET v = 'was b' WHERE id = 1");
    await s.exact();
    expect(await rowsOf(s.client, "SELECT v FROM b ORDER BY id")).toEqual([{ v: "a1 pending" }, { v: "a2" }, { v: "was a" }]);
    s.db.exec("DELETE FROM a WHERE id = 2; DELETE FROM b WHERE id = 2");
    await s.exact();
  });

  it("an ORM table rebuild (new table, copy, drop, rename in one transaction) is re-copied and captured again", async () => {
    const s = await setup(
      "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, age INTEGER); CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INT, body TEXT);",
      { chunkRows: 4 },
    );
    for (let i = 1; i <= 25; i++) s.db.prepare("INSERT INTO users (email, age) VALUES (?, ?)").run(`u${i}@x`, 20 + i);
    await s.exact();
    s.db.exec("UPDATE users SET age = 99 WHERE id = 1"); // pending when the table is rebuilt
    // What Rails / Django / Prisma / Drizzle run on SQLite for most ALTERs (here: age INTEGER → TEXT NOT NULL, a new column).
    s.db.exec(`BEGIN;
      CREATE TABLE "new__users" (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL, age TEXT NOT NULL DEFAULT '0', nick TEXT);
      INSERT INTO "new__users" (id, email, age) SELECT id, email, CAST(age AS TEXT) FROM users;
      DROP TABLE users;
      ALTER TABLE "new__users" RENAME TO users;
      CREATE UNIQUE INDEX users_email ON users (email);
      COMMIT;`);
    // Writes right after it, before the daemon looks: the triggers are gone with the old table.
    s.db.exec(
      "INSERT INTO users (email, age, nick) VALUES ('late@x', 'young', 'l'); UPDATE users SET nick = 'n2' WHERE id = 2; DELETE FROM users WHERE id = 3; INSERT INTO posts (user_id, body) VALUES (1, 'p')",
    );
    await s.exact();
    expect(await rowsOf(s.client, "SELECT data_type FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'age'")).toEqual([
      { data_type: "text" },
    ]);
    // Captured again; the unique key waits for a caught-up point, then exists.
    s.db.exec("UPDATE users SET nick = 'after' WHERE id = 4; INSERT INTO users (email, age) VALUES ('z@x', '1')");
    await s.exact();
    expect(await rowsOf(s.client, "SELECT indexname FROM pg_indexes WHERE tablename = 'users' ORDER BY indexname")).toEqual([
      { indexname: "users_email" },
      { indexname: "users_pkey" },
    ]);
    expect((await loadProgress(s.client, s.sourceId)).every((p) => p.done)).toBe(true);
  });

  it("a rebuild in steps the daemon sees one by one (Prisma without a transaction) ends as a rename", async () => {
    const s = await setup('CREATE TABLE "User" (id INTEGER PRIMARY KEY, email TEXT, n INT);');
    s.db.exec(`INSERT INTO "User" (email, n) VALUES ('a', 1), ('b', 2)`);
    await s.exact();
    s.db.exec(
      `CREATE TABLE "new_User" (id INTEGER PRIMARY KEY, email TEXT NOT NULL, n INT, extra TEXT); INSERT INTO "new_User" (id, email, n) SELECT id, email, n FROM "User"`,
    );
    await s.exact();
    s.db.exec(`UPDATE "User" SET n = 5 WHERE id = 1`); // lost with the old table, as in SQLite
    s.db.exec(
      `DROP TABLE "User"; ALTER TABLE "new_User" RENAME TO "User"; CREATE UNIQUE INDEX "User_email_key" ON "User" ("email"); INSERT INTO "User" (email, extra) VALUES ('c', 'x')`,
    );
    await s.exact();
    expect(await rowsOf(s.client, "SELECT to_regclass('public.new_user') AS t")).toEqual([{ t: null }]);
    s.db.exec(`UPDATE "User" SET extra = 'y' WHERE id = 2`);
    await s.exact();
  });

  it("a new UNIQUE index, then INSERT OR REPLACE evicting a row through it: the table is copied again, REPLACE captured from then on", async () => {
    const s = await setup("CREATE TABLE acct (id INTEGER PRIMARY KEY, email TEXT, n INT);");
    s.db.exec("INSERT INTO acct (email, n) VALUES ('a', 1), ('b', 2), ('c', 3)");
    await s.exact();
    s.db.exec("BEGIN; CREATE UNIQUE INDEX acct_email ON acct (email); INSERT OR REPLACE INTO acct (id, email, n) VALUES (10, 'b', 20); COMMIT;");
    await s.exact();
    expect(await rowsOf(s.client, "SELECT id::int FROM acct ORDER BY id")).toEqual([{ id: 1 }, { id: 3 }, { id: 10 }]);
    s.db.exec("INSERT OR REPLACE INTO acct (id, email, n) VALUES (11, 'a', 30)"); // evicts row 1 through the new index
    await s.exact();
    expect(await rowsOf(s.client, "SELECT id::int FROM acct ORDER BY id")).toEqual([{ id: 3 }, { id: 10 }, { id: 11 }]);
  });

  it("a capture trigger dropped by hand (the REPLACE one too) is re-installed and the table copied again", async () => {
    const s = await setup("CREATE TABLE acct (id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INT);");
    s.db.exec("INSERT INTO acct (email, n) VALUES ('a', 1), ('b', 2), ('c', 3)");
    await s.exact();
    s.db.exec(`DROP TRIGGER "${triggerNames("acct").binsert}"; INSERT OR REPLACE INTO acct (id, email, n) VALUES (10, 'b', 20)`);
    await s.exact();
    expect(await rowsOf(s.client, "SELECT id::int FROM acct ORDER BY id")).toEqual([{ id: 1 }, { id: 3 }, { id: 10 }]);
    s.db.exec("INSERT OR REPLACE INTO acct (id, email, n) VALUES (11, 'a', 30)");
    await s.exact();
    // Capture installed by another version (its hash differs) is re-installed at the next start, cookie moved or not.
    await s.rep.stop();
    s.db.exec("UPDATE _sqlite2pg_meta SET value = 'from an older version' WHERE key = 'triggers:acct'");
    const again = s.make();
    s.db.exec("INSERT OR REPLACE INTO acct (id, email, n) VALUES (12, 'c', 40)");
    await s.exact(again);
    expect((s.db.prepare("SELECT value FROM _sqlite2pg_meta WHERE key = 'triggers:acct'").get() as { value: string }).value).toMatch(/^[0-9a-f]{32}$/);
  });

  it("CREATE INDEX and DROP INDEX are translated like the plan does", async () => {
    const s = await setup("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INT); CREATE INDEX t_a ON t (a);");
    s.db.exec("INSERT INTO t (a, b) VALUES ('x', 1), ('y', 2)");
    await s.exact();
    s.db.exec("DROP INDEX t_a; CREATE INDEX t_b_desc ON t (b DESC) WHERE b > 0; INSERT INTO t (a, b) VALUES ('z', 3)");
    await s.exact();
    const ix = await rowsOf(s.client, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 't' AND indexname LIKE 't\\_%' ORDER BY indexname");
    expect(ix).toEqual([
      { indexname: "t_b_desc", indexdef: "CREATE INDEX t_b_desc ON public.t USING btree (b DESC) WHERE (b > 0)" },
      { indexname: "t_pkey", indexdef: "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)" },
    ]);
  });

  it("schema changes made while the first snapshot copies (between its chunks) are mirrored too", async () => {
    const s = await setup("CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE b (id INTEGER PRIMARY KEY, w TEXT);", { chunkRows: 3 });
    for (let i = 1; i <= 20; i++) s.db.prepare("INSERT INTO a (v) VALUES (?)").run(`a${i}`);
    for (let i = 1; i <= 20; i++) s.db.prepare("INSERT INTO b (w) VALUES (?)").run(`b${i}`);
    await s.rep.start();
    const c = (s.rep as unknown as { client: { query: (...a: unknown[]) => Promise<unknown> } }).client;
    const query = c.query.bind(c);
    let chunks = 0;
    c.query = (...q: unknown[]) => {
      if (typeof q[0] === "string" && q[0].startsWith("UPDATE sqlite2pg.snapshot_progress SET last_key") && ++chunks === 3) {
        // The application's migration, in the middle of the snapshot.
        s.db.exec(`BEGIN;
          ALTER TABLE a ADD COLUMN extra INT DEFAULT 5;
          UPDATE a SET extra = 6 WHERE id = 20;
          CREATE TABLE b2 (id INTEGER PRIMARY KEY, w TEXT NOT NULL, z REAL);
          INSERT INTO b2 (id, w) SELECT id, w FROM b;
          DROP TABLE b;
          ALTER TABLE b2 RENAME TO b;
          CREATE TABLE c (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;
          INSERT INTO c VALUES ('x', x'01');
          COMMIT;`);
      }
      return query(...q);
    };
    await s.exact();
    expect(chunks).toBeGreaterThan(3);
    s.db.exec("UPDATE b SET z = 1.5 WHERE id = 1; INSERT INTO c VALUES ('y', NULL); UPDATE a SET extra = NULL WHERE id = 1");
    await s.exact();
  });

  it("a re-copy stopped between chunks resumes where it stopped after a restart", async () => {
    const s = await setup("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT);", { chunkRows: 5 });
    for (let i = 1; i <= 40; i++) s.db.prepare("INSERT INTO big (v) VALUES (?)").run(`v${i}`);
    await s.exact();
    s.db.exec(
      "BEGIN; CREATE TABLE big2 (id INTEGER PRIMARY KEY, v TEXT, w INT DEFAULT 1); INSERT INTO big2 (id, v) SELECT id, v FROM big; DROP TABLE big; ALTER TABLE big2 RENAME TO big; COMMIT;",
    );
    // Stop the daemon after its second chunk, as a crash between chunks would.
    const c = (s.rep as unknown as { client: { query: (...a: unknown[]) => Promise<unknown> } }).client;
    const query = c.query.bind(c);
    let chunks = 0;
    c.query = (...a: unknown[]) => {
      if (typeof a[0] === "string" && a[0].startsWith("UPDATE sqlite2pg.snapshot_progress SET last_key") && ++chunks === 2) s.rep.requestStop();
      return query(...a);
    };
    expect(await s.rep.streamOnce()).toBe(0);
    const p = (await loadProgress(s.client, s.sourceId)).find((x) => x.table === "big")!;
    expect(p).toMatchObject({ done: false, rows: 10 });
    await s.rep.stop();
    s.db.exec("UPDATE big SET w = 7 WHERE id IN (1, 39); DELETE FROM big WHERE id = 20");
    await s.exact(s.make());
    expect(await rowsOf(s.client, "SELECT count(*)::int AS n FROM big")).toEqual([{ n: 39 }]);
  });

  it("a change Postgres cannot hold pauses with table, column and key, and resumes by itself once fixed", async () => {
    const s = await setup("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
    s.db.exec("INSERT INTO t (v) VALUES ('a'), ('b')");
    await s.exact();
    s.db.exec("ALTER TABLE t ADD COLUMN payload; UPDATE t SET payload = x'00ff' WHERE id = 1; UPDATE t SET payload = 'text' WHERE id = 2");
    const err = await s.rep.syncOnce().catch((e) => e);
    expect(err.code).toBe("SCHEMA_CHANGE_REFUSED");
    expect(err.message).toMatch(/table t .*column payload: blobs mixed with text/);
    expect(err.context).toMatchObject({ table: "t", column: "payload" });
    expect(err.context.key).toMatch(/id=/);
    expect(err.hint).toMatch(/retries by itself/);
    s.db.exec("UPDATE t SET payload = NULL WHERE id = 2"); // the application's fix
    await s.exact();
  });

  it("a new table that cannot be captured pauses with capture's own refusal, and resumes once it is gone", async () => {
    const s = await setup("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
    await s.exact();
    s.db.exec("CREATE TABLE wide (a, b, c, d, e, PRIMARY KEY (a, b, c, d, e)) WITHOUT ROWID; INSERT INTO t (v) VALUES ('meanwhile')");
    const err = await s.rep.syncOnce().catch((e) => e);
    expect(err.code).toBe("CAPTURE_INCOMPLETE");
    expect(err.message).toMatch(/cannot be captured: table wide has a 5-column primary key/);
    expect(err.context).toMatchObject({ table: "wide" });
    expect(err.hint).toMatch(/retries by itself/);
    s.db.exec("DROP TABLE wide");
    await s.exact();
  });

  it("init run again while a daemon streams is harmless (a new table captured by it is copied)", async () => {
    const s = await setup("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
    s.db.exec("INSERT INTO t (v) VALUES ('a')");
    await s.exact();
    s.db.exec("CREATE TABLE n (id INTEGER PRIMARY KEY, w TEXT); INSERT INTO n (w) VALUES ('before init')");
    installCapture(s.db, readSchema(s.db).tables);
    s.db.exec("INSERT INTO n (w) VALUES ('after init'); UPDATE t SET v = 'b'");
    await s.exact();
    installCapture(s.db, readSchema(s.db).tables); // nothing differs: nothing changes
    s.db.exec("INSERT INTO n (w) VALUES ('again')");
    await s.exact();
    // A table captured by init and dropped before the daemon looked: its changes have nothing to apply.
    s.db.exec("CREATE TABLE brief (id INTEGER PRIMARY KEY)");
    installCapture(s.db, readSchema(s.db).tables);
    s.db.exec("INSERT INTO brief VALUES (1); DROP TABLE brief; INSERT INTO n (w) VALUES ('after the drop')");
    await s.exact();
    expect(s.db.prepare(`SELECT count(*) AS n FROM ${CHANGES} WHERE tbl = 'brief'`).get()).toEqual({ n: 0 });
  });

  it("validate names a table or column SQLite has and Postgres lacks", async () => {
    const s = await setup("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
    s.db.exec("INSERT INTO t (v) VALUES ('a')");
    await s.exact();
    await s.rep.stop();
    s.db.exec("ALTER TABLE t ADD COLUMN extra TEXT; UPDATE t SET extra = 'only in SQLite'; CREATE TABLE u (x INT)");
    const plan = (await loadState(s.client, s.sourceId))!.plan!;
    const report = await validate(s.db, s.client, plan, "full");
    expect(report.ok).toBe(false);
    expect(report.schema).toEqual(["table u is in SQLite but not in Postgres (not replicated)", "column t.extra is in SQLite but not in Postgres"]);
    const cli = await runCli(["validate", "--sqlite", s.path, "--pg", s.url, "--full"]);
    expect(cli.code).toBe(1);
    expect(cli.stdout).toMatch(/schema: column t\.extra is in SQLite but not in Postgres/);
    expect(cli.stdout).toMatch(/schema: table u is in SQLite but not in Postgres/);
  });

  it("a schema change during the cutover's freeze aborts it loudly; the change is mirrored and the cutover then succeeds", async () => {
    let db: Database.Database | null = null;
    const lines: string[] = [];
    // The application's migration runs the moment SQLite is frozen (the log line is written synchronously).
    const log = pino(
      { level: "info" },
      {
        write(line: string) {
          lines.push(line);
          if (line.includes("SQLite frozen") && db)
            db.exec("CREATE TABLE during (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO during (v) VALUES ('written while frozen')");
        },
      },
    );
    const s = await setup("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);", { log });
    db = s.db;
    s.db.exec("INSERT INTO t (v) VALUES ('a')");
    await s.rep.syncOnce();
    const err = await s.rep.cutoverNow().catch((e) => e);
    expect(err.code).toBe("CUTOVER_SCHEMA_CHANGED");
    expect(err.message).toMatch(/new table during/);
    expect(freezeInfo(s.db)).toBeNull(); // SQLite takes writes again
    expect((await loadState(s.client, s.sourceId))!.phase).toBe("streaming");
    db = null;
    s.db.exec("INSERT INTO during (v) VALUES ('after the abort'); INSERT INTO t (v) VALUES ('b')");
    await s.exact();
    expect(await s.rep.cutoverNow()).toBe(0);
    expect((await loadState(s.client, s.sourceId))!.phase).toBe("fallback"); // cut over; SQLite follows PostgreSQL
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
  });
});
