import { mkdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { createLogger } from "../observe/logger.js";
import { logProgress, terminalProgress } from "../observe/progress.js";
import { migrate } from "../migrate/migrate.js";
import { createSampleDatabase } from "./sample-data.js";

/** `sqlite2pg sample`: a sample database migrated into an embedded Postgres, on any machine. */
export async function sampleCommand(flags: { dir: string; rows: number }): Promise<void> {
  const dir = resolve(flags.dir);
  mkdirSync(dir, { recursive: true });
  const sqlite = join(dir, "shop.db");
  for (const f of [sqlite, sqlite + "-wal", sqlite + "-shm"]) rmSync(f, { force: true });
  process.stdout.write(`Creating the sample database ${sqlite} (${flags.rows} orders)…\n`);
  createSampleDatabase(sqlite, flags.rows);
  process.stdout.write("Starting an embedded PostgreSQL…\n");
  const { startEmbeddedPostgres } = await import("../postgres/embedded.js");
  const pgdata = join(dir, "pgdata");
  rmSync(pgdata, { recursive: true, force: true }); // a fresh server each run (its password is new each time)
  const pg = await startEmbeddedPostgres(pgdata);
  if (pg.dataDir !== pgdata) process.stdout.write(`Its data: ${pg.dataDir}, where the server's user can reach it (${pgdata} links there).\n`);
  try {
    const tty = Boolean(process.stderr.isTTY);
    const log = createLogger({ level: tty ? "warn" : "info" });
    const result = await migrate({
      sqlite,
      pg: pg.url,
      schema: "shop",
      jobs: 2,
      preserveCase: false,
      dropExisting: true,
      fixText: false,
      log,
      progress: tty ? terminalProgress() : logProgress(log),
    });
    process.stdout.write(
      `\nMigrated ${result.rows} rows in ${result.tables.length} tables in ${result.seconds.toFixed(1)} s; validated value for value.\n` +
        result.tables.map((t) => `  shop.${t.table}: ${t.rows} rows`).join("\n") +
        `\n\nThe embedded server is stopped now; its data stays in ${pg.dataDir}.\n` +
        `To migrate your own database: sqlite2pg migrate --sqlite app.db --pg postgres://user@host/db\n`,
    );
  } finally {
    await pg.stop();
  }
}
