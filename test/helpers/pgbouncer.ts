/**
 * A throwaway PgBouncer for the tests, in front of one PostgreSQL server:
 * on a free port of 127.0.0.1, transaction pooling by default, a small pool
 * (2 server connections per database) so that pooling is real.
 *
 *     const bouncer = await startPgBouncer({ target: serverUrl() });
 *     // … connect to bouncer.url …
 *     await bouncer.stop();
 *
 * Clients connect to any database of the target server by its name, as any
 * user, without a password (auth_type = any: it is loopback and
 * throwaway); PgBouncer logs in to the server as the target URL's user, with
 * its password when it has one. The admin console is the database
 * `pgbouncer` (`bouncer.adminUrl`: SHOW POOLS, SHOW CONFIG, …, simple queries only).
 *
 * The binary is the Debian package's (/usr/sbin/pgbouncer); `.ci/run`
 * installs it when missing. PgBouncer refuses to run as root: as root it
 * runs as `postgres`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { freePort } from "../../src/postgres/embedded.js";
import { forgetDir, logTail, makeServerBase, removeAtExit, serverEnv, spawnServer, writeOwned } from "./server-process.js";

export interface PgBouncerOptions {
  /** The PostgreSQL server's URL (its host, port, user and password are used; clients choose the database). */
  target: string;
  /** Server connections per database and user (default_pool_size; default 2). */
  poolSize?: number;
  /** Default "transaction". */
  poolMode?: "transaction" | "session" | "statement";
}

export interface PgBouncer {
  /** The target URL with PgBouncer's host and port and no password: the same database and user. */
  readonly url: string;
  readonly port: number;
  /** The admin console: the database `pgbouncer`. */
  readonly adminUrl: string;
  readonly poolSize: number;
  readonly poolMode: "transaction" | "session" | "statement";
  /** PgBouncer's version, e.g. "1.18.0". */
  readonly version: string;
  /** Its log (gone after stop). */
  readonly log: string;
  /** Stop it (an immediate shutdown: clients are disconnected) and remove its files. Idempotent. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;

/** The PgBouncer binary: /usr/sbin/pgbouncer, or the first on PATH. */
function pgbouncerBinary(): string | null {
  if (existsSync("/usr/sbin/pgbouncer")) return "/usr/sbin/pgbouncer";
  const r = spawnSync("sh", ["-c", "command -v pgbouncer"], { encoding: "utf8" });
  const found = r.status === 0 ? r.stdout.trim() : "";
  return found || null;
}

/** A value of a libpq-style connection string, quoted. */
function connValue(v: string): string {
  return `'${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** Start PgBouncer in front of `opts.target`; see the module's comment. */
export async function startPgBouncer(opts: PgBouncerOptions): Promise<PgBouncer> {
  const binary = pgbouncerBinary();
  if (!binary) {
    throw new Error(
      "PgBouncer is not installed (no /usr/sbin/pgbouncer, none on PATH), and the tests of pooling need it: " +
        "`.ci/run` installs it (apt-get install pgbouncer); on this machine run `apt-get install -y pgbouncer`",
    );
  }
  const versionRun = spawnSync(binary, ["--version"], { encoding: "utf8", env: serverEnv() });
  const version = /PgBouncer (\S+)/.exec(versionRun.stdout ?? "")?.[1] ?? "unknown";

  const target = new URL(opts.target);
  const user = decodeURIComponent(target.username || "postgres");
  const password = target.password ? decodeURIComponent(target.password) : null;
  const poolSize = opts.poolSize ?? 2;
  const poolMode = opts.poolMode ?? "transaction";
  const base = makeServerBase("sqlite2pg-pgbouncer-");
  removeAtExit(base);
  const ini = join(base, "pgbouncer.ini");
  const log = join(base, "pgbouncer.log");
  const server = [
    `host=${connValue(target.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1")}`,
    `port=${target.port || "5432"}`,
    `user=${connValue(user)}`,
    ...(password === null ? [] : [`password=${connValue(password)}`]),
  ].join(" ");
  const config = (port: number) =>
    [
      "[databases]",
      // Every database name a client asks for, on the target server, as the target's user.
      `* = ${server}`,
      "",
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = any",
      `admin_users = ${user}`,
      `pool_mode = ${poolMode}`,
      `default_pool_size = ${poolSize}`,
      "min_pool_size = 0",
      "reserve_pool_size = 0",
      "max_client_conn = 1000",
      "server_login_retry = 1",
      "ignore_startup_parameters = extra_float_digits",
      "",
    ].join("\n");
  const remove = () => {
    rmSync(base, { recursive: true, force: true });
    forgetDir(base);
  };

  // Should another process take the free port before PgBouncer binds it: again, on another one.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    writeOwned(ini, config(port));
    const proc = spawnServer(binary, [ini], log, "SIGTERM");
    const admin = new URL(`postgres://127.0.0.1:${port}/pgbouncer`);
    admin.username = encodeURIComponent(user);
    const adminUrl = admin.toString();
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (proc.exit !== null) {
        const why = logTail(log);
        if (attempt < 3 && /already in use/i.test(why)) break;
        remove();
        throw new Error(`PgBouncer stopped while starting (${proc.exit})${why}`);
      }
      const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 2_000 });
      c.on("error", () => undefined);
      try {
        await c.connect();
        await c.query("SHOW VERSION");
        const url = new URL(opts.target);
        url.hostname = "127.0.0.1";
        url.port = String(port);
        url.password = "";
        const stop = async () => {
          await proc.stop("SIGTERM", 10_000);
          remove();
        };
        return { url: url.toString(), port, adminUrl, poolSize, poolMode, version, log, stop };
      } catch (e) {
        if (Date.now() > deadline) {
          const why = logTail(log);
          await proc.stop("SIGTERM", 10_000);
          remove();
          throw new Error(`PgBouncer did not accept connections on port ${port} within ${START_TIMEOUT_MS / 1000} s (${(e as Error).message})${why}`);
        }
      } finally {
        await c.end().catch(() => undefined);
      }
      await sleep(50);
    }
  }
}
