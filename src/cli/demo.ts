import Database from "better-sqlite3";
import { mkdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createLogger } from "../observe/logger.js";
import { Replicator } from "../replication/replicator.js";
import { createSampleDatabase } from "./sample-data.js";
import { installCapture } from "../sqlite/capture.js";
import { isFrozenError } from "../db/frozen.js";
import { readSchema } from "../sqlite/schema.js";
import { connectPg } from "../postgres/pg.js";
import { ensureStateSchema } from "../replication/state.js";
import { createState, Phase } from "../replication/phase.js";
import { validationError } from "../errors.js";

/**
 * `sqlite2pg demo`: the whole story on a machine with no Postgres. A sample
 * shop database with a live writer, an embedded PostgreSQL, init, snapshot,
 * streaming with the lag on screen, the cutover (the writer's SQLite writes
 * start failing with the freeze message, and it moves to Postgres), full
 * validation, a summary and the psql line to look at the result.
 */
export async function demoCommand(flags: { dir: string; rows: number; seconds: number; keep?: boolean }): Promise<void> {
  const dir = resolve(flags.dir);
  mkdirSync(dir, { recursive: true });
  const sqlite = join(dir, "shop.db");
  for (const f of [sqlite, `${sqlite}-wal`, `${sqlite}-shm`, `${sqlite}-sqlite2pg-cutover.json`]) rmSync(f, { force: true });
  const say = (s: string) => process.stdout.write(s + "\n");
  say(`1. A sample application database: ${sqlite} (${flags.rows} orders)`);
  createSampleDatabase(sqlite, flags.rows);
  say("2. An embedded PostgreSQL (nothing to install)…");
  const { startEmbeddedPostgres } = await import("../postgres/embedded.js");
  const pgdata = join(dir, "pgdata");
  rmSync(pgdata, { recursive: true, force: true });
  const server = await startEmbeddedPostgres(pgdata, { trust: true });
  if (server.dataDir !== pgdata) say(`   its data: ${server.dataDir}, where the server's user can reach it (${pgdata} links there)`);
  const log = createLogger({ level: "warn" });
  const app = new Database(sqlite);
  app.pragma("busy_timeout = 5000");
  let rep: Replicator | null = null;
  try {
    say("3. init: change capture in the SQLite file, state table in Postgres");
    const id = installCapture(app, readSchema(app).tables);
    const c = await connectPg(server.url);
    await ensureStateSchema(c);
    await c.query("CREATE SCHEMA IF NOT EXISTS shop");
    await createState(c, { sourceId: id, sqlitePath: sqlite, targetSchema: "shop", preserveCase: false }, { ifAbsent: true });

    // The application: a few hundred writes a second, to SQLite until the
    // freeze refuses them, then to Postgres.
    const counts = { sqlite: 0, refused: 0, postgres: 0 };
    let onPostgres = false;
    let writing = true;
    // The application follows the cutover's NOTIFY, as the switching database does.
    await c.query("LISTEN sqlite2pg_cutover");
    c.on("notification", () => (onPostgres = true));
    const placeOrder = app.prepare("INSERT INTO orders (customer_id, placed_at, note) VALUES (?, datetime('now'), 'live order')");
    const writer = (async () => {
      for (let i = 1; writing; i++) {
        try {
          if (onPostgres) {
            await c.query("INSERT INTO shop.orders (customer_id, placed_at, note) VALUES ($1, now(), 'live order (Postgres)')", [1 + (i % 100)]);
            counts.postgres++;
          } else {
            placeOrder.run(1 + (i % 100));
            counts.sqlite++;
          }
        } catch (e) {
          if (!isFrozenError(e)) throw e;
          counts.refused++;
        }
        await sleep(3);
      }
    })();

    say("4. run: snapshot, catch-up, streaming — the application keeps writing");
    rep = new Replicator({ sqlite, pg: server.url, log, pollIntervalMs: 200, cutover: { validate: "full" } });
    const running = rep.run();
    const started = Date.now();
    let cutoverAsked = false;
    let fallbackSince = 0;
    const tty = Boolean(process.stdout.isTTY);
    for (;;) {
      const st = rep.live(); // the daemon runs in this process: its own numbers, no connection per refresh
      const line = `   phase ${(st.phase ?? st.role).padEnd(16)} applied ${String(st.applied_seq ?? 0).padStart(7)}  lag ${String(st.lag_changes ?? 0).padStart(5)} change(s), ${(st.lag_seconds ?? 0).toFixed(3)} s   writes: ${counts.sqlite} to SQLite`;
      process.stdout.write(tty ? `\r${line}` : line + "\n");
      if (!cutoverAsked && st.phase === Phase.streaming && Date.now() - started > flags.seconds * 1000) {
        process.stdout.write(tty ? "\n" : "");
        say("5. cutover (what `systemctl kill -s SIGUSR2 sqlite2pg` does): freeze SQLite, drain, cut over, validate");
        await rep.requestCutover();
        cutoverAsked = true;
      }
      if (st.phase === Phase.cutOver || st.phase === Phase.fallback || st.phase === Phase.done) onPostgres = true;
      if (st.phase === Phase.fallback && !fallbackSince) {
        fallbackSince = Date.now();
        process.stdout.write(tty ? "\n" : "");
        say("6. fallback: the application writes to Postgres; the daemon applies each write back to SQLite, the way back (`sqlite2pg rollback`)");
      }
      if (fallbackSince && fallbackSince !== -1 && Date.now() - fallbackSince > 2000) {
        // The demo keeps Postgres: `sqlite2pg finish` ends the fallback.
        await rep.requestFallbackEnd("finish");
        fallbackSince = -1;
      }
      if (st.phase === Phase.done) break;
      await sleep(tty ? 250 : 1000);
    }
    await running;
    await sleep(300);
    writing = false;
    await writer;
    process.stdout.write(tty ? "\n" : "");
    const s = (await c.query("SELECT freeze_ms, validation, fallback_applied FROM sqlite2pg.state WHERE source_id = $1", [id])).rows[0];
    const v = s.validation as { ok: boolean; tables: { table: string; pg_rows: number; sqlite_rows: number; digest: string }[] };
    say(
      `7. done: SQLite froze for ${Number(s.freeze_ms).toFixed(1)} ms; ${counts.refused} write(s) refused meanwhile with the freeze message, then the application wrote ${counts.postgres} to Postgres; ${s.fallback_applied} change(s) followed back into SQLite until \`finish\`.`,
    );
    say(`   validation (row checksums): ${v.ok ? "Postgres held exactly what SQLite held" : "DIFFERENCES FOUND"}`);
    for (const t of v.tables) say(`     shop.${t.table}: ${t.pg_rows} rows at the cutover`);
    await c.end();
    if (!v.ok) {
      const differing = v.tables.filter((t) => t.sqlite_rows !== t.pg_rows || t.digest === "differs").map((t) => t.table);
      throw validationError(
        "DEMO_VALIDATION",
        `the demo's validation found differences between SQLite and Postgres${differing.length ? ` (table ${differing.join(", ")})` : ""}`,
        {
          context: { schema: "shop" },
          hint: "the stored report is in sqlite2pg.state.validation; please report this with the demo's output",
        },
      );
    }
    if (process.stdin.isTTY && flags.keep !== false) {
      say(`\nLook at the result while this runs:  psql ${server.url} -c 'SELECT count(*) FROM shop.orders'`);
      say("Press Enter to stop the embedded PostgreSQL.");
      await new Promise((r) => process.stdin.once("data", r));
      process.stdin.pause();
    } else {
      say(`\nThe server's data stays in ${server.dataDir}; \`sqlite2pg demo\` on a terminal keeps it running for psql.`);
    }
  } finally {
    try {
      await rep?.stop();
    } finally {
      app.close();
      await server.stop();
    }
  }
}
