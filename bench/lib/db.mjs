// Shared helpers of the application-library benchmarks (adapters.mjs, locks.mjs):
// MySQL databases, versions for the machine line, a distribution-free confidence
// interval of a median, and an in-process CPU profile summarized by function.
//
// MySQL/MariaDB: MYSQL_URL (default mysql://root@127.0.0.1:3306/test); the benchmark
// creates its own database on that server and drops it at the end.
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { onCleanup } from './replication.mjs';

const require = createRequire(import.meta.url);
export const mysql = require('mysql2/promise');
export const pg = require('pg');

export const MYSQL_URL = process.env.MYSQL_URL || 'mysql://root@127.0.0.1:3306/test';

/** `MYSQL_URL` with another database. */
export function mysqlUrl(database) {
  const u = new URL(MYSQL_URL);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Create (or re-create) a MySQL database, dropped again at cleanup; resolves its URL and the server's version. */
export async function freshMysqlDb(name) {
  const c = await mysql.createConnection({ uri: MYSQL_URL });
  let version;
  try {
    version = (await c.query('SELECT VERSION() AS v'))[0][0].v;
    await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await c.query(`CREATE DATABASE \`${name}\``);
  } finally { await c.end(); }
  onCleanup(async () => {
    const d = await mysql.createConnection({ uri: MYSQL_URL });
    try { await d.query(`DROP DATABASE IF EXISTS \`${name}\``); } finally { await d.end(); }
  });
  return { url: mysqlUrl(name), version };
}

/** Versions of the drivers, for the report's machine lines. */
export function driverVersions() {
  const v = (p) => { try { return require(`${p}/package.json`).version; } catch { return '?'; } };
  return `better-sqlite3 ${v('better-sqlite3')}, pg ${v('pg')}, mysql2 ${v('mysql2')}`;
}

/** `uptime`'s line (load averages), or os.loadavg() when it is missing. */
export function uptime() {
  const r = spawnSync('uptime', { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : `load average: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}`;
}

/**
 * The median of `xs` and a distribution-free confidence interval for it, of at least
 * `level` coverage: [x(k), x(n+1-k)] of the sorted values, k the largest index whose
 * binomial coverage 1 − 2·P(Bin(n, ½) ≤ k−1) is still ≥ level. Needs n ≥ 6 for 95 %;
 * with fewer values the interval is the whole range and `coverage` says how much less it is.
 */
export function medianCI(xs, level = 0.95) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const med = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  const choose = (a, b) => { let r = 1; for (let i = 1; i <= b; i++) r = (r * (a - b + i)) / i; return r; };
  let k = 1, coverage = 1 - 2 * 0.5 ** n;
  for (let j = 2; j <= Math.floor(n / 2); j++) {
    let tail = 0;
    for (let i = 0; i <= j - 1; i++) tail += choose(n, i) * 0.5 ** n;
    if (1 - 2 * tail < level) break;
    k = j;
    coverage = 1 - 2 * tail;
  }
  return { median: med, lo: s[k - 1], hi: s[n - k], coverage, n };
}

/**
 * Run `fn` under V8's sampling profiler (in this process, node:inspector) and return
 * the self time per function, in µs, with the total wall time profiled:
 * { totalUs, byFunction: Map<'name (file:line)', us>, byArea: { area: us } }.
 * Areas: the library (dist/db), each driver, Node's internals, GC, idle (waiting for I/O).
 */
export async function profile(fn, { intervalUs = 50 } = {}) {
  const { Session } = await import('node:inspector/promises');
  const s = new Session();
  s.connect();
  await s.post('Profiler.enable');
  await s.post('Profiler.setSamplingInterval', { interval: intervalUs });
  await s.post('Profiler.start');
  await fn();
  const { profile: p } = await s.post('Profiler.stop');
  await s.post('Profiler.disable');
  s.disconnect();
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const byFunction = new Map();
  const byArea = {};
  let totalUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    totalUs += dt;
    const { functionName, url, lineNumber } = nodes.get(p.samples[i]).callFrame;
    const file = url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/');
    const key = `${functionName || '(anonymous)'}${file ? ` (${file}:${lineNumber + 1})` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + dt);
    const area = areaOf(functionName, url);
    byArea[area] = (byArea[area] ?? 0) + dt;
  }
  return { totalUs, byFunction, byArea };
}

function areaOf(name, url) {
  if (name === '(idle)') return 'idle (waiting for the server)';
  if (name === '(garbage collector)') return 'GC';
  if (name === '(program)' || name === '(root)') return 'V8/native (program)';
  if (/\/dist\/db\//.test(url)) return 'library (dist/db)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (m) return `driver/dep: ${m[1]}`;
  if (url.startsWith('node:')) return 'Node internals';
  if (/\/bench\//.test(url)) return 'benchmark loop';
  if (!url) return `native: ${name}`;
  return 'other JS';
}
