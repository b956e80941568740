/**
 * The stream: apply one bounded batch of changes. The batch and the current
 * rows for its keys are read in ONE SQLite read transaction, so they are
 * one consistent picture; then, in ONE Postgres transaction, every key of
 * the batch is deleted, the rows that still exist are inserted with COPY,
 * and `applied_seq` advances. Delete-then-insert makes a re-applied batch
 * harmless and lets rows swap keys without tripping the primary key; many
 * changes to one hot row coalesce into one insert.
 */
import type BetterSqlite3 from "better-sqlite3";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { sourceError } from "../errors.js";
import type { ColumnPlan, MigrationPlan, TablePlan } from "../plan/plan.js";
import { qualified, quoteIdent } from "../sql/ident.js";
import type { ChangelogReader } from "../source/capture.js";
import { KeyedReader } from "../source/reader.js";
import { paramValue } from "../target/copy-encode.js";
import { ROWID_COLUMN, RowEncoder, type TransformedValue } from "../target/row-encoder.js";
import { usesRowidColumn } from "./snapshot.js";
import { SENTINEL_TABLE } from "../source/capture.js";

/** What one batch did. */
export interface BatchResult {
  changes: number;
  rows: number;
  lastSeq: number;
}

interface TableApply {
  t: TablePlan;
  keyed: KeyedReader;
  encoder: RowEncoder;
  deleteSql: string;
  keyParams: (keys: unknown[][]) => unknown[];
  copySql: string;
}

/** Prepared per-table apply machinery, built once per plan. */
export class Applier {
  private readonly tables = new Map<string, TableApply>();
  /** The recent apply rate, recorded with each batch (the daemon's one connection carries it). */
  rate: number | null = null;

  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly plan: MigrationPlan,
    private readonly opts: { fixText: boolean; transformed: TransformedValue[]; schemaGuard?: () => void },
  ) {}

  private table(name: string): TableApply {
    let a = this.tables.get(name);
    if (a) return a;
    const t = this.plan.tables.find((x) => x.source.name === name);
    if (!t) {
      throw sourceError("UNKNOWN_TABLE_CHANGED", `the changelog has a change to table ${name}, which is not in the replication plan`, {
        context: { table: name },
        hint: "schema changes are mirrored before a batch is applied, so this change was recorded by something other than this table's capture triggers; nothing was applied: run `sqlite2pg validate --full` and report it",
      });
    }
    const keyed = new KeyedReader(this.db, t, t.columns.map((c) => c.source.name));
    const encoder = new RowEncoder(this.db, t, keyed.keyNames, keyed.keyWidth, { ...this.opts, rowidColumn: usesRowidColumn(t) });
    const target = qualified(this.plan.schema, t.name);
    let keyCols: { name: string; col: ColumnPlan | null }[];
    if (t.readOrder.kind === "rowid") {
      const alias = t.columns.find((c) => c.source.name === t.source.rowidAlias);
      keyCols = [{ name: alias ? alias.name : ROWID_COLUMN, col: alias ?? null }];
    } else {
      keyCols = t.readOrder.columns.map((k) => {
        const c = t.columns.find((x) => x.source.name === k)!;
        return { name: c.name, col: c };
      });
    }
    const pgType = (k: { col: ColumnPlan | null }) => (k.col ? k.col.type.sql.replace(/\(.*\)$/, "") : "bigint");
    const deleteSql = keyCols.length === 1
      ? `DELETE FROM ${target} WHERE ${quoteIdent(keyCols[0]!.name)} = ANY($1::${pgType(keyCols[0]!)}[])`
      : `DELETE FROM ${target} WHERE (${keyCols.map((k) => quoteIdent(k.name)).join(", ")}) IN (SELECT * FROM unnest(${keyCols.map((k, i) => `$${i + 1}::${pgType(k)}[]`).join(", ")}))`;
    const keyParams = (keys: unknown[][]) =>
      keyCols.map((k, i) => keys.map((key) => (k.col ? paramValue(key[i], k.col, i) : String(key[i]))));
    a = { t, keyed, encoder, deleteSql, keyParams, copySql: `COPY ${target} (${encoder.columnList}) FROM STDIN` };
    this.tables.set(name, a);
    return a;
  }

  /**
   * Apply the changes after `after` (at most `limit`), in one Postgres
   * transaction that also advances the state. Returns what was applied;
   * `changes` is 0 when the changelog had nothing new.
   */
  async applyBatch(changelog: ChangelogReader, client: pg.ClientBase, sourceId: string, after: number, limit: number): Promise<BatchResult> {
    // One SQLite read transaction: the batch and the rows it names.
    const work = changelog.snapshot(() => {
      // The schema this batch is read under must be the plan's: else the daemon mirrors the change first.
      this.opts.schemaGuard?.();
      const changes = changelog.read(after, limit);
      const byTable = new Map<string, Map<string, unknown[]>>();
      for (const ch of changes) {
        if (ch.tbl === SENTINEL_TABLE) continue; // the cutover's marker: nothing to apply
        const a = this.table(ch.tbl);
        let keys = byTable.get(ch.tbl);
        if (!keys) byTable.set(ch.tbl, (keys = new Map()));
        const key = ch.key.slice(0, a.keyed.keyWidth);
        keys.set(keyString(key), key);
      }
      const tables = [...byTable.entries()].map(([name, keys]) => {
        const a = this.table(name);
        const keyList = [...keys.values()];
        return { a, keys: keyList, rows: a.keyed.read(keyList) };
      });
      return { changes, tables };
    });
    if (work.changes.length === 0) return { changes: 0, rows: 0, lastSeq: after };
    const lastSeq = work.changes[work.changes.length - 1]!.seq;
    let rows = 0;
    await client.query("BEGIN");
    try {
      for (const { a, keys, rows: current } of work.tables) {
        await client.query(a.deleteSql, a.keyParams(keys));
        if (current.length > 0) {
          const text = current.map((r) => a.encoder.line(r)).join("");
          await pipeline(Readable.from([Buffer.from(text)]), client.query(copyFrom(a.copySql)));
          rows += current.length;
        }
      }
      await client.query(
        `UPDATE sqlite2pg.state SET applied_seq = $2, changes_applied = changes_applied + $3, applied_at = now(), updated_at = now(),
           apply_rate = coalesce($4, apply_rate), last_error = NULL
         WHERE source_id = $1 AND applied_seq = $5`,
        [sourceId, lastSeq, work.changes.length, this.rate, after],
      ).then((r) => {
        if (r.rowCount !== 1) throw new Error("the state moved under this daemon (another daemon applied meanwhile)");
      });
      await client.query("COMMIT");
    } catch (e) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw e;
    }
    return { changes: work.changes.length, rows, lastSeq };
  }
}

function keyString(key: unknown[]): string {
  return key.map((v) => (Buffer.isBuffer(v) ? "x" + v.toString("hex") : typeof v === "string" ? "s" + v : typeof v + String(v))).join("\u0000");
}
