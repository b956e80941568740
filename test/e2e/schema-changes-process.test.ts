/**
 * Schema changes with real processes: `sqlite2pg run` streams while the
 * application writes and runs an ORM-style migration (a table rebuild, a new
 * column, a new table); the daemon is killed with SIGKILL while it copies
 * the rebuilt table again, restarted, and the cutover then validates equal
 * with Postgres holding exactly what SQLite holds.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { cliStatus, Daemon, runCli, waitFor } from "../helpers/daemon.js";

const daemons: Daemon[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) {
    d.kill("SIGKILL");
    await d.waitExit(10_000);
  }
  await cleanup();
});

describe("schema changes with a running daemon", () => {
  it("an ORM rebuild under writes, SIGKILL during the re-copy, restart, cutover: equal", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, age INTEGER); CREATE TABLE log (id INTEGER PRIMARY KEY, msg TEXT);");
    const app = new Database(path);
    app.pragma("busy_timeout = 10000");
    const ins = app.prepare("INSERT INTO users (email, age) VALUES (?, ?)");
    app.transaction(() => {
      for (let i = 0; i < 4000; i++) ins.run(`u${i}@example.com`, i % 90);
    })();
    const { url, client } = await freshDatabase();
    const init = await runCli(["init", "--sqlite", path, "--pg", url]);
    expect(init.code, init.stderr).toBe(0);
    const start = () => {
      const d = Daemon.start(`d${daemons.length + 1}`, { sqlite: path, pg: url, pollMs: 50, chunkRows: 25 });
      daemons.push(d);
      return d;
    };
    let d = start();
    await waitFor("streaming", 60_000, async () => (await cliStatus(path, url)).phase === "streaming" || undefined);

    let n = 0;
    const write = () => {
      n++;
      app.prepare("INSERT INTO log (msg) VALUES (?)").run(`m${n}`);
      app.prepare("UPDATE users SET age = age + 1 WHERE id = ?").run(((n * 37) % 4000) + 1);
    };
    for (let i = 0; i < 50; i++) write();
    // What an ORM runs for "change a column's type" on SQLite, then writes at once.
    app.exec(`BEGIN;
      CREATE TABLE "new__users" (id INTEGER PRIMARY KEY, email TEXT NOT NULL, age TEXT, nick TEXT DEFAULT 'none');
      INSERT INTO "new__users" (id, email, age) SELECT id, email, CAST(age AS TEXT) FROM users;
      DROP TABLE users;
      ALTER TABLE "new__users" RENAME TO users;
      COMMIT;`);
    for (let i = 0; i < 50; i++) write();
    // Killed while the rebuilt table is being copied again (or just after, on a fast machine).
    await waitFor(
      "the re-copy to start",
      60_000,
      async () =>
        (await cliStatus(path, url)).snapshot.some((t) => t.table === "users" && t.rows > 0) ||
        d.stderrLines().some((l) => l.includes("schema change mirrored")) ||
        undefined,
      20,
    );
    d.kill("SIGKILL");
    await d.waitExit(10_000);
    app.exec(
      "ALTER TABLE log ADD COLUMN level INTEGER NOT NULL DEFAULT 3; CREATE TABLE tags (name TEXT PRIMARY KEY, n INT) WITHOUT ROWID; INSERT INTO tags VALUES ('a', 1)",
    );
    for (let i = 0; i < 50; i++) write();
    app.exec("UPDATE log SET level = 1 WHERE id % 7 = 0; UPDATE users SET nick = 'x' WHERE id % 11 = 0; INSERT INTO tags VALUES ('b', 2)");
    d = start();
    await waitFor(
      "caught up",
      120_000,
      async () => {
        const st = await cliStatus(path, url);
        if (st.last_error) throw new Error(st.last_error);
        return (st.phase === "streaming" && st.lag_changes === 0 && st.snapshot.every((t) => t.done)) || undefined;
      },
      200,
    );
    expect((await compareDatabases(path, client)).differences).toEqual([]);
    const v = await runCli(["validate", "--sqlite", path, "--pg", url, "--full"]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    const cut = await runCli(["cutover", "--sqlite", path, "--pg", url, "--wait", "--timeout", "90"], 120_000);
    expect(cut.code, cut.stdout + cut.stderr + d.describe()).toBe(0);
    expect(await d.waitExit(30_000)).toEqual({ code: 0, signal: null });
    expect((await compareDatabases(path, client)).differences).toEqual([]);
    expect((await client.query("SELECT count(*)::int AS n FROM users WHERE nick = 'none'")).rows[0].n).toBeGreaterThan(3000);
    app.close();
  }, 300_000);

  it("a change Postgres cannot hold shows in status as the daemon's last error, and the daemon resumes by itself once the application fixes it", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b');");
    const app = new Database(path);
    app.pragma("busy_timeout = 10000");
    const { url, client } = await freshDatabase();
    expect((await runCli(["init", "--sqlite", path, "--pg", url])).code).toBe(0);
    const d = Daemon.start("d", { sqlite: path, pg: url, pollMs: 50 });
    daemons.push(d);
    await waitFor("streaming", 60_000, async () => (await cliStatus(path, url)).phase === "streaming" || undefined);
    app.exec(
      "BEGIN; ALTER TABLE t ADD COLUMN payload; UPDATE t SET payload = x'00' WHERE id = 1; UPDATE t SET payload = 'text' WHERE id = 2; INSERT INTO t (v) VALUES ('c'); COMMIT;",
    );
    const st = await waitFor("the pause", 60_000, async () => (await cliStatus(path, url)).last_error ?? undefined);
    expect(st).toMatch(/table t cannot go to Postgres: column payload: blobs mixed with text or numbers.*id=1/);
    expect(d.alive).toBe(true);
    app.exec("UPDATE t SET payload = x'01' WHERE id = 2"); // the application's fix
    await waitFor("recovered", 60_000, async () => {
      const s2 = await cliStatus(path, url);
      return (s2.last_error === null && s2.lag_changes === 0) || undefined;
    });
    expect((await compareDatabases(path, client)).differences).toEqual([]);
    d.kill("SIGTERM");
    expect(await d.waitExit(30_000)).toEqual({ code: 0, signal: null });
    app.close();
  }, 180_000);
});
