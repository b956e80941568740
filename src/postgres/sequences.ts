import type pg from "pg";
import type { Logger } from "../observe/logger.js";
import type { MigrationPlan } from "../plan/plan.js";
import { qualified, quoteIdent } from "../ident.js";

/**
 * Set every identity sequence past both the largest key in Postgres and
 * SQLite's `sqlite_sequence` (given per source table), so no id — not even
 * one of a deleted row under AUTOINCREMENT — is handed out again.
 */
export async function setSequences(c: pg.ClientBase, plan: MigrationPlan, sqliteSequence: Map<string, bigint | null>, log: Logger): Promise<void> {
  for (const t of plan.tables) {
    const col = t.constraints.identity;
    if (!col) continue;
    const table = qualified(plan.schema, t.name);
    const r = await c.query<{ m: string | null }>(`SELECT max(${quoteIdent(col)})::text AS m FROM ${table}`);
    const max = r.rows[0]!.m === null ? null : BigInt(r.rows[0]!.m);
    const seq = sqliteSequence.get(t.source.name) ?? null;
    const candidates = [max, seq].filter((x): x is bigint => x !== null);
    if (candidates.length === 0) continue;
    const last = candidates.reduce((a, b) => (a > b ? a : b));
    if (last < 1n) continue;
    await c.query("SELECT setval(pg_get_serial_sequence($1, $2), $3::bigint, true)", [table, col, last.toString()]);
    log.info({ table: t.name, column: col, last_value: last.toString(), max_key: max?.toString(), sqlite_sequence: seq?.toString() }, "sequence set");
  }
}
