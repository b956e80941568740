/**
 * Generated columns are computed by Postgres, not copied: after the cutover
 * the application writes to Postgres and the column must go on being
 * computed there. But SQLite and Postgres evaluate expressions differently
 * (a real turned into text is `2.0` in SQLite and `2` in Postgres, integer
 * division, collations…), so every value Postgres computes is checked
 * against the value SQLite holds, in the same Postgres transaction that
 * wrote the row: a difference stops the apply (or the snapshot chunk) with
 * an error naming table, column and key, and nothing is committed.
 */
import type pg from "pg";
import { sourceError } from "../errors.js";
import { renderKey, renderValue, type ColumnPlan, type TablePlan } from "../plan/plan.js";
import { qualified, quoteIdent } from "../ident.js";
import { canonicalSql, canonicalWriter } from "../convert/canonical.js";
import { paramValue, recordText } from "../convert/copy-encode.js";
import { ROWID_COLUMN } from "../convert/row-encoder.js";

/** Checks the generated columns of rows just written to one table. */
export class GeneratedCheck {
  private readonly gen: { col: ColumnPlan; at: number; text: (v: unknown) => string | null }[];
  private readonly keyCols: { name: string; col: ColumnPlan | null }[];
  private readonly sql: string;
  private readonly keyWriters: ((v: unknown) => string | null)[];

  /** Null when the table has no column Postgres computes. */
  static of(schema: string, t: TablePlan, keyNames: string[], keyWidth: number): GeneratedCheck | null {
    return t.columns.some((c) => !c.copied) ? new GeneratedCheck(schema, t, keyNames, keyWidth) : null;
  }

  private constructor(
    schema: string,
    private readonly t: TablePlan,
    private readonly keyNames: string[],
    private readonly keyWidth: number,
  ) {
    this.gen = t.columns.flatMap((col, i) => (col.copied ? [] : [{ col, at: keyWidth + i, text: canonicalWriter(col) }]));
    if (t.readOrder.kind === "rowid") {
      const alias = t.columns.find((c) => c.source.name === t.source.rowidAlias);
      this.keyCols = [{ name: alias ? alias.name : ROWID_COLUMN, col: null }];
    } else {
      this.keyCols = t.readOrder.columns.map((k) => {
        const c = t.columns.find((x) => x.source.name === k)!;
        return { name: c.name, col: c };
      });
    }
    this.keyWriters = this.keyCols.map((k) => (k.col ? canonicalWriter(k.col) : (v: unknown) => String(v)));
    const keyText = (k: { name: string; col: ColumnPlan | null }) => (k.col ? canonicalSql(`t.${quoteIdent(k.name)}`, k.col) : `t.${quoteIdent(k.name)}::text`);
    const pgType = (k: { col: ColumnPlan | null }) => (k.col ? k.col.type.sql.replace(/\(.*\)$/, "") : "bigint");
    const cols = this.keyCols.map((k) => `t.${quoteIdent(k.name)}`).join(", ");
    const where =
      this.keyCols.length === 1
        ? `${cols} = ANY($1::${pgType(this.keyCols[0]!)}[])`
        : `(${cols}) IN (SELECT * FROM unnest(${this.keyCols.map((k, i) => `$${i + 1}::${pgType(k)}[]`).join(", ")}))`;
    this.sql = `SELECT ROW(${this.keyCols.map(keyText).join(", ")})::text AS k, ${this.gen.map((g, i) => `${canonicalSql(`t.${quoteIdent(g.col.name)}`, g.col)} AS g${i}`).join(", ")}
      FROM ${qualified(schema, t.name)} AS t WHERE ${where}`;
  }

  private keyText(row: unknown[]): string {
    return recordText(this.keyWriters.map((w, i) => w(row[i])));
  }

  /** Compare what Postgres computed for these rows (just written, same transaction) with what SQLite holds. */
  async check(client: pg.ClientBase, rows: unknown[][]): Promise<void> {
    if (rows.length === 0) return;
    const params = this.keyCols.map((k, i) => rows.map((r) => (k.col ? paramValue(r[i], k.col, i) : String(r[i]))));
    const got = new Map<string, Record<string, string | null>>();
    for (const r of (await client.query(this.sql, params)).rows) got.set(r.k, r);
    for (const row of rows) {
      const theirs = got.get(this.keyText(row));
      for (let i = 0; i < this.gen.length; i++) {
        const g = this.gen[i]!;
        const want = g.text(row[g.at]);
        const have = theirs ? (theirs[`g${i}`] ?? null) : undefined;
        if (have === want) continue;
        const key = renderKey(this.keyNames, row.slice(0, this.keyWidth));
        const shown = (x: string | null | undefined) => (x === undefined ? "no row" : x === null ? "NULL" : renderValue(x));
        throw sourceError(
          "VALUE_REFUSED",
          `table ${this.t.source.name}, column ${g.col.source.name}, ${key}: Postgres computes the generated column as ${shown(have)} where SQLite holds ${shown(want)} (GENERATED ALWAYS AS (${g.col.generatedSql}) does not evaluate as SQLite's expression does for this row)`,
          {
            context: { table: this.t.source.name, column: g.col.source.name, key, value: renderValue(row[g.at]) },
            hint: "SQLite and Postgres evaluate some expressions differently (real to text, integer division, …); make the SQLite expression explicit (e.g. printf() or CAST) so both agree, or make the column a plain column in SQLite; the change stays in the changelog and is applied once the values agree",
          },
        );
      }
    }
  }
}
