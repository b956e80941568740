/**
 * Upgrading from a version whose capture triggers missed some writes: the
 * daemon compares the installed capture triggers (their SQL and the stored
 * hash) with what this version generates, and a table captured by other
 * triggers is copied again — writes the old triggers missed cannot be
 * known, so only a copy is exact. Triggers that are this version's own are
 * kept, and their table is not copied again.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { Replicator } from "../../src/replication/replicator.js";
import { silentLogger } from "../../src/observe/logger.js";
import { installCapture } from "../../src/sqlite/capture.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { ensureStateSchema } from "../../src/replication/state.js";

const reps: Replicator[] = [];
afterEach(async () => {
  while (reps.length) await reps.pop()!.stop();
  await cleanup();
});

// What an older version installed for table u: its REPLACE capture matched email only
// (the expression index was left out), so REPLACE evictions through it went unrecorded.
const OLD_TRIGGERS = `DROP TRIGGER "_sqlite2pg_rins_u"; DROP TRIGGER "_sqlite2pg_rupd_u";
CREATE TRIGGER "_sqlite2pg_rins_u" BEFORE INSERT ON main."u" BEGIN
  INSERT INTO "_sqlite2pg_changes" (tbl, op, k1, at) SELECT 'u', 'R', rowid, julianday('now') FROM main."u" WHERE ("email" = NEW."email"); END;
CREATE TRIGGER "_sqlite2pg_rupd_u" BEFORE UPDATE OF "email" ON main."u" BEGIN
  INSERT INTO "_sqlite2pg_changes" (tbl, op, k1, at) SELECT 'u', 'R', rowid, julianday('now') FROM main."u" WHERE ("email" = NEW."email") AND rowid IS NOT OLD.rowid; END;`;

async function setup() {
  const dir = tempDir();
  const path = sqliteFrom(
    dir,
    `CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);
     CREATE UNIQUE INDEX u_j ON u(json_extract(name, '$.k'));
     CREATE TABLE other (id INTEGER PRIMARY KEY, v TEXT);
     CREATE TABLE n (k TEXT COLLATE NOCASE PRIMARY KEY, v TEXT) WITHOUT ROWID;`,
  );
  const db = new Database(path);
  db.exec(
    `INSERT INTO u(email, name) VALUES ('a@x', '{"k":1}'), ('b@x', '{"k":2}'); INSERT INTO other (v) VALUES ('p'), ('q'); INSERT INTO n VALUES ('abc', 'x');`,
  );
  const sourceId = installCapture(db, readSchema(db).tables);
  const { url, client } = await freshDatabase();
  await ensureStateSchema(client);
  await client.query("INSERT INTO sqlite2pg.state (source_id, sqlite_path, target_schema, phase) VALUES ($1, $2, 'public', 'new')", [sourceId, path]);
  const daemon = () => {
    const rep = new Replicator({ sqlite: path, pg: url, log: silentLogger(), pollIntervalMs: 0, watch: false, batchSize: 50, chunkRows: 3 });
    reps.push(rep);
    return rep;
  };
  return { path, db, client, daemon };
}

/** The transaction ids that wrote a table's rows in Postgres: a table copied again gets new ones. */
async function writers(client: { query: (q: string) => Promise<{ rows: { x: string }[] }> }, table: string) {
  return (await client.query(`SELECT xmin::text AS x FROM ${table} ORDER BY id`)).rows.map((r) => r.x);
}

/**
 * An older version's update trigger on n: it compared keys with the column's
 * collation, so a change of case under NOCASE recorded no change of key.
 */
function oldNocaseTrigger(db: Database.Database) {
  const sql = (db.prepare("SELECT sql FROM sqlite_schema WHERE name = '_sqlite2pg_upd_n'").get() as { sql: string }).sql;
  const old = sql.replace(` COLLATE BINARY OR typeof(OLD."k") IS NOT typeof(NEW."k")`, "");
  expect(old).not.toBe(sql);
  db.exec(`DROP TRIGGER "_sqlite2pg_upd_n"; ${old};`);
}

describe("capture installed by another version", () => {
  it("copies again a table whose triggers are another version's (stored hash and SQL differ), so evictions they missed are not kept", async () => {
    const s = await setup();
    const first = s.daemon();
    await first.syncOnce();
    await first.stop();
    s.db.exec(OLD_TRIGGERS);
    s.db.exec("UPDATE _sqlite2pg_meta SET value = 'old-version-hash' WHERE key = 'triggers:u'");
    // Under the old version: REPLACE evicts 'a@x' through the expression index, unrecorded.
    s.db.exec(`INSERT OR REPLACE INTO u(email, name) VALUES ('c@x', '{"k": 1}')`);
    const next = s.daemon();
    await next.syncOnce();
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
    expect((await s.client.query("SELECT email FROM u ORDER BY id")).rows.map((r) => r.email)).toEqual(["b@x", "c@x"]);
    // The new triggers are in place: the next eviction is captured.
    s.db.exec(`INSERT OR REPLACE INTO u(email, name) VALUES ('d@x', '{"k": 2}')`);
    await next.syncOnce();
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
  });

  it("copies again when only the SQL differs (hash left as this version's), and keeps tables whose triggers are this version's", async () => {
    const s = await setup();
    const first = s.daemon();
    await first.syncOnce();
    await first.stop();
    const before = { u: await writers(s.client, "u"), other: await writers(s.client, "other") };
    s.db.exec(OLD_TRIGGERS); // the stored hash still says this version's
    s.db.exec(`INSERT OR REPLACE INTO u(email, name) VALUES ('c@x', '{"k": 1}')`);
    const next = s.daemon();
    await next.syncOnce();
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
    expect((await s.client.query("SELECT email FROM u ORDER BY id")).rows.map((r) => r.email)).toEqual(["b@x", "c@x"]);
    // The table with this version's triggers was not copied again.
    expect(await writers(s.client, "other")).toEqual(before.other);
    expect((await writers(s.client, "u"))[0]).not.toBe(before.u[1]); // b@x, copied again
  });

  it("copies again a table whose update trigger missed a change of case in a NOCASE key", async () => {
    const s = await setup();
    const first = s.daemon();
    await first.syncOnce();
    await first.stop();
    oldNocaseTrigger(s.db);
    s.db.exec("UPDATE _sqlite2pg_meta SET value = 'old-version-hash' WHERE key = 'triggers:n'");
    s.db.exec("UPDATE n SET k = 'ABC' WHERE k = 'abc'"); // recorded only as a write of 'ABC'
    const next = s.daemon();
    await next.syncOnce();
    expect((await s.client.query("SELECT k FROM n ORDER BY k")).rows.map((r) => r.k)).toEqual(["ABC"]);
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
    s.db.exec("UPDATE n SET k = 'Abc' WHERE k = 'ABC'");
    await next.syncOnce();
    expect((await s.client.query("SELECT k FROM n ORDER BY k")).rows.map((r) => r.k)).toEqual(["Abc"]);
  });

  it("copies again when init of this version replaced another version's triggers before the daemon started", async () => {
    const s = await setup();
    const first = s.daemon();
    await first.syncOnce();
    await first.stop();
    oldNocaseTrigger(s.db);
    s.db.exec("UPDATE _sqlite2pg_meta SET value = 'old-version-hash' WHERE key = 'triggers:n'");
    s.db.exec("UPDATE n SET k = 'ABC' WHERE k = 'abc'");
    installCapture(s.db, readSchema(s.db).tables); // what `sqlite2pg init` of this version does
    expect(s.db.prepare("SELECT sql FROM sqlite_schema WHERE name = '_sqlite2pg_upd_n'").get()).toMatchObject({
      sql: expect.stringContaining("COLLATE BINARY"),
    });
    const next = s.daemon();
    await next.syncOnce();
    expect((await s.client.query("SELECT k FROM n ORDER BY k")).rows.map((r) => r.k)).toEqual(["ABC"]);
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
    expect((s.db.prepare("SELECT value FROM _sqlite2pg_meta WHERE key = 'triggers:n'").get() as { value: string }).value).toMatch(/^[0-9a-f]{32}$/);
  });
});
