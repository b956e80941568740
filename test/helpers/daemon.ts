/**
 * Real processes for fault tests: the `sqlite2pg` CLI and daemon (from
 * dist/, through bin/sqlite2pg.js) and the application writer
 * (workload-writer.mjs), each a child process the test can SIGKILL.
 * Every process' stderr is kept (a bounded tail) for failure output.
 */
import type { StatusReport } from "../../src/replication/status.js";
import { execFile, fork, spawn, type ChildProcess } from "node:child_process";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const ROOT = resolve(__dirname, "../..");
const BIN = join(ROOT, "bin/sqlite2pg.js");
const WRITER = join(ROOT, "test/helpers/workload-writer.mjs");
const LEDGER_WRITER = join(ROOT, "test/fixtures/writer.mjs");

/** Environment for child processes: no ambient connection settings, no colours. */
function childEnv(): NodeJS.ProcessEnv {
  // The forward path's tests end at the cutover, as `--no-fallback` does; the way back's tests set SQLITE2PG_FALLBACK=true.
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", SQLITE2PG_FALLBACK: "false" };
  for (const k of ["DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "SQLITE2PG_SQLITE", "SQLITE2PG_SCHEMA", "SQLITE2PG_LOG_LEVEL"])
    delete env[k];
  return env;
}

/** What a finished CLI command printed. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Run `sqlite2pg <args>` to completion (killed after `timeoutMs`).
 * `opts.fileModesApply`, as root: run it without the capabilities that let
 * root ignore file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so a file
 * of mode 0444 is read-only to it — still root, so it reaches the CLI
 * wherever it is checked out (a directory of mode 0700 too).
 */
export function runCli(args: string[], timeoutMs = 30_000, opts: { env?: NodeJS.ProcessEnv; fileModesApply?: boolean } = {}): Promise<CliResult> {
  const argv = [process.execPath, BIN, ...args];
  if (opts.fileModesApply && process.getuid?.() === 0) argv.unshift("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--");
  return new Promise((res) => {
    execFile(
      argv[0]!,
      argv.slice(1),
      { cwd: ROOT, env: { ...childEnv(), ...opts.env }, timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
        res({ code: e ? (typeof e.code === "number" ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
      },
    );
  });
}

/** `sqlite2pg status --json`, parsed. */
export type Status = StatusReport;

export async function cliStatus(sqlite: string, pgUrl: string): Promise<Status> {
  const r = await runCli(["status", "--sqlite", sqlite, "--pg", pgUrl, "--json"]);
  if (r.code !== 0) throw new Error(`sqlite2pg status exited ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as Status;
}

/** A bounded log of lines, oldest dropped first. */
class Tail {
  private readonly lines: string[] = [];
  private partial = "";
  constructor(private readonly max = 400) {}
  push(chunk: string): void {
    const parts = (this.partial + chunk).split("\n");
    this.partial = parts.pop()!;
    for (const l of parts) {
      this.lines.push(l);
      if (this.lines.length > this.max) this.lines.shift();
    }
  }
  all(): string[] {
    return this.partial ? [...this.lines, this.partial] : [...this.lines];
  }
}

/** Shorten a pino JSON line to "time level msg {fields}" for failure output. */
function shortLog(line: string): string {
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    const { level, time, msg, pid: _pid, hostname: _h, ...rest } = o;
    const lv =
      typeof level === "number" ? (({ 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal" } as Record<number, string>)[level] ?? level) : level;
    const t = typeof time === "number" ? new Date(time).toISOString().slice(11, 23) : "";
    return `${t} ${lv} ${msg} ${JSON.stringify(rest)}`;
  } catch {
    return line;
  }
}

/** One `sqlite2pg run` process. */
export class Daemon {
  readonly proc: ChildProcess;
  readonly startedAt = Date.now();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly err = new Tail();
  private readonly out = new Tail(50);
  private errAll = "";

  constructor(
    readonly label: string,
    args: string[],
    env: NodeJS.ProcessEnv = {},
  ) {
    this.proc = spawn(process.execPath, [BIN, "run", ...args], { cwd: ROOT, env: { ...childEnv(), ...env }, stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stderr!.setEncoding("utf8").on("data", (d: string) => {
      this.err.push(d);
      this.errAll += d;
    });
    this.proc.stdout!.setEncoding("utf8").on("data", (d: string) => this.out.push(d));
    this.exited = new Promise((res) => {
      this.proc.on("exit", (code, signal) => {
        this.exitInfo = { code, signal };
        res(this.exitInfo);
      });
    });
  }

  /**
   * Start `sqlite2pg run`. `env` adds variables (e.g. SQLITE2PG_CRASH_AT for
   * a named crash point), `args` more flags. Tests prune every
   * `pruneS` seconds (default 0.2, not the daemon's minute), so pruning is
   * exercised — and crash points in it reached — within a test's time.
   */
  static start(
    label: string,
    o: { sqlite: string; pg: string; pollMs?: number; batchSize?: number; chunkRows?: number; pruneS?: number; env?: NodeJS.ProcessEnv; args?: string[] },
  ): Daemon {
    const args = [
      "--sqlite",
      o.sqlite,
      "--pg",
      o.pg,
      "--poll-ms",
      String(o.pollMs ?? 50),
      "--batch-size",
      String(o.batchSize ?? 200),
      "--prune-interval",
      String(o.pruneS ?? 0.2),
    ];
    if (o.chunkRows) args.push("--chunk-rows", String(o.chunkRows));
    if (o.args) args.push(...o.args);
    return new Daemon(label, args, o.env);
  }

  /** The stderr lines that contain `text` (raw). */
  logged(text: string): string[] {
    return this.err.all().filter((l) => l.includes(text));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** Still running (no exit seen). */
  get alive(): boolean {
    return this.exitInfo === null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.proc.kill(signal);
  }

  /** Wait for the exit, at most `ms`; null when it did not exit in time. */
  async waitExit(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
    return Promise.race([this.exited, sleep(ms).then(() => null)]);
  }

  /** Stderr lines (pino JSON, shortened), newest last. */
  stderrTail(n = 40): string[] {
    return this.err.all().slice(-n).map(shortLog);
  }

  /** The whole stderr so far, raw (for tests that check every line, e.g. that a secret never appears). */
  log(): string {
    return this.errAll;
  }

  /** Every stderr line kept, raw. */
  stderrLines(): string[] {
    return this.err.all();
  }

  describe(n = 40): string {
    const ex = this.exitInfo ? `exited code=${this.exitInfo.code} signal=${this.exitInfo.signal}` : "running";
    return (
      `--- daemon ${this.label} (pid ${this.proc.pid}, ${ex}); stderr tail:\n${this.stderrTail(n)
        .map((l) => "  " + l)
        .join("\n")}` + (this.out.all().length ? `\n  stdout: ${this.out.all().join(" | ")}` : "")
    );
  }
}

/** Statistics the writer reports when stopped. */
export interface WriterStats {
  txs: number;
  committed: number;
  rolledBack: number;
  busyRetries: number;
  statements: number;
  kinds: Record<string, number>;
  next: number;
}

/** The application writer process (workload-writer.mjs). */
export class Writer {
  readonly proc: ChildProcess;
  private readonly err = new Tail(100);
  private waiters: { ev: string; resolve: (m: Record<string, unknown>) => void }[] = [];
  failure: string | null = null;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly exited: Promise<void>;

  constructor(sqlite: string, seed: number, paceMs = 3) {
    this.proc = fork(WRITER, [sqlite, String(seed), String(paceMs)], { cwd: ROOT, env: childEnv(), stdio: ["ignore", "ignore", "pipe", "ipc"] });
    this.proc.stderr!.setEncoding("utf8").on("data", (d: string) => this.err.push(d));
    this.proc.on("message", (m: Record<string, unknown>) => {
      if (m.ev === "error") this.failure = String(m.message);
      const i = this.waiters.findIndex((w) => w.ev === m.ev);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
    });
    this.exited = new Promise((res) =>
      this.proc.on("exit", (code, signal) => {
        this.exitInfo = { code, signal };
        for (const w of this.waiters.splice(0)) w.resolve({ ev: "exit" });
        res();
      }),
    );
  }

  private next(ev: string, ms: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`writer: no "${ev}" within ${ms} ms${this.failure ? `; it failed: ${this.failure}` : ""}`)), ms);
      this.waiters.push({
        ev,
        resolve: (m) => {
          clearTimeout(t);
          resolve(m);
        },
      });
    });
  }

  get alive(): boolean {
    return this.exitInfo === null;
  }

  async ready(): Promise<void> {
    await this.next("ready", 20_000);
  }

  /** Pause between transactions; resolves when no workload write is in flight. */
  async pause(): Promise<void> {
    const p = this.next("paused", 30_000);
    this.proc.send({ cmd: "pause" });
    const m = await p;
    if (m.ev !== "paused") throw new Error(`writer exited while pausing: ${this.describe()}`);
  }

  async resume(): Promise<void> {
    const p = this.next("resumed", 10_000);
    this.proc.send({ cmd: "resume" });
    await p;
  }

  /** Stop after the current transaction; returns what it did. */
  async stop(): Promise<WriterStats> {
    const p = this.next("stopped", 30_000);
    this.proc.send({ cmd: "stop" });
    const m = await p;
    await this.exited;
    if (m.ev !== "stopped") throw new Error(`writer did not stop cleanly: ${this.describe()}`);
    return m.stats as WriterStats;
  }

  kill(): void {
    if (this.alive) this.proc.kill("SIGKILL");
  }

  describe(): string {
    const ex = this.exitInfo ? `exited code=${this.exitInfo.code} signal=${this.exitInfo.signal}` : "running";
    return `--- writer (pid ${this.proc.pid}, ${ex})${this.failure ? `\n  failure: ${this.failure}` : ""}\n  stderr: ${this.err.all().slice(-20).join("\n  ")}`;
  }
}

/** One write of the ledger writer, as it reported it. */
export interface WriteOutcome {
  op: number;
  ok: boolean;
  error?: string;
}

/**
 * The ledger writer (test/fixtures/writer.mjs): an application writing one
 * transaction per write at `rate` writes a second until stopped, reporting
 * every outcome (acknowledged, or refused with its message).
 */
export class LedgerWriter {
  readonly proc: ChildProcess;
  private out = "";
  private readonly err = new Tail(50);
  private readonly exited: Promise<void>;

  constructor(sqlite: string, rate: number) {
    this.proc = spawn(process.execPath, [LEDGER_WRITER, sqlite, String(rate)], { cwd: ROOT, env: childEnv(), stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
      this.out += d;
    });
    this.proc.stderr!.setEncoding("utf8").on("data", (d: string) => this.err.push(d));
    this.exited = new Promise((res) => this.proc.on("exit", () => res()));
  }

  private get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Stop it (SIGTERM: it finishes the write under way) and return every outcome. */
  async stop(): Promise<WriteOutcome[]> {
    if (this.alive) this.proc.kill("SIGTERM");
    await this.exited;
    return this.out
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as WriteOutcome);
  }

  kill(): void {
    if (this.alive) this.proc.kill("SIGKILL");
  }
}

/** An error that ends a {@link waitFor} at once (the thing waited for cannot happen any more). */
export class Fatal extends Error {}

/**
 * Poll `check` until it returns a value other than undefined/false, or fail
 * after `ms` with `what`. Errors from `check` are retried (the last one is
 * reported), except {@link Fatal} ones, which end the wait at once.
 */
export async function waitFor<T>(what: string, ms: number, check: () => Promise<T | undefined | false> | T | undefined | false, everyMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      if (e instanceof Fatal) throw e;
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
    await sleep(everyMs);
  }
}
