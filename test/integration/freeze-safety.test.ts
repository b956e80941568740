/**
 * The freeze never outlives the cutover it belongs to: whatever happens
 * while SQLite is frozen and Postgres has not committed — a freeze trigger
 * dropped (DDL is not frozen), a VACUUM that stops the daemon, a restart
 * that finds an old freeze — the application gets its writes back, and no
 * cutover commits with a replicated table taking writes.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { setTimeout as sleep } from "node:timers/promises";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { Replicator } from "../../src/replication/replicator.js";
import { silentLogger } from "../../src/observe/logger.js";
import { installCapture } from "../../src/sqlite/capture.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { freeze, freezeInfo } from "../../src/sqlite/freeze.js";
import { ensureStateSchema, loadState } from "../../src/replication/state.js";
import { CUTOVER_RETRY } from "../../src/replication/cutover.js";

const reps: Replicator[] = [];
afterEach(async () => {
  while (reps.length)
    await reps
      .pop()!
      .stop()
      .catch(() => undefined);
  await cleanup();
});

async function setup(sql: string, maxFreezeMs = 5000) {
  const dir = tempDir();
  const path = sqliteFrom(dir, sql, "app.db");
  const db = new Database(path);
  const sourceId = installCapture(db, readSchema(db).tables);
  const { url, client } = await freshDatabase();
  await ensureStateSchema(client);
  await client.query("INSERT INTO sqlite2pg.state (source_id, sqlite_path, target_schema, phase) VALUES ($1, $2, 'public', 'new')", [sourceId, path]);
  const replicator = () => {
    const r = new Replicator({
      sqlite: path,
      pg: url,
      log: silentLogger(),
      pollIntervalMs: 20,
      watch: false,
      batchSize: 50,
      cutover: { validate: "full", maxFreezeMs },
    });
    reps.push(r);
    return r;
  };
  const state = async () => (await loadState(client, sourceId))!;
  const writable = () => {
    try {
      db.exec("INSERT INTO p (v) VALUES ('probe'); DELETE FROM p WHERE v = 'probe'");
      return true;
    } catch {
      return false;
    }
  };
  return { path, db, client, sourceId, replicator, state, writable };
}

/** Run `fn` once, the first time the daemon applies a batch while the state is frozen. */
function whenFrozen(rep: Replicator, fn: () => void): void {
  const orig = rep.streamOnce.bind(rep);
  let done = false;
  rep.streamOnce = async () => {
    const n = await orig();
    if (!done && rep.current.phase === "frozen") {
      done = true;
      fn();
    }
    return n;
  };
}

describe("the freeze is never left behind", () => {
  it("a freeze trigger dropped during the freeze: not committed, undone, and the next attempt cuts over exactly", async () => {
    const s = await setup("CREATE TABLE p (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE q (id INTEGER PRIMARY KEY, w TEXT);");
    s.db.exec("INSERT INTO p (v) VALUES ('a'), ('b'); INSERT INTO q (w) VALUES ('x')");
    const rep = s.replicator();
    await rep.syncOnce();
    whenFrozen(rep, () => s.db.exec('DROP TRIGGER "_sqlite2pg_fins_p"'));
    expect(await rep.cutoverNow()).toBe(CUTOVER_RETRY);
    const st = await s.state();
    expect(st.phase).toBe("streaming");
    expect(st.lastError).toMatch(/freeze triggers of p are gone/);
    expect(st.cutoverRequestedAt).not.toBeNull(); // the request stands
    expect(freezeInfo(s.db)).toBeNull();
    expect(s.writable()).toBe(true);
    s.db.exec("INSERT INTO p (v) VALUES ('written between the attempts')");
    expect(await rep.cutoverNow()).toBe(0);
    expect((await s.state()).phase).toBe("fallback"); // cut over; SQLite now follows PostgreSQL
    expect(s.writable()).toBe(false); // every table frozen for the application now
    expect(() => s.db.exec("INSERT INTO q (w) VALUES ('late')")).toThrow(/frozen/);
    const cmp = await compareDatabases(s.path, s.client);
    expect(cmp.differences).toEqual([]);
  });

  it("a VACUUM during the freeze stops the daemon, which first undoes the freeze", async () => {
    // `p` has no INTEGER PRIMARY KEY: it is replicated by rowid, which VACUUM may renumber.
    const s = await setup("CREATE TABLE p (v TEXT);");
    s.db.exec("INSERT INTO p (v) VALUES ('a'), ('b'), ('c')");
    const rep = s.replicator();
    await rep.syncOnce();
    whenFrozen(rep, () => s.db.exec("VACUUM"));
    await s.client.query("UPDATE sqlite2pg.state SET cutover_requested_at = now() WHERE source_id = $1", [s.sourceId]);
    const err = await rep.run().catch((e) => e);
    expect(err.code).toBe("SCHEMA_CHANGED");
    const st = await s.state();
    expect(st.phase).toBe("streaming");
    expect(st.lastError).toMatch(/VACUUM/);
    expect(freezeInfo(s.db)).toBeNull();
    expect(s.writable()).toBe(true);
  });

  it("a restart after a crash just after the freeze counts --max-freeze from the freeze, not from the restart", async () => {
    const s = await setup("CREATE TABLE p (id INTEGER PRIMARY KEY, v TEXT);", 1000);
    s.db.exec("INSERT INTO p (v) VALUES ('a')");
    const first = s.replicator();
    await first.syncOnce();
    await first.stop();
    // What a crash between the SQLite freeze and the state's `frozen` leaves: the request, phase cutover-catch-up, SQLite frozen.
    await s.client.query("UPDATE sqlite2pg.state SET cutover_requested_at = now(), phase = 'cutover-catch-up' WHERE source_id = $1", [s.sourceId]);
    const w = new Database(s.path);
    freeze(w, ["p"]);
    w.close();
    await sleep(1500); // longer than --max-freeze
    const rep = s.replicator();
    expect(await rep.cutoverNow()).toBe(CUTOVER_RETRY); // undone, not committed
    expect((await s.state()).phase).toBe("streaming");
    expect(s.writable()).toBe(true);
    expect(await rep.cutoverNow()).toBe(0); // a fresh freeze, within the bound
    const cmp = await compareDatabases(s.path, s.client);
    expect(cmp.differences).toEqual([]);
  });
});
