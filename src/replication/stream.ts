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
import { sourceError, Sqlite2pgError } from "../errors.js";
import type { ColumnPlan, MigrationPlan, TablePlan } from "../plan/plan.js";
import { qualified, quoteIdent } from "../ident.js";
import type { ChangelogReader } from "../sqlite/capture.js";
import { DEFAULT_CHUNK_BYTES, KeyedReader, rowBytes } from "../sqlite/reader.js";
import { paramValue, ValueRefused } from "../convert/copy-encode.js";
import { CopyData, ROWID_COLUMN, RowEncoder, type TransformedValue } from "../convert/row-encoder.js";
import { GeneratedCheck } from "../postgres/generated-check.js";
import { readNamed } from "../plan/too-big.js";
import { usesRowidColumn } from "./snapshot.js";
import { SENTINEL_TABLE } from "../sqlite/capture.js";
import { crashPoint } from "../observe/crash-points.js";
import { inTransaction } from "../postgres/transaction.js";

/** What one batch did. */
export interface BatchResult {
  changes: number;
  rows: number;
  lastSeq: number;
  /** The token of the change at `lastSeq` (recorded with the checkpoint). */
  lastToken: number | null;
}

interface TableApply {
  t: TablePlan;
  generated: GeneratedCheck | null;
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
  /** Whether the last batch read ended early at its byte budget (more changes were at hand). */
  cutByBytes = false;

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
    const keyed = new KeyedReader(
      this.db,
      t,
      t.columns.map((c) => c.source.name),
    );
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
    const deleteSql =
      keyCols.length === 1
        ? `DELETE FROM ${target} WHERE ${quoteIdent(keyCols[0]!.name)} = ANY($1::${pgType(keyCols[0]!)}[])`
        : `DELETE FROM ${target} WHERE (${keyCols.map((k) => quoteIdent(k.name)).join(", ")}) IN (SELECT * FROM unnest(${keyCols.map((k, i) => `$${i + 1}::${pgType(k)}[]`).join(", ")}))`;
    // Deleted by the exact stored values. A key of a kind its column refuses
    // (a number in a text key) was never written to Postgres: it names no row there.
    const keyParams = (keys: unknown[][]) => {
      const params: unknown[][] = keyCols.map(() => []);
      for (const key of keys) {
        let vals: unknown[];
        try {
          vals = keyCols.map((k, i) => (k.col ? paramValue(key[i], k.col, i) : String(key[i])));
        } catch (e) {
          if (e instanceof ValueRefused) continue;
          throw e;
        }
        for (const [i, v] of vals.entries()) params[i]!.push(v);
      }
      return params;
    };
    a = {
      t,
      generated: GeneratedCheck.of(this.plan.schema, t, keyed.keyNames, keyed.keyWidth),
      keyed,
      encoder,
      deleteSql,
      keyParams,
      copySql: `COPY ${target} (${encoder.columnList}) FROM STDIN`,
    };
    this.tables.set(name, a);
    return a;
  }

  /**
   * Apply the changes after `after` (at most `limit`, and only as many as
   * keep the rows read under about `maxBytes`, always at least one), in one
   * Postgres transaction that also advances the state. Returns what was
   * applied; `changes` is 0 when the changelog had nothing new.
   */
  async applyBatch(
    changelog: ChangelogReader,
    client: pg.ClientBase,
    sourceId: string,
    after: number,
    limit: number,
    token: number | null = null,
    maxBytes = DEFAULT_CHUNK_BYTES,
  ): Promise<BatchResult> {
    // One SQLite read transaction: the batch and the rows it names.
    const work = changelog.snapshot(() => {
      // In the same snapshot: this is still the file replicated up to `after`,
      changelog.verifyCheckpoint(sourceId, after, token);
      // and the schema this batch is read under is the plan's (else the daemon mirrors the change first).
      this.opts.schemaGuard?.();
      return this.readBatch(changelog, after, limit, maxBytes);
    });
    if (work.changes.length === 0) return { changes: 0, rows: 0, lastSeq: after, lastToken: token };
    const lastSeq = work.changes[work.changes.length - 1]!.seq;
    const lastToken = work.changes[work.changes.length - 1]!.at;
    let rows = 0;
    await inTransaction(client, async () => {
      for (const { a, keys, rows: current } of work.tables) {
        await client.query(a.deleteSql, a.keyParams(keys));
        if (current.length > 0) {
          // Buffers of COPY text, never one string: a batch of large rows stays within V8's string limit.
          const data = new CopyData();
          for (const r of current) a.encoder.write(r, data);
          await pipeline(Readable.from(data.take()), client.query(copyFrom(a.copySql)));
          await a.generated?.check(client, current);
          rows += current.length;
        }
      }
      await client
        .query(
          `UPDATE sqlite2pg.state SET applied_seq = $2, changes_applied = changes_applied + $3, applied_at = now(), updated_at = now(),
           apply_rate = coalesce($4, apply_rate), last_error = NULL, applied_token = $6
         WHERE source_id = $1 AND applied_seq = $5`,
          [sourceId, lastSeq, work.changes.length, this.rate, after, lastToken],
        )
        .then((r) => {
          if (r.rowCount !== 1) {
            throw new Sqlite2pgError(
              "target",
              "STATE_MOVED",
              "the state moved under this daemon (another daemon applied meanwhile); nothing of this batch was committed",
              {
                context: { source_id: sourceId, applied_seq: after },
                retryable: true,
                hint: "the daemon re-reads the state and goes on from there",
              },
            );
          }
        });
      crashPoint("stream-before-commit");
    });
    crashPoint("stream-after-commit");
    return { changes: work.changes.length, rows, lastSeq, lastToken };
  }

  /**
   * The changes after `after` and the current rows for their keys (inside
   * the caller's read transaction). Keys are read in order of first
   * appearance, in groups that double while the rows are small and shrink
   * to one when they are large; once the rows read pass `maxBytes`, the
   * batch ends after the change that brought the last key read.
   */
  private readBatch(changelog: ChangelogReader, after: number, limit: number, maxBytes: number) {
    const all = changelog.read(after, limit);
    const byTable = new Map<string, { a: TableApply; keys: Map<string, unknown[]>; rows: unknown[][] }>();
    let bytes = 0;
    let end = all.length;
    let group = 1;
    this.cutByBytes = false;
    for (let i = 0; i < all.length; ) {
      const fresh = new Map<string, unknown[][]>();
      let n = 0;
      for (; i < all.length && n < group; i++) {
        const ch = all[i]!;
        if (ch.tbl === SENTINEL_TABLE) continue; // the cutover's marker: nothing to apply
        const a = this.table(ch.tbl);
        let entry = byTable.get(ch.tbl);
        if (!entry) {
          entry = { a, keys: new Map(), rows: [] };
          byTable.set(ch.tbl, entry);
        }
        const key = ch.key.slice(0, a.keyed.keyWidth);
        const ks = keyString(key);
        if (entry.keys.has(ks)) continue;
        entry.keys.set(ks, key);
        let list = fresh.get(ch.tbl);
        if (!list) {
          list = [];
          fresh.set(ch.tbl, list);
        }
        list.push(key);
        n++;
      }
      let biggest = 1;
      for (const [name, keys] of fresh) {
        const entry = byTable.get(name)!;
        for (const r of readNamed(this.db, entry.a.t, () => entry.a.keyed.read(keys))) {
          const b = rowBytes(r);
          bytes += b;
          if (b > biggest) biggest = b;
          entry.rows.push(r);
        }
      }
      if (bytes >= maxBytes && i < all.length) {
        end = i;
        this.cutByBytes = true;
        break;
      }
      // Powers of two up to 256: the reader prepares one statement per group size.
      const fit = Math.max(1, Math.min(256, group * 2, Math.floor((maxBytes - bytes) / biggest)));
      group = 2 ** Math.floor(Math.log2(fit));
    }
    // Two keys a collation calls equal ('rust', 'Rust' under NOCASE) read the same row: insert it once.
    const tables = [...byTable.values()].map(({ a, keys, rows }) => ({ a, keys: [...keys.values()], rows: uniqueRows(rows, a.keyed.keyWidth) }));
    return { changes: all.slice(0, end), tables };
  }
}

/**
 * Each row once, by its exact key: under a key column's collation (NOCASE)
 * two logged keys, 'rust' and 'Rust', can both read the same row.
 */
function uniqueRows(rows: unknown[][], width: number): unknown[][] {
  const seen = new Set<string>();
  return rows.filter((r) => {
    const k = keyString(r.slice(0, width));
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function keyString(key: unknown[]): string {
  return key.map((v) => (Buffer.isBuffer(v) ? "x" + v.toString("hex") : typeof v === "string" ? "s" + v : typeof v + String(v))).join("\u0000");
}
