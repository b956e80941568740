/**
 * The reverse apply of the fallback: the changes the application made in
 * PostgreSQL after the cutover, captured by key (src/postgres/capture.ts),
 * written into the SQLite file so it stays a usable way back.
 *
 * One batch:
 *   1. In one REPEATABLE READ snapshot of PostgreSQL: the pending changes
 *      (oldest first, up to the limit), then, per table, the current row of
 *      every key they name — each column as text under fixed settings and as
 *      its canonical text (src/convert/canonical.ts). A TRUNCATE, or any
 *      write to a table without a key, reads the whole table instead.
 *   2. One SQLite write transaction (the freeze lets only it through): the
 *      rows of those keys are deleted, then the current rows inserted again,
 *      each value turned back into the form the file used (./inverse.ts);
 *      a value the file held that is still the same value is kept as it was
 *      spelled. A rowid table keeps its rows' rowids.
 *   3. Then, and only then, those change rows are deleted in PostgreSQL.
 *
 * Why the whole key set is deleted before any row is inserted: a transaction
 * in PostgreSQL may swap unique values between rows; inserting one at a time
 * would trip SQLite's unique index half way. A unique value moved from a row
 * whose change lies beyond this batch still conflicts: the batch is read
 * again, twice as large, until it holds every visible change; a conflict
 * then is real (SQLite's index is stricter, e.g. NOCASE) and refused.
 *
 * A crash anywhere repeats at most the batch: applying by key from the
 * current row is idempotent, and the changes are only deleted after the
 * SQLite commit.
 */
import type BetterSqlite3 from "better-sqlite3";
import type pg from "pg";
import { Sqlite2pgError } from "../errors.js";
import { qualified, quoteIdent } from "../ident.js";
import { canonicalSql, canonicalWriter } from "../convert/canonical.js";
import { ROWID_COLUMN } from "../convert/row-encoder.js";
import type { ColumnPlan, MigrationPlan, TablePlan } from "../plan/model.js";
import { renderKey } from "../plan/model.js";
import { ackPgChanges, analyzePgChanges, type PgCaptureTable, type PgChange, readPgChanges } from "../postgres/capture.js";
import { crashPoint } from "../observe/crash-points.js";
import { META } from "../sqlite/capture.js";
import { FALLBACK_APPLY_KEY, withWriteWait } from "../sqlite/freeze.js";
import type { ColumnForm } from "./forms.js";
import { InverseRefused, inverseValue, keepsExisting } from "./inverse.js";

/**
 * The batch's snapshot and the settings under which every value's text is
 * read (the same whatever the server's defaults): one round trip, as one
 * simple query of several statements.
 */
const BEGIN_READ = [
  "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
  "SET LOCAL DateStyle = 'ISO, YMD'",
  "SET LOCAL TimeZone = 'UTC'",
  "SET LOCAL extra_float_digits = 1",
  "SET LOCAL bytea_output = 'hex'",
  "SET LOCAL IntervalStyle = 'postgres'",
].join("; ");

/** One replicated table as the fallback sees it. */
export interface FallbackTable {
  plan: TablePlan;
  /** The Postgres key (the primary key the plan made), or null: then every write resyncs the whole table. */
  key: ColumnPlan[] | null;
  /** The columns written in SQLite (not SQLite's generated columns). */
  columns: ColumnPlan[];
}

/** The tables of a plan, with their keys. */
export function fallbackTables(plan: MigrationPlan): FallbackTable[] {
  return plan.tables.map((t) => {
    const pk = t.constraints.primaryKey;
    const key = pk && !pk.includes(ROWID_COLUMN) ? pk.map((n) => t.columns.find((c) => c.name === n)) : null;
    return {
      plan: t,
      key: key?.every((c): c is ColumnPlan => c !== undefined) ? key : null,
      columns: t.columns.filter((c) => c.name !== ROWID_COLUMN && c.source.generated === null),
    };
  });
}

/** What the PostgreSQL capture is installed with: each table and its key (none: whole-table capture). */
export function captureTables(tables: FallbackTable[]): PgCaptureTable[] {
  return tables.map((t) => ({ name: t.plan.name, key: t.key?.map((c) => c.name) ?? [] }));
}

/** Forms of every column, by table (Postgres name) then column (Postgres name). */
export type Forms = Record<string, Record<string, ColumnForm>>;

/** A value or a key SQLite cannot hold as PostgreSQL has it: the fallback pauses on it. */
function refusedError(table: string, column: string, key: string, reason: string): Sqlite2pgError {
  return new Sqlite2pgError("validation", "FALLBACK_VALUE_REFUSED", `fallback paused: ${table}.${column} at ${key}: ${reason}`, {
    context: { table, column, key },
    hint: "the SQLite file cannot hold this value in the form its column uses; change the value in PostgreSQL (the fallback resumes by itself), or `sqlite2pg finish` to end the fallback",
    retryable: true,
  });
}

/** A unique conflict in SQLite that a larger batch may resolve. */
class ApplyConflict extends Error {
  constructor(
    readonly table: string,
    readonly key: string,
    readonly sqliteMessage: string,
  ) {
    super(`${table} at ${key}: ${sqliteMessage}`);
  }
}

interface FetchedRow {
  /** Canonical text of each key column (null for NULL). */
  keyCanon: (string | null)[];
  keyText: (string | null)[];
  /** The row as it is now, or null when it is gone. */
  row: { text: (string | Buffer | null)[]; canon: (string | null)[] } | null;
}

interface TableWork {
  t: FallbackTable;
  resync: boolean;
  keys: Map<string, (string | null)[]>;
  /** A key an UPDATE moved a row to → the key it had: the row keeps its spelling and rowid across the move. */
  movedFrom: Map<string, string>;
  fetched: FetchedRow[];
  /** Whole-table rows (resync). */
  all: { text: (string | Buffer | null)[]; canon: (string | null)[] }[];
}

function selectColumns(t: FallbackTable, alias: string): string {
  return t.columns
    .map((c, i) => {
      const e = `${alias}.${quoteIdent(c.name)}`;
      return `${c.kind === "bytea" ? e : `${e}::text`} AS v${i}, ${canonicalSql(e, c)} AS c${i}`;
    })
    .join(", ");
}

function rowOf(t: FallbackTable, r: Record<string, unknown>): { text: (string | Buffer | null)[]; canon: (string | null)[] } {
  return {
    text: t.columns.map((_, i) => r[`v${i}`] as string | Buffer | null),
    canon: t.columns.map((_, i) => r[`c${i}`] as string | null),
  };
}

async function fetchKeys(c: pg.ClientBase, schema: string, w: TableWork): Promise<void> {
  const key = w.t.key!;
  const keys = [...w.keys.values()];
  const arrays = key.map((_, j) => keys.map((k) => k[j] ?? null));
  const u = key.map((_, j) => `k${j}`);
  const cast = (j: number) => `u.${u[j]}::${key[j]!.type.sql}`;
  const sql = `SELECT ${key.map((kc, j) => `${canonicalSql(cast(j), kc)} AS kc${j}, u.${u[j]} AS kt${j}`).join(", ")}, (t.ctid IS NOT NULL) AS present, ${selectColumns(w.t, "t")}
    FROM unnest(${key.map((_, j) => `$${j + 1}::text[]`).join(", ")}) WITH ORDINALITY AS u(${u.join(", ")}, i)
    LEFT JOIN ${qualified(schema, w.t.plan.name)} AS t ON ${key.map((kc, j) => `t.${quoteIdent(kc.name)} = ${cast(j)}`).join(" AND ")}
    ORDER BY u.i`;
  const r = await c.query(sql, arrays);
  w.fetched = r.rows.map((x) => ({
    keyCanon: key.map((_, j) => x[`kc${j}`] as string | null),
    keyText: key.map((_, j) => x[`kt${j}`] as string | null),
    row: x.present ? rowOf(w.t, x) : null,
  }));
}

async function fetchAll(c: pg.ClientBase, schema: string, w: TableWork): Promise<void> {
  const r = await c.query(`SELECT ${selectColumns(w.t, "t")} FROM ${qualified(schema, w.t.plan.name)} AS t`);
  w.all = r.rows.map((x) => rowOf(w.t, x));
}

const NUMERIC_KINDS = new Set(["bigint", "double precision", "numeric"]);

/** A key for messages, as PostgreSQL prints it: `id=5`, `(a,b)=('x',2)`. */
function keyLabel(key: ColumnPlan[], texts: (string | null)[]): string {
  return renderKey(
    key.map((k) => k.name),
    texts.map((t, j) => (t !== null && NUMERIC_KINDS.has(key[j]!.kind) ? { toString: () => t } : t)),
  );
}

/** What one batch did. */
export interface BatchResult {
  changes: number;
  /** Whether the batch held every visible change (false: more are waiting). */
  drained: boolean;
}

/** Prepared statements of one table in the SQLite writer connection. */
interface SqliteTable {
  find: BetterSqlite3.Statement | null;
  delById: BetterSqlite3.Statement;
  insert: BetterSqlite3.Statement;
  insertWithRowid: BetterSqlite3.Statement | null;
  deleteAll: BetterSqlite3.Statement;
}

/** The reverse apply, bound to the daemon's SQLite writer connection and one plan. */
export class ReverseApplier {
  private readonly tables: Map<string, FallbackTable>;
  private readonly stmts = new Map<string, SqliteTable>();

  constructor(
    private readonly writer: BetterSqlite3.Database,
    private readonly plan: MigrationPlan,
    private readonly forms: Forms,
  ) {
    this.tables = new Map(fallbackTables(plan).map((t) => [t.plan.name, t]));
  }

  private sql(t: FallbackTable): SqliteTable {
    let s = this.stmts.get(t.plan.name);
    if (s) return s;
    const name = `main.${quoteIdent(t.plan.source.name)}`;
    const rowid = !t.plan.source.withoutRowid;
    const cols = t.columns.map((c) => quoteIdent(c.source.name));
    const marks = cols.map(() => "?").join(", ");
    s = {
      find: t.key
        ? this.writer.prepare(
            `SELECT ${rowid ? '_rowid_ AS "$rowid", ' : ""}* FROM ${name} WHERE ${t.key.map((k) => `${quoteIdent(k.source.name)} = ?`).join(" AND ")}`,
          )
        : null,
      delById: rowid
        ? this.writer.prepare(`DELETE FROM ${name} WHERE _rowid_ = ?`)
        : this.writer.prepare(`DELETE FROM ${name} WHERE ${t.plan.source.primaryKey.map((k) => `${quoteIdent(k)} = ?`).join(" AND ")}`),
      insert: this.writer.prepare(`INSERT INTO ${name} (${cols.join(", ")}) VALUES (${marks})`),
      insertWithRowid:
        rowid && !t.plan.source.rowidAlias ? this.writer.prepare(`INSERT INTO ${name} (_rowid_, ${cols.join(", ")}) VALUES (?, ${marks})`) : null,
      deleteAll: this.writer.prepare(`DELETE FROM ${name}`),
    };
    s.find?.safeIntegers(true);
    this.stmts.set(t.plan.name, s);
    return s;
  }

  /**
   * Apply one batch of up to `limit` changes; grows the batch while a unique
   * conflict may come from a change beyond it. Returns what was applied.
   */
  async applyBatch(c: pg.Client, limit: number): Promise<BatchResult> {
    for (let n = limit; ; n *= 2) {
      try {
        return await this.tryBatch(c, n);
      } catch (e) {
        if (!(e instanceof ApplyConflict)) throw e;
        if (e instanceof ApplyConflict && (this.lastDrained || n > 10_000_000)) {
          throw new Sqlite2pgError(
            "validation",
            "FALLBACK_CONFLICT",
            `fallback paused: SQLite refuses ${e.table} at ${e.key}: ${e.sqliteMessage} — SQLite's constraint is stricter than PostgreSQL's (a collation such as NOCASE, an expression or partial index)`,
            {
              context: { table: e.table, key: e.key },
              hint: "change the conflicting rows in PostgreSQL so SQLite's unique indexes hold them too (the fallback resumes by itself), or `sqlite2pg finish`",
              retryable: true,
            },
          );
        }
      }
    }
  }

  private lastDrained = false;
  /** Whether this applier has had the change table analysed (see {@link analyzePgChanges}). */
  private analysed = false;

  private async tryBatch(c: pg.Client, limit: number): Promise<BatchResult> {
    const schema = this.plan.schema;
    const work = new Map<string, TableWork>();
    let changes: PgChange[];
    await c.query(BEGIN_READ);
    try {
      changes = await readPgChanges(c, schema, limit);
      for (const ch of changes) {
        const t = this.tables.get(ch.table);
        if (!t) continue; // a table no longer replicated: nothing to write
        let w = work.get(ch.table);
        if (!w) {
          w = { t, resync: false, keys: new Map(), movedFrom: new Map(), fetched: [], all: [] };
          work.set(ch.table, w);
        }
        if (ch.op === "T" || !ch.key || !t.key) w.resync = true;
        else w.keys.set(JSON.stringify(ch.key), ch.key);
      }
      // A key-changing UPDATE is captured as D(old key) and I(new key), one after the other in one statement.
      for (let i = 1; i < changes.length; i++) {
        const d = changes[i - 1]!;
        const n = changes[i]!;
        if (d.op === "D" && n.op === "I" && d.table === n.table && d.txid === n.txid && BigInt(n.id) === BigInt(d.id) + 1n && d.key && n.key)
          work.get(n.table)?.movedFrom.set(JSON.stringify(n.key), JSON.stringify(d.key));
      }
      for (const w of work.values()) {
        if (w.resync) await fetchAll(c, schema, w);
        else if (w.keys.size) await fetchKeys(c, schema, w);
      }
      await c.query("COMMIT");
    } catch (e) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw e;
    }
    this.lastDrained = changes.length < limit;
    if (changes.length === 0) return { changes: 0, drained: true };
    this.writeSqlite([...work.values()]);
    // A crash here applies the batch again after a restart: by key, from the current rows, so it lands the same.
    crashPoint("fallback-applied");
    await ackPgChanges(
      c,
      changes.map((x) => x.id),
    );
    // A full batch means a backlog: the change table's statistics, once, so the next reads go by its index.
    if (!this.analysed && changes.length >= limit) {
      this.analysed = true;
      await analyzePgChanges(c);
    }
    return { changes: changes.length, drained: this.lastDrained };
  }

  /** Step 2: one SQLite write transaction, let through the freeze by the fallback's key. */
  private writeSqlite(work: TableWork[]): void {
    const db = this.writer;
    const tx = db.transaction(() => {
      db.prepare(`INSERT OR REPLACE INTO ${META} (key, value) VALUES (?, 1)`).run(FALLBACK_APPLY_KEY);
      for (const w of work) {
        if (w.resync) this.resync(w);
        else this.applyKeys(w);
      }
      db.prepare(`DELETE FROM ${META} WHERE key = ?`).run(FALLBACK_APPLY_KEY);
    });
    withWriteWait(db, () => tx.immediate());
  }

  private values(
    w: TableWork,
    row: { text: (string | Buffer | null)[]; canon: (string | null)[] },
    old: Record<string, unknown> | null,
    key: string,
  ): unknown[] {
    const forms = this.forms[w.t.plan.name] ?? {};
    return w.t.columns.map((col, i) => {
      const canon = row.canon[i] ?? null;
      if (old && keepsExisting(col, old[col.source.name] ?? null, canon)) return old[col.source.name] ?? null;
      try {
        return inverseValue(col, forms[col.name], row.text[i] ?? null, canon);
      } catch (e) {
        if (e instanceof InverseRefused) throw refusedError(w.t.plan.name, col.name, key, e.reason);
        throw e;
      }
    });
  }

  private insert(w: TableWork, s: SqliteTable, values: unknown[], rowid: unknown, key: string): void {
    try {
      if (rowid !== undefined && s.insertWithRowid) s.insertWithRowid.run(rowid, ...values);
      else s.insert.run(...values);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY") throw new ApplyConflict(w.t.plan.name, key, (e as Error).message);
      if (typeof code === "string" && code.startsWith("SQLITE_CONSTRAINT"))
        throw new Sqlite2pgError("validation", "FALLBACK_CONSTRAINT", `fallback paused: SQLite refuses ${w.t.plan.name} at ${key}: ${(e as Error).message}`, {
          context: { table: w.t.plan.name, key },
          hint: "the row breaks a constraint the SQLite table has and PostgreSQL does not; change it in PostgreSQL (the fallback resumes by itself), or `sqlite2pg finish`",
          retryable: true,
        });
      throw e;
    }
  }

  private applyKeys(w: TableWork): void {
    const s = this.sql(w.t);
    const key = w.t.key!;
    const forms = this.forms[w.t.plan.name] ?? {};
    const olds: (Record<string, unknown> | null)[] = [];
    const byKey = new Map<string, Record<string, unknown> | null>();
    const keyJson = [...w.keys.keys()];
    // Delete every row of the batch's keys first (see the module comment), remembering each.
    for (const [fi, f] of w.fetched.entries()) {
      const label = keyLabel(key, f.keyText);
      const args = key.map((k, j) => {
        try {
          return inverseValue(k, forms[k.name], f.keyText[j] ?? null, f.keyCanon[j] ?? null);
        } catch (e) {
          if (e instanceof InverseRefused) throw refusedError(w.t.plan.name, k.name, label, e.reason);
          throw e;
        }
      });
      const found = (s.find!.all(...args) as Record<string, unknown>[]).filter((r) =>
        key.every((k, j) => canonicalWriter(k)(r[k.source.name] ?? null) === (f.keyCanon[j] ?? null)),
      );
      const old = found[0] ?? null;
      olds.push(old);
      byKey.set(keyJson[fi]!, old);
      for (const r of found) {
        if (!w.t.plan.source.withoutRowid) s.delById.run(r.$rowid);
        else s.delById.run(...w.t.plan.source.primaryKey.map((k) => r[k]));
      }
    }
    w.fetched.forEach((f, i) => {
      if (!f.row) return;
      const label = keyLabel(key, f.keyText);
      const moved = w.movedFrom.get(keyJson[i]!);
      const old = olds[i] ?? (moved ? (byKey.get(moved) ?? null) : null);
      this.insert(w, s, this.values(w, f.row, old, label), old?.$rowid, label);
    });
  }

  private resync(w: TableWork): void {
    const s = this.sql(w.t);
    s.deleteAll.run();
    for (const [i, row] of w.all.entries()) {
      const label = `row ${i + 1} of the table`;
      this.insert(w, s, this.values(w, row, null, label), undefined, label);
    }
  }
}
