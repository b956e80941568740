// Shared helpers of the replication benchmarks (capture.mjs, apply.mjs, latency.mjs):
// flags, machine description, Postgres databases, the sqlite2pg CLI and daemon,
// in-process `status`, percentiles and the Markdown report.
//
// Postgres: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres); trust auth or PGPASSWORD.
// SQLITE2PG_BIN overrides the sqlite2pg entry point (default bin/sqlite2pg.js).
import { createRequire } from 'node:module';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const require = createRequire(import.meta.url);
export const Database = require('better-sqlite3');
export const { Client } = require('pg');
export { sleep };

export const BENCH = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = resolve(BENCH, '..');
export const BIN = resolve(process.env.SQLITE2PG_BIN || join(ROOT, 'bin', 'sqlite2pg.js'));
export const dist = (p) => import(pathToFileURL(join(ROOT, 'dist', p)).href);

export const PG = { host: process.env.PGHOST || '127.0.0.1', port: Number(process.env.PGPORT || 5432), user: process.env.PGUSER || 'postgres' };
export const pgUrl = (db) => `postgresql://${encodeURIComponent(PG.user)}@${PG.host}:${PG.port}/${db}`;
export async function pgClient(database = 'postgres') {
  const c = new Client({ ...PG, database });
  c.on('error', (e) => console.error(`postgres connection to ${database}: ${e.message}`));
  await c.connect();
  return c;
}

/** Flags: `spec` maps name → default (a string default makes a string flag, any other a number); `bools` are boolean flags. Exits 2 on a bad flag. */
export function flags(usage, spec, bools = []) {
  const options = Object.fromEntries([...Object.keys(spec).map((k) => [k, { type: 'string' }]), ...bools.map((k) => [k, { type: 'boolean', default: false }])]);
  let values;
  try { ({ values } = parseArgs({ options })); } catch (e) { console.error(`${e.message}\nusage: ${usage}`); process.exit(2); }
  const out = {};
  for (const [k, d] of Object.entries(spec)) {
    if (typeof d === 'string') { out[k] = values[k] ?? d; continue; }
    out[k] = values[k] === undefined ? d : Number(values[k]);
    if (d !== null && !(Number.isFinite(out[k]) && out[k] >= 0)) { console.error(`bad --${k}\nusage: ${usage}`); process.exit(2); }
  }
  for (const k of bools) out[k] = values[k];
  return out;
}

/** A fresh work directory under bench/data/, removed by `cleanup`. */
export function workDir(name) {
  const dir = join(BENCH, 'data', `${name}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

const cleanups = [];
let cleaning = null;
let interrupted = false;
const children = new Set();
/** Register a cleanup (run in reverse order by `runCleanups`, also on SIGINT/SIGTERM). */
export function onCleanup(fn) { cleanups.push(fn); }
/** Run every cleanup once; later calls wait for the same pass. */
export function runCleanups() {
  cleaning ??= (async () => {
    while (cleanups.length) {
      const fn = cleanups.pop();
      try { await fn(); } catch (e) { console.error(`cleanup: ${e.message}`); }
    }
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => { interrupted = true; void runCleanups().finally(() => process.exit(130)); });
// Whatever happens, no daemon outlives the benchmark.
process.on('exit', () => { for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL'); });

/** Create (or re-create) a Postgres database; dropped again at cleanup. */
export async function freshDb(name) {
  const c = await pgClient();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
  } finally { await c.end(); }
  onCleanup(async () => {
    const d = await pgClient();
    try { await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`); } finally { await d.end(); }
  });
  return pgUrl(name);
}

/** Machine description (Markdown lines). */
export async function machine() {
  const cpu = (readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m) ?? [])[1] ?? os.cpus()[0]?.model ?? '?';
  let nproc = String(os.availableParallelism());
  try { nproc = execFileSync('nproc', { encoding: 'utf8' }).trim(); } catch { /* keep */ }
  const c = await pgClient();
  const pgv = (await c.query('SHOW server_version')).rows[0].server_version;
  await c.end();
  const db = new Database(':memory:');
  const sqlitev = db.prepare('SELECT sqlite_version() AS v').get().v;
  db.close();
  return [
    `- date: ${new Date().toISOString()}`,
    `- machine: ${nproc} CPU(s) (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} at start`,
    `- PostgreSQL ${pgv} at ${PG.host}:${PG.port}; Node ${process.version}; SQLite ${sqlitev} (better-sqlite3); sqlite2pg ${BIN}`,
  ];
}

/** Run the CLI to completion: { code, stdout, stderr }. */
export function cli(args, { timeoutMs = 600_000 } = {}) {
  return new Promise((res) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => { clearTimeout(timer); res({ code: code ?? (signal ? 128 : 1), stdout, stderr }); });
  });
}

/** Run the CLI and fail (throw) on a non-zero exit. */
export async function cliOk(args) {
  const r = await cli(args);
  if (r.code !== 0) throw new Error(`sqlite2pg ${args[0]} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 2000)}`);
  return r;
}

/**
 * Start `sqlite2pg run` in the background, its output (pino JSON) in `logFile`.
 * `stop()` sends SIGTERM and resolves { code, signal, stopMs }; `exited` is set if it dies on its own.
 */
export function startDaemon(sqlite, pg, logFile, extra = []) {
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [BIN, 'run', '--sqlite', sqlite, '--pg', pg, ...extra], { cwd: ROOT, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  children.add(child);
  const d = { child, exited: null, startedAt: performance.now() };
  const done = new Promise((res) => child.on('exit', (code, signal) => { d.exited = { code, signal, at: performance.now() }; res(d.exited); }));
  d.stop = async (timeoutMs = 60_000) => {
    if (d.exited) return { ...d.exited, stopMs: 0, already: true };
    const t0 = performance.now();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const r = await done;
    clearTimeout(timer);
    return { ...r, stopMs: r.at - t0 };
  };
  onCleanup(() => { if (!d.exited) child.kill('SIGKILL'); });
  return d;
}

/** The daemon's log lines (parsed pino JSON), e.g. to find errors. */
export function daemonLog(logFile) {
  let text = '';
  try { text = readFileSync(logFile, 'utf8'); } catch { return []; }
  return text.split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return { msg: l, level: 50 }; } });
}

let readStatusFn = null;
/**
 * `sqlite2pg status --json`, computed in this process with the CLI's own
 * `readStatus` (dist/cli/status.js): spawning a Node process every 100 ms would
 * cost more CPU than the daemon on a 2-core machine.
 */
export async function status(sqlite, pg) {
  readStatusFn ??= (await dist('cli/status.js')).readStatus;
  return readStatusFn(sqlite, pg);
}

/** Poll `fn` every `everyMs` until it returns a truthy value; throws after `timeoutMs` or when `abort()` says why. */
export async function waitFor(what, fn, { timeoutMs = 600_000, everyMs = 100, abort = () => null } = {}) {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    const why = abort();
    if (why) throw new Error(`${what}: ${why}`);
    if (performance.now() > end) throw new Error(`${what}: timed out after ${timeoutMs / 1000} s`);
    await sleep(everyMs);
  }
}

/**
 * Wait until the daemon has copied the snapshot and streams with no lag. Builds
 * before 32d4585 left a source that got no change after the snapshot in phase
 * "catch-up" (the phase only moved when a batch was applied), so if lag is 0 in
 * catch-up, `nudge()` makes one change (the caller's no-op UPDATE) — harmless now.
 */
export async function waitStreaming(sqlite, pg, daemon, nudge, timeoutMs = 600_000) {
  let nudged = false;
  const abort = () => (daemon.exited ? `the daemon exited (code ${daemon.exited.code}, signal ${daemon.exited.signal})` : null);
  return waitFor('waiting for phase streaming', async () => {
    const s = await status(sqlite, pg);
    if (s.phase === 'streaming' && s.lag_changes === 0) return s;
    if (s.phase === 'catch-up' && s.lag_changes === 0 && !nudged) { nudged = true; nudge(); }
    return null;
  }, { timeoutMs, abort });
}

/** CPU time (user + system, ms) of a process, from /proc (clock ticks of 10 ms); NaN if it is gone. */
export function cpuMs(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (+f[11] + +f[12]) * 10;
  } catch { return NaN; }
}

/** CPU time (ms) of the live Postgres backends connected to `database` (same machine only; 0 if none are visible). */
export function pgBackendCpuMs(database) {
  let sum = 0;
  for (const pid of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.startsWith('postgres: ') && cmd.split(' ').includes(database)) sum += cpuMs(pid) || 0;
    } catch { /* gone */ }
  }
  return sum;
}

/** Install sqlite2pg's capture triggers on every table of `file`, as `init` does (no daemon, no Postgres). */
export async function installTriggers(file) {
  const [{ installCapture }, { readSchema }] = await Promise.all([dist('sqlite/capture.js'), dist('sqlite/schema.js')]);
  const db = new Database(file);
  try { installCapture(db, readSchema(db).tables); } finally { db.close(); }
}

/**
 * The floor of a capture trigger on table `items` of `file`: AFTER `events` triggers that each add 1 to an
 * integer in a one-row table. Not a capture: the least a trigger that records something in the file costs.
 */
export function installFloor(file, events = ['INSERT', 'UPDATE', 'DELETE']) {
  const db = new Database(file);
  try {
    db.exec(`CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO bench_floor VALUES (1, 0);
      ${events.map((e) => `CREATE TRIGGER bench_floor_${e.toLowerCase()} AFTER ${e} ON items BEGIN UPDATE bench_floor SET n = n + 1 WHERE id = 1; END;`).join('\n')}`);
  } finally { db.close(); }
}

/** Percentile (nearest rank) of a sorted array. */
export function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
export const median = (xs) => pct([...xs].sort((a, b) => a - b), 50);
export const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : String(n));

/** A Markdown table from a header row and rows. */
export function table(head, rows) {
  return [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i ? '---:' : '---')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** Print the report and write it to bench/out/<name>-<date>.md. */
export function report(name, markdown) {
  const out = join(BENCH, 'out');
  mkdirSync(out, { recursive: true });
  const file = join(out, `${name}-${new Date().toISOString().slice(0, 10)}.md`);
  writeFileSync(file, markdown.endsWith('\n') ? markdown : markdown + '\n');
  process.stdout.write(`\n${markdown}\n\n(written to ${file})\n`);
}

/** Run `main`, clean up, and exit: 0, or 1 if the tool failed (an exception). */
export function run(main) {
  main().then(
    async () => { await runCleanups(); process.exit(interrupted ? 130 : 0); },
    async (e) => {
      if (!interrupted) console.error(`FAILED: ${e?.stack ?? e}`);
      await runCleanups();
      process.stderr.write('', () => process.exit(interrupted ? 130 : 1));
    },
  );
}
