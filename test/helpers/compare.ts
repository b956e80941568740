/**
 * An independent value-by-value check of a migrated database: every row of
 * every SQLite table against the Postgres table, read with no type parsing
 * (Postgres' own text output), compared per Postgres type. Rows are compared
 * as sorted multisets, so tables without a key (duplicates and all) work.
 * Written separately from the product's own validation on purpose.
 */
import Database from "better-sqlite3";
import type pg from "pg";

const raw = { getTypeParser: () => (v: string) => v };

function bits(x: number): string {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(x);
  return b.toString("hex");
}

function num(x: string | number | bigint): string {
  if (typeof x === "bigint") return x.toString();
  const n = typeof x === "number" ? x : Number(x);
  if (typeof x === "string" && !/[.eE]/.test(x) && /^-?\d+$/.test(x)) return BigInt(x).toString();
  if (Number.isInteger(n) && Math.abs(n) < 2 ** 63) return BigInt(n).toString();
  return String(n);
}

/** Microseconds since the epoch, from ISO text (any of the shapes SQLite apps write) or a JS Date millis. */
function micros(text: string): string {
  const m = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?)?\s*(Z|[+-]\d\d(?::?\d\d)?)?$/.exec(text.trim());
  if (!m) return `unparsed:${text}`;
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", zone] = m;
  const t = new Date(0);
  t.setUTCFullYear(+y!, +mo! - 1, +d!);
  t.setUTCHours(+h, +mi, +s, 0);
  let ms = t.getTime();
  if (zone && zone !== "Z") {
    const sign = zone[0] === "-" ? -1 : 1;
    const hh = +zone.slice(1, 3);
    const mm = zone.length > 3 ? +zone.slice(-2) : 0;
    ms -= sign * (hh * 60 + mm) * 60000;
  }
  return (BigInt(ms) * 1000n + BigInt((frac + "000000").slice(0, 6))).toString();
}

function pgNorm(type: string, v: string | null): string {
  if (v === null) return "∅";
  if (type === "int8" || type === "int4" || type === "int2") return BigInt(v).toString();
  if (type === "float8") return bits(Number(v));
  if (type === "numeric") return num(v);
  if (type === "bool") return v === "t" ? "1" : "0";
  if (type === "bytea") return v.slice(2);
  if (type === "timestamp" || type === "timestamptz") return micros(v);
  return `s:${v}`;
}

function sqliteNorm(type: string, v: unknown): string {
  if (v === null) return "∅";
  if (type === "int8" || type === "int4" || type === "int2") return BigInt(v as bigint).toString();
  if (type === "float8") return bits(Number(v));
  if (type === "numeric") return num(v as number | bigint);
  if (type === "bool") return ["1", "true", "t", "yes"].includes(String(v).toLowerCase()) ? "1" : "0";
  if (type === "bytea") return (v as Buffer).toString("hex");
  if (type === "timestamp" || type === "timestamptz") {
    if (typeof v === "bigint") {
      const n = Number(v);
      return (BigInt(Math.abs(n) < 1e11 ? n * 1000 : n) * 1000n).toString();
    }
    if (typeof v === "number") return (BigInt(Math.floor(v * 86400000 + 0.5) - 210866760000000) * 1000n).toString();
    return micros(v as string);
  }
  if (typeof v === "bigint") return `s:${v.toString()}`;
  if (typeof v === "number") return `s:${Object.is(v, -0) ? "-0" : String(v)}`;
  return `s:${v as string}`;
}

/** A difference found, for the assertion message. */
export interface Difference {
  table: string;
  detail: string;
}

/**
 * Compare every table of `sqlitePath` with its Postgres counterpart in
 * `schema` (names matched case-insensitively). Returns the differences; an
 * empty list means exact.
 */
export async function compareDatabases(
  sqlitePath: string,
  client: pg.Client,
  schema = "public",
  opts: { ignoreColumns?: string[] } = { ignoreColumns: ["_sqlite2pg_rowid"] },
): Promise<{ tables: number; rows: number; differences: Difference[] }> {
  const db = new Database(sqlitePath, { readonly: true });
  const diffs: Difference[] = [];
  let rows = 0;
  const tables = (
    db
      .prepare(
        "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT IN ('_sqlite2pg_changes', '_sqlite2pg_meta')",
      )
      .all() as { name: string }[]
  ).map((r) => r.name);
  try {
    for (const name of tables) {
      const rel = await client.query({
        text: "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND lower(c.relname) = lower($2) AND c.relkind = 'r'",
        values: [schema, name],
      });
      if (rel.rowCount !== 1) {
        diffs.push({ table: name, detail: "missing in Postgres" });
        continue;
      }
      const pgName = rel.rows[0].relname as string;
      const cols = (
        await client.query({
          text: "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
          values: [schema, pgName],
        })
      ).rows.filter((c: { attname: string }) => !(opts.ignoreColumns ?? []).includes(c.attname)) as { attname: string; typname: string }[];
      const srcCols = (db.prepare(`SELECT name FROM pragma_table_xinfo(?)`).all(name) as { name: string }[]).map((r) => r.name);
      if (srcCols.length !== cols.length) {
        diffs.push({ table: name, detail: `${srcCols.length} columns in SQLite, ${cols.length} in Postgres` });
        continue;
      }
      const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
      const sqliteRows = db
        .prepare(`SELECT ${srcCols.map(q).join(", ")} FROM ${q(name)}`)
        .raw(true)
        .safeIntegers(true)
        .all() as unknown[][];
      await client.query("SET extra_float_digits = 3; SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET bytea_output = 'hex'");
      const pgRows = (
        await client.query({ text: `SELECT ${cols.map((c) => q(c.attname)).join(", ")} FROM ${q(schema)}.${q(pgName)}`, rowMode: "array", types: raw })
      ).rows as (string | null)[][];
      const a = sqliteRows.map((r) => r.map((v, i) => sqliteNorm(cols[i]!.typname, v)).join("\u0001")).sort();
      const b = pgRows.map((r) => r.map((v, i) => pgNorm(cols[i]!.typname, v)).join("\u0001")).sort();
      rows += a.length;
      if (a.length !== b.length) {
        diffs.push({ table: name, detail: `${a.length} rows in SQLite, ${b.length} in Postgres` });
        continue;
      }
      for (let i = 0; i < a.length; i++) {
        if (a[i] !== b[i]) {
          diffs.push({ table: name, detail: `row differs: SQLite ${JSON.stringify(a[i])} vs Postgres ${JSON.stringify(b[i])}` });
          break;
        }
      }
    }
  } finally {
    db.close();
  }
  return { tables: tables.length, rows, differences: diffs };
}
