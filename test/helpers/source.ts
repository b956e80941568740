/**
 * A live source as `init` leaves it, for in-process replication tests: a
 * SQLite file with capture installed, a fresh Postgres database with the
 * state row, and a Replicator driven by hand (`syncOnce`). `exact()` syncs
 * and asserts Postgres equals SQLite value for value.
 */
import Database from "better-sqlite3";
import { expect } from "vitest";
import { silentLogger } from "../../src/observe/logger.js";
import type { ReplicatorOptions } from "../../src/replication/options.js";
import { Replicator } from "../../src/replication/replicator.js";
import { ensureStateSchema } from "../../src/replication/state.js";
import { installCapture } from "../../src/sqlite/capture.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { compareDatabases } from "./compare.js";
import { freshDatabase, sqliteFrom, tempDir } from "./db.js";

const started: Replicator[] = [];

/** Stop every Replicator this file's tests made; call from afterEach, before `cleanup()`. */
export async function stopReplicators(): Promise<void> {
  while (started.length) await started.pop()!.stop();
}

/** The source: `sql` makes the schema, `rows` (SQL) fills it before capture is installed. */
export async function liveSource(sql: string, opts: { rows?: string; options?: Partial<ReplicatorOptions> } = {}) {
  const dir = tempDir();
  const path = sqliteFrom(dir, sql);
  const db = new Database(path);
  if (opts.rows) db.exec(opts.rows);
  const sourceId = installCapture(db, readSchema(db).tables);
  const { url, client } = await freshDatabase();
  await ensureStateSchema(client);
  await client.query("INSERT INTO sqlite2pg.state (source_id, sqlite_path, target_schema, phase) VALUES ($1, $2, 'public', 'new')", [sourceId, path]);
  const rep = new Replicator({ sqlite: path, pg: url, log: silentLogger(), pollIntervalMs: 0, watch: false, batchSize: 50, chunkRows: 7, ...opts.options });
  started.push(rep);
  const exact = async () => {
    await rep.syncOnce();
    const cmp = await compareDatabases(path, client);
    expect(cmp.differences).toEqual([]);
    return cmp;
  };
  return { dir, path, db, url, client, rep, sourceId, exact };
}
