/**
 * The match of a table's unique indexes against NEW, for the BEFORE
 * triggers that record the rows REPLACE conflict resolution deletes
 * (triggers/capture-replace.sql): every form of unique index SQLite has,
 * its expressions rewritten to read the new row's values.
 */
import { quoteIdent } from "../ident.js";
import type { SourceColumn, SourceTable } from "./schema.js";
import { tokenize } from "./sql-tokens.js";

/** Bare words that are SQL, not column names, in an index expression. */
const KEYWORDS = new Set([
  "and",
  "or",
  "not",
  "null",
  "is",
  "in",
  "like",
  "glob",
  "regexp",
  "match",
  "between",
  "escape",
  "case",
  "when",
  "then",
  "else",
  "end",
  "cast",
  "as",
  "collate",
  "true",
  "false",
  "distinct",
  "isnull",
  "notnull",
  "current_date",
  "current_time",
  "current_timestamp",
  "exists",
  "select",
  "from",
  "where",
  "asc",
  "desc",
]);

function findColumn(t: SourceTable, name: string): SourceColumn | undefined {
  return t.columns.find((c) => c.name === name) ?? t.columns.find((c) => c.name.toLowerCase() === name.toLowerCase());
}

/**
 * An expression of the table's columns rewritten against NEW (column
 * references become `NEW."col"`, a `table.` qualifier is dropped; function
 * names, string literals, keywords and COLLATE/CAST type names are kept),
 * and the columns it references. Throws on text the tokenizer refuses.
 */
function againstNew(t: SourceTable, expr: string): { sql: string; columns: SourceColumn[] } {
  const toks = tokenize(expr);
  const columns: SourceColumn[] = [];
  let out = "";
  let at = 0;
  for (let i = 0; i < toks.length; i++) {
    const tok = toks[i]!;
    if (tok.kind !== "ident") continue;
    const next = toks[i + 1];
    const prev = toks[i - 1];
    if (next?.kind === "op" && next.text === "(") continue; // a function name
    if (prev?.kind === "ident" && /^(as|collate)$/i.test(prev.text)) continue; // a type or collation name
    if (prev?.kind === "op" && prev.text === ".") continue; // the middle of schema.table.col
    const quoted = /^["`[]/.test(tok.text);
    if (!quoted && KEYWORDS.has(tok.text.toLowerCase())) continue;
    const first = i;
    let col = tok;
    if (next?.kind === "op" && next.text === "." && toks[i + 2]?.kind === "ident") {
      col = toks[i + 2]!; // table.col: the qualifier goes, the column is rewritten
      i += 2;
    }
    const c = findColumn(t, col.value);
    if (!c) continue;
    columns.push(c);
    out += expr.slice(at, toks[first]!.start) + `NEW.${quoteIdent(c.name)}`;
    at = col.end;
  }
  return { sql: out + expr.slice(at), columns };
}

/**
 * The columns an UPDATE must set to change a value computed from these
 * columns: themselves, and for a generated column the columns its
 * expression reads (transitively). Null when a generated column's
 * expression is unknown (then every UPDATE must be watched).
 */
function baseColumns(t: SourceTable, cols: SourceColumn[], seen = new Set<string>()): string[] | null {
  const out: string[] = [];
  for (const c of cols) {
    if (seen.has(c.name)) continue;
    seen.add(c.name);
    if (!c.generated) {
      out.push(c.name);
      continue;
    }
    if (!c.generated.expr) return null;
    let refs: SourceColumn[];
    try {
      refs = againstNew(t, c.generated.expr).columns;
    } catch {
      return null;
    }
    const more = baseColumns(t, refs, seen);
    if (more === null) return null;
    out.push(...more);
  }
  return out;
}

/**
 * The unique-value match of a table's unique indexes against NEW, for the
 * REPLACE capture triggers; null when REPLACE can only delete the row that
 * has the new row's own key (which the AFTER triggers record anyway).
 * Every form of unique index takes part: plain columns, expressions
 * (`lower(email)`, `json_extract(data, '$.sku')`, compared as
 * `expr = expr-of-NEW` under the index's collation), generated columns
 * (NEW carries their values in BEFORE triggers), partial indexes (the
 * stored row must satisfy the WHERE to be in the index), and a WITHOUT
 * ROWID primary key compared under a collation other than BINARY (`'rust'`
 * and `'Rust'` collide under NOCASE, yet are two keys to Postgres).
 * `columns` is what an UPDATE must set to create a conflict (null: any
 * UPDATE); `problems` names the indexes that cannot be matched.
 */
export function replaceConflicts(t: SourceTable): { sql: string | null; matches: string[]; columns: string[] | null; problems: string[] } {
  const parts: string[] = [];
  const problems: string[] = [];
  let columns: Set<string> | null = new Set<string>();
  const watch = (cols: SourceColumn[], computed = false) => {
    const base = baseColumns(t, cols);
    // In a BEFORE INSERT trigger the INTEGER PRIMARY KEY of a row that gets
    // its key assigned is still -1, and so is everything computed from it:
    // such a value cannot be matched before the row exists.
    const alias = t.rowidAlias?.toLowerCase();
    if (computed && alias && (base === null || base.some((b) => b.toLowerCase() === alias) || cols.some((c) => c.name.toLowerCase() === alias))) {
      throw new Error(
        `it is computed from the INTEGER PRIMARY KEY ${t.rowidAlias}, whose value a new row does not have yet when the capture looks for conflicts; compute it from other columns`,
      );
    }
    if (base === null) columns = null;
    else if (columns) for (const c of base) columns.add(c);
  };
  for (const ix of t.indexes) {
    if (!ix.unique) continue;
    // The row with the same rowid, or the same WITHOUT ROWID key, is the one
    // the AFTER triggers name — unless a collation makes other bytes equal.
    if (ix.origin === "pk" && t.withoutRowid && ix.terms.every((x) => !x.collation || x.collation.toUpperCase() === "BINARY")) continue;
    try {
      const terms: string[] = [];
      for (const x of ix.terms) {
        const coll = x.collation ? ` COLLATE ${quoteIdent(x.collation)}` : "";
        if (x.column !== null) {
          const c = findColumn(t, x.column);
          if (!c) throw new Error(`column ${x.column} not found`);
          watch([c], c.generated !== null);
          // The column's own collation needs no COLLATE (the comparison uses it anyway).
          const own = (x.collation ?? "BINARY").toUpperCase() === (c.collation ?? "BINARY").toUpperCase();
          terms.push(`${quoteIdent(c.name)}${own ? "" : coll} = NEW.${quoteIdent(c.name)}`);
        } else {
          if (!x.expr.trim()) throw new Error("its expression was not found in the CREATE INDEX text");
          const rw = againstNew(t, x.expr);
          watch(rw.columns, true);
          terms.push(`(${x.expr})${coll} = (${rw.sql})`);
        }
      }
      if (ix.where) {
        // Only rows that satisfy the WHERE are in the index; the same text
        // lets SQLite use the partial index for the lookup.
        watch(againstNew(t, ix.where).columns);
        terms.push(`(${ix.where})`);
      }
      parts.push(`(${terms.join(" AND ")})`);
    } catch (e) {
      const label =
        ix.origin === "c"
          ? `unique index ${ix.name}`
          : `${ix.origin === "pk" ? "PRIMARY KEY" : "UNIQUE"} (${ix.terms.map((x) => x.column ?? x.expr).join(", ")})`;
      problems.push(`${label} of table ${t.name} cannot be matched by the REPLACE capture: ${(e as Error).message}`);
    }
  }
  const cols: Set<string> | null = columns;
  return { sql: parts.length ? parts.join(" OR ") : null, matches: parts, columns: cols ? [...cols] : null, problems };
}
