#!/usr/bin/env node
// Distributed lock throughput and latency: DatabaseManager.distributedLock (dist/)
// acquire + critical section + release, on PostgreSQL direct, PostgreSQL through
// PgBouncer (transaction pooling), MySQL/MariaDB, and SQLite for reference:
//
//   node bench/locks.mjs [--seconds S=5] [--contenders C=8] [--work empty,update]
//                        [--only postgres,pgbouncer,mysql,sqlite] [--bouncer-pool P=8]
//
// Each measurement: 1 caller (uncontended), then C callers on the same lock name, each
// caller a separate Node process (bench/lib/lock-worker.mjs) with its own adapter and a
// pool of one connection, calling distributedLock in a loop for S seconds after a common
// start. Critical sections: `empty` (an async no-op: the lock's own cost — on PostgreSQL a
// transaction with no write, so no WAL flush at COMMIT) and `update` (`UPDATE counter SET
// n = n + 1 WHERE id = 1` through the transaction handle: a durable commit per lock).
// Reported: locks/s (calls that ended inside the window / S), p50/p99/max latency of one
// call (acquire — waits included — + critical section + release), the spread of calls per
// caller, and for `update` whether the counter equals the number of calls that completed
// (mutual exclusion holding: an exact count). Exits 1 only if a caller failed or the count
// is wrong.
//
// What a lock is (see the README): PostgreSQL `BEGIN ISOLATION LEVEL READ COMMITTED` +
// `pg_advisory_xact_lock` on a pinned client, released by COMMIT; MySQL `GET_LOCK` on the
// connection, `START TRANSACTION` … `COMMIT`, `RELEASE_LOCK`; SQLite `BEGIN IMMEDIATE`
// (the file's write lock; a busy attempt sleeps 1 → 10 ms and tries again).
// PgBouncer: started on a free port (bench/lib/pgbouncer.mjs), pool_mode=transaction,
// default_pool_size=P (P ≥ C gives every caller a server connection; smaller P makes
// callers queue in PgBouncer too).
import { fork } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BENCH, Database as BetterSqlite3, fmt, freshDb, machine, onCleanup, pct, pgUrl, report, run, table, workDir } from './lib/replication.mjs';
import { driverVersions, freshMysqlDb, mysql, pg, uptime } from './lib/db.mjs';
import { startPgBouncer } from './lib/pgbouncer.mjs';

const USAGE = 'node bench/locks.mjs [--seconds S=5] [--contenders C=8] [--work empty,update] [--only postgres,pgbouncer,mysql,sqlite] [--bouncer-pool P=8]';
let args;
try {
  args = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' }, contenders: { type: 'string', default: '8' }, work: { type: 'string', default: 'empty,update' },
      only: { type: 'string', default: 'postgres,pgbouncer,mysql,sqlite' }, 'bouncer-pool': { type: 'string', default: '8' },
    },
  }).values;
} catch (e) { console.error(`${e.message}\nusage: ${USAGE}`); process.exit(2); }
const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
const opt = { seconds: Number(args.seconds), contenders: Number(args.contenders), work: list(args.work), only: list(args.only), bouncerPool: Number(args['bouncer-pool']) };
const BACKENDS = ['postgres', 'pgbouncer', 'mysql', 'sqlite'];
if (!(opt.seconds > 0 && Number.isInteger(opt.contenders) && opt.contenders >= 1 && Number.isInteger(opt.bouncerPool) && opt.bouncerPool >= 1)
  || opt.only.some((b) => !BACKENDS.includes(b)) || opt.work.some((w) => !['empty', 'update'].includes(w))) {
  console.error(`bad flag\nusage: ${USAGE}`);
  process.exit(2);
}
const WORKER = join(BENCH, 'lib', 'lock-worker.mjs');
const LOCK = 'bench-locks';

/** Milliseconds with the digits that matter: 0.012, 1.25, 27.1. */
const ms = (x) => (!Number.isFinite(x) ? '—' : x < 0.1 ? x.toFixed(3) : x < 10 ? x.toFixed(2) : x.toFixed(1));

const workers = new Set();
process.on('exit', () => { for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL'); });

/** Start `count` callers, wait until each is connected, run them for the window; their reports. */
async function race(cfg, count) {
  const procs = Array.from({ length: count }, () => {
    const w = fork(WORKER, [JSON.stringify(cfg)], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    workers.add(w);
    w.once('exit', () => workers.delete(w));
    return w;
  });
  const message = (w, type) => new Promise((res, rej) => {
    const onMsg = (m) => { if (m.type === type) { cleanup(); res(m); } };
    const onExit = (code, signal) => { cleanup(); rej(new Error(`a ${cfg.backend} caller exited (code ${code}, signal ${signal}) before '${type}'`)); };
    const cleanup = () => { w.off('message', onMsg); w.off('exit', onExit); };
    w.on('message', onMsg);
    w.once('exit', onExit);
  });
  await Promise.all(procs.map((w) => message(w, 'ready')));
  const startAt = Date.now() + 200;
  const endAt = startAt + opt.seconds * 1000;
  const done = procs.map((w) => message(w, 'done'));
  for (const w of procs) w.send({ type: 'go', startAt, endAt });
  return Promise.all(done);
}

async function resetCounter(b) { await b.exec('DELETE FROM counter'); await b.exec('INSERT INTO counter (id, n) VALUES (1, 0)'); }

run(async () => {
  const before = uptime();
  const head = await machine();
  console.error(`uptime before: ${before}`);
  const versions = [];
  // Each backend: { target, exec(sql), count() } over the same table `counter`.
  const backends = {};
  const wantPg = opt.only.includes('postgres') || opt.only.includes('pgbouncer');
  if (wantPg) {
    await freshDb('bench_locks');
    const c = new pg.Client({ connectionString: pgUrl('bench_locks') });
    await c.connect();
    onCleanup(() => c.end());
    await c.query('CREATE TABLE counter (id integer PRIMARY KEY, n bigint NOT NULL)');
    versions.push(`PostgreSQL synchronous_commit=${(await c.query('SHOW synchronous_commit')).rows[0].synchronous_commit}`);
    const pgb = { exec: (sql) => c.query(sql), count: async () => Number((await c.query('SELECT n FROM counter WHERE id = 1')).rows[0].n) };
    if (opt.only.includes('postgres')) backends.postgres = { ...pgb, backend: 'postgres', target: pgUrl('bench_locks'), label: 'PostgreSQL direct' };
    if (opt.only.includes('pgbouncer')) {
      const bouncer = await startPgBouncer({ target: pgUrl('postgres'), poolSize: opt.bouncerPool });
      onCleanup(() => bouncer.stop());
      versions.push(`PgBouncer ${bouncer.version} (pool_mode=transaction, default_pool_size=${opt.bouncerPool})`);
      backends.pgbouncer = { ...pgb, backend: 'postgres', target: bouncer.url('bench_locks'), label: 'PostgreSQL through PgBouncer' };
    }
  }
  if (opt.only.includes('mysql')) {
    const { url, version } = await freshMysqlDb('bench_locks');
    versions.push(`MariaDB/MySQL ${version}`);
    const c = await mysql.createConnection({ uri: url });
    onCleanup(() => c.end());
    await c.query('CREATE TABLE counter (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB');
    versions.push(`innodb_flush_log_at_trx_commit=${(await c.query('SELECT @@innodb_flush_log_at_trx_commit AS f'))[0][0].f}`);
    backends.mysql = { backend: 'mysql', target: url, label: 'MySQL/MariaDB', exec: (sql) => c.query(sql), count: async () => Number((await c.query('SELECT n FROM counter WHERE id = 1'))[0][0].n) };
  }
  if (opt.only.includes('sqlite')) {
    const dir = workDir('locks');
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'locks.db');
    const db = new BetterSqlite3(file);
    onCleanup(() => db.close());
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)');
    backends.sqlite = { backend: 'sqlite', target: file, label: 'SQLite (reference)', exec: async (sql) => db.exec(sql), count: async () => db.prepare('SELECT n FROM counter WHERE id = 1').get().n };
  }

  const rows = [];
  let failed = false;
  for (const work of opt.work) {
    for (const key of opt.only) {
      const b = backends[key];
      for (const count of [...new Set([1, opt.contenders])]) {
        await resetCounter(b);
        const reports = await race({ backend: b.backend, target: b.target, lock: LOCK, work }, count);
        const errors = reports.map((x) => x.error).filter(Boolean);
        const lat = Float64Array.from(reports.flatMap((x) => Array.from(x.latencies))).sort();
        const inWindow = reports.map((x) => x.latencies.length);
        const completed = reports.reduce((s, x) => s + x.completed, 0);
        let check = '—';
        if (work === 'update') {
          const n = await b.count();
          check = n === completed ? `✓ ${fmt(n)}` : `✗ counter ${fmt(n)}, calls ${fmt(completed)}`;
          if (n !== completed) failed = true;
        }
        if (errors.length) { failed = true; check += ` ✗ ${errors.length} caller(s) failed: ${errors[0]}`; }
        const row = [b.label, work === 'empty' ? 'empty' : 'one UPDATE', count, fmt(lat.length / opt.seconds), ms(pct(lat, 50)), ms(pct(lat, 99)), ms(lat[lat.length - 1]),
          count > 1 ? `${fmt(Math.min(...inWindow))}–${fmt(Math.max(...inWindow))}` : '', check];
        rows.push(row);
        console.error(row.join(' | '));
      }
    }
  }
  const after = uptime();
  console.error(`uptime after: ${after}`);
  const md = [
    '# Distributed lock: acquire + release', '',
    ...head, `- ${[...versions, driverVersions()].join('; ')}`,
    `- uptime before: \`${before}\``, `- uptime after: \`${after}\``,
    `- \`node ${process.argv.slice(1).map((a) => a.replace(/^.*\/bench\//, 'bench/')).join(' ')}\`: ${opt.seconds} s per line; each caller a Node process with its own adapter (pool of 1)`, '',
    table(['backend', 'critical section', 'callers', 'locks/s', 'p50 ms', 'p99 ms', 'max ms', 'calls per caller (min–max)', 'counter = calls'], rows), '',
    'Latency: one distributedLock call — waiting for the lock included — with its critical section and release, as the caller sees it.',
    'Commits: PostgreSQL synchronous_commit as the server has it, MySQL innodb_flush_log_at_trx_commit likewise; the SQLite callers open a',
    'file already in WAL mode, so they run with synchronous=NORMAL (better-sqlite3 is built with SQLITE_DEFAULT_WAL_SYNCHRONOUS=1): no fsync per commit.',
  ].join('\n');
  report('locks', md);
  if (failed) throw new Error('a caller failed or the counter did not match (see the table)');
});
