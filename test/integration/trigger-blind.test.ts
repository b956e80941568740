/**
 * What trigger capture cannot see: a change that fires no trigger
 * (incremental blob I/O, a write made with the capture triggers dropped) is
 * not in the changelog, so it is not replicated. validate --full compares
 * the values themselves and finds it, naming the key; and the cutover
 * validates with full checksums by default, so it does not pass unnoticed.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { Replicator } from "../../src/replication/replicator.js";
import { markerPath } from "../../src/sqlite/freeze.js";
import { silentLogger } from "../../src/observe/logger.js";
import { installCapture, triggerNames, CHANGES } from "../../src/sqlite/capture.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { ensureStateSchema, loadState } from "../../src/replication/state.js";
import { validate } from "../../src/validate/validate.js";
import { Sqlite2pgError } from "../../src/errors.js";

const reps: Replicator[] = [];
afterEach(async () => {
  while (reps.length) await reps.pop()!.stop();
  await cleanup();
});

const SCHEMA = `
  CREATE TABLE media (id INTEGER PRIMARY KEY, name TEXT, data BLOB);
  CREATE TABLE plain (a TEXT, b BLOB);
`;

async function setup() {
  const dir = tempDir();
  const path = sqliteFrom(dir, SCHEMA);
  const db = new Database(path);
  const ins = db.prepare("INSERT INTO media VALUES (?, ?, ?)");
  for (let i = 1; i <= 5; i++) ins.run(i, `file ${i}`, Buffer.alloc(64, i));
  const insPlain = db.prepare("INSERT INTO plain VALUES (?, ?)");
  for (let i = 1; i <= 3; i++) insPlain.run(`p${i}`, Buffer.alloc(16, i));
  const sourceId = installCapture(db, readSchema(db).tables);
  const { url, client } = await freshDatabase();
  await ensureStateSchema(client);
  await client.query("INSERT INTO sqlite2pg.state (source_id, sqlite_path, target_schema, phase) VALUES ($1, $2, 'public', 'new')", [sourceId, path]);
  // No cutover options: the daemon's defaults, as `sqlite2pg run` without --validate.
  const rep = new Replicator({ sqlite: path, pg: url, log: silentLogger(), pollIntervalMs: 0, watch: false });
  reps.push(rep);
  await rep.syncOnce();
  expect((await compareDatabases(path, client)).differences).toEqual([]);
  const check = async (mode: "counts" | "full") => validate(db, client, (await loadState(client, sourceId))!.plan!, mode);
  return { path, db, client, rep, sourceId, check };
}

/**
 * Overwrite two bytes of a blob in place with incremental blob I/O
 * (sqlite3_blob_write, through Python's sqlite3 `blobopen`), which fires no
 * trigger. better-sqlite3 has no API for it; where Python's sqlite3 lacks
 * it, the stand-in is the same write made with the table's capture
 * triggers dropped (and put back) around it, in one transaction, leaving
 * the schema as it was.
 */
function writeBehindTriggers(db: Database.Database, path: string, table: string, column: string, rowid: number): "blob_write" | "triggers dropped" {
  try {
    execFileSync(
      "python3",
      [
        "-c",
        [
          "import sqlite3, sys",
          "c = sqlite3.connect(sys.argv[1])",
          "b = c.blobopen(sys.argv[2], sys.argv[3], int(sys.argv[4]))",
          "b.seek(3); b.write(b'\\xde\\xad'); b.close(); c.commit(); c.close()",
        ].join("\n"),
        path,
        table,
        column,
        String(rowid),
      ],
      { stdio: "pipe" },
    );
    return "blob_write";
  } catch {
    const names = Object.values(triggerNames(table));
    // Dropping and recreating the same triggers moves the schema cookie, which the daemon would
    // take for a VACUUM; the schema text is unchanged, so the cookie is put back as it was.
    const cookie = db.pragma("schema_version", { simple: true }) as number;
    db.unsafeMode(true);
    db.transaction(() => {
      const saved = db.prepare(`SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND name IN (${names.map(() => "?").join(", ")})`).all(...names) as {
        name: string;
        sql: string;
      }[];
      for (const t of saved) db.exec(`DROP TRIGGER "${t.name}"`);
      db.prepare(`UPDATE "${table}" SET "${column}" = CAST(substr("${column}", 1, 3) || x'dead' || substr("${column}", 6) AS BLOB) WHERE rowid = ?`).run(rowid);
      for (const t of saved) db.exec(t.sql);
      db.pragma(`schema_version = ${cookie}`);
    })();
    db.unsafeMode(false);
    return "triggers dropped";
  }
}

describe("changes no trigger sees", () => {
  it("validate --full finds a blob written in place, naming the key; counts cannot", async () => {
    const s = await setup();
    const before = s.db.prepare(`SELECT max(seq) AS n FROM ${CHANGES}`).get() as { n: number | null };
    writeBehindTriggers(s.db, s.path, "media", "data", 2);
    writeBehindTriggers(s.db, s.path, "plain", "b", 3);
    const changed = s.db.prepare("SELECT data FROM media WHERE id = 2").get() as { data: Buffer };
    expect(changed.data.subarray(3, 5).toString("hex")).toBe("dead");
    // Nothing reached the changelog, so nothing is replicated.
    expect(s.db.prepare(`SELECT max(seq) AS n FROM ${CHANGES}`).get()).toEqual(before);
    expect(await s.rep.syncOnce()).toBe(0);

    expect((await s.check("counts")).ok).toBe(true);
    const full = await s.check("full");
    expect(full.ok).toBe(false);
    expect(full.tables.find((t) => t.table === "media")).toMatchObject({ digest: "differs", differences: [{ key: "id=2", kind: "values differ" }] });
    expect(full.tables.find((t) => t.table === "plain")).toMatchObject({ digest: "differs", differences: [{ key: "rowid=3", kind: "values differ" }] });
  });

  it("the cutover validates with full checksums by default and refuses to call it exact", async () => {
    const s = await setup();
    writeBehindTriggers(s.db, s.path, "media", "data", 4);
    const e = await s.rep.cutoverNow().then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(Sqlite2pgError);
    expect((e as Sqlite2pgError).code).toBe("CUTOVER_VALIDATION");
    expect((e as Sqlite2pgError).message).toContain("media");
    const marker = JSON.parse(readFileSync(markerPath(s.path), "utf8"));
    expect(marker.validation.mode).toBe("full");
    expect(marker.validation.ok).toBe(false);
    expect(marker.validation.tables.find((t: { table: string }) => t.table === "media").differences).toEqual([{ key: "id=4", kind: "values differ" }]);
  });
});
