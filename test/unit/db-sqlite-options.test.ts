/** SqliteAdapter sets durability explicitly: it never depends on which connection first put the file in WAL mode. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { SqliteAdapter } from "../../src/db/sqlite-adapter.js";
import { DatabaseUsageError } from "../../src/db/errors.js";

describe("SqliteAdapter options", () => {
  it("synchronous is FULL by default and NORMAL on request, whoever opened the file first", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "sqlite2pg-sync-")), "a.db");
    const first = new Database(file);
    first.pragma("journal_mode = WAL"); // the file is in WAL mode before the adapters open it
    const full = new SqliteAdapter({ file });
    const normal = new SqliteAdapter({ file, synchronous: "normal" });
    expect(await full.query("PRAGMA synchronous")).toEqual([{ synchronous: 2 }]);
    expect(await normal.query("PRAGMA synchronous")).toEqual([{ synchronous: 1 }]);
    await full.close();
    await normal.close();
    first.close();
    expect(() => new SqliteAdapter({ file, synchronous: "off" as "full" })).toThrow(DatabaseUsageError);
  });
});
