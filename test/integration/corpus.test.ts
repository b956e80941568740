/**
 * Every real SQLite file in the shared corpus goes through `migrate`: it is
 * exact (checked value by value by an independent comparison) or refused
 * with a message naming the problem. Where the corpus is absent (a fresh
 * clone elsewhere), this file says so; corpus-traits.test.ts covers the same
 * traits with fixtures the tests build themselves.
 */
import { afterEach, describe, expect, it } from "vitest";
import { copyFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { cleanup, CORPUS_DIR, corpusPresent, freshDatabase, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { migrateFile } from "../helpers/migrate.js";
import { Sqlite2pgError } from "../../src/errors.js";
import { createSampleDatabase } from "../../src/cli/sample-data.js";

afterEach(cleanup);

/** Files that must be refused, and what the message must name. */
const REFUSED: Record<string, RegExp> = {
  "pgloader-bad-utf8.db": /table files, column filename: blobs mixed with text/,
  "pgloader-collision.db":
    /columns of table products: "col_very_long_name_that_exceeds_postgresql_identifier_limit_aaax" and "col_very_long_name_that_exceeds_postgresql_identifier_limit_aaay" both become/,
};

const files = corpusPresent
  ? readdirSync(CORPUS_DIR)
      .filter((f) => /\.(db|sqlite)$/.test(f))
      .sort()
  : [];

describe("the real-world corpus", () => {
  if (!corpusPresent) {
    // A fresh clone elsewhere: say so, and prove the same path on the sample
    // database instead (corpus-traits.test.ts covers the corpus' traits).
    it("is not beside this checkout: the built-in sample database migrates exactly instead", async () => {
      process.stdout.write(`corpus not found at ${CORPUS_DIR}: no corpus file migrated in this run\n`);
      const dir = tempDir();
      const path = join(dir, "shop.db");
      createSampleDatabase(path, 2000);
      const { url, client } = await freshDatabase();
      const res = await migrateFile(path, url);
      const cmp = await compareDatabases(path, client);
      expect(cmp.differences).toEqual([]);
      expect(cmp.rows).toBe(res.rows);
    });
  }
  for (const file of files) {
    it(`${file}: ${REFUSED[file] ? "refused with a clear message" : "exact, value for value"}`, async () => {
      const dir = tempDir();
      const path = join(dir, file);
      copyFileSync(join(CORPUS_DIR, file), path);
      const { url, client } = await freshDatabase();
      const run = migrateFile(path, url);
      if (REFUSED[file]) {
        const err = await run.catch((e) => e);
        expect(err).toBeInstanceOf(Sqlite2pgError);
        expect(err.category).toBe("source");
        expect(err.message).toMatch(REFUSED[file]!);
        process.stdout.write(`${file}: refused — ${err.message.split("\n")[0]}\n`);
        return;
      }
      const res = await run;
      const cmp = await compareDatabases(path, client);
      expect(cmp.differences).toEqual([]);
      expect(cmp.rows).toBe(res.rows);
      process.stdout.write(`${file}: exact — ${cmp.tables} tables, ${cmp.rows} rows compared value by value\n`);
    });
  }
});
