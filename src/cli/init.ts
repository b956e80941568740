import { resolve } from "node:path";
import { requireSqlite, resolveConfig } from "../config/config.js";
import { sourceError, usageError } from "../errors.js";
import { captureInfo, installCapture } from "../source/capture.js";
import { openSource } from "../source/open.js";
import { readSchema } from "../source/schema.js";
import { quoteIdent } from "../sql/ident.js";
import { daemonRunning, ensureStateSchema, loadState } from "../target/state.js";
import { redactUrl, withPg } from "../target/pg.js";

interface InitFlags {
  sqlite?: string; pg?: string; schema?: string; config?: string; wal?: boolean; dropExisting?: boolean; json?: boolean; preserveCase?: boolean;
}

/**
 * `sqlite2pg init`: the source in WAL mode, the changelog and capture
 * triggers in it, the target schema and the state table in Postgres.
 * Idempotent: run it again and it keeps what is there.
 */
export async function initCommand(flags: InitFlags): Promise<void> {
  const cfg = resolveConfig(flags);
  const path = resolve(requireSqlite(cfg));
  const db = openSource(path, { readonly: false });
  let sourceId: string;
  let tables: string[];
  let skipped: string[];
  try {
    const mode = String(db.pragma("journal_mode", { simple: true })).toLowerCase();
    if (mode !== "wal") {
      if (!flags.wal) {
        throw sourceError("NOT_WAL", `${path} is in ${mode} journal mode; replication needs WAL mode`, {
          context: { sqlite: path, journal_mode: mode },
          hint: "in WAL mode readers never block the application's writers, so the daemon can read while the application writes; pass --wal to switch the file to WAL (it stays in WAL for every connection)",
        });
      }
      const now = String(db.pragma("journal_mode = WAL", { simple: true })).toLowerCase();
      if (now !== "wal") throw sourceError("WAL_SWITCH_FAILED", `could not switch ${path} to WAL mode (still ${now}); another connection may hold it`, { context: { sqlite: path } });
    }
    const schema = readSchema(db);
    const before = captureInfo(db);
    sourceId = installCapture(db, schema.tables);
    tables = schema.tables.map((t) => t.name);
    skipped = schema.skipped.filter((s) => s.type !== "shadow table").map((s) => `${s.type} ${s.name}: ${s.reason}`);
    if (before && before.sourceId !== sourceId) throw new Error("source id changed during init");
  } finally {
    db.close();
  }
  const target = await withPg(cfg.pg, async (c) => {
    await ensureStateSchema(c);
    let state = await loadState(c, sourceId);
    if (state && cfg.dropExisting) {
      // Start over: the way back from a file replaced under the daemon (a
      // backup restored over it), or from a replica one no longer trusts.
      if (state.phase === "cut-over" || state.phase === "done") {
        throw usageError("ALREADY_CUT_OVER", `this source was cut over to schema ${state.targetSchema}: the application writes there now, so --drop-existing will not drop it`, { context: { schema: state.targetSchema, phase: state.phase } });
      }
      if (state.phase === "frozen" || state.phase === "cutover-catch-up") {
        throw usageError("CUTOVER_UNDER_WAY", `a cutover is under way (phase ${state.phase}); run \`sqlite2pg unfreeze\` first`, { context: { phase: state.phase } });
      }
      if (await daemonRunning(c, sourceId)) {
        throw usageError("DAEMON_RUNNING", "a daemon is replicating this source; stop it before starting over with --drop-existing", { context: { source_id: sourceId } });
      }
      await c.query("DELETE FROM sqlite2pg.state WHERE source_id = $1", [sourceId]); // its snapshot progress goes with it
      state = null;
    }
    if (!state) {
      const n = await c.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_class k JOIN pg_namespace s ON s.oid = k.relnamespace WHERE s.nspname = $1 AND k.relkind IN ('r','p','v','m','f')",
        [cfg.schema],
      );
      if (Number(n.rows[0]!.n) > 0) {
        if (!cfg.dropExisting) {
          throw usageError("TARGET_NOT_EMPTY", `the target schema ${cfg.schema} already holds ${n.rows[0]!.n} relation(s)`, {
            context: { schema: cfg.schema }, hint: "choose another --schema, or pass --drop-existing to drop the schema and everything in it",
          });
        }
        await c.query(`DROP SCHEMA ${quoteIdent(cfg.schema)} CASCADE`);
      }
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(cfg.schema)}`);
      await c.query("INSERT INTO sqlite2pg.state (source_id, sqlite_path, target_schema, preserve_case, phase) VALUES ($1, $2, $3, $4, 'new')", [sourceId, path, cfg.schema, cfg.preserveCase]);
      return { phase: "new", created: true };
    }
    if (state.targetSchema !== cfg.schema) {
      throw usageError("SCHEMA_MISMATCH", `this source already replicates into schema ${state.targetSchema}, not ${cfg.schema}`, { context: { schema: cfg.schema } });
    }
    return { phase: state.phase, created: false };
  });
  const summary = { source_id: sourceId, sqlite: path, pg: cfg.pg ? redactUrl(cfg.pg) : "PG* environment", schema: cfg.schema, tables, skipped, phase: target.phase };
  if (flags.json) {
    process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
    return;
  }
  process.stdout.write(
    `Change capture installed in ${path} (WAL mode; source id ${sourceId}).\n` +
      `  ${tables.length} table(s) captured: ${tables.join(", ") || "(none)"}\n` +
      (skipped.length ? `  not captured:\n${skipped.map((s) => "    " + s).join("\n")}\n` : "") +
      `Target: schema ${cfg.schema} on ${summary.pg}; state ${target.created ? "created" : "kept"} (phase ${target.phase}).\n` +
      `Next: sqlite2pg run --sqlite ${path} --pg …\n`,
  );
}
