import type BetterSqlite3 from "better-sqlite3";
import { qualified, quoteIdent } from "../ident.js";
import { translateExpr } from "./expr.js";
import type { Namespace } from "./names.js";
import { exprContext, type ConstraintPlan, type Decision, type PlanOptions, type PostLoadStatement, type TablePlan } from "./model.js";

const SAFE_COLLATIONS = new Set(["BINARY"]);

/**
 * Plan the primary key, unique constraints, indexes, CHECKs and foreign keys
 * of a table. What cannot be translated exactly is left out with a warning
 * that says why; nothing here changes data.
 */
export function planConstraints(
  db: BetterSqlite3.Database,
  t: TablePlan,
  all: TablePlan[],
  relations: Namespace,
  opts: PlanOptions,
  decisions: Decision[],
): ConstraintPlan {
  const st = t.source;
  const table = qualified(opts.schema, t.name);
  const colName = (source: string) =>
    (t.columns.find((c) => c.source.name === source) ?? t.columns.find((c) => c.source.name.toLowerCase() === source.toLowerCase()))?.name;
  const ctx = exprContext(t.columns);
  const statements: PostLoadStatement[] = [];
  const warn = (object: string, text: string) => decisions.push({ table: st.name, object, severity: "warning", text });
  const info = (object: string, text: string) => decisions.push({ table: st.name, object, severity: "info", text });

  let primaryKey: string[] | null = null;
  if (st.primaryKey.length > 0) {
    const cols = st.primaryKey.map((c) => colName(c)!);
    const nullable = st.primaryKey.filter((c) => (t.census.columns.get(c)?.nulls ?? 0) > 0 && st.rowidAlias !== c);
    const name = relations.claimGenerated(`${t.name}_pkey`);
    if (nullable.length > 0) {
      statements.push({
        kind: "unique",
        name,
        sql: `ALTER TABLE ${table} ADD CONSTRAINT ${quoteIdent(name)} UNIQUE (${cols.map(quoteIdent).join(", ")})`,
        validateSql: null,
        split: splitKey(table, name, "UNIQUE", cols.map(quoteIdent)),
        keyColumns: cols,
      });
      warn(name, `primary key column(s) ${nullable.join(", ")} hold NULLs (SQLite allows that in rowid tables): created as UNIQUE, not PRIMARY KEY`);
    } else {
      primaryKey = cols;
      statements.push({
        kind: "primary key",
        name,
        sql: `ALTER TABLE ${table} ADD CONSTRAINT ${quoteIdent(name)} PRIMARY KEY (${cols.map(quoteIdent).join(", ")})`,
        validateSql: null,
        split: splitKey(table, name, "PRIMARY KEY", cols.map(quoteIdent)),
        keyColumns: cols,
      });
    }
  }

  for (const ix of st.indexes) {
    if (ix.origin === "pk") continue;
    const label = ix.origin === "c" ? ix.name : `UNIQUE (${ix.terms.map((x) => x.column).join(", ")})`;
    const terms: string[] = [];
    let refused: string | null = null;
    for (const term of ix.terms) {
      let sql: string;
      if (term.column !== null) {
        const n = colName(term.column);
        if (!n) {
          refused = `column ${term.column} not found`;
          break;
        }
        sql = quoteIdent(n);
      } else {
        const tr = translateExpr(term.expr, ctx);
        if (!tr.ok) {
          refused = tr.reason;
          break;
        }
        sql = `(${tr.sql})`;
      }
      if (term.collation && !SAFE_COLLATIONS.has(term.collation.toUpperCase())) {
        warn(
          label,
          `COLLATE ${term.collation} has no Postgres equivalent: ${ix.unique ? "uniqueness is compared exactly (case-sensitively) in Postgres" : "index built on the plain value"}`,
        );
      }
      terms.push(sql + (term.desc ? " DESC" : ""));
    }
    let where = "";
    if (!refused && ix.where) {
      const tr = translateExpr(ix.where, ctx);
      if (tr.ok) where = ` WHERE ${tr.sql}`;
      else refused = `partial-index condition: ${tr.reason}`;
    }
    if (refused) {
      warn(label, `index not created: ${refused}`);
      continue;
    }
    const allColumns = ix.terms.every((x) => x.column !== null) && !where && !ix.terms.some((x) => x.desc);
    if (ix.origin === "u" && allColumns) {
      const name = relations.claimGenerated(`${t.name}_${ix.terms.map((x) => colName(x.column!)).join("_")}_key`);
      statements.push({
        kind: "unique",
        name,
        sql: `ALTER TABLE ${table} ADD CONSTRAINT ${quoteIdent(name)} UNIQUE (${terms.join(", ")})`,
        validateSql: null,
        split: splitKey(table, name, "UNIQUE", terms),
        keyColumns: ix.terms.map((x) => colName(x.column!)!),
      });
    } else {
      const base = ix.origin === "c" ? pgIndexName(ix.name, opts.preserveCase) : `${t.name}_${ix.terms.length}_key`;
      const name = relations.claimGenerated(base);
      if (ix.origin === "c" && name !== ix.name) info(ix.name, `index ${ix.name} is named ${name} in Postgres`);
      statements.push({
        kind: "index",
        name,
        sql: `CREATE ${ix.unique ? "UNIQUE " : ""}INDEX ${quoteIdent(name)} ON ${table} (${terms.join(", ")})${where}`,
        validateSql: null,
        ...(ix.unique && allColumns ? { keyColumns: ix.terms.map((x) => colName(x.column!)!) } : {}),
      });
    }
  }

  const checks = [...t.columns.flatMap((c) => c.source.checks.map((expr) => ({ name: null as string | null, expr }))), ...st.checks];
  checks.forEach((ck, i) => {
    const label = ck.name ?? `CHECK (${ck.expr})`;
    const tr = translateExpr(ck.expr, ctx);
    if (!tr.ok) {
      warn(label, `CHECK not created: ${tr.reason}`);
      return;
    }
    const name = relations.claimGenerated(ck.name ? pgIndexName(ck.name, opts.preserveCase) : `${t.name}_check${i + 1}`);
    statements.push({
      kind: "check",
      name,
      sql: `ALTER TABLE ${table} ADD CONSTRAINT ${quoteIdent(name)} CHECK (${tr.sql}) NOT VALID`,
      validateSql: `ALTER TABLE ${table} VALIDATE CONSTRAINT ${quoteIdent(name)}`,
    });
  });

  const violations =
    st.foreignKeys.length && opts.checkForeignKeys
      ? (db.prepare(`PRAGMA main.foreign_key_check(${quoteIdent(st.name)})`).all() as { rowid: number | null; parent: string; fkid: number }[])
      : [];
  for (const fk of st.foreignKeys) {
    const label = `FOREIGN KEY (${fk.from.join(", ")}) REFERENCES ${fk.parent}`;
    const parent = all.find((p) => p.source.name === fk.parent) ?? all.find((p) => p.source.name.toLowerCase() === fk.parent.toLowerCase());
    if (!parent) {
      warn(label, `foreign key not created: table ${fk.parent} is not copied`);
      continue;
    }
    const toSource = fk.to.every((x) => x === null) ? parent.source.primaryKey : (fk.to as string[]);
    if (toSource.length !== fk.from.length || toSource.some((x) => x === null)) {
      warn(label, `foreign key not created: the parent's key does not match (${fk.from.length} columns)`);
      continue;
    }
    const parentCol = (n: string) =>
      parent.columns.find((c) => c.source.name === n) ?? parent.columns.find((c) => c.source.name.toLowerCase() === n.toLowerCase());
    const toCols = toSource.map(parentCol);
    const fromCols = fk.from.map((n) => t.columns.find((c) => c.source.name === n) ?? t.columns.find((c) => c.source.name.toLowerCase() === n.toLowerCase()));
    if (toCols.some((c) => !c) || fromCols.some((c) => !c)) {
      warn(label, "foreign key not created: a column it names does not exist");
      continue;
    }
    const mismatch = fromCols.findIndex((c, i) => c!.type.sql !== toCols[i]!.type.sql);
    if (mismatch >= 0) {
      warn(
        label,
        `foreign key not created: ${fromCols[mismatch]!.name} is ${fromCols[mismatch]!.type.sql} but ${parent.name}.${toCols[mismatch]!.name} is ${toCols[mismatch]!.type.sql}`,
      );
      continue;
    }
    const unique = parentHasUnique(parent, toSource);
    if (!unique) {
      warn(
        label,
        `foreign key not created: ${parent.name}(${toCols.map((c) => c!.name).join(", ")}) has no primary key or unique constraint, which Postgres requires`,
      );
      continue;
    }
    const mine = violations.filter((v) => v.fkid === fk.id);
    const name = relations.claimGenerated(`${t.name}_${fromCols.map((c) => c!.name).join("_")}_fkey`);
    const actions = `${fk.onDelete && fk.onDelete !== "NO ACTION" ? ` ON DELETE ${fk.onDelete}` : ""}${fk.onUpdate && fk.onUpdate !== "NO ACTION" ? ` ON UPDATE ${fk.onUpdate}` : ""}`;
    // DEFERRABLE so that changes applied later in one batch may pass through
    // states the source never showed (rows swapped between keys).
    const sql = `ALTER TABLE ${table} ADD CONSTRAINT ${quoteIdent(name)} FOREIGN KEY (${fromCols.map((c) => quoteIdent(c!.name)).join(", ")}) REFERENCES ${qualified(opts.schema, parent.name)} (${toCols.map((c) => quoteIdent(c!.name)).join(", ")})${actions} DEFERRABLE INITIALLY IMMEDIATE NOT VALID`;
    const references = { references: parent.name, referencesColumns: toCols.map((c) => c!.name) };
    if (!opts.checkForeignKeys) {
      // Created NOT VALID, then validated; rows that break it keep it NOT VALID, with a warning.
      statements.push({ kind: "foreign key", name, sql, validateSql: `ALTER TABLE ${table} VALIDATE CONSTRAINT ${quoteIdent(name)}`, ...references });
    } else if (mine.length > 0) {
      warn(
        label,
        `${mine.length} row(s) break this foreign key in SQLite already (first: rowid ${mine[0]!.rowid}): created NOT VALID, so new rows are checked and existing ones are kept as they are`,
      );
      statements.push({ kind: "foreign key", name, sql, validateSql: null, ...references });
    } else {
      statements.push({ kind: "foreign key", name, sql, validateSql: `ALTER TABLE ${table} VALIDATE CONSTRAINT ${quoteIdent(name)}`, ...references });
    }
  }
  const identity = t.columns.find((c) => c.identity)?.name ?? null;
  return { primaryKey, statements, identity };
}

/** A key constraint as a unique index built first and attached after (see {@link PostLoadStatement.split}). */
function splitKey(table: string, name: string, kind: "PRIMARY KEY" | "UNIQUE", columns: string[]): { indexSql: string; attachSql: string } {
  return {
    indexSql: `CREATE UNIQUE INDEX ${quoteIdent(name)} ON ${table} (${columns.join(", ")})`,
    attachSql: `ALTER TABLE ${table} ADD CONSTRAINT ${quoteIdent(name)} ${kind} USING INDEX ${quoteIdent(name)}`,
  };
}

function parentHasUnique(parent: TablePlan, cols: string[]): boolean {
  const same = (a: string[]) => a.length === cols.length && a.every((x) => cols.some((y) => y.toLowerCase() === x.toLowerCase()));
  if (same(parent.source.primaryKey)) return true;
  return parent.source.indexes.some((ix) => ix.unique && !ix.where && ix.terms.every((t) => t.column !== null) && same(ix.terms.map((t) => t.column!)));
}

function pgIndexName(name: string, preserveCase: boolean): string {
  return preserveCase ? name : name.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}
