/**
 * The REPLACE capture, key collations and names with real processes:
 * `sqlite2pg init`, then `sqlite2pg run` streaming while the application
 * evicts rows through every form of unique index, moves NOCASE keys by
 * case only, and writes to a table with a column named rowid and to a table
 * named _sqlite2pg_*. Postgres must end equal to SQLite, value for value,
 * and the daemon must exit 0 on SIGTERM.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { join } from "node:path";
import { cleanup, freshDatabase, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { Daemon, runCli, waitFor } from "../helpers/daemon.js";

const daemons: Daemon[] = [];
const dbs: Database.Database[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) {
    d.kill("SIGKILL");
    await d.waitExit(5000);
  }
  for (const db of dbs.splice(0)) if (db.open) db.close();
  await cleanup();
});

const SCHEMA = `
  CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, deleted INTEGER NOT NULL DEFAULT 0, data TEXT,
    first TEXT, last TEXT, full TEXT GENERATED ALWAYS AS (lower(first || ' ' || last)) VIRTUAL,
    code TEXT GENERATED ALWAYS AS (upper(last)) STORED, handle TEXT COLLATE NOCASE UNIQUE);
  CREATE UNIQUE INDEX users_email ON users (lower(email)) WHERE deleted = 0;
  CREATE UNIQUE INDEX users_sku ON users (json_extract(data, '$.sku'));
  CREATE UNIQUE INDEX users_full ON users (full);
  CREATE UNIQUE INDEX users_code ON users (code);
  CREATE TABLE langs (k TEXT COLLATE NOCASE PRIMARY KEY, v INTEGER) WITHOUT ROWID;
  CREATE TABLE notes (rowid TEXT, body TEXT);
  CREATE TABLE _sqlite2pg_foo (id INTEGER PRIMARY KEY, v TEXT UNIQUE);
`;

describe("capture with the daemon running", () => {
  it("streams REPLACE evictions through every unique index form, NOCASE key moves and shadowed rowids exactly", async () => {
    const dir = tempDir();
    const path = join(dir, "app.db");
    const app = new Database(path);
    dbs.push(app);
    app.pragma("journal_mode = WAL");
    app.pragma("busy_timeout = 10000");
    app.exec(SCHEMA);
    const user = app.prepare("INSERT OR REPLACE INTO users (email, deleted, data, first, last, handle) VALUES (?, ?, ?, ?, ?, ?)");
    for (let i = 0; i < 40; i++) user.run(`u${i}@x`, i % 5 === 0 ? 1 : 0, JSON.stringify({ sku: `s${i}` }), `f${i}`, `l${i}`, `h${i}`);
    const { url, client } = await freshDatabase();
    const init = await runCli(["init", "--sqlite", path, "--pg", url]);
    expect(init.code, init.stderr).toBe(0);
    const d = Daemon.start("capture", { sqlite: path, pg: url, pollMs: 20, batchSize: 50 });
    daemons.push(d);
    const caughtUp = async () => {
      if (!d.alive) throw new Error(d.describe());
      const st = (await client.query("SELECT phase, applied_seq::int8 AS a, last_error FROM sqlite2pg.state")).rows[0];
      const newest = Number((app.prepare("SELECT coalesce(max(seq), 0) AS m FROM _sqlite2pg_changes").get() as { m: number }).m);
      return st?.phase === "streaming" && Number(st.a) >= newest && st.last_error === null;
    };
    await waitFor("the snapshot", 60_000, caughtUp);
    // The application, while the daemon streams: every statement may evict rows only REPLACE knows of.
    for (let i = 0; i < 120; i++) {
      const n = i % 37;
      app.transaction(() => {
        user.run(`U${n}@X`, 0, JSON.stringify({ sku: `s${(n * 7) % 41}` }), `F${(n * 3) % 40}`, `L${(n * 3) % 40}`, `H${(n * 5) % 43}`);
        app.prepare("UPDATE OR REPLACE users SET deleted = 0 WHERE deleted = 1 AND id % 3 = ?").run(i % 3);
        app.prepare("UPDATE OR REPLACE users SET last = ?, first = ? WHERE id = (SELECT max(id) FROM users)").run(`l${(n * 11) % 40}`, `f${(n * 11) % 40}`);
        app.prepare("INSERT OR REPLACE INTO langs VALUES (?, ?)").run(i % 2 ? `Lang${i % 9}` : `lang${i % 9}`, i);
        app.prepare("UPDATE langs SET k = upper(k) WHERE k = ?").run(`lang${(i + 3) % 9}`);
        app.prepare("INSERT INTO notes VALUES (?, ?)").run(`r${i}`, `note ${i}`);
        app.prepare("UPDATE notes SET rowid = 'x' || rowid, _rowid_ = -_rowid_ WHERE _rowid_ = ?").run(i);
        app.prepare("INSERT OR REPLACE INTO _sqlite2pg_foo (v) VALUES (?)").run(`v${i % 10}`);
      })();
    }
    await waitFor("the daemon to apply every change", 60_000, caughtUp);
    expect((await compareDatabases(path, client)).differences).toEqual([]);
    expect(Number((await client.query("SELECT count(*) AS n FROM _sqlite2pg_foo")).rows[0].n)).toBe(10);
    d.kill("SIGTERM");
    expect(await d.waitExit(20_000)).toEqual({ code: 0, signal: null });
  }, 180_000);
});
