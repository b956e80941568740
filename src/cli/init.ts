import { accessSync, constants, existsSync, rmSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { dirname, resolve } from "node:path";
import { requireSqlite, resolveConfig } from "../config/config.js";
import { type Sqlite2pgError, sourceError, usageError, internalError } from "../errors.js";
import { buildPlan } from "../plan/plan.js";
import { censusAll } from "../migrate/copy-pool.js";
import { captureInfo, captureTriggersSql, ChangelogReader, installCapture } from "../sqlite/capture.js";
import { rollbackMarkerPath } from "../sqlite/freeze.js";
import { openSource } from "../sqlite/open.js";
import { readSchema } from "../sqlite/schema.js";
import { quoteIdent } from "../ident.js";
import { ensureStateSchema, loadState, saveInitCensus, type InitCensus } from "../replication/state.js";
import { schemaFingerprint } from "../replication/keys.js";
import type { TableCensus } from "../sqlite/census.js";
import { daemonRunning } from "../replication/lock.js";
import { createState, dropState, Phase } from "../replication/phase.js";
import { countRelations, redactUrl, withPg } from "../postgres/pg.js";

interface InitFlags {
  sqlite?: string;
  pg?: string;
  schema?: string;
  config?: string;
  wal?: boolean;
  dropExisting?: boolean;
  json?: boolean;
  preserveCase?: boolean;
}

/** A file (and its directory, where SQLite creates -wal and -shm) this process cannot write: a source error with a hint. */
function notWritable(path: string, what: string, cause?: unknown): Sqlite2pgError {
  return sourceError(
    "SQLITE_NOT_WRITABLE",
    `${what}: init installs triggers and a changelog in ${path}, and replication needs its -wal and -shm files beside it`,
    {
      context: { sqlite: path },
      cause,
      hint: "run init as the user the application runs as (the owner of the file), or give this user write access to the file and its directory; nothing was changed",
    },
  );
}

/** Check that the file and its directory can be written, before anything is changed. */
function checkWritable(path: string): void {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
  } catch (e) {
    throw notWritable(path, `${path} is not writable by this process`, e);
  }
  try {
    accessSync(dirname(path), constants.W_OK | constants.X_OK);
  } catch (e) {
    throw notWritable(path, `the directory ${dirname(path)} is not writable by this process`, e);
  }
}

/**
 * `sqlite2pg init`: the source in WAL mode, the changelog and capture
 * triggers in it, the target schema and the state table in Postgres.
 * Idempotent: run it again and it keeps what is there.
 *
 * Everything is checked first — the file writable, WAL or --wal, capture
 * possible for every table, no value the plan refuses, Postgres reachable,
 * the target schema empty or --drop-existing — and the application's file
 * is changed last: a refused init leaves it byte for byte as it was.
 */
export async function initCommand(flags: InitFlags): Promise<void> {
  const cfg = resolveConfig(flags);
  const path = resolve(requireSqlite(cfg));
  if (existsSync(path)) checkWritable(path); // (a missing file: openSource says so)
  // 1. The file, read-only: journal mode, capture installed?, the plan.
  const ro = openSource(path);
  let installedId: string | null;
  let tables: string[];
  let skipped: string[];
  let mode: string;
  let dataVersion = 0;
  let censuses = new Map<string, TableCensus>();
  try {
    mode = String(ro.pragma("journal_mode", { simple: true })).toLowerCase();
    installedId = captureInfo(ro)?.sourceId ?? null;
    const schema = readSchema(ro);
    for (const t of schema.tables) captureTriggersSql(t); // throws for a table capture cannot name rows of
    // Any commit to the file from here on changes data_version as this connection sees it.
    dataVersion = Number(ro.pragma("data_version", { simple: true }));
    censuses = await censusAll(path, ro, schema.tables);
    const plan = buildPlan(ro, schema, { schema: cfg.schema, preserveCase: cfg.preserveCase }, censuses);
    if (plan.refusals.length) {
      const r = plan.refusals[0]!;
      throw sourceError(
        "VALUES_REFUSED",
        `table ${r.table}, column ${r.column}: ${r.reason} (${r.key})${plan.refusals.length > 1 ? `; and ${plan.refusals.length - 1} more` : ""}`,
        {
          context: { table: r.table, column: r.column, key: r.key },
          hint: "`sqlite2pg plan` lists every refused value; fix them in SQLite, then run init again (nothing was changed)",
        },
      );
    }
    tables = schema.tables.map((t) => t.name);
    skipped = schema.skipped.filter((s) => s.type !== "shadow table").map((s) => `${s.type} ${s.name}: ${s.reason}`);
  } catch (e) {
    ro.close();
    throw e;
  }
  const sourceId = installedId ?? randomUUID();
  let target: { phase: string; created: boolean };
  try {
    if (mode !== "wal" && !flags.wal) {
      throw sourceError("NOT_WAL", `${path} is in ${mode} journal mode; replication needs WAL mode`, {
        context: { sqlite: path, journal_mode: mode },
        hint: "in WAL mode readers never block the application's writers, so the daemon can read while the application writes; pass --wal to switch the file to WAL (it stays in WAL for every connection)",
      });
    }
    // 2. Postgres: checked, then changed (schema, state row).
    target = await withPg(cfg.pg, async (c) => {
      await ensureStateSchema(c);
      let state = await loadState(c, sourceId, false);
      if (state && cfg.dropExisting) {
        // Start over: the way back from a file replaced under the daemon (a
        // backup restored over it), or from a replica one no longer trusts.
        if (state.phase === Phase.cutOver || state.phase === Phase.done || state.phase === Phase.fallback || state.phase === Phase.rollingBack) {
          throw usageError(
            "ALREADY_CUT_OVER",
            `this source was cut over to schema ${state.targetSchema}: the application writes there now, so --drop-existing will not drop it`,
            { context: { schema: state.targetSchema, phase: state.phase } },
          );
        }
        if (state.phase === Phase.frozen || state.phase === Phase.cutoverCatchUp) {
          throw usageError("CUTOVER_UNDER_WAY", `a cutover is under way (phase ${state.phase}); run \`sqlite2pg unfreeze\` first`, {
            context: { phase: state.phase },
          });
        }
        if (await daemonRunning(c, sourceId)) {
          throw usageError("DAEMON_RUNNING", "a daemon is replicating this source; stop it before starting over with --drop-existing", {
            context: { source_id: sourceId },
          });
        }
        await dropState(c, sourceId); // its snapshot progress goes with it; only from a phase that may start over
        state = null;
        // A later attempt after a rollback: the old rollback marker would name this source id still.
        rmSync(rollbackMarkerPath(path), { force: true });
      }
      if (!state) {
        const n = await countRelations(c, cfg.schema); // a sequence counts too, as for migrate
        if (n > 0) {
          if (!cfg.dropExisting) {
            throw usageError("TARGET_NOT_EMPTY", `the target schema ${cfg.schema} already holds ${n} relation(s)`, {
              context: { schema: cfg.schema },
              hint: "choose another --schema, or pass --drop-existing to drop the schema and everything in it (the SQLite file was not changed)",
            });
          }
          await c.query(`DROP SCHEMA ${quoteIdent(cfg.schema)} CASCADE`);
        }
        await c.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(cfg.schema)}`);
        await createState(c, { sourceId, sqlitePath: path, targetSchema: cfg.schema, preserveCase: cfg.preserveCase });
        return { phase: Phase.new, created: true };
      }
      if (state.targetSchema !== cfg.schema) {
        throw usageError("SCHEMA_MISMATCH", `this source already replicates into schema ${state.targetSchema}, not ${cfg.schema}`, {
          context: { schema: cfg.schema, recorded_schema: state.targetSchema },
        });
      }
      return { phase: state.phase, created: false };
    });
    // 3. The application's file, last.
    try {
      const db = openSource(path, { readonly: false });
      try {
        if (mode !== "wal") {
          const now = String(db.pragma("journal_mode = WAL", { simple: true })).toLowerCase();
          if (now !== "wal")
            throw sourceError("WAL_SWITCH_FAILED", `could not switch ${path} to WAL mode (still ${now}); another connection may hold it`, {
              context: { sqlite: path },
            });
        }
        // The census stays exact for the daemon's first plan if nothing was
        // committed between it and the triggers (this transaction holds the
        // write lock once it has written): then every later change is captured.
        let exact: InitCensus | null = null;
        const id = installCapture(db, readSchema(db).tables, sourceId, () => {
          if (Number(ro.pragma("data_version", { simple: true })) === dataVersion)
            exact = { position: new ChangelogReader(db).newestSeq(), fingerprint: schemaFingerprint(db), tables: censuses };
        });
        if (id !== sourceId) throw internalError("SOURCE_ID_CHANGED", `the source id changed during init (${sourceId} → ${id})`, { context: { sqlite: path } });
        if (target.phase === Phase.new) await withPg(cfg.pg, (c) => saveInitCensus(c, sourceId, exact));
      } finally {
        db.close();
      }
    } catch (e) {
      // Undo the state row this run created, so a second init starts clean.
      if (target.created) await withPg(cfg.pg, (c) => dropState(c, sourceId, [Phase.new])).catch(() => undefined);
      const code = (e as { code?: string }).code ?? "";
      if (code.startsWith("SQLITE_READONLY") || code === "SQLITE_CANTOPEN" || code === "SQLITE_PERM")
        throw notWritable(path, `${path} cannot be written (${code})`, e);
      throw e;
    }
  } finally {
    ro.close();
  }
  const summary = {
    source_id: sourceId,
    sqlite: path,
    pg: cfg.pg ? redactUrl(cfg.pg) : "PG* environment",
    schema: cfg.schema,
    tables,
    skipped,
    phase: target.phase,
  };
  if (!tables.length) process.stderr.write(`warning: ${path} has no tables: there is nothing to replicate (the application has not created its schema yet?)\n`);
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
