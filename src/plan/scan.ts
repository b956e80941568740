import type BetterSqlite3 from "better-sqlite3";
import { isUtf8 } from "node:buffer";
import { quoteIdent } from "../ident.js";
import { ChunkReader } from "../sqlite/reader.js";
import { isSuspectText } from "../sqlite/text.js";
import { renderKey, type MigrationPlan, type Refusal } from "./plan.js";

/**
 * Find the text values Postgres cannot store — a NUL byte, invalid UTF-8 —
 * by reading every text column once in short key-ordered chunks and
 * checking the raw bytes of any value that decoded with a replacement
 * character or holds a NUL. Lists at most `perColumn` values per column.
 */
export function scanTextValues(db: BetterSqlite3.Database, plan: MigrationPlan, perColumn = 20): Refusal[] {
  const out: Refusal[] = [];
  for (const t of plan.tables) {
    const cols = t.columns.filter((c) => (t.census.columns.get(c.source.name)?.texts ?? 0) > 0);
    if (cols.length === 0) continue;
    const reader = new ChunkReader(
      db,
      t,
      cols.map((c) => c.source.name),
      5000,
      { after: null, upTo: null },
      true,
    );
    const found = new Map<string, number>();
    for (let rows = reader.read(); rows !== null; rows = reader.read()) {
      for (const row of rows) {
        cols.forEach((c, i) => {
          const v = row[reader.keyWidth + i];
          if (typeof v !== "string" || !isSuspectText(v)) return;
          const keyVals = row.slice(0, reader.keyWidth);
          const raw = readRawText(db, t.source.name, c.source.name, reader.keyNames, keyVals);
          if (!raw) return;
          const reasons: string[] = [];
          if (!isUtf8(raw)) reasons.push("invalid UTF-8");
          if (raw.includes(0)) reasons.push("a NUL byte");
          const n = found.get(c.source.name) ?? 0;
          if (reasons.length === 0 || n >= perColumn) return;
          found.set(c.source.name, n + 1);
          out.push({
            table: t.source.name,
            column: c.source.name,
            key: renderKey(reader.keyNames, keyVals),
            value: `x'${raw.subarray(0, 48).toString("hex")}${raw.length > 48 ? "…" : ""}'`,
            reason: `text with ${reasons.join(" and ")}, which Postgres cannot store`,
          });
        });
      }
    }
  }
  return out;
}

/** The raw bytes of one text value, read by key. */
export function readRawText(db: BetterSqlite3.Database, table: string, column: string, keyNames: string[], keyVals: unknown[]): Buffer | null {
  // The names the rowid goes by stay bare (readers name it so when no column takes the name).
  const where = keyNames.map((k) => `${/^(rowid|_rowid_|oid)$/.test(k) ? k : quoteIdent(k)} = ?`).join(" AND ");
  const row = db.prepare(`SELECT CAST(${quoteIdent(column)} AS BLOB) AS b FROM main.${quoteIdent(table)} WHERE ${where}`).get(...keyVals) as
    | { b: Buffer | null }
    | undefined;
  return row?.b ?? null;
}
