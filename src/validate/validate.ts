/**
 * `validate`: compare SQLite and Postgres at any time. Row counts always;
 * with `full`, each table's digest on both sides (every row's Postgres text,
 * hashed, summed: order-independent), and for a table that differs, the
 * keys of the rows that differ — found by halving rowid ranges whose
 * digests differ, not by shipping whole tables.
 */
import type BetterSqlite3 from "better-sqlite3";
import type pg from "pg";
import type { MigrationPlan, TablePlan } from "../plan/plan.js";
import { qualified, quoteIdent } from "../ident.js";
import { ChunkReader, rowidBounds } from "../sqlite/reader.js";
import { INTERNAL_TABLES, readSchema, rowidName } from "../sqlite/schema.js";
import { ROWID_COLUMN } from "../convert/row-encoder.js";
import { type Digest, digestRowSql, pgDigest, rangeSql, type RowHash, rowHashFor, rowRecorder, sameDigest, sqliteDigest } from "./digest.js";

/** One table's result. */
export interface TableResult {
  table: string;
  sqlite_rows: number;
  pg_rows: number;
  digest?: "equal" | "differs";
  /** Keys of rows that differ: missing in Postgres, extra in Postgres, or with other values. */
  differences?: { key: string; kind: "missing in postgres" | "extra in postgres" | "values differ" }[];
  note?: string;
}

/** What `validate` reports. */
export interface ValidationReport {
  mode: "counts" | "full";
  ok: boolean;
  rows: number;
  seconds: number;
  tables: TableResult[];
  /** Tables and columns that exist on one side only (SQLite now, the plan, Postgres), named. */
  schema: string[];
}

const LEAF_ROWS = 512;
const MAX_KEYS = 100;

/** The Postgres column holding a table's rowid, if it has one. */
async function rowidColumn(c: pg.ClientBase, plan: MigrationPlan, t: TablePlan): Promise<string | null> {
  if (t.readOrder.kind !== "rowid") return null;
  if (t.source.rowidAlias) return t.columns.find((x) => x.source.name === t.source.rowidAlias)!.name;
  const r = await c.query("SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name = $3", [
    plan.schema,
    t.name,
    ROWID_COLUMN,
  ]);
  return r.rowCount ? ROWID_COLUMN : null;
}

/** How {@link validate} may hash SQLite's side. */
export interface ValidateOptions {
  /**
   * SQLite's digests of the given tables (indexes in the plan), in that
   * order, computed elsewhere (worker threads on the same file); null: not
   * there, hash them in this thread.
   */
  sqliteDigests?: (tables: number[], hash: RowHash) => Promise<Digest[] | null>;
}

/** Compare every table of the plan. */
export async function validate(
  db: BetterSqlite3.Database,
  c: pg.ClientBase,
  plan: MigrationPlan,
  mode: "counts" | "full",
  opts: ValidateOptions = {},
): Promise<ValidationReport> {
  const t0 = Date.now();
  let rows = 0;
  const schema = await schemaDifferences(db, c, plan);
  const missing = new Set(schema.flatMap((d) => (d.missing ? [d.table] : [])));
  const checked = plan.tables.filter((t) => !missing.has(t.source.name)); // the others are named in `schema`: nothing to count on one side
  const hash = mode === "full" ? await rowHashFor(c) : null;
  // Postgres works through its tables, one query after the other on its
  // connection, while this process works through SQLite's: the two sides
  // overlap across all tables, not table by table. (A digest counts its rows too.)
  let stop = false;
  const pgSide = (async () => {
    const out: (Digest | number)[] = [];
    for (const t of checked) {
      if (stop) break;
      if (hash) out.push(await pgDigest(c, plan, t, hash));
      else out.push(Number((await c.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${qualified(plan.schema, t.name)}`)).rows[0]!.n));
    }
    return out;
  })();
  pgSide.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
  const sqliteSide: { rows: number; digest: Digest | null }[] = [];
  try {
    const elsewhere =
      hash && opts.sqliteDigests
        ? await opts.sqliteDigests(
            checked.map((t) => plan.tables.indexOf(t)),
            hash,
          )
        : null;
    for (const [i, t] of checked.entries()) {
      const n = Number((db.prepare(`SELECT count(*) AS n FROM main.${quoteIdent(t.source.name)}`).get() as { n: number }).n);
      sqliteSide.push({ rows: n, digest: hash ? (elsewhere?.[i] ?? (await sqliteDigest(db, t, hash))) : null });
    }
  } catch (e) {
    // The caller gets the connection back idle: no query of ours still running or to come.
    stop = true;
    await pgSide.catch(() => undefined);
    throw e;
  }
  const pgResults = await pgSide;
  const tables: TableResult[] = [];
  for (const [i, t] of checked.entries()) {
    const p = pgResults[i]!;
    const s = sqliteSide[i]!;
    rows += s.rows;
    const res: TableResult = { table: t.source.name, sqlite_rows: s.rows, pg_rows: typeof p === "number" ? p : p.rows };
    if (s.digest && typeof p !== "number") res.digest = sameDigest(p, s.digest) ? "equal" : "differs";
    tables.push(res);
  }
  for (const [i, res] of tables.entries()) if (hash && res.digest === "differs") Object.assign(res, await differences(db, c, plan, checked[i]!, hash));
  const ok = schema.length === 0 && tables.every((t) => t.sqlite_rows === t.pg_rows && t.digest !== "differs");
  return { mode, ok, rows, seconds: (Date.now() - t0) / 1000, tables, schema: schema.map((d) => d.text) };
}

/**
 * The schema as it is now against the plan and Postgres: a table or column
 * SQLite has that the plan or Postgres lacks (a schema change not mirrored),
 * or the reverse, is a difference — row checksums over the plan's columns
 * alone would call such tables equal.
 */
async function schemaDifferences(
  db: BetterSqlite3.Database,
  c: pg.ClientBase,
  plan: MigrationPlan,
): Promise<{ table: string; missing: boolean; text: string }[]> {
  const out: { table: string; missing: boolean; text: string }[] = [];
  const live = readSchema(db).tables;
  for (const l of live) {
    if (INTERNAL_TABLES.has(l.name)) continue;
    if (!plan.tables.some((t) => t.source.name === l.name))
      out.push({ table: l.name, missing: false, text: `table ${l.name} is in SQLite but not in Postgres (not replicated)` });
  }
  const pgCols = await c.query<{ table_name: string; column_name: string }>(
    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1",
    [plan.schema],
  );
  for (const t of plan.tables) {
    const l = live.find((x) => x.name === t.source.name);
    const inPg = new Set(pgCols.rows.filter((r) => r.table_name === t.name).map((r) => r.column_name));
    if (!l) out.push({ table: t.source.name, missing: true, text: `table ${t.source.name} is in Postgres but not in SQLite (dropped or renamed)` });
    if (!inPg.size)
      out.push({ table: t.source.name, missing: true, text: `table ${t.source.name} is in SQLite but its Postgres table ${t.name} does not exist` });
    if (!l || !inPg.size) continue;
    for (const col of l.columns) {
      const planned = t.columns.find((x) => x.source.name === col.name);
      if (!planned) out.push({ table: t.source.name, missing: false, text: `column ${t.source.name}.${col.name} is in SQLite but not in Postgres` });
    }
    for (const col of t.columns) {
      if (!l.columns.some((x) => x.name === col.source.name))
        out.push({ table: t.source.name, missing: false, text: `column ${t.source.name}.${col.source.name} is in Postgres but not in SQLite` });
      else if (!inPg.has(col.name))
        out.push({
          table: t.source.name,
          missing: false,
          text: `column ${t.source.name}.${col.source.name} is in SQLite but not in Postgres (${t.name}.${col.name} is missing there)`,
        });
    }
    for (const name of inPg) {
      if (name !== ROWID_COLUMN && !t.columns.some((x) => x.name === name))
        out.push({ table: t.source.name, missing: false, text: `column ${t.name}.${name} is in Postgres but not in SQLite` });
    }
  }
  return out;
}

/** The keys of the rows of a table that differ, found by halving rowid ranges (or a note why they cannot be named). */
export async function differences(
  db: BetterSqlite3.Database,
  c: pg.ClientBase,
  plan: MigrationPlan,
  t: TablePlan,
  hash: RowHash,
): Promise<Pick<TableResult, "differences" | "note">> {
  const col = await rowidColumn(c, plan, t);
  if (col) return { differences: await localise(db, c, plan, t, col, hash) };
  return { note: "no rowid column in Postgres to localise by: the table differs as a whole" };
}

/** Find the keys of differing rows by halving rowid ranges whose digests differ. */
async function localise(
  db: BetterSqlite3.Database,
  c: pg.ClientBase,
  plan: MigrationPlan,
  t: TablePlan,
  col: string,
  hash: RowHash,
): Promise<TableResult["differences"]> {
  const out: NonNullable<TableResult["differences"]> = [];
  const rowid = rowidName(t.source);
  const lo = rowidBounds(db, t.source.name, rowid);
  const pr = (await c.query(`SELECT min(${quoteIdent(col)})::text AS lo, max(${quoteIdent(col)})::text AS hi FROM ${qualified(plan.schema, t.name)}`)).rows[0];
  const bounds = [lo.lo, lo.hi, pr.lo === null ? null : BigInt(pr.lo), pr.hi === null ? null : BigInt(pr.hi)].filter((x): x is bigint => x !== null);
  if (bounds.length === 0) return out;
  const min = bounds.reduce((a, b) => (a < b ? a : b));
  const max = bounds.reduce((a, b) => (a > b ? a : b));
  const queue: { after: bigint; upTo: bigint }[] = [{ after: min - 1n, upTo: max }];
  while (queue.length && out.length < MAX_KEYS) {
    const r = queue.shift()!;
    const [p, s] = await Promise.all([pgDigest(c, plan, t, hash, { column: col, ...r }), sqliteDigest(db, t, hash, r)]);
    if (sameDigest(p, s)) continue;
    if (Math.max(p.rows, s.rows) <= LEAF_ROWS || r.upTo - r.after <= 1n) {
      out.push(...(await compareRows(db, c, plan, t, col, r)));
      continue;
    }
    const mid = r.after + (r.upTo - r.after) / 2n;
    queue.push({ after: r.after, upTo: mid }, { after: mid, upTo: r.upTo });
  }
  return out.slice(0, MAX_KEYS);
}

async function compareRows(db: BetterSqlite3.Database, c: pg.ClientBase, plan: MigrationPlan, t: TablePlan, col: string, r: { after: bigint; upTo: bigint }) {
  const reader = new ChunkReader(
    db,
    t,
    t.columns.map((x) => x.source.name),
    LEAF_ROWS * 4,
    r,
    true,
  );
  const record = rowRecorder(t.columns);
  const mine = new Map<string, string>();
  for (let rows = reader.read(); rows; rows = reader.read()) for (const row of rows) mine.set(String(row[0]), record(row, 1));
  const theirs = new Map<string, string>();
  const q = await c.query(
    `SELECT ${quoteIdent(col)}::text AS k, ${digestRowSql(t)} AS rec FROM ${qualified(plan.schema, t.name)} AS t WHERE ${rangeSql(`t.${quoteIdent(col)}`, r)}`,
  );
  for (const row of q.rows) theirs.set(row.k, row.rec);
  const keyName = t.source.rowidAlias ?? rowidName(t.source);
  const out: NonNullable<TableResult["differences"]> = [];
  for (const [k, v] of mine) {
    if (!theirs.has(k)) out.push({ key: `${keyName}=${k}`, kind: "missing in postgres" });
    else if (theirs.get(k) !== v) out.push({ key: `${keyName}=${k}`, kind: "values differ" });
  }
  for (const k of theirs.keys()) if (!mine.has(k)) out.push({ key: `${keyName}=${k}`, kind: "extra in postgres" });
  return out;
}
