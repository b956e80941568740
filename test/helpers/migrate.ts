/** The one-shot migration of a SQLite file into a test's database, with the defaults the tests share. */
import { migrate, type MigrateOptions, type MigrateResult } from "../../src/migrate/migrate.js";
import { silentLogger } from "../../src/observe/logger.js";

export function migrateFile(sqlite: string, pg: string, extra: Partial<MigrateOptions> = {}): Promise<MigrateResult> {
  return migrate({ sqlite, pg, schema: "public", jobs: 2, preserveCase: false, dropExisting: false, fixText: false, log: silentLogger(), ...extra });
}
