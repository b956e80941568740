import type BetterSqlite3 from "better-sqlite3";
import { parseCreateIndex, parseCreateTable, type ParsedCreateTable } from "./sql-text.js";
import { quoteIdent } from "../ident.js";
import { sourceError } from "../errors.js";

/** One column of a SQLite table, as the PRAGMAs and the stored DDL describe it. */
export interface SourceColumn {
  name: string;
  /** Position in `PRAGMA table_xinfo`, hidden columns included. */
  cid: number;
  /** The declared type as written, `""` when none. */
  declaredType: string;
  notNull: boolean;
  /** The DEFAULT clause text, or null. */
  defaultSql: string | null;
  /** 1-based position in the primary key, 0 when not part of it. */
  pkOrdinal: number;
  /** The expression of a generated column, or null. */
  generated: { expr: string; stored: boolean } | null;
  /** COLLATE on the column (BINARY when absent). */
  collation: string | null;
  /** Column-level CHECK expressions. */
  checks: string[];
}

/** One index of a table. `origin` is `c` (CREATE INDEX), `u` (UNIQUE) or `pk`. */
export interface SourceIndex {
  name: string;
  unique: boolean;
  origin: "c" | "u" | "pk";
  partial: boolean;
  /** Key terms in order: a column name, or the SQL text of an expression. */
  terms: { column: string | null; expr: string; desc: boolean; collation: string | null }[];
  /** WHERE of a partial index. */
  where: string | null;
}

/** A foreign key; `to` is null where it names the parent's primary key implicitly. */
interface SourceForeignKey {
  id: number;
  parent: string;
  from: string[];
  to: (string | null)[];
  onUpdate: string;
  onDelete: string;
  deferred: boolean;
}

/** A table that holds rows and will be copied. */
export interface SourceTable {
  name: string;
  sql: string;
  columns: SourceColumn[];
  /** Primary key column names in key order; empty when the table has none. */
  primaryKey: string[];
  /** The column that is an alias of the rowid (`INTEGER PRIMARY KEY`), if any. */
  rowidAlias: string | null;
  withoutRowid: boolean;
  strict: boolean;
  autoincrement: boolean;
  indexes: SourceIndex[];
  foreignKeys: SourceForeignKey[];
  checks: { name: string | null; expr: string }[];
  /** The value `sqlite_sequence` holds for this table (AUTOINCREMENT), if any. */
  sequence: bigint | null;
}

/** An object the migration does not copy, and why. */
export interface SkippedObject {
  name: string;
  type: string;
  reason: string;
}

/** Everything `plan` and `migrate` need to know about a SQLite file's schema. */
export interface SourceSchema {
  tables: SourceTable[];
  views: { name: string; sql: string }[];
  /** The application's own triggers (reported; not copied to Postgres). */
  triggers: { name: string; table: string; sql: string }[];
  skipped: SkippedObject[];
  sqliteVersion: string;
  journalMode: string;
}

interface TableListRow {
  schema: string;
  name: string;
  type: string;
  ncol: number;
  wr: number;
  strict: number;
}

/**
 * The tables this project keeps in the source file for itself (the
 * changelog and its metadata). Only these: a user's table that merely starts
 * with `_sqlite2pg_` is replicated like any other.
 */
export const INTERNAL_TABLES: ReadonlySet<string> = new Set(["_sqlite2pg_changes", "_sqlite2pg_meta"]);

/** Kinds of the triggers this project creates on a table (capture, REPLACE capture, freeze). */
const OWN_TRIGGER_KINDS = ["ins", "upd", "del", "rins", "rupd", "fins", "fupd", "fdel"];

/**
 * A column's type affinity by SQLite's rules (section 3.1 of "Datatypes In
 * SQLite"), matched as SQLite matches them: ASCII letters in any case and
 * nothing else folded (so `ﬂoat` is NUMERIC, as in SQLite, not REAL). A
 * STRICT table's ANY column converts nothing: blob.
 */
export function affinity(declared: string, strict = false): "integer" | "text" | "blob" | "real" | "numeric" {
  const t = declared.replace(/[a-z]+/g, (w) => w.toUpperCase());
  if (strict && /^\s*ANY\s*$/.test(t)) return "blob";
  if (t.includes("INT")) return "integer";
  if (t.includes("CHAR") || t.includes("CLOB") || t.includes("TEXT")) return "text";
  if (t === "" || t.includes("BLOB")) return "blob";
  if (t.includes("REAL") || t.includes("FLOA") || t.includes("DOUB")) return "real";
  return "numeric";
}

/**
 * Whether a trigger is one this project created: its name is one of the
 * names it gives the triggers of that very table, and its body writes the
 * changelog or raises the freeze. A user's trigger is never taken for one,
 * whatever its name.
 */
export function isOwnTrigger(name: string, table: string, sql: string | null): boolean {
  if (!OWN_TRIGGER_KINDS.some((k) => name === `_sqlite2pg_${k}_${table}`)) return false;
  return (sql ?? "").includes('"_sqlite2pg_changes"') || (sql ?? "").includes("sqlite2pg: database frozen");
}

/** The names a table's rowid answers to, in the order they are tried. */
const ROWID_NAMES = ["rowid", "_rowid_", "oid"];

/**
 * The SQL that reads a rowid table's rowid: `rowid`, or `_rowid_` or `oid`
 * when a column of the table takes that name (a user column named `rowid`
 * hides the real rowid), or the INTEGER PRIMARY KEY column when all three
 * are taken. Throws, naming the table, when the rowid cannot be read at all.
 * Every place that reads a table's rowid uses this.
 */
export function rowidName(t: SourceTable): string {
  const taken = new Set(t.columns.map((c) => c.name.toLowerCase()));
  const free = ROWID_NAMES.find((n) => !taken.has(n));
  if (free) return free;
  if (t.rowidAlias) return quoteIdent(t.rowidAlias);
  throw sourceError(
    "ROWID_SHADOWED",
    `table ${t.name} has columns named rowid, _rowid_ and oid and no INTEGER PRIMARY KEY: its rowid cannot be read, so its rows cannot be named for change capture`,
    {
      context: { table: t.name },
      hint: "rename one of those columns, or give the table an INTEGER PRIMARY KEY",
    },
  );
}

/**
 * Read the schema of the `main` database. Runs in one read transaction so
 * the picture is consistent; it is short (catalog reads only).
 */
export function readSchema(db: BetterSqlite3.Database): SourceSchema {
  const read = db.transaction((): SourceSchema => {
    const list = db.prepare("PRAGMA main.table_list").all() as TableListRow[];
    const master = db.prepare("SELECT type, name, tbl_name AS tbl, sql FROM main.sqlite_schema").all() as {
      type: string;
      name: string;
      tbl: string;
      sql: string | null;
    }[];
    const sqlOf = new Map(master.filter((m) => m.type === "table").map((m) => [m.name, m.sql ?? ""]));
    const sequences = readSequences(db, list);
    const tables: SourceTable[] = [];
    const skipped: SkippedObject[] = [];
    const views: { name: string; sql: string }[] = [];
    for (const t of list.filter((x) => x.schema === "main")) {
      if (t.type === "view") {
        views.push({ name: t.name, sql: sqlOf.get(t.name) ?? master.find((m) => m.name === t.name)?.sql ?? "" });
        continue;
      }
      if (t.name.startsWith("sqlite_")) continue; // SQLite's own catalog tables
      if (INTERNAL_TABLES.has(t.name)) continue;
      if (t.type === "virtual") {
        skipped.push({
          name: t.name,
          type: "virtual table",
          reason: "virtual tables (FTS, R*Tree, …) hold no rows of their own; recreate them in Postgres by hand (e.g. a tsvector column)",
        });
        continue;
      }
      if (t.type === "shadow") {
        skipped.push({ name: t.name, type: "shadow table", reason: "belongs to a virtual table" });
        continue;
      }
      tables.push(readTable(db, t, sqlOf.get(t.name) ?? "", sequences));
    }
    const triggers = master
      .filter((m) => m.type === "trigger" && !isOwnTrigger(m.name, m.tbl, m.sql))
      .map((m) => ({ name: m.name, table: m.tbl, sql: m.sql ?? "" }));
    for (const tr of triggers) {
      skipped.push({
        name: tr.name,
        type: "trigger",
        reason: `trigger on ${tr.table} is not translated: its effects are copied as data; recreate it in Postgres if the application relies on it`,
      });
    }
    const sqliteVersion = (db.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v;
    const journalMode = String(db.pragma("journal_mode", { simple: true }));
    return { tables, views, triggers, skipped, sqliteVersion, journalMode };
  });
  return read.deferred();
}

function readSequences(db: BetterSqlite3.Database, list: TableListRow[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  if (!list.some((t) => t.schema === "main" && t.name === "sqlite_sequence")) return out;
  const rows = db.prepare("SELECT name, seq FROM main.sqlite_sequence").safeIntegers(true).all() as { name: string; seq: bigint }[];
  for (const r of rows) out.set(r.name, BigInt(r.seq));
  return out;
}

interface XInfoRow {
  cid: number;
  name: string;
  type: string;
  notnull: number;
  dflt_value: string | null;
  pk: number;
  hidden: number;
}

function readTable(db: BetterSqlite3.Database, t: TableListRow, sql: string, sequences: Map<string, bigint>): SourceTable {
  const q = quoteIdent(t.name);
  let parsed: ParsedCreateTable;
  try {
    parsed = parseCreateTable(sql);
  } catch (e) {
    throw sourceError("SCHEMA_UNPARSEABLE", `cannot read the CREATE TABLE statement of table ${t.name}`, {
      context: { table: t.name },
      cause: e,
      hint: "report this statement to the sqlite2pg maintainers; it is stored in sqlite_schema",
    });
  }
  const parsedCols = new Map(parsed.columns.map((c) => [c.name.toLowerCase(), c]));
  const xinfo = db.prepare(`PRAGMA main.table_xinfo(${q})`).all() as XInfoRow[];
  const columns: SourceColumn[] = xinfo.map((c) => {
    const p = parsedCols.get(c.name.toLowerCase());
    return {
      name: c.name,
      cid: c.cid,
      declaredType: c.type ?? "",
      notNull: c.notnull === 1,
      defaultSql: c.dflt_value,
      pkOrdinal: c.pk,
      generated: c.hidden === 2 || c.hidden === 3 ? (p?.generated ?? { expr: "", stored: c.hidden === 3 }) : null,
      collation: p?.collate ?? null,
      checks: p?.checks ?? [],
    };
  });
  const primaryKey = columns
    .filter((c) => c.pkOrdinal > 0)
    .sort((a, b) => a.pkOrdinal - b.pkOrdinal)
    .map((c) => c.name);
  const indexes = readIndexes(db, t.name, columns);
  const withoutRowid = t.wr === 1;
  // In a rowid table a primary key that is not the rowid gets an index of
  // origin "pk"; a single INTEGER PRIMARY KEY without one is the rowid itself.
  const rowidAlias = !withoutRowid && primaryKey.length === 1 && !indexes.some((i) => i.origin === "pk") ? primaryKey[0]! : null;
  const fkRows = db.prepare(`PRAGMA main.foreign_key_list(${q})`).all() as {
    id: number;
    seq: number;
    table: string;
    from: string;
    to: string | null;
    on_update: string;
    on_delete: string;
  }[];
  const foreignKeys: SourceForeignKey[] = [];
  for (const r of fkRows) {
    let fk = foreignKeys.find((f) => f.id === r.id);
    if (!fk) {
      fk = { id: r.id, parent: r.table, from: [], to: [], onUpdate: r.on_update, onDelete: r.on_delete, deferred: false };
      foreignKeys.push(fk);
    }
    fk.from.push(r.from);
    fk.to.push(r.to);
  }
  return {
    name: t.name,
    sql,
    columns,
    primaryKey,
    rowidAlias,
    withoutRowid,
    strict: t.strict === 1,
    autoincrement: parsed.columns.some((c) => c.autoincrement),
    indexes,
    foreignKeys,
    checks: parsed.checks,
    sequence: sequences.get(t.name) ?? null,
  };
}

function readIndexes(db: BetterSqlite3.Database, table: string, columns: SourceColumn[]): SourceIndex[] {
  const list = db.prepare(`PRAGMA main.index_list(${quoteIdent(table)})`).all() as {
    name: string;
    unique: number;
    origin: "c" | "u" | "pk";
    partial: number;
  }[];
  const out: SourceIndex[] = [];
  for (const ix of list) {
    const info = db.prepare(`PRAGMA main.index_xinfo(${quoteIdent(ix.name)})`).all() as {
      seqno: number;
      cid: number;
      name: string | null;
      desc: number;
      coll: string;
      key: number;
    }[];
    const keyCols = info.filter((i) => i.key === 1);
    let terms: SourceIndex["terms"];
    let where: string | null = null;
    if (ix.origin === "c") {
      const row = db.prepare("SELECT sql FROM main.sqlite_schema WHERE type = 'index' AND name = ?").get(ix.name) as { sql: string | null } | undefined;
      const parsed = parseCreateIndex(row?.sql ?? "");
      where = parsed.where;
      terms = parsed.columns.map((c, i) => ({
        column: c.column !== null ? resolveColumn(columns, c.column) : null,
        expr: c.expr,
        desc: c.desc,
        collation: c.collate ?? (keyCols[i] && keyCols[i].coll !== "BINARY" ? keyCols[i].coll : null),
      }));
    } else {
      terms = keyCols.map((k) => ({
        column: k.name,
        expr: k.name === null ? "" : quoteIdent(k.name),
        desc: k.desc === 1,
        collation: k.coll !== "BINARY" ? k.coll : null,
      }));
    }
    out.push({ name: ix.name, unique: ix.unique === 1, origin: ix.origin, partial: ix.partial === 1, terms, where });
  }
  return out;
}

function resolveColumn(columns: SourceColumn[], name: string): string | null {
  const exact = columns.find((c) => c.name === name) ?? columns.find((c) => c.name.toLowerCase() === name.toLowerCase());
  return exact?.name ?? null;
}
