import type BetterSqlite3 from "better-sqlite3";
import { createHash, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { sourceError } from "../errors.js";
import { quoteIdent, quoteLiteral } from "../sql/ident.js";
import type { SourceTable } from "./schema.js";
import { crashPoint } from "../pipeline/crash-points.js";

/** The changelog table inside the SQLite file. */
export const CHANGES = "_sqlite2pg_changes";
/** The metadata table inside the SQLite file (source id, frozen flag). */
export const META = "_sqlite2pg_meta";
/** The `tbl` of the sentinel change the cutover writes inside its freeze transaction. */
export const SENTINEL_TABLE = "_sqlite2pg_sentinel";
/**
 * Record, inside the transaction of a schema change this project made
 * (init, freeze, unfreeze), the schema cookie it left: a daemon then knows
 * that cookie is its own doing, not a rewrite of the file.
 */
export function noteOwnSchemaChange(db: BetterSqlite3.Database): void {
  const v = db.pragma("schema_version", { simple: true });
  db.prepare(`INSERT OR REPLACE INTO ${META} (key, value) VALUES ('own_schema_version', ?)`).run(v);
}

/** The schema cookie left by this project's last own schema change, if any. */
export function ownSchemaVersion(db: BetterSqlite3.Database): number | null {
  const r = db.prepare(`SELECT value FROM ${META} WHERE key = 'own_schema_version'`).get() as { value: number } | undefined;
  return r ? Number(r.value) : null;
}

/** Key columns the changelog has: a WITHOUT ROWID key may have at most this many columns. */
export const MAX_KEY_COLUMNS = 4;

/** How a table's rows are named in the changelog: by rowid, or by the primary key of a WITHOUT ROWID table. */
export type CaptureKey = { kind: "rowid" } | { kind: "pk"; columns: string[] };

/** One change read from the changelog. */
export interface Change {
  seq: number;
  tbl: string;
  op: string;
  key: unknown[];
}

/** The capture key of a table. */
export function captureKey(t: SourceTable): CaptureKey {
  return t.withoutRowid ? { kind: "pk", columns: t.primaryKey } : { kind: "rowid" };
}

function template(name: string): string {
  return readFileSync(new URL(`../../triggers/${name}`, import.meta.url), "utf8");
}

/** Fill a template's `{{name}}` placeholders; every value is already quoted SQL. */
export function render(sql: string, values: Record<string, string>): string {
  return sql.replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    const v = values[k];
    if (v === undefined) throw new Error(`template placeholder {{${k}}} has no value`);
    return v;
  });
}

/** Trigger names of a table, unquoted. */
export function triggerNames(table: string): { ins: string; upd: string; del: string; binsert: string; bupdate: string } {
  return {
    ins: `_sqlite2pg_ins_${table}`, upd: `_sqlite2pg_upd_${table}`, del: `_sqlite2pg_del_${table}`,
    binsert: `_sqlite2pg_rins_${table}`, bupdate: `_sqlite2pg_rupd_${table}`,
  };
}

/**
 * The unique-value match of a table's unique indexes against NEW, for the
 * REPLACE capture triggers; null when REPLACE can only delete the row that
 * has the new row's own key (which the AFTER triggers record anyway).
 * Expression terms cannot be matched and are left out (reported by init).
 */
export function replaceConflicts(t: SourceTable): { sql: string | null; columns: string[]; unmatched: string[] } {
  const parts: string[] = [];
  const unmatched: string[] = [];
  const columns = new Set<string>();
  for (const ix of t.indexes) {
    if (!ix.unique) continue;
    // The row with the same rowid, or the same WITHOUT ROWID key, is the one the AFTER triggers name.
    if (ix.origin === "pk" && t.withoutRowid) continue;
    if (ix.terms.some((x) => x.column === null)) {
      unmatched.push(ix.name);
      continue;
    }
    for (const x of ix.terms) columns.add(x.column!);
    parts.push(`(${ix.terms.map((x) => `${quoteIdent(x.column!)}${x.collation ? ` COLLATE ${quoteIdent(x.collation)}` : ""} = NEW.${quoteIdent(x.column!)}`).join(" AND ")})`);
  }
  return { sql: parts.length ? parts.join(" OR ") : null, columns: [...columns], unmatched };
}

/** The capture triggers' SQL for one table, rendered from triggers/capture.sql. */
export function captureTriggersSql(t: SourceTable): string {
  const key = captureKey(t);
  const cols = key.kind === "rowid" ? ["rowid"] : key.columns;
  if (cols.length > MAX_KEY_COLUMNS) {
    throw sourceError("KEY_TOO_WIDE", `table ${t.name} has a ${cols.length}-column primary key; change capture supports up to ${MAX_KEY_COLUMNS}`, {
      context: { table: t.name },
    });
  }
  const ref = (side: "NEW" | "OLD") => cols.map((c) => `${side}.${c === "rowid" && key.kind === "rowid" ? "rowid" : quoteIdent(c)}`);
  const names = triggerNames(t.name);
  const values = {
    table: `main.${quoteIdent(t.name)}`,
    table_literal: quoteLiteral(t.name),
    ins: quoteIdent(names.ins),
    upd: quoteIdent(names.upd),
    del: quoteIdent(names.del),
    binsert: quoteIdent(names.binsert),
    bupdate: quoteIdent(names.bupdate),
    key_columns: cols.map((_, i) => `k${i + 1}`).join(", "),
    new_key: ref("NEW").join(", "),
    old_key: ref("OLD").join(", "),
    row_key: cols.map((c) => (key.kind === "rowid" ? "rowid" : quoteIdent(c))).join(", "),
    key_changed: ref("OLD").map((o, i) => `${o} IS NOT ${ref("NEW")[i]}`).join(" OR "),
    conflicts: "",
    unique_columns: "",
    not_self: cols.map((c) => (key.kind === "rowid" ? "rowid IS NOT OLD.rowid" : `${quoteIdent(c)} IS NOT OLD.${quoteIdent(c)}`)).join(" OR "),
  };
  const conflicts = replaceConflicts(t);
  let sql = render(template("capture.sql"), values);
  if (conflicts.sql) {
    sql += "\n" + render(template("capture-replace.sql"), { ...values, conflicts: conflicts.sql, unique_columns: conflicts.columns.map(quoteIdent).join(", ") });
  }
  return sql;
}

/**
 * Create the changelog and the capture triggers of every table, in one
 * short write transaction. Idempotent: what exists is kept (a table's
 * triggers are recreated so they match its current key). Returns the source
 * id, created on first install.
 */
export function installCapture(db: BetterSqlite3.Database, tables: SourceTable[], newId: string = randomUUID()): string {
  const tx = db.transaction(() => {
    const v0 = db.pragma("schema_version", { simple: true });
    db.exec(template("changelog.sql"));
    crashPoint("capture-install");
    const stored = db.prepare(`SELECT value FROM ${META} WHERE key = ?`);
    const put = db.prepare(`INSERT OR REPLACE INTO ${META} (key, value) VALUES (?, ?)`);
    for (const t of tables) {
      // Recreated only when they differ: an unchanged schema keeps its cookie,
      // so a daemon does not take a re-run of init for a rewrite of the file.
      const sql = captureTriggersSql(t);
      const hash = createHash("md5").update(sql).digest("hex");
      const key = `triggers:${t.name}`;
      const n = triggerNames(t.name);
      const present = (db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'trigger' AND name IN (?, ?, ?)").get(n.ins, n.upd, n.del) as { n: number }).n === 3;
      if (present && (stored.get(key) as { value: string } | undefined)?.value === hash) continue;
      for (const name of [n.ins, n.upd, n.del, n.binsert, n.bupdate]) db.exec(`DROP TRIGGER IF EXISTS main.${quoteIdent(name)}`);
      db.exec(sql);
      put.run(key, hash);
    }
    if (db.pragma("schema_version", { simple: true }) !== v0) noteOwnSchemaChange(db); // only a change made here
    const row = db.prepare(`SELECT value FROM ${META} WHERE key = 'source_id'`).get() as { value: string } | undefined;
    if (row) return row.value;
    db.prepare(`INSERT INTO ${META} (key, value) VALUES ('source_id', ?)`).run(newId);
    return newId;
  });
  return tx.immediate();
}

/** Remove every sqlite2pg trigger and table from the file: the database is as it was. */
export function uninstallCapture(db: BetterSqlite3.Database): { triggers: number; tables: number } {
  const tx = db.transaction(() => {
    const triggers = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '\\_sqlite2pg\\_%' ESCAPE '\\'").all() as { name: string }[];
    for (const t of triggers) db.exec(`DROP TRIGGER IF EXISTS main.${quoteIdent(t.name)}`);
    const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name IN (?, ?)").all(CHANGES, META) as { name: string }[];
    for (const t of tables) db.exec(`DROP TABLE IF EXISTS main.${quoteIdent(t.name)}`);
    return { triggers: triggers.length, tables: tables.length };
  });
  return tx.immediate();
}

/** Whether capture is installed, and its source id. */
export function captureInfo(db: BetterSqlite3.Database): { sourceId: string; tables: string[] } | null {
  const has = db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table' AND name IN (?, ?)").get(CHANGES, META) as { n: number };
  if (has.n < 2) return null;
  const row = db.prepare(`SELECT value FROM ${META} WHERE key = 'source_id'`).get() as { value: string } | undefined;
  if (!row) return null;
  const trig = db.prepare("SELECT tbl_name AS t FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '\\_sqlite2pg\\_ins\\_%' ESCAPE '\\'").all() as { t: string }[];
  return { sourceId: row.value, tables: trig.map((x) => x.t) };
}

/** Prepared reads of the changelog, for the daemon and `status`. */
export class ChangelogReader {
  private readonly batch: BetterSqlite3.Statement;
  private readonly newest: BetterSqlite3.Statement;
  private readonly oldest: BetterSqlite3.Statement;

  constructor(private readonly db: BetterSqlite3.Database) {
    this.batch = db.prepare(`SELECT seq, tbl, op, k1, k2, k3, k4 FROM ${CHANGES} WHERE seq > ? ORDER BY seq LIMIT ?`).raw(true).safeIntegers(true);
    this.newest = db.prepare(`SELECT max(seq) AS seq FROM ${CHANGES}`).safeIntegers(true);
    this.oldest = db.prepare(`SELECT at FROM ${CHANGES} WHERE seq > ? ORDER BY seq LIMIT 1`);
  }

  /** Up to `limit` changes after `after`, in seq order. */
  read(after: number, limit: number): Change[] {
    return (this.batch.all(after, limit) as unknown[][]).map((r) => ({
      seq: Number(r[0]), tbl: r[1] as string, op: r[2] as string, key: r.slice(3),
    }));
  }

  /** The newest seq in the changelog (0 when empty). */
  newestSeq(): number {
    const r = this.newest.get() as { seq: bigint | null };
    return r.seq === null ? 0 : Number(r.seq);
  }

  /** Seconds since the oldest change after `after` was made, 0 when there is none. */
  lagSeconds(after: number): number {
    const r = this.oldest.get(after) as { at: number } | undefined;
    if (!r) return 0;
    return Math.max(0, (Date.now() / 86400000 + 2440587.5 - r.at) * 86400);
  }

  /** Run `fn` in one read transaction, so the changes and the rows it reads are one snapshot. */
  snapshot<T>(fn: () => T): T {
    return this.db.transaction(fn).deferred();
  }
}

/**
 * Delete applied changes below `below` in short write transactions of at
 * most `chunk` rows, each waiting at most the connection's busy timeout for
 * the application's write lock. The change at `below` itself is kept, so a
 * new change can never be given a seq at or below the checkpoint. Returns
 * how many were deleted, and whether it stopped early because the
 * application held the write lock (no error: it is tried again later).
 */
export function pruneChanges(db: BetterSqlite3.Database, below: number, chunk = 5000): { deleted: number; busy: boolean } {
  const del = db.prepare(`DELETE FROM ${CHANGES} WHERE seq IN (SELECT seq FROM ${CHANGES} WHERE seq < ? ORDER BY seq LIMIT ?)`);
  let total = 0;
  for (;;) {
    let n: number;
    try {
      n = del.run(below, chunk).changes;
    } catch (e) {
      if ((e as { code?: string }).code === "SQLITE_BUSY") return { deleted: total, busy: true };
      throw e;
    }
    total += n;
    if (n > 0) crashPoint("prune-chunk");
    if (n < chunk) return { deleted: total, busy: false };
  }
}
