import { requireSqlite, resolveConfig } from "../config/config.js";
import { openSource } from "../sqlite/open.js";
import { captureInfo, uninstallCapture } from "../sqlite/capture.js";
import { freezeInfo } from "../sqlite/freeze.js";
import { usageError } from "../errors.js";

/** `sqlite2pg uninstall`: remove triggers and changelog; the application's database is as it was. */
export async function uninstallCommand(flags: { sqlite?: string; config?: string; force?: boolean }): Promise<void> {
  const cfg = resolveConfig(flags);
  const path = requireSqlite(cfg);
  const db = openSource(path, { readonly: false });
  try {
    const frozen = captureInfo(db) ? freezeInfo(db) : null;
    if (frozen && !flags.force) {
      throw usageError(
        "FROZEN",
        `${path} is frozen (since ${frozen.frozenAt}): the application's writes belong to PostgreSQL now, and uninstall would make SQLite writable again`,
        {
          hint: "before the cutover committed, use `sqlite2pg unfreeze`; to remove everything anyway, pass --force",
        },
      );
    }
    const r = uninstallCapture(db);
    process.stdout.write(
      r.triggers + r.tables === 0
        ? `Nothing to remove: change capture is not installed in ${path}.\n`
        : `Removed ${r.triggers} trigger(s) and ${r.tables} table(s) from ${path}. The Postgres side (schema sqlite2pg) is left as it is.\n`,
    );
  } finally {
    db.close();
  }
}
