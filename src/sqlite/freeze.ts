import type BetterSqlite3 from "better-sqlite3";
import { readFileSync } from "node:fs";
import { quoteIdent } from "../ident.js";
import { isOwnTrigger } from "./schema.js";
import { CHANGES, META, noteOwnSchemaChange, render, restoreSetAsideTriggers, SENTINEL_TABLE, setAsideList } from "./capture.js";

function names(table: string) {
  return { fins: `_sqlite2pg_fins_${table}`, fupd: `_sqlite2pg_fupd_${table}`, fdel: `_sqlite2pg_fdel_${table}` };
}

/** The freeze as recorded in the SQLite file, or null. */
export interface FreezeInfo {
  sentinelSeq: number;
  frozenAt: string;
}

/** Read the freeze record. */
export function freezeInfo(db: BetterSqlite3.Database): FreezeInfo | null {
  const rows = db.prepare(`SELECT key, value FROM ${META} WHERE key IN ('frozen_at', 'sentinel_seq')`).all() as { key: string; value: string | number }[];
  const m = new Map(rows.map((r) => [r.key, r.value]));
  if (!m.has("sentinel_seq")) return null;
  return { sentinelSeq: Number(m.get("sentinel_seq")), frozenAt: String(m.get("frozen_at")) };
}

/**
 * Freeze: one short write transaction (BEGIN IMMEDIATE, waiting at most the
 * busy timeout for the application's write lock) that installs the freeze
 * triggers on every table, writes the sentinel change and records the
 * freeze. Idempotent: a second call returns the first freeze.
 */
export function freeze(db: BetterSqlite3.Database, tables: string[]): FreezeInfo {
  const sql = readFileSync(new URL("../../triggers/freeze.sql", import.meta.url), "utf8");
  const tx = db.transaction((): FreezeInfo => {
    const already = freezeInfo(db);
    if (already) return already;
    for (const t of tables) {
      const n = names(t);
      db.exec(render(sql, { table: `main.${quoteIdent(t)}`, fins: quoteIdent(n.fins), fupd: quoteIdent(n.fupd), fdel: quoteIdent(n.fdel) }));
    }
    const seq = Number(db.prepare(`INSERT INTO ${CHANGES} (tbl, op, at) VALUES (?, 'S', julianday('now'))`).run(SENTINEL_TABLE).lastInsertRowid);
    const at = new Date().toISOString();
    const put = db.prepare(`INSERT OR REPLACE INTO ${META} (key, value) VALUES (?, ?)`);
    put.run("sentinel_seq", seq);
    put.run("frozen_at", at);
    noteOwnSchemaChange(db);
    return { sentinelSeq: seq, frozenAt: at };
  });
  // The freeze waits (up to 10 s) for the application's write lock, whatever the connection's own setting.
  const before = db.pragma("busy_timeout", { simple: true });
  db.pragma("busy_timeout = 10000");
  try {
    return tx.immediate();
  } finally {
    db.pragma(`busy_timeout = ${Number(before)}`);
  }
}

/** Unfreeze: drop the freeze triggers and the record; the application can write to SQLite again. */
export function unfreeze(db: BetterSqlite3.Database): number {
  const tx = db.transaction(() => {
    const trig = (
      db.prepare("SELECT name, tbl_name AS tbl, sql FROM sqlite_schema WHERE type = 'trigger'").all() as { name: string; tbl: string; sql: string | null }[]
    ).filter((t) => /^_sqlite2pg_f(ins|upd|del)_/.test(t.name) && isOwnTrigger(t.name, t.tbl, t.sql));
    for (const t of trig) db.exec(`DROP TRIGGER IF EXISTS main.${quoteIdent(t.name)}`);
    db.prepare(`DELETE FROM ${META} WHERE key IN ('sentinel_seq', 'frozen_at')`).run();
    noteOwnSchemaChange(db);
    return trig.length;
  });
  // As the freeze: wait (up to 10 s) for the write lock, whatever the connection's own setting.
  const before = db.pragma("busy_timeout", { simple: true });
  db.pragma("busy_timeout = 10000");
  try {
    return tx.immediate();
  } finally {
    db.pragma(`busy_timeout = ${Number(before)}`);
  }
}

/**
 * The tables among `tables` whose freeze triggers are not all in place:
 * DDL is not frozen, so a freeze trigger can be dropped during the freeze.
 */
export function unfrozenTables(db: BetterSqlite3.Database, tables: string[]): string[] {
  const present = new Set((db.prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'").all() as { name: string }[]).map((r) => r.name));
  return tables.filter((t) => {
    const n = names(t);
    return !present.has(n.fins) || !present.has(n.fupd) || !present.has(n.fdel);
  });
}

/** The metadata key the daemon holds inside its own write transactions during the fallback: the freeze triggers let those writes through. */
export const FALLBACK_APPLY_KEY = "fallback_apply";

/**
 * Make the freeze the fallback's: the freeze triggers are created again in
 * their current form (which lets the daemon's own transactions through; a
 * file frozen by an older version has triggers without that exception), and
 * every other trigger on the replicated tables — the application's and the
 * change capture's — is set aside, its SQL kept in the metadata table: the
 * daemon's writes copy rows Postgres already computed, and must not fire
 * the application's triggers a second time. One write transaction;
 * idempotent. {@link restoreTriggers} puts them back.
 */
export function freezeForFallback(db: BetterSqlite3.Database, tables: string[]): { setAside: string[] } {
  const sql = readFileSync(new URL("../../triggers/freeze.sql", import.meta.url), "utf8");
  const tx = db.transaction(() => {
    const kept = setAsideList(db);
    const wanted = new Set(tables);
    const all = db.prepare("SELECT name, tbl_name AS tbl, sql FROM sqlite_schema WHERE type = 'trigger' AND sql IS NOT NULL").all() as {
      name: string;
      tbl: string;
      sql: string;
    }[];
    for (const t of all) {
      if (!wanted.has(t.tbl) || /^_sqlite2pg_f(ins|upd|del)_/.test(t.name)) continue;
      if (!kept.some((k) => k.name === t.name)) kept.push({ name: t.name, sql: t.sql });
      db.exec(`DROP TRIGGER IF EXISTS main.${quoteIdent(t.name)}`);
    }
    db.prepare(`INSERT OR REPLACE INTO ${META} (key, value) VALUES ('set_aside_triggers', ?)`).run(JSON.stringify(kept));
    for (const t of tables) {
      const n = names(t);
      for (const x of [n.fins, n.fupd, n.fdel]) db.exec(`DROP TRIGGER IF EXISTS main.${quoteIdent(x)}`);
      db.exec(render(sql, { table: `main.${quoteIdent(t)}`, fins: quoteIdent(n.fins), fupd: quoteIdent(n.fupd), fdel: quoteIdent(n.fdel) }));
    }
    noteOwnSchemaChange(db);
    return { setAside: kept.map((k) => k.name) };
  });
  return withWriteWait(db, () => tx.immediate());
}

/**
 * Put back the triggers {@link freezeForFallback} set aside, inside the
 * caller's transaction (the rollback's unfreeze, `finish`). Returns their
 * names.
 */
export const restoreTriggers = restoreSetAsideTriggers;

/** Run `f` waiting up to 10 s for the application's write lock, whatever the connection's own setting. */
export function withWriteWait<T>(db: BetterSqlite3.Database, f: () => T): T {
  const before = db.pragma("busy_timeout", { simple: true });
  db.pragma("busy_timeout = 10000");
  try {
    return f();
  } finally {
    db.pragma(`busy_timeout = ${Number(before)}`);
  }
}

/** The marker file written next to the database when the cutover is done (the switching database reads it too). */
export function markerPath(sqlite: string): string {
  return `${sqlite}-sqlite2pg-cutover.json`;
}

/**
 * The marker file written next to the database when a rollback is done
 * (JSON: source_id, schema, rolled_back_at): SQLite holds the data again.
 * The switching database reads it too, before the cutover's marker.
 */
export function rollbackMarkerPath(sqlite: string): string {
  return `${sqlite}-sqlite2pg-rollback.json`;
}
