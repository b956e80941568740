/**
 * What the throwaway servers of the tests (a PostgreSQL cluster, PgBouncer)
 * share: the user they run as, a directory that user can reach, their
 * processes, and the guarantee that none outlives the test process.
 *
 * PostgreSQL and PgBouncer refuse to run as root, so as root they run as the
 * `postgres` user (created when missing); otherwise as the current user. A
 * temporary directory under os.tmpdir() is 0700 and root's, so their files go
 * in a directory of mode 0755 that the server's user can enter, and the
 * directories and files they own are made theirs.
 *
 * Every server is spawned through `setpriv --pdeathsig` when the system has
 * it, so it gets a signal should this process die without stopping it (a
 * test worker killed hard); on exit and on SIGINT/SIGTERM/SIGHUP the
 * running servers are signalled too.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export { serverUser } from "../../src/postgres/embedded.js";
import { serverUser } from "../../src/postgres/embedded.js";

/** The environment of a server's process: no PG* variables of the tests', messages in English. */
export function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^PG/.test(k)) env[k] = v;
  env.LC_MESSAGES = "C";
  return env;
}

/** Whether the server's user can enter `dir` (and every directory above it). */
function userCanEnter(dir: string, user = serverUser()): boolean {
  if (user.uid === undefined) return existsSync(dir);
  return spawnSync("test", ["-d", dir, "-a", "-x", dir], { uid: user.uid, gid: user.gid, cwd: "/" }).status === 0;
}

/**
 * A new directory for a server's files, of mode 0755 under the first of
 * os.tmpdir(), /var/tmp and /tmp the server's user can enter, named
 * `<prefix><pid>-…`. The caller removes it; those left by a process that no
 * longer exists (killed hard) are removed here.
 */
export function makeServerBase(prefix: string): string {
  const user = serverUser();
  for (const parent of [tmpdir(), "/var/tmp", "/tmp"]) {
    if (!userCanEnter(parent, user)) continue;
    removeOrphans(parent, prefix);
    const dir = mkdtempSync(join(parent, `${prefix}${process.pid}-`));
    chmodSync(dir, 0o755);
    return dir;
  }
  throw new Error(`none of ${tmpdir()}, /var/tmp, /tmp is a directory the user ${user.name} can enter`);
}

function removeOrphans(parent: string, prefix: string): void {
  for (const name of readdirSync(parent)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (!pid || alive(pid)) continue;
    rmSync(join(parent, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Make `path` the server user's (as root; otherwise it is the current user's already). */
function own(path: string, user = serverUser()): void {
  if (user.uid !== undefined && user.gid !== undefined) chownSync(path, user.uid, user.gid);
}

/** A directory of mode 0700 that is the server user's. */
export function makeOwnedDir(path: string): string {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  chmodSync(path, 0o700);
  own(path);
  return path;
}

/** Write a file of mode `mode` that is the server user's. */
export function writeOwned(path: string, text: string, mode = 0o600): void {
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
  own(path);
}

/** Run a program as the server's user and wait for it; throws with its output when it fails. */
export async function runAs(program: string, args: string[], what: string): Promise<string> {
  const user = serverUser();
  const child = spawn(program, args, { uid: user.uid, gid: user.gid, cwd: "/", env: serverEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (b: Buffer) => {
    out = (out + b.toString()).slice(-8192);
  });
  child.stderr.on("data", (b: Buffer) => {
    out = (out + b.toString()).slice(-8192);
  });
  const [code, err] = await new Promise<[number | null, Error | null]>((res) => {
    child.once("error", (e) => res([null, e]));
    child.once("close", (c) => res([c, null]));
  });
  if (err || code !== 0) throw new Error(`${what} failed (${program}: ${err ? err.message : `exit status ${code}`}):\n${out.trim()}`);
  return out;
}

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p)) ?? null;

/** A server started by {@link spawnServer}. */
export interface ServerProcess {
  readonly child: ChildProcess;
  /** Set once the process has ended: how. */
  readonly exit: string | null;
  /** Resolves when the process has ended. */
  readonly exited: Promise<void>;
  /** Send `signal`, wait up to `timeoutMs` for the end, then SIGKILL. */
  stop(signal: NodeJS.Signals, timeoutMs?: number): Promise<void>;
}

/**
 * Spawn a long-running server as the server's user, its output appended to
 * `log`. Should this process die, the server gets `deathSignal`.
 */
export function spawnServer(program: string, args: string[], log: string, deathSignal: NodeJS.Signals): ServerProcess {
  const user = serverUser();
  const fd = openSync(log, "a", 0o644);
  let child: ChildProcess;
  try {
    const [cmd, argv] = SETPRIV ? [SETPRIV, ["--pdeathsig", deathSignal, "--", program, ...args]] : [program, args];
    child = spawn(cmd, argv, { uid: user.uid, gid: user.gid, cwd: "/", env: serverEnv(), stdio: ["ignore", fd, fd] });
  } finally {
    closeSync(fd);
  }
  const state: { exit: string | null } = { exit: null };
  const exited = new Promise<void>((res) => {
    child.once("error", (e) => {
      state.exit ??= `could not be started: ${e.message}`;
      res();
    });
    child.once("exit", (code, signal) => {
      state.exit ??= code === null ? `signal ${signal}` : `exit status ${code}`;
      res();
    });
  });
  const entry = { child, deathSignal };
  track(entry);
  void exited.then(() => untrack(entry));
  return {
    child,
    get exit() {
      return state.exit;
    },
    exited,
    async stop(signal, timeoutMs = 30_000) {
      if (state.exit === null) {
        child.kill(signal);
        if ((await Promise.race([exited.then(() => "done" as const), sleep(timeoutMs, "late" as const, { ref: false })])) === "late") {
          child.kill("SIGKILL");
          await exited;
        }
      }
    },
  };
}

// ── nothing outlives this process ────────────────────────────────────────────

interface Tracked {
  child: ChildProcess;
  deathSignal: NodeJS.Signals;
}
const running = new Set<Tracked>();
const dirs = new Set<string>();
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
let hooked = false;

/** Remove `dir` when this process ends, unless {@link forgetDir} is called first. */
export function removeAtExit(dir: string): void {
  dirs.add(dir);
  hook();
}

export function forgetDir(dir: string): void {
  dirs.delete(dir);
}

function killAll(): void {
  for (const t of running) t.child.kill(t.deathSignal);
  running.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  killAll();
  process.off(signal, onSignal);
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", killAll);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function track(t: Tracked): void {
  running.add(t);
  hook();
}

function untrack(t: Tracked): void {
  running.delete(t);
}

// ── logs ─────────────────────────────────────────────────────────────────────

/** The last lines of a log file, indented, to end an error message with. */
export function logTail(file: string, lines = 12): string {
  let fd: number | null = null;
  try {
    fd = openSync(file, "r");
    const size = statSync(file).size;
    const buf = Buffer.alloc(Math.min(8192, size));
    readSync(fd, buf, 0, buf.length, size - buf.length);
    const tail = buf
      .toString("utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .slice(-lines);
    return tail.length ? `\n  ${file} ends:\n    ${tail.join("\n    ")}` : "";
  } catch {
    return "";
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
