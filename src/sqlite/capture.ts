import type BetterSqlite3 from "better-sqlite3";
import { createHash, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { sourceError } from "../errors.js";
import { quoteIdent, quoteLiteral } from "../ident.js";
import { isOwnTrigger, rowidName, type SourceTable } from "./schema.js";
import { replaceConflicts } from "./unique-match.js";

export { replaceConflicts };
import { crashPoint } from "../observe/crash-points.js";

/** The changelog table inside the SQLite file. */
export const CHANGES = "_sqlite2pg_changes";
/** The metadata table inside the SQLite file (source id, frozen flag). */
export const META = "_sqlite2pg_meta";
/** The `tbl` of the changes the daemon writes itself: the cutover's sentinel (op S) and the snapshot's position marker (op P). */
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

/**
 * Write a position marker into the changelog and return its seq and token:
 * the snapshot starts from it, so even a checkpoint taken before any
 * application change names one real change of this file (see
 * ChangelogReader.verifyCheckpoint). The daemon skips it when applying.
 */
export function markPosition(db: BetterSqlite3.Database): { seq: number; token: number } {
  const before = db.pragma("busy_timeout", { simple: true });
  db.pragma("busy_timeout = 10000"); // once per snapshot: wait for the application's write lock
  try {
    const r = db.prepare(`INSERT INTO ${CHANGES} (tbl, op, at) VALUES (?, 'P', julianday('now')) RETURNING seq, at`).get(SENTINEL_TABLE) as {
      seq: number;
      at: number;
    };
    return { seq: Number(r.seq), token: Number(r.at) };
  } finally {
    db.pragma(`busy_timeout = ${Number(before)}`);
  }
}

/** The tables a change was captured for after `seq`. */
export function tablesChangedSince(db: BetterSqlite3.Database, seq: number): Set<string> {
  return new Set(db.prepare(`SELECT DISTINCT tbl FROM ${CHANGES} WHERE seq > ?`).pluck().all(seq) as string[]);
}

/** Key columns the changelog has: a WITHOUT ROWID key may have at most this many columns. */
const MAX_KEY_COLUMNS = 4;

/** How a table's rows are named in the changelog: by rowid, or by the primary key of a WITHOUT ROWID table. */
type CaptureKey = { kind: "rowid" } | { kind: "pk"; columns: string[] };

/** One change read from the changelog. */
export interface Change {
  seq: number;
  tbl: string;
  op: string;
  key: unknown[];
  /** julianday of the change: with `seq`, the token that identifies this very change (see {@link ChangelogReader.verifyCheckpoint}). */
  at: number;
}

/** The capture key of a table. */
function captureKey(t: SourceTable): CaptureKey {
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
    ins: `_sqlite2pg_ins_${table}`,
    upd: `_sqlite2pg_upd_${table}`,
    del: `_sqlite2pg_del_${table}`,
    binsert: `_sqlite2pg_rins_${table}`,
    bupdate: `_sqlite2pg_rupd_${table}`,
  };
}

/**
 * What keeps change capture from seeing every change to a table, one
 * sentence each naming the table (and index); empty when capture is
 * complete. `init` refuses a table with problems, and the daemon must
 * refuse the same way when a schema change brings one.
 */
export function captureProblems(t: SourceTable): string[] {
  const out: string[] = [];
  const key = captureKey(t);
  if (key.kind === "rowid") {
    try {
      rowidName(t);
    } catch (e) {
      out.push((e as Error).message);
    }
  } else if (key.columns.length > MAX_KEY_COLUMNS) {
    out.push(`table ${t.name} has a ${key.columns.length}-column primary key; change capture supports up to ${MAX_KEY_COLUMNS}`);
  }
  out.push(...replaceConflicts(t).problems);
  return out;
}

/** The capture triggers' SQL for one table, rendered from triggers/capture.sql. */
export function captureTriggersSql(t: SourceTable): string {
  const problems = captureProblems(t);
  if (problems.length) {
    throw sourceError("CAPTURE_INCOMPLETE", problems.join("; "), {
      context: { table: t.name },
      hint: "change capture would miss rows SQLite deletes; fix the schema as the message says, or leave the table out of the database to replicate",
    });
  }
  const key = captureKey(t);
  const rowid = key.kind === "rowid" ? rowidName(t) : "";
  const cols = key.kind === "rowid" ? [rowid] : key.columns;
  const ref = (side: "NEW" | "OLD") => cols.map((c) => `${side}.${key.kind === "rowid" ? rowid : quoteIdent(c)}`);
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
    row_key: cols.map((c) => (key.kind === "rowid" ? rowid : quoteIdent(c))).join(", "),
    // A key column's own collation (NOCASE, RTRIM) may call 'rust' and
    // 'Rust' equal; Postgres compares bytes, so any change of bytes or of
    // storage class is a key change to log.
    key_changed: ref("OLD")
      .map((o, i) => {
        const n = ref("NEW")[i]!;
        return key.kind === "rowid" ? `${o} IS NOT ${n}` : `${o} IS NOT ${n} COLLATE BINARY OR typeof(${o}) IS NOT typeof(${n})`;
      })
      .join(" OR "),
    conflicts: "",
    update_of: "",
    not_self: cols
      .map((c) => (key.kind === "rowid" ? `${rowid} IS NOT OLD.${rowid}` : `${quoteIdent(c)} IS NOT OLD.${quoteIdent(c)} COLLATE BINARY`))
      .join(" OR "),
  };
  const conflicts = replaceConflicts(t);
  let sql = render(template("capture.sql"), values);
  if (conflicts.sql) {
    const updateOf = conflicts.columns === null ? "" : `OF ${conflicts.columns.map(quoteIdent).join(", ")} `;
    // One statement per unique index: SQLite looks each up by its own index
    // (an OR of them, once a COLLATE is in it, would scan the whole table).
    const each = template("capture-replace.sql").replace(/\{\{each_index\}\}([\s\S]*?)\{\{end\}\}/g, (_, part: string) =>
      conflicts.matches.map((m) => part.replaceAll("{{conflicts}}", m)).join(""),
    );
    sql += "\n" + render(each, { ...values, update_of: updateOf });
  }
  return sql;
}

/**
 * Create the changelog and the capture triggers of every table, in one
 * short write transaction. Idempotent: what exists is kept (a table's
 * triggers are recreated so they match its current key). Returns the source
 * id, created on first install.
 */
export function installCapture(
  db: BetterSqlite3.Database,
  tables: SourceTable[],
  newId: string = randomUUID(),
  /** Run last inside the installing transaction: what it sees holds at the instant the triggers take effect. */
  atCommit?: () => void,
): string {
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
      const present =
        (db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'trigger' AND name IN (?, ?, ?)").get(n.ins, n.upd, n.del) as { n: number }).n === 3;
      const was = (stored.get(key) as { value: string } | undefined)?.value;
      if (present && was === hash) continue;
      for (const name of [n.ins, n.upd, n.del, n.binsert, n.bupdate]) {
        const other = db.prepare("SELECT tbl_name AS tbl, sql FROM sqlite_schema WHERE type = 'trigger' AND name = ?").get(name) as
          | { tbl: string; sql: string | null }
          | undefined;
        if (other && !isOwnTrigger(name, t.name, other.sql)) {
          throw sourceError("TRIGGER_NAME_TAKEN", `table ${t.name}: a trigger named ${name}, not made by sqlite2pg, takes the name of a capture trigger`, {
            context: { table: t.name, trigger: name },
            hint: "rename that trigger, then run init again",
          });
        }
        db.exec(`DROP TRIGGER IF EXISTS main.${quoteIdent(name)}`);
      }
      db.exec(sql);
      // Replacing another version's triggers: what they missed is unknown, so the stored hash is left
      // matching no SQL, and the daemon copies the table again (replication/schema-diff.ts ownCapture).
      put.run(key, present ? `replaced ${was ?? "unknown"}` : hash);
    }
    if (db.pragma("schema_version", { simple: true }) !== v0) noteOwnSchemaChange(db); // only a change made here
    const row = db.prepare(`SELECT value FROM ${META} WHERE key = 'source_id'`).get() as { value: string } | undefined;
    if (!row) db.prepare(`INSERT INTO ${META} (key, value) VALUES ('source_id', ?)`).run(newId);
    atCommit?.();
    return row ? row.value : newId;
  });
  return tx.immediate();
}

/** Remove every sqlite2pg trigger and table from the file: the database is as it was. */
export function uninstallCapture(db: BetterSqlite3.Database): { triggers: number; tables: number } {
  const tx = db.transaction(() => {
    // The application's triggers the fallback set aside go back first: they are kept in the table dropped below.
    restoreSetAsideTriggers(db);
    // Only the triggers this project made: a user's trigger is never removed, whatever its name.
    const triggers = (
      db.prepare("SELECT name, tbl_name AS tbl, sql FROM sqlite_schema WHERE type = 'trigger'").all() as { name: string; tbl: string; sql: string | null }[]
    ).filter((t) => isOwnTrigger(t.name, t.tbl, t.sql));
    for (const t of triggers) db.exec(`DROP TRIGGER IF EXISTS main.${quoteIdent(t.name)}`);
    const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name IN (?, ?)").all(CHANGES, META) as { name: string }[];
    for (const t of tables) db.exec(`DROP TABLE IF EXISTS main.${quoteIdent(t.name)}`);
    return { triggers: triggers.length, tables: tables.length };
  });
  return tx.immediate();
}

/** The triggers the fallback set aside (name and SQL), kept in the metadata table. */
export function setAsideList(db: BetterSqlite3.Database): { name: string; sql: string }[] {
  const has = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?").get(META);
  if (!has) return [];
  const r = db.prepare(`SELECT value FROM ${META} WHERE key = 'set_aside_triggers'`).get() as { value: string } | undefined;
  return r ? (JSON.parse(r.value) as { name: string; sql: string }[]) : [];
}

/** Put back the triggers the fallback set aside, inside the caller's transaction; returns their names. */
export function restoreSetAsideTriggers(db: BetterSqlite3.Database): string[] {
  const kept = setAsideList(db);
  if (!kept.length) return [];
  const present = new Set((db.prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'").all() as { name: string }[]).map((r) => r.name));
  for (const k of kept) if (!present.has(k.name)) db.exec(k.sql);
  db.prepare(`DELETE FROM ${META} WHERE key = 'set_aside_triggers'`).run();
  noteOwnSchemaChange(db);
  return kept.map((k) => k.name);
}

/** Whether capture is installed, and its source id. */
export function captureInfo(db: BetterSqlite3.Database): { sourceId: string; tables: string[] } | null {
  const has = db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table' AND name IN (?, ?)").get(CHANGES, META) as { n: number };
  if (has.n < 2) return null;
  const row = db.prepare(`SELECT value FROM ${META} WHERE key = 'source_id'`).get() as { value: string } | undefined;
  if (!row) return null;
  const trig = db.prepare("SELECT tbl_name AS t FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '\\_sqlite2pg\\_ins\\_%' ESCAPE '\\'").all() as {
    t: string;
  }[];
  return { sourceId: row.value, tables: trig.map((x) => x.t) };
}

/** Prepared reads of the changelog, for the daemon and `status`. */
export class ChangelogReader {
  private readonly batch: BetterSqlite3.Statement;
  private readonly newest: BetterSqlite3.Statement;
  private readonly oldest: BetterSqlite3.Statement;
  private readonly atSeq: BetterSqlite3.Statement;
  private readonly source: BetterSqlite3.Statement;

  constructor(private readonly db: BetterSqlite3.Database) {
    this.batch = db.prepare(`SELECT seq, tbl, op, k1, k2, k3, k4, at FROM ${CHANGES} WHERE seq > ? ORDER BY seq LIMIT ?`).raw(true).safeIntegers(true);
    this.atSeq = db.prepare(`SELECT at FROM ${CHANGES} WHERE seq = ?`);
    this.source = db.prepare(`SELECT value FROM ${META} WHERE key = 'source_id'`);
    this.newest = db.prepare(`SELECT max(seq) AS seq FROM ${CHANGES}`).safeIntegers(true);
    this.oldest = db.prepare(`SELECT at FROM ${CHANGES} WHERE seq > ? ORDER BY seq LIMIT 1`);
  }

  /** Up to `limit` changes after `after`, in seq order. */
  read(after: number, limit: number): Change[] {
    return (this.batch.all(after, limit) as unknown[][]).map((r) => ({
      seq: Number(r[0]),
      tbl: r[1] as string,
      op: r[2] as string,
      key: r.slice(3, 7),
      at: Number(r[7]),
    }));
  }

  /** The token of the change at `seq` (its julianday), or null when the changelog has no such change. */
  tokenAt(seq: number): number | null {
    const r = this.atSeq.get(seq) as { at: number } | undefined;
    return r ? Number(r.at) : null;
  }

  /**
   * Check that this file is the one replicated up to `applied`: same source
   * id, and the change at the checkpoint still there with the token recorded
   * when it was applied. The daemon never prunes the change at its
   * checkpoint, so a missing one — or one with another token — means the
   * file was replaced under it: a backup restored over it, or the file
   * recreated. Its seq then restarts below (or re-uses) what was applied,
   * and reading on would skip changes and report lag 0. Throws
   * FILE_REPLACED.
   */
  verifyCheckpoint(sourceId: string, applied: number, token: number | null): void {
    const src = this.source.get() as { value: string } | undefined;
    const problem =
      src?.value !== sourceId
        ? `its change capture has another source id (${src?.value ?? "none"}, not ${sourceId})`
        : applied <= 0
          ? null
          : ((t) =>
              t === null
                ? `its changelog has no change ${applied}, the last one applied (newest ${this.newestSeq()})`
                : token !== null && t !== token
                  ? `its change ${applied} is not the change applied under that number`
                  : null)(this.tokenAt(applied));
    if (!problem) return;
    throw sourceError(
      "FILE_REPLACED",
      `the SQLite file is not the one being replicated: ${problem} — it was replaced (a backup restored over it, or the file recreated)`,
      {
        context: { applied_seq: applied },
        hint: "replication is stopped so nothing is skipped or applied twice; put the replicated file back and start the daemon again, or, to replicate this file as it is now, start over: `sqlite2pg init --drop-existing` (drops the target schema and copies everything again)",
      },
    );
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
 * Delete applied changes below `below`, in one short write transaction of at
 * most `chunk` rows (a range delete on the primary key), waiting at most the
 * connection's busy timeout for the application's write lock. The change at
 * `below` itself is kept, so a new change can never be given a seq at or
 * below the checkpoint. Returns how many were deleted, whether it stopped
 * because the application held the write lock (no error: it is tried again
 * later), and whether everything below `below` is gone.
 *
 * One transaction, not a loop of small ones: every commit here can fail one
 * in-flight deferred transaction of the application (see the daemon's
 * prune schedule), so fewer commits is what matters, and a range delete of
 * 200k rows holds the lock for tens of milliseconds only.
 */
export function pruneChanges(db: BetterSqlite3.Database, below: number, chunk = 200_000): { deleted: number; busy: boolean; done: boolean } {
  const lowest = db.prepare(`SELECT min(seq) AS s FROM ${CHANGES}`).get() as { s: number | null };
  if (lowest.s === null || lowest.s >= below) return { deleted: 0, busy: false, done: true };
  const upTo = Math.min(below, lowest.s + chunk);
  try {
    const n = db.prepare(`DELETE FROM ${CHANGES} WHERE seq < ?`).run(upTo).changes;
    if (n > 0) crashPoint("prune-chunk");
    return { deleted: n, busy: false, done: upTo === below };
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "SQLITE_BUSY" || code === "SQLITE_BUSY_SNAPSHOT") return { deleted: 0, busy: true, done: false };
    throw e;
  }
}
