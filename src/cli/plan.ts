import Database from "better-sqlite3";
import type BetterSqlite3 from "better-sqlite3";
import { existsSync, readFileSync, statSync } from "node:fs";
import { requireSqlite, resolveConfig } from "../config/config.js";
import { buildPlan, type MigrationPlan, type Refusal } from "../plan/plan.js";
import { scanTextValues } from "../plan/scan.js";
import { openSource } from "../sqlite/open.js";
import { readSchema } from "../sqlite/schema.js";
import { planDdl } from "../postgres/ddl.js";
import { countRelations, redactUrl, withPg } from "../postgres/pg.js";

interface PlanFlags {
  sqlite?: string;
  pg?: string;
  schema?: string;
  config?: string;
  preserveCase?: boolean;
  verbose?: boolean;
  json?: boolean;
  scan?: boolean;
}

/**
 * Open the file for reading. A WAL-mode file in a directory this process
 * cannot write cannot be opened in place (SQLite must create its -shm file
 * beside it) unless the application has it open: then it is read from a
 * copy in memory with the header set to the rollback journal — the copy is
 * exact when no -wal file holds unmerged pages, which is the case whenever
 * SQLite could not open it in place.
 */
function openForReading(path: string): { db: BetterSqlite3.Database; copied: boolean } {
  try {
    return { db: openSource(path), copied: false };
  } catch (e) {
    const code = (e as { cause?: { code?: string } }).cause?.code ?? "";
    if (!/^SQLITE_(READONLY|CANTOPEN)/.test(code)) throw e;
    const wal = `${path}-wal`;
    if (existsSync(wal) && statSync(wal).size > 0) throw e;
    const buf = readFileSync(path);
    if (buf.length < 100 || buf[18] !== 2) throw e;
    buf[18] = 1;
    buf[19] = 1;
    return { db: new Database(buf, { readonly: true }), copied: true };
  }
}

/** `sqlite2pg plan`: read SQLite, decide everything, print it; write nothing. */
export async function planCommand(flags: PlanFlags): Promise<void> {
  const cfg = resolveConfig(flags);
  const path = requireSqlite(cfg);
  const { db, copied } = openForReading(path);
  let plan: MigrationPlan;
  let refusals: Refusal[];
  try {
    plan = buildPlan(db, readSchema(db), { schema: cfg.schema, preserveCase: cfg.preserveCase, checkForeignKeys: true });
    refusals = [...plan.refusals, ...(flags.scan === false ? [] : scanTextValues(db, plan))];
  } finally {
    db.close();
  }
  let target: { server: string; version: string; relations: number } | null = null;
  if (cfg.pg || process.env.PGHOST || process.env.PGDATABASE) {
    target = await withPg(cfg.pg, async (c) => {
      const v = (await c.query<{ v: string }>("SHOW server_version")).rows[0]!.v;
      return { server: cfg.pg ? redactUrl(cfg.pg) : "PG* environment", version: v, relations: await countRelations(c, cfg.schema) };
    });
  }
  const ddl = planDdl(plan);
  if (cfg.json || flags.json) {
    process.stdout.write(
      JSON.stringify(
        {
          schema: plan.schema,
          tables: plan.tables.map((t) => ({
            source: t.source.name,
            name: t.name,
            rows: t.census.rows,
            columns: t.columns.map((c) => ({
              source: c.source.name,
              name: c.name,
              declared: c.source.declaredType,
              type: c.type.sql,
              conversion: c.conversion,
              reason: c.type.reason,
              default: c.defaultSql,
              generated: c.generatedSql,
            })),
            constraints: t.constraints.statements.map((s) => ({ kind: s.kind, name: s.name, sql: s.sql })),
          })),
          decisions: plan.decisions,
          refusals,
          views: plan.views,
          skipped: plan.skipped,
          ddl,
          target,
          read_from_copy: copied,
        },
        null,
        2,
      ) + "\n",
    );
    return;
  }
  const out: string[] = [];
  if (copied)
    out.push(
      `Note: ${path} is in WAL mode in a directory this process cannot write (SQLite cannot create its -shm file there), so it was read from a copy in memory; nothing was written.`,
    );
  if (!plan.tables.length)
    out.push(`Warning: ${path} has no tables: there is nothing to migrate (wrong --sqlite path, or the application has not created its schema yet?)`);
  out.push(
    `Plan for ${path} → schema ${plan.schema}${target ? ` on ${target.server} (PostgreSQL ${target.version}${target.relations ? `; the schema already holds ${target.relations} relation(s): migrate needs --drop-existing` : ""})` : ""}`,
  );
  out.push("");
  for (const t of plan.tables) {
    out.push(
      `table ${t.source.name}${t.name !== t.source.name ? ` → ${t.name}` : ""} (${t.census.rows} rows${t.source.withoutRowid ? ", WITHOUT ROWID" : ""}${t.source.strict ? ", STRICT" : ""}${t.source.primaryKey.length ? "" : ", no primary key"})`,
    );
    for (const c of t.columns) {
      out.push(
        `  ${c.source.name}${c.name !== c.source.name ? ` → ${c.name}` : ""}: ${c.source.declaredType || "(no type)"} → ${c.type.sql}${c.identity ? " identity" : ""}  — ${c.type.reason}`,
      );
    }
    for (const d of plan.decisions.filter((x) => x.table === t.source.name && x.object))
      out.push(`  ${d.severity === "warning" ? "! " : ""}${d.object}: ${d.text}`);
    for (const d of plan.decisions.filter((x) => x.table === t.source.name && x.column && !x.type)) {
      out.push(`  ${d.severity === "warning" ? "! " : ""}${d.column}: ${d.text}`);
    }
    out.push("");
  }
  const others = plan.decisions.filter((d) => !plan.tables.some((t) => t.source.name === d.table));
  if (others.length) {
    out.push("Not copied:");
    for (const d of others) out.push(`  ${d.severity === "warning" ? "! " : ""}${d.text}`);
    out.push("");
  }
  out.push("DDL:");
  for (const s of ddl) out.push(s.startsWith("--") ? s : s + ";");
  out.push("");
  if (refusals.length) {
    out.push(
      `Refused values (${refusals.length}): migrate stops on these unless they are fixed${refusals.some((r) => r.reason.startsWith("text")) ? " or --fix-text is given" : ""}:`,
    );
    for (const r of refusals) out.push(`  table ${r.table}, column ${r.column}, ${r.key}: ${r.reason}; value ${r.value}`);
  } else {
    out.push(
      flags.scan === false
        ? "Refused values: none found by the census (text values not scanned: --no-scan)."
        : "Refused values: none. Every value fits its Postgres type.",
    );
  }
  process.stdout.write(out.join("\n") + "\n");
}
