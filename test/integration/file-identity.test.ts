/**
 * The file under the daemon: a backup restored over the live file, or the
 * file recreated, must never be read on as if it were the replicated one
 * (its changelog's seq restarts below, or re-uses, what was applied: the
 * reader would skip changes and report lag 0). And the daemon's own writes
 * to the file — pruning the changelog — are rare, so the application's
 * deferred transactions almost never meet them.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { copyFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { runCli } from "../helpers/daemon.js";
import { Replicator } from "../../src/replication/replicator.js";
import { silentLogger } from "../../src/observe/logger.js";
import { CHANGES, installCapture } from "../../src/sqlite/capture.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { ensureStateSchema, loadState } from "../../src/replication/state.js";
import { readStatus } from "../../src/replication/status.js";
import { main } from "../../src/cli/main.js";

const reps: Replicator[] = [];
afterEach(async () => {
  while (reps.length) await reps.pop()!.stop();
  await cleanup();
});

async function setup(opts: { pruneIntervalMs?: number; pruneBacklog?: number } = {}) {
  const dir = tempDir();
  const path = sqliteFrom(dir, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);", "app.db");
  const db = new Database(path);
  const ins = db.prepare("INSERT INTO t (v) VALUES (?)");
  for (let i = 0; i < 20; i++) ins.run(`first ${i}`);
  const sourceId = installCapture(db, readSchema(db).tables);
  const { url, client } = await freshDatabase();
  await ensureStateSchema(client);
  await client.query("INSERT INTO sqlite2pg.state (source_id, sqlite_path, target_schema, phase) VALUES ($1, $2, 'public', 'new')", [sourceId, path]);
  const replicator = () => {
    const r = new Replicator({ sqlite: path, pg: url, log: silentLogger(), pollIntervalMs: 0, watch: false, batchSize: 50, ...opts });
    reps.push(r);
    return r;
  };
  const s = { dir, path, db, url, client, sourceId, rep: replicator(), replicator, ins };
  return s;
}

/** A copy of the file as it is now, as a backup tool would take it. */
function backup(db: Database.Database, to: string): void {
  db.pragma("wal_checkpoint(TRUNCATE)");
  copyFileSync(db.name, to);
}

type Source = Awaited<ReturnType<typeof setup>>;

/** Replicated, backed up, then 30 more writes replicated: the backup is behind what was applied. */
async function backupThenWrite(s: Source): Promise<{ old: string; applied: number }> {
  await s.rep.syncOnce();
  const old = join(s.dir, "backup.db");
  backup(s.db, old);
  for (let i = 0; i < 30; i++) s.ins.run(`second ${i}`);
  await s.rep.syncOnce();
  return { old, applied: (await loadState(s.client, s.sourceId))!.appliedSeq };
}

/** The daemon and the application stopped, the backup copied over the file (its WAL and index gone). */
async function restoreStopped(s: Source, old: string): Promise<void> {
  await s.rep.stop();
  s.db.close();
  rmSync(`${s.path}-wal`, { force: true });
  rmSync(`${s.path}-shm`, { force: true });
  copyFileSync(old, s.path);
}

describe("a file replaced under the daemon", () => {
  it("refuses a backup restored over the file while the daemon was stopped, even after new writes re-use the applied seqs", async () => {
    const s = await setup();
    const { old, applied } = await backupThenWrite(s);
    // The restore: the application stops, the backup goes back in place, the application writes again.
    await restoreStopped(s, old);
    const db = new Database(s.path);
    for (let i = 0; i < 40; i++) db.prepare("INSERT INTO t (v) VALUES (?)").run(`after restore ${i}`);
    const newest = (db.prepare(`SELECT max(seq) AS m FROM ${CHANGES}`).get() as { m: number }).m;
    expect(newest).toBeGreaterThanOrEqual(applied); // the seqs were handed out again: a plain high-water mark cannot tell
    const err = await s
      .replicator()
      .syncOnce()
      .catch((e) => e);
    expect(err.code).toBe("FILE_REPLACED");
    expect(err.message).toMatch(/not the one being replicated/);
    expect((await loadState(s.client, s.sourceId))!.appliedSeq).toBe(applied); // nothing applied from the wrong file
    const st = await readStatus(s.path, s.url);
    expect(st.file_problem).toMatch(/not the one being replicated/);
    db.close();
  });

  it("refuses a restored file whose changelog ends below the checkpoint", async () => {
    const s = await setup();
    const { old } = await backupThenWrite(s);
    await restoreStopped(s, old);
    const err = await s
      .replicator()
      .syncOnce()
      .catch((e) => e);
    expect(err.code).toBe("FILE_REPLACED");
    expect(err.message).toMatch(/no change \d+, the last one applied/);
  });

  it("notices a file renamed into place while it runs, and stops before applying from it", async () => {
    const s = await setup();
    const { old, applied } = await backupThenWrite(s);
    s.db.pragma("wal_checkpoint(TRUNCATE)"); // the old file's WAL must not be read as the new one's
    s.db.close();
    renameSync(old, s.path); // the running daemon's connections still see the old file
    const db = new Database(s.path);
    for (let i = 0; i < 40; i++) db.prepare("INSERT INTO t (v) VALUES (?)").run(`after restore ${i}`);
    const err = await s.rep.streamOnce().catch((e) => e);
    expect(err.code).toBe("FILE_REPLACED");
    expect((await loadState(s.client, s.sourceId))!.appliedSeq).toBe(applied);
    db.close();
  });

  it("refuses a recreated file with capture installed anew, and starts over with init --drop-existing", async () => {
    const s = await setup();
    await s.rep.syncOnce();
    await s.rep.stop();
    s.db.close();
    for (const f of [s.path, `${s.path}-wal`, `${s.path}-shm`]) rmSync(f, { force: true });
    const db = new Database(s.path);
    db.pragma("journal_mode = WAL");
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('new file')");
    db.close();
    // The same source id is kept in the state only through the file's capture: a recreated file has none.
    const fresh = await s
      .replicator()
      .syncOnce()
      .catch((e) => e);
    expect(fresh.code).toBe("NOT_INITIALISED");
    // Put the old capture's source id back in a new file by hand: the changelog still does not match.
    const db2 = new Database(s.path);
    installCapture(db2, readSchema(db2).tables);
    db2.prepare("UPDATE _sqlite2pg_meta SET value = ? WHERE key = 'source_id'").run(s.sourceId);
    db2.exec("INSERT INTO t (v) VALUES ('x'), ('y')");
    const stopped = s.replicator();
    const err = await stopped.syncOnce().catch((e) => e);
    expect(err.code).toBe("FILE_REPLACED");
    await stopped.stop(); // as the daemon does when it stops on this error
    // The recovery the message names: start over.
    const code = await main(["init", "--sqlite", s.path, "--pg", s.url, "--drop-existing"]);
    expect(code).toBe(0);
    await s.replicator().syncOnce();
    const cmp = await compareDatabases(s.path, s.client);
    expect(cmp.differences).toEqual([]);
    expect(cmp.rows).toBe(3);
    db2.close();
  });

  it("init --drop-existing refuses while a daemon holds the source", async () => {
    const s = await setup();
    await s.rep.syncOnce(); // holds the advisory lock until stopped
    const r = await runCli(["init", "--sqlite", s.path, "--pg", s.url, "--drop-existing"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/a daemon is replicating this source/);
    expect((await loadState(s.client, s.sourceId))!.phase).toBe("streaming");
  });
});

describe("pruning the changelog", () => {
  it("does not write to the file at every batch: applied changes wait for the prune interval", async () => {
    const s = await setup({ pruneIntervalMs: 3_600_000 });
    await s.rep.syncOnce();
    const version = () => Number(s.db.pragma("data_version", { simple: true })); // moves when another connection commits
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 10; i++) s.ins.run(`r${round}-${i}`);
      const before = version();
      await s.rep.syncOnce();
      await s.rep.streamOnce();
      expect(version()).toBe(before); // the daemon committed nothing to the file
    }
    expect((s.db.prepare(`SELECT count(*) AS n FROM ${CHANGES}`).get() as { n: number }).n).toBeGreaterThanOrEqual(50);
    const cmp = await compareDatabases(s.path, s.client);
    expect(cmp.differences).toEqual([]);
  });

  it("prunes early once the applied backlog passes its bound, in one transaction, keeping the checkpoint's change", async () => {
    const s = await setup({ pruneIntervalMs: 3_600_000, pruneBacklog: 150 });
    await s.rep.syncOnce();
    for (let i = 0; i < 150; i++) s.ins.run(`b${i}`);
    const before = Number(s.db.pragma("data_version", { simple: true }));
    await s.rep.syncOnce();
    const left = s.db.prepare(`SELECT count(*) AS n, min(seq) AS lo FROM ${CHANGES}`).get() as { n: number; lo: number };
    const applied = (await loadState(s.client, s.sourceId))!.appliedSeq;
    expect(left).toEqual({ n: 1, lo: applied });
    // 150 changes applied in 3 batches, pruned in one commit: the data version moved by exactly one.
    expect(Number(s.db.pragma("data_version", { simple: true })) - before).toBeGreaterThanOrEqual(1);
    expect(Number(s.db.pragma("data_version", { simple: true })) - before).toBeLessThanOrEqual(1);
  });
});
