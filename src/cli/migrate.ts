import { requireSqlite, resolveConfig } from "../config/config.js";
import { createLogger } from "../observe/logger.js";
import { logProgress, terminalProgress } from "../observe/progress.js";
import { migrate } from "../migrate/migrate.js";

interface MigrateFlags {
  sqlite?: string;
  pg?: string;
  schema?: string;
  config?: string;
  preserveCase?: boolean;
  verbose?: boolean;
  jobs?: number;
  dropExisting?: boolean;
  fixText?: boolean;
  json?: boolean;
  progress?: boolean;
}

/** `sqlite2pg migrate`: the exact one-shot copy. */
export async function migrateCommand(flags: MigrateFlags): Promise<void> {
  const cfg = resolveConfig(flags);
  const sqlite = requireSqlite(cfg);
  const tty = Boolean(process.stderr.isTTY) && flags.progress !== false && !cfg.json;
  const log = createLogger({ level: cfg.verbose ? "debug" : tty ? "warn" : "info" });
  const progress = tty ? terminalProgress() : logProgress(log);
  const result = await migrate({
    sqlite,
    pg: cfg.pg,
    schema: cfg.schema,
    jobs: cfg.jobs,
    preserveCase: cfg.preserveCase,
    dropExisting: cfg.dropExisting,
    fixText: cfg.fixText,
    log,
    progress,
  });
  const summary = {
    status: "exact",
    rows: result.rows,
    seconds: +result.seconds.toFixed(3),
    rows_per_s: Math.round(result.rows / Math.max(result.seconds, 0.001)),
    schema: cfg.schema,
    tables: result.tables,
    transformed: result.transformed,
    warnings: result.plan.decisions.filter((d) => d.severity === "warning").length,
  };
  // Exact (nothing to copy, nothing differs), so exit 0, but never silently:
  // an empty file is usually the wrong path or a schema not created yet.
  if (result.tables.length === 0)
    process.stderr.write(`warning: ${sqlite} has no tables: nothing was migrated (wrong --sqlite path, or the application has not created its schema yet?)\n`);
  if (flags.json) {
    process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
    return;
  }
  log.info(summary, "migration complete: Postgres holds exactly what SQLite holds");
  const lines = [
    `Migrated ${result.rows} rows in ${result.tables.length} tables in ${result.seconds.toFixed(1)} s (${summary.rows_per_s} rows/s); validated: Postgres holds exactly what SQLite holds.`,
  ];
  if (result.transformed.length) {
    lines.push(`${result.transformed.length} value(s) changed by --fix-text:`);
    for (const t of result.transformed) lines.push(`  table ${t.table}, column ${t.column}, ${t.key}: ${t.reason}; original ${t.original}`);
  }
  if (summary.warnings) lines.push(`${summary.warnings} warning(s) about objects not translated; \`sqlite2pg plan\` lists them.`);
  process.stdout.write(lines.join("\n") + "\n");
}
