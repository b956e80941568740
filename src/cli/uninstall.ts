import { requireSqlite, resolveConfig } from "../config/config.js";
import { openSource } from "../source/open.js";
import { uninstallCapture } from "../source/capture.js";

/** `sqlite2pg uninstall`: remove triggers and changelog; the application's database is as it was. */
export async function uninstallCommand(flags: { sqlite?: string; config?: string }): Promise<void> {
  const cfg = resolveConfig(flags);
  const path = requireSqlite(cfg);
  const db = openSource(path, { readonly: false });
  try {
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
