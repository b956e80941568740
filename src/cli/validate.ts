import { requireSqlite, resolveConfig } from "../config/config.js";
import { validationError } from "../errors.js";
import { buildPlan, type MigrationPlan } from "../plan/plan.js";
import { captureInfo } from "../sqlite/capture.js";
import { openSource } from "../sqlite/open.js";
import { readSchema } from "../sqlite/schema.js";
import { withPg } from "../postgres/pg.js";
import { loadState } from "../replication/state.js";
import { validate } from "../validate/validate.js";
import { censusAll, digestAll } from "../migrate/copy-pool.js";

/**
 * `sqlite2pg validate`: usable at any time. The types come from the
 * replication state when there is one, else from a plan of the file as it
 * is now (what `migrate` would create). Exit 1 on any difference.
 */
export async function validateCommand(flags: {
  sqlite?: string;
  pg?: string;
  schema?: string;
  config?: string;
  preserveCase?: boolean;
  full?: boolean;
  json?: boolean;
}): Promise<void> {
  const cfg = resolveConfig(flags);
  const db = openSource(requireSqlite(cfg));
  try {
    const report = await withPg(cfg.pg, async (c) => {
      let plan: MigrationPlan | null = null;
      const info = captureInfo(db);
      if (info) plan = (await loadState(c, info.sourceId))?.plan ?? null;
      if (!plan) {
        // The census runs in worker threads, tables in parallel, as migrate's does.
        const schema = readSchema(db);
        plan = buildPlan(db, schema, { schema: cfg.schema, preserveCase: cfg.preserveCase }, await censusAll(requireSqlite(cfg), db, schema.tables, cfg.jobs));
      }
      const p = plan;
      // SQLite's side of a full validation in worker threads, as the census.
      return validate(db, c, p, flags.full ? "full" : "counts", {
        sqliteDigests: (tables, hash) => digestAll(requireSqlite(cfg), db, p, tables, hash, cfg.jobs),
      });
    });
    if (flags.json) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
    else {
      const lines = report.tables.map((t) => {
        const same = t.sqlite_rows === t.pg_rows && t.digest !== "differs";
        let line = `${same ? "  ok " : "  !! "} ${t.table.padEnd(28)} SQLite ${t.sqlite_rows} rows, Postgres ${t.pg_rows}${t.digest ? `, checksum ${t.digest}` : ""}`;
        for (const d of t.differences ?? []) line += `\n         ${d.key}: ${d.kind}`;
        if (t.note) line += `\n         ${t.note}`;
        return line;
      });
      for (const d of report.schema) lines.push(`  !!  schema: ${d}`);
      lines.push(
        `${report.ok ? "Equal" : "DIFFERENT"} (${report.mode}): ${report.rows} rows in ${report.seconds.toFixed(2)} s (${Math.round(report.rows / Math.max(report.seconds, 0.001))} rows/s).`,
      );
      process.stdout.write(lines.join("\n") + "\n");
    }
    if (!report.ok) {
      const bad = report.tables.filter((t) => t.sqlite_rows !== t.pg_rows || t.digest === "differs").map((t) => t.table);
      if (report.schema.length) bad.push(`the schema (${report.schema.join("; ")})`);
      throw validationError("VALIDATION_MISMATCH", `SQLite and Postgres differ in: ${bad.join(", ")}`, { context: { table: bad[0] } });
    }
  } finally {
    db.close();
  }
}
