import type BetterSqlite3 from "better-sqlite3";
import { censusTable, numericTypmod, type TableCensus } from "../sqlite/census.js";
import { rowidName, type SourceColumn, type SourceSchema, type SourceTable } from "../sqlite/schema.js";
import { quoteIdent } from "../ident.js";
import { translateExpr } from "./expr.js";
import { translateDefault } from "./expr-default.js";
import { Namespace, pgName } from "./names.js";
import { chooseType, type TypeDecision } from "./types.js";
import { keySpellingMatters, keySpellingProblem, uniqueKeyColumns } from "./key-spelling.js";
import { planConstraints } from "./constraints.js";
import {
  exprContext,
  keyOf,
  renderKey,
  renderValue,
  type ColumnPlan,
  type Decision,
  type MigrationPlan,
  type PlanOptions,
  type ReadOrder,
  type Refusal,
  type TablePlan,
} from "./model.js";

export type { ColumnPlan, MigrationPlan, PlanOptions, Refusal, TablePlan } from "./model.js";
export { keyOf, renderKey, renderValue };

/**
 * Build the plan: census every table, choose types, translate defaults,
 * generated columns, keys, indexes, checks and foreign keys, and collect
 * every decision and refusal. Reads SQLite; writes nothing anywhere.
 */
export function buildPlan(db: BetterSqlite3.Database, schema: SourceSchema, opts: PlanOptions, censuses?: Map<string, TableCensus>): MigrationPlan {
  const decisions: Decision[] = [];
  const refusals: Refusal[] = [];
  const relations = new Namespace("tables");
  const tables: TablePlan[] = [];
  for (const st of schema.tables) {
    const name = relations.claim(st.name, pgName(st.name, opts.preserveCase), { table: st.name });
    if (name !== st.name) decisions.push({ table: st.name, severity: "info", text: `table ${st.name} becomes ${name}` });
    if (!st.withoutRowid) rowidName(st); // refuses, naming the table, a rowid no name can read
    const census = censuses?.get(st.name) ?? censusTable(db, st);
    const keyColumns = uniqueKeyColumns(st);
    const colNames = new Namespace(`columns of table ${st.name}:`);
    const columns: ColumnPlan[] = [];
    for (const sc of st.columns) {
      const cname = colNames.claim(sc.name, pgName(sc.name, opts.preserveCase), { table: st.name });
      const cc = census.columns.get(sc.name)!;
      const isAlias = st.rowidAlias === sc.name;
      let type = chooseType(sc, cc, isAlias);
      if (!type) {
        const ex = exampleKeys(db, st, sc, "typeof(%c) = 'blob'", "typeof(%c) NOT IN ('blob','null')");
        refusals.push({
          table: st.name,
          column: sc.name,
          key: ex,
          value: `${cc.blobs} blobs with ${cc.integers + cc.reals + cc.texts} other values`,
          reason: "blobs mixed with text or numbers: no Postgres type holds both as they are",
        });
        type = { kind: "bytea", sql: "bytea", conversion: "none", reason: "refused: mixed blobs", scale: null };
      }
      // Keys are identity: a key column keeps a conversion that maps several
      // spellings to one value only while every value is in the one spelling
      // it renders back (later values in another spelling are refused);
      // otherwise it stays text, exactly as written.
      const spelled = keyColumns.has(sc.name) && keySpellingMatters(type) ? otherSpelling(db, st, sc, type, cc.texts) : null;
      if (spelled)
        type = {
          kind: "text",
          sql: "text",
          conversion: "none",
          scale: null,
          reason: `${type.sql} would make one key of two: ${spelled}; a key column is kept as text, exactly as written`,
        };
      decisions.push({
        table: st.name,
        column: sc.name,
        severity: type.kind === "text" && !/char|text|clob/i.test(sc.declaredType) && sc.declaredType !== "" ? "warning" : "info",
        text: `${type.sql}: ${type.reason}`,
        type: true,
      });
      // In a key column, SQLite's integer 1 and text '1' are two keys; Postgres
      // text would make them one (and a delete of one would delete the other).
      const keyText = keyColumns.has(sc.name) && type.kind === "text" && type.conversion === "none";
      if (keyText && cc.texts > 0 && cc.integers + cc.reals > 0) {
        refusals.push({
          table: st.name,
          column: sc.name,
          key: exampleKeys(db, st, sc, "typeof(%c) = 'text'", "typeof(%c) IN ('integer','real')"),
          value: `${cc.texts} text and ${cc.integers + cc.reals} numeric values`,
          reason: "a key column (primary key or unique) holding both text and numbers: SQLite keeps 1 and '1' apart, Postgres text would make them one key",
        });
      }
      columns.push({
        source: sc,
        name: cname,
        kind: type.kind,
        conversion: type.conversion,
        scale: type.scale,
        precision: type.kind === "numeric" ? (numericTypmod(type.sql)?.precision ?? null) : null,
        type,
        notNull: sc.notNull || isAlias,
        defaultSql: null,
        generatedSql: null,
        identity: isAlias,
        copied: true,
        ...(keyText ? { keyText: true } : {}),
        ...(keyColumns.has(sc.name) && keySpellingMatters(type) ? { keyExact: true } : {}),
      });
    }
    const ctx = exprContext(columns);
    for (const c of columns) {
      const sc = c.source;
      if (sc.generated) {
        const tr = sc.generated.expr ? translateExpr(sc.generated.expr, ctx) : { ok: false as const, reason: "expression not found in the CREATE TABLE text" };
        if (tr.ok) {
          c.generatedSql = tr.sql;
          c.copied = false;
          decisions.push({
            table: st.name,
            column: sc.name,
            severity: "info",
            text: `generated column: GENERATED ALWAYS AS (${tr.sql}) STORED; Postgres computes it (and goes on computing it after the cutover), and every value it computes is checked against SQLite's: a row where the two engines disagree is refused by key`,
          });
        } else {
          decisions.push({
            table: st.name,
            column: sc.name,
            severity: "warning",
            text: `generated column copied as a plain column with its current values: ${tr.reason}`,
          });
        }
      }
      if (sc.defaultSql !== null && !c.identity) {
        if (c.conversion !== "none" && c.conversion !== "boolean") {
          decisions.push({
            table: st.name,
            column: sc.name,
            severity: "warning",
            text: `DEFAULT ${sc.defaultSql} not translated: the column's values are converted (${c.conversion}) and the default would not be`,
          });
        } else {
          const tr = translateDefault(sc.defaultSql, c.kind);
          if (tr.ok) {
            c.defaultSql = tr.sql;
            decisions.push({ table: st.name, column: sc.name, severity: "info", text: `DEFAULT ${sc.defaultSql} → ${tr.sql}` });
          } else {
            decisions.push({ table: st.name, column: sc.name, severity: "warning", text: `DEFAULT ${sc.defaultSql} not translated: ${tr.reason}` });
          }
        }
      }
    }
    const bigIntegers = [...census.columns.values()].some((c) => c.minInt !== null && (c.minInt < -9007199254740991n || c.maxInt! > 9007199254740991n));
    const readOrder: ReadOrder = st.withoutRowid ? { kind: "key", columns: st.primaryKey } : { kind: "rowid" };
    tables.push({ source: st, name, columns, readOrder, census, bigIntegers, constraints: { primaryKey: null, statements: [], identity: null } });
  }
  for (const t of tables) t.constraints = planConstraints(db, t, tables, relations, opts, decisions);
  const views = schema.views.map((v) => ({
    name: v.name,
    sql: v.sql,
    reason: "views are not translated: SQLite's view SQL would need a full SQL translation; recreate it in Postgres after the move",
  }));
  for (const v of views) decisions.push({ table: v.name, severity: "warning", text: `view ${v.name}: ${v.reason}` });
  for (const s of schema.skipped)
    decisions.push({ table: s.name, severity: s.type === "shadow table" ? "info" : "warning", text: `${s.type} ${s.name} skipped: ${s.reason}` });
  return { schema: opts.schema, preserveCase: opts.preserveCase, tables, decisions, refusals, views, skipped: schema.skipped };
}

/**
 * For a key column whose type conflates spellings: why its values are not
 * all in the spelling the conversion renders back (with example keys), or
 * null when they are. A timestamp with a zone always has other spellings.
 */
function otherSpelling(db: BetterSqlite3.Database, t: SourceTable, c: SourceColumn, type: TypeDecision, texts: number): string | null {
  if (type.conversion === "none" && type.kind === "timestamptz") return "an instant with a zone has many spellings (offsets, Z)";
  if (type.conversion === "boolean") return texts > 0 ? `${texts} value(s) are words, another spelling of 1/0` : null;
  // Timestamps: only 'YYYY-MM-DD HH:MM:SS[.f]' without trailing zeros reads back as written; the SQL
  // preselects what may be another spelling (a 'T', a date alone, a fraction ending in 0), JS decides.
  const key = keyOf(t);
  const col = quoteIdent(c.name);
  const rows = db
    .prepare(
      `SELECT ${key.sql}, ${col} FROM main.${quoteIdent(t.name)} WHERE typeof(${col}) = 'text' AND NOT (length(${col}) >= 19 AND substr(${col}, 11, 1) = ' ' AND (length(${col}) = 19 OR ${col} NOT GLOB '*0'))`,
    )
    .raw(true)
    .safeIntegers(true)
    .iterate() as IterableIterator<unknown[]>;
  const found: string[] = [];
  for (const r of rows) {
    if (keySpellingProblem(r[key.names.length], type) === null) continue;
    found.push(`${renderKey(key.names, r.slice(0, key.names.length))} (${renderValue(r[key.names.length])})`);
    if (found.length === 3) break;
  }
  return found.length ? `values in another spelling than Postgres renders back, e.g. ${found.join("; ")}` : null;
}

/** Up to three keys of rows matching `where` (with `%c` for the column), for messages. */
function exampleKeys(db: BetterSqlite3.Database, t: SourceTable, c: SourceColumn, ...wheres: string[]): string {
  const key = keyOf(t);
  const out: string[] = [];
  for (const w of wheres) {
    const rows = db
      .prepare(`SELECT ${key.sql}, ${quoteIdent(c.name)} FROM main.${quoteIdent(t.name)} WHERE ${w.replaceAll("%c", quoteIdent(c.name))} LIMIT 2`)
      .raw(true)
      .safeIntegers(true)
      .all() as unknown[][];
    for (const r of rows) out.push(`${renderKey(key.names, r.slice(0, key.names.length))} (${renderValue(r[key.names.length])})`);
  }
  return out.join("; ");
}
