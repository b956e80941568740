/**
 * What changed in the SQLite schema since the stored plan described it: a
 * pure comparison of the plan's source tables (and their root pages) with
 * the schema, capture triggers and root pages read now. Tables are matched
 * by name, and a table whose name is gone by its root page (ALTER TABLE …
 * RENAME keeps it; a rebuild — new table, copy, drop, rename — does not).
 * Whatever cannot be classified as a column rename, drop or add is a
 * rebuild: re-planned and re-copied, which is always exact.
 */
import type BetterSqlite3 from "better-sqlite3";
import { createHash } from "node:crypto";
import { Sqlite2pgError } from "../errors.js";
import type { MigrationPlan, TablePlan } from "../plan/plan.js";
import { captureTriggersSql, META, ownSchemaVersion, replaceConflicts, triggerNames } from "../sqlite/capture.js";
import { unmarkedKeySpelling } from "../plan/key-spelling.js";
import { readSchema, type SourceColumn, type SourceIndex, type SourceSchema, type SourceTable } from "../sqlite/schema.js";
import { schemaFingerprint } from "./keys.js";

/** Root page of every table, by name: what tells a renamed table from a rebuilt one. */
export type RootPages = Record<string, number>;

/** The plan as stored, with the root pages it was made from. */
export type StoredPlan = MigrationPlan & { rootpages?: RootPages };

/** The source as it is now, read in one read transaction. */
export interface LiveSchema {
  version: number;
  fingerprint: string;
  own: number | null;
  schema: SourceSchema;
  pages: RootPages;
  /** The project's triggers: name → table they are on. */
  triggers: Map<string, string>;
  /** The project's triggers: name → their SQL as SQLite stores it. */
  triggerSql: Map<string, string>;
  /** Stored capture hashes: table → md5 of the SQL installed. */
  hashes: Map<string, string>;
  /** The capture SQL each table needs now, or the error that says why it cannot be captured. */
  capture: Map<string, { sql: string; hash: string; names: string[] } | { error: Sqlite2pgError }>;
}

/** Read the schema, root pages, capture triggers and schema cookie as one picture. */
export function readLive(db: BetterSqlite3.Database): LiveSchema {
  return db
    .transaction((): LiveSchema => {
      const version = Number(db.pragma("schema_version", { simple: true }));
      const schema = readSchema(db);
      const rows = db.prepare("SELECT type, name, tbl_name AS tbl, rootpage, sql FROM main.sqlite_schema").all() as {
        type: string;
        name: string;
        tbl: string;
        rootpage: number;
        sql: string | null;
      }[];
      const pages: RootPages = {};
      const triggers = new Map<string, string>();
      const triggerSql = new Map<string, string>();
      for (const r of rows) {
        if (r.type === "table") pages[r.name] = Number(r.rootpage);
        if (r.type === "trigger" && r.name.startsWith("_sqlite2pg_")) {
          triggers.set(r.name, r.tbl);
          triggerSql.set(r.name, r.sql ?? "");
        }
      }
      const hashes = new Map(
        (db.prepare(`SELECT key, value FROM ${META} WHERE key LIKE 'triggers:%'`).all() as { key: string; value: string }[]).map((r) => [
          r.key.slice(9),
          String(r.value),
        ]),
      );
      const capture: LiveSchema["capture"] = new Map();
      for (const t of schema.tables) {
        try {
          const sql = captureTriggersSql(t);
          const n = triggerNames(t.name);
          const names = replaceConflicts(t).sql ? [n.ins, n.upd, n.del, n.binsert, n.bupdate] : [n.ins, n.upd, n.del];
          capture.set(t.name, { sql, hash: createHash("md5").update(sql).digest("hex"), names });
        } catch (e) {
          if (!(e instanceof Sqlite2pgError)) throw e;
          capture.set(t.name, { error: e });
        }
      }
      return { version, fingerprint: schemaFingerprint(db), own: ownSchemaVersion(db), schema, pages, triggers, triggerSql, hashes, capture };
    })
    .deferred();
}

/**
 * Whether the capture triggers installed on a table are this version's:
 * the stored hash is that of the SQL this version generates for the table
 * (as planned, or as it is now), and so is the SQL of every capture trigger
 * on it. Triggers of another version (an upgrade) may have missed writes —
 * older versions missed REPLACE evictions through expression indexes and
 * NOCASE key changes — and what they missed cannot be known: only a copy is
 * exact.
 */
function ownCapture(
  live: LiveSchema,
  table: string,
  planned: SourceTable,
  cap: LiveSchema["capture"] extends Map<string, infer V> ? V | undefined : never,
): boolean {
  const generated: string[] = [];
  if (cap && !("error" in cap)) generated.push(cap.sql);
  try {
    generated.push(captureTriggersSql(planned));
  } catch {
    // The planned table cannot be captured (or was saved by another version): only the live SQL counts.
  }
  // SQLite stores a trigger's SQL without IF NOT EXISTS.
  const texts = generated.map((g) => g.replaceAll("CREATE TRIGGER IF NOT EXISTS ", "CREATE TRIGGER "));
  const stored = live.hashes.get(table);
  if (stored !== undefined && !generated.some((g) => createHash("md5").update(g).digest("hex") === stored)) return false;
  for (const [name, on] of live.triggers) {
    if (on !== table || !CAPTURE_TRIGGER.test(name)) continue;
    const sql = live.triggerSql.get(name) ?? "";
    if (!texts.some((t) => t.includes(sql))) return false;
  }
  return true;
}

/** The names of capture triggers (freeze triggers and others are not capture). */
const CAPTURE_TRIGGER = /^_sqlite2pg_(ins|upd|del|rins|rupd)_/;

/** One table's column change that ALTER TABLE can mirror in place. */
interface ColumnOps {
  /** Old source name → new source name. */
  renames: [string, string][];
  drops: string[];
  adds: string[];
}

/** A table kept (same rows), possibly renamed or altered in place. */
interface KeptTable {
  old: TablePlan;
  live: SourceTable;
  renamedFrom: string | null;
  ops: ColumnOps;
  /** Capture must be (re)installed: renamed, or the installed triggers are not the ones this table needs now. */
  reinstall: boolean;
  /** Anything differs from the plan (sql, indexes, name). */
  changed: boolean;
}

/** The whole difference. */
export interface SchemaDiff {
  kept: KeptTable[];
  dropped: TablePlan[];
  /** Live tables to plan, capture and copy from scratch; `old` when a table of that name is replaced. */
  fresh: { live: SourceTable; old: TablePlan | null; why: string }[];
  /** Whether anything at all changed (a change during the freeze aborts the cutover). */
  any: boolean;
  /** One line per change, for the log. */
  summary: string[];
}

const NO_OPS: ColumnOps = { renames: [], drops: [], adds: [] };

/** Compare the stored plan with the live schema. `usePages`: root pages are trustworthy (no VACUUM in between). */
export function diffSchema(plan: StoredPlan, live: LiveSchema, usePages: boolean): SchemaDiff {
  const pages = usePages ? plan.rootpages : undefined;
  const liveByName = new Map(live.schema.tables.map((t) => [t.name, t]));
  const claimed = new Set<string>();
  const pairs: { p: TablePlan; l: SourceTable; renamedFrom: string | null }[] = [];
  const unmatched: TablePlan[] = [];
  for (const p of plan.tables) {
    const l = liveByName.get(p.source.name);
    const samePage = !pages || pages[p.source.name] === undefined || live.pages[p.source.name] === pages[p.source.name];
    if (l && samePage) {
      pairs.push({ p, l, renamedFrom: null });
      claimed.add(l.name);
    } else unmatched.push(p);
  }
  const diff: SchemaDiff = { kept: [], dropped: [], fresh: [], any: false, summary: [] };
  // Renames first: a table rebuilt by hand in several transactions (create new_t,
  // copy, drop t, rename new_t to t) is then a rename, not a copy.
  const rest: TablePlan[] = [];
  for (const p of unmatched) {
    const page = pages?.[p.source.name];
    // A renamed table keeps its root page and takes its triggers along (under
    // their old names). Both are required: with auto_vacuum, dropping a table
    // may move another table's root onto the dropped one's page.
    const old = triggerNames(p.source.name);
    const moved =
      page === undefined
        ? undefined
        : live.schema.tables.find(
            (l) =>
              !claimed.has(l.name) &&
              live.pages[l.name] === page &&
              l.name !== p.source.name &&
              [old.ins, old.upd, old.del].every((n) => live.triggers.get(n) === l.name),
          );
    if (moved) {
      pairs.push({ p, l: moved, renamedFrom: p.source.name });
      claimed.add(moved.name);
      diff.summary.push(`table ${p.source.name} renamed to ${moved.name}`);
    } else rest.push(p);
  }
  for (const p of rest) {
    const same = liveByName.get(p.source.name);
    if (same && !claimed.has(same.name)) {
      diff.fresh.push({ live: same, old: p, why: "rebuilt (a new table under the same name)" });
      claimed.add(same.name);
      continue;
    }
    diff.dropped.push(p);
    diff.summary.push(`table ${p.source.name} dropped`);
  }
  for (const { p, l, renamedFrom } of pairs) {
    const cap = live.capture.get(l.name);
    const on = (names: string[]) => names.every((n) => live.triggers.get(n) === l.name);
    const hashOk = !!cap && !("error" in cap) && live.hashes.get(l.name) === cap.hash && on(cap.names);
    // Writes made while a capture trigger was missing (REPLACE evictions
    // included) were never recorded: only a copy is exact. The triggers that
    // were installed are those the plan's table needed.
    const old = triggerNames(renamedFrom ?? l.name);
    const ours = renamedFrom !== null || ownCapture(live, l.name, p.source, cap);
    const capturing =
      ours && (hashOk || on(replaceConflicts(p.source).sql ? [old.ins, old.upd, old.del, old.binsert, old.bupdate] : [old.ins, old.upd, old.del]));
    const why = !ours
      ? "its capture triggers are not the ones this version installs (another version's triggers may have missed writes)"
      : !capturing
        ? "its capture triggers are missing"
        : unmarkedKeySpelling(p) !== null
          ? `its key column ${unmarkedKeySpelling(p)} was typed by an older version in a way that makes two SQLite keys one`
          : keyChanged(p.source, l)
            ? "its key changed"
            : newUnique(p.source, l)
              ? "a new unique index (REPLACE through it was not captured)"
              : null;
    const ops = why ? null : columnOps(p.source.columns, l.columns);
    if (why || !ops) {
      diff.fresh.push({ live: l, old: p, why: why ?? "its columns changed in a way ALTER TABLE cannot mirror" });
      continue;
    }
    const changed = renamedFrom !== null || p.source.sql !== l.sql || indexSig(p.source.indexes) !== indexSig(l.indexes);
    diff.kept.push({ old: p, live: l, renamedFrom, ops, reinstall: renamedFrom !== null || !hashOk, changed });
    for (const [a, b] of ops.renames) diff.summary.push(`column ${l.name}.${a} renamed to ${b}`);
    for (const c of ops.drops) diff.summary.push(`column ${l.name}.${c} dropped`);
    for (const c of ops.adds) diff.summary.push(`column ${l.name}.${c} added`);
    if (changed && !ops.renames.length && !ops.drops.length && !ops.adds.length && !renamedFrom)
      diff.summary.push(`indexes or constraints of ${l.name} changed`);
    if (!hashOk && !renamedFrom) diff.summary.push(`capture of ${l.name} re-installed`);
  }
  for (const f of diff.fresh) diff.summary.push(`table ${f.live.name} ${f.why}: re-planned and copied again`);
  for (const l of live.schema.tables) {
    if (!claimed.has(l.name)) {
      diff.fresh.push({ live: l, old: null, why: "new" });
      diff.summary.push(`new table ${l.name}: planned, captured and copied`);
    }
  }
  diff.any = diff.dropped.length > 0 || diff.fresh.length > 0 || diff.kept.some((k) => k.changed || k.reinstall);
  return diff;
}

function keyChanged(a: SourceTable, b: SourceTable): boolean {
  return a.withoutRowid !== b.withoutRowid || (a.rowidAlias === null) !== (b.rowidAlias === null) || a.primaryKey.length !== b.primaryKey.length;
}

function termSig(ix: SourceIndex, rename: (c: string) => string = (c) => c): string {
  return `${ix.unique ? "u" : "i"}|${ix.terms.map((t) => `${t.column !== null ? "c:" + rename(t.column) : "e:" + t.expr}/${t.collation ?? ""}/${t.desc ? 1 : 0}`).join(",")}|${ix.where ?? ""}`;
}

function indexSig(ixs: SourceIndex[]): string {
  return ixs
    .map((ix) => `${ix.name}:${termSig(ix)}`)
    .sort()
    .join(";");
}

/** A unique index the plan's table did not have (compared by definition, through column renames). */
function newUnique(a: SourceTable, b: SourceTable): boolean {
  const ops = columnOps(a.columns, b.columns);
  const map = new Map(ops?.renames ?? []);
  const before = new Set(a.indexes.filter((i) => i.unique).map((i) => termSig(i, (c) => map.get(c) ?? c)));
  return b.indexes.some((i) => i.unique && !before.has(termSig(i)));
}

function sameButName(a: SourceColumn, b: SourceColumn): boolean {
  return (
    a.declaredType === b.declaredType &&
    a.notNull === b.notNull &&
    a.defaultSql === b.defaultSql &&
    a.pkOrdinal === b.pkOrdinal &&
    (a.collation ?? "").toUpperCase() === (b.collation ?? "").toUpperCase() &&
    (a.generated === null) === (b.generated === null)
  );
}

/** Renames only, drops only or adds only (what ALTER TABLE can do); null for anything else. */
function columnOps(before: SourceColumn[], after: SourceColumn[]): ColumnOps | null {
  if (before.length === after.length) {
    if (!before.every((c, i) => sameButName(c, after[i]!))) return null;
    return { renames: before.flatMap((c, i) => (c.name === after[i]!.name ? [] : [[c.name, after[i]!.name] as [string, string]])), drops: [], adds: [] };
  }
  if (after.length > before.length) {
    if (!before.every((c, i) => c.name === after[i]!.name && sameButName(c, after[i]!))) return null;
    const extra = after.slice(before.length);
    if (extra.some((c) => c.generated !== null)) return null; // Postgres computes generated columns: re-copy
    return { renames: [], drops: [], adds: extra.map((c) => c.name) };
  }
  const drops: string[] = [];
  let j = 0;
  for (const c of before) {
    const a = after[j];
    if (a && a.name === c.name && sameButName(c, a)) j++;
    else drops.push(c.name);
  }
  return j === after.length ? { ...NO_OPS, drops } : null;
}
