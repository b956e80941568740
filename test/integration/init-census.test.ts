/**
 * `init` counts every table (the census) to refuse what Postgres cannot
 * hold before it touches the file. The daemon's first plan reuses those
 * counts for every table no change was captured for since, and counts the
 * others again: a plan from a stale census would choose a type the rows no
 * longer fit.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { Replicator } from "../../src/replication/replicator.js";
import { silentLogger } from "../../src/observe/logger.js";
import { initCommand } from "../../src/cli/init.js";
import { loadInitCensus, loadState, toJson } from "../../src/replication/state.js";
import { installCapture } from "../../src/sqlite/capture.js";
import { readSchema } from "../../src/sqlite/schema.js";

const reps: Replicator[] = [];
afterEach(async () => {
  while (reps.length) await reps.pop()!.stop();
  await cleanup();
});

async function init(sqlite: string, pg: string): Promise<void> {
  const out = process.stdout.write;
  process.stdout.write = (() => true) as typeof process.stdout.write; // init prints a summary
  try {
    await initCommand({ sqlite, pg });
  } finally {
    process.stdout.write = out;
  }
}

const SCHEMA = `
  CREATE TABLE a (id INTEGER PRIMARY KEY, x INTEGER);
  CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT);
  WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 50) INSERT INTO a SELECT i, i * 7 FROM s;
  WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 30) INSERT INTO b SELECT i, 'v' || i FROM s;
`;

describe("the census init took", () => {
  it("is the daemon's plan for a table nothing was written to since; a table written to is counted again", async () => {
    const path = sqliteFrom(tempDir(), SCHEMA);
    const { url, client } = await freshDatabase();
    await init(path, url);
    const source = (await client.query("SELECT source_id FROM sqlite2pg.state")).rows[0].source_id as string;
    const counted = await loadInitCensus(client, source);
    expect(counted).not.toBeNull();
    expect([...counted!.tables.keys()].sort()).toEqual(["a", "b"]);
    expect(counted!.tables.get("a")!.columns.get("x")!.integers).toBe(50);

    // Marked, so the plan shows which census it was built from: only an unchanged table may carry it.
    counted!.tables.get("b")!.columns.get("v")!.textJson = 777;
    counted!.tables.get("a")!.columns.get("x")!.textJson = 777;
    await client.query("UPDATE sqlite2pg.state SET init_census = $2::jsonb WHERE source_id = $1", [source, toJson(counted)]);

    // The application writes a text into a's integer column after init: captured, so a is counted again.
    const app = new Database(path);
    app.prepare("INSERT INTO a (id, x) VALUES (?, ?)").run(51, "not a number");
    app.close();

    const rep = new Replicator({ sqlite: path, pg: url, log: silentLogger(), pollIntervalMs: 0, watch: false });
    reps.push(rep);
    await rep.syncOnce();
    const plan = (await loadState(client, source))!.plan!;
    const col = (t: string, c: string) => plan.tables.find((x) => x.name === t)!.census.columns.get(c)!;
    expect(col("b", "v").textJson).toBe(777); // init's census
    expect(col("a", "x").textJson).toBe(0); // counted again
    expect(col("a", "x").texts).toBe(1);
    expect(plan.tables.find((t) => t.name === "a")!.columns.find((c) => c.name === "x")!.kind).toBe("text");
    expect((await compareDatabases(path, client)).differences).toEqual([]);
  });

  it("is not reused after a schema change, nor when init could not tell it exact", async () => {
    const path = sqliteFrom(tempDir(), SCHEMA);
    const { url, client } = await freshDatabase();
    await init(path, url);
    const source = (await client.query("SELECT source_id FROM sqlite2pg.state")).rows[0].source_id as string;
    const counted = (await loadInitCensus(client, source))!;
    counted.tables.get("b")!.columns.get("v")!.textJson = 777;
    await client.query("UPDATE sqlite2pg.state SET init_census = $2::jsonb WHERE source_id = $1", [source, toJson(counted)]);
    const app = new Database(path);
    app.exec("ALTER TABLE b ADD COLUMN w TEXT");
    app.close();
    const rep = new Replicator({ sqlite: path, pg: url, log: silentLogger(), pollIntervalMs: 0, watch: false });
    reps.push(rep);
    await rep.syncOnce();
    const plan = (await loadState(client, source))!.plan!;
    const b = plan.tables.find((x) => x.name === "b")!;
    expect(b.census.columns.get("v")!.textJson).toBe(0);
    expect(b.census.columns.has("w")).toBe(true);
    expect((await compareDatabases(path, client)).differences).toEqual([]);
  });

  it("is exact only if nothing was committed between it and the triggers' installation", () => {
    const path = sqliteFrom(tempDir(), SCHEMA);
    const reader = new Database(path, { readonly: true });
    const writer = new Database(path);
    const other = new Database(path);
    try {
      const version = () => Number(reader.pragma("data_version", { simple: true }));
      // Nothing committed meanwhile: the callback, inside the installing transaction, sees the version counted from.
      let v0 = version();
      let seen: boolean | null = null;
      installCapture(writer, readSchema(writer).tables, undefined, () => (seen = version() === v0));
      expect(seen).toBe(true);
      // A commit by another connection after the count: seen from inside the next installation.
      v0 = version();
      other.prepare("UPDATE b SET v = 'changed' WHERE id = 1").run();
      installCapture(writer, readSchema(writer).tables, undefined, () => (seen = version() === v0));
      expect(seen).toBe(false);
    } finally {
      for (const d of [reader, writer, other]) d.close();
    }
  });
});
