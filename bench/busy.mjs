#!/usr/bin/env node
// What the daemon costs the application in failed transactions: SQLITE_BUSY.
//
//   node bench/busy.mjs [--seconds S] [--rows N]      (BUSY_ONLY=daemon,… runs some variants)
//
// The application is one connection (the only writer, as most SQLite
// applications are) doing read-then-write transactions the way ORMs and
// request handlers do: BEGIN (deferred), SELECT a row, some work (an await
// of 0–2 ms), UPDATE it, COMMIT. Such a transaction fails with SQLITE_BUSY
// (SQLITE_BUSY_SNAPSHOT) when another connection commits a write between its
// read and its write — no busy timeout helps, SQLite cannot upgrade a stale
// read snapshot. A second phase runs the same work with BEGIN IMMEDIATE and
// a busy timeout of 5 s: those wait for the lock instead, and must never fail.
//
// Variants, same workload, same machine, one after the other:
//   alone        no capture, no daemon: the application as it runs today
//   daemon       `sqlite2pg init` + `sqlite2pg run` at default settings, streaming meanwhile
//   prune-always the daemon with `--prune-interval 0`: a prune after every batch and idle poll,
//                which is what it did before pruning had an interval
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  Database, cliOk, flags, fmt, freshDb, machine, onCleanup, report, run, sleep, startDaemon, table, waitStreaming, workDir,
} from './lib/replication.mjs';

const USAGE = 'node bench/busy.mjs [--seconds S] [--rows N]';
const opt = flags(USAGE, { seconds: 120, rows: 10_000 });
const TARGET = 0.001; // ≤ 0.1 % of deferred read-then-write transactions

function build(file) {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL, updated_at TEXT)');
  const ins = db.prepare('INSERT INTO accounts (owner, balance) VALUES (?, ?)');
  db.transaction(() => { for (let i = 1; i <= opt.rows; i++) ins.run(`owner ${i}`, 1000); })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

/** One phase of the application: `mode` 'deferred' or 'immediate' transactions for `seconds`. */
async function application(file, mode, seconds) {
  const db = new Database(file);
  db.pragma('busy_timeout = 5000');
  db.pragma('synchronous = NORMAL');
  const read = db.prepare('SELECT balance FROM accounts WHERE id = ?');
  const write = db.prepare("UPDATE accounts SET balance = ?, updated_at = datetime('now') WHERE id = ?");
  let seed = 7;
  const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
  const out = { mode, tx: 0, busy: 0, other: 0, codes: {}, at: [] };
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    const id = 1 + Math.floor(rnd() * opt.rows);
    try {
      db.exec(mode === 'immediate' ? 'BEGIN IMMEDIATE' : 'BEGIN');
      const { balance } = read.get(id);
      await sleep(rnd() * 2); // the handler's work between its read and its write
      write.run(balance + 1, id);
      db.exec('COMMIT');
      out.tx++;
    } catch (e) {
      if (db.inTransaction) db.exec('ROLLBACK');
      if (String(e.code).startsWith('SQLITE_BUSY')) { out.busy++; out.codes[e.code] = (out.codes[e.code] ?? 0) + 1; out.at.push(Math.round((performance.now() - start) / 100) / 10); }
      else { out.other++; if (out.other < 3) console.error(`unexpected: ${e.message}`); }
    }
  }
  db.close();
  return out;
}

async function variant(name, dir, pg) {
  const file = join(dir, `${name}.db`);
  build(file);
  let daemon = null;
  if (name !== 'alone') {
    await cliOk(['init', '--sqlite', file, '--pg', pg, '--schema', `busy_${name.replace(/\W/g, '_')}`]);
    daemon = startDaemon(file, pg, join(dir, `${name}.log`), name === 'prune-always' ? ['--prune-interval', '0'] : []);
    const db = new Database(file);
    await waitStreaming(file, pg, daemon, () => db.prepare('UPDATE accounts SET balance = balance WHERE id = 1').run());
    db.close();
  }
  const deferred = await application(file, 'deferred', opt.seconds);
  const immediate = await application(file, 'immediate', Math.max(10, opt.seconds / 4));
  if (daemon) {
    const stop = await daemon.stop();
    if (stop.code !== 0) throw new Error(`sqlite2pg run exited ${stop.code} (signal ${stop.signal}) on SIGTERM`);
  }
  for (const r of [deferred, immediate]) console.error(`${name.padEnd(12)} ${r.mode.padEnd(9)} ${fmt(r.tx)} committed, ${r.busy} SQLITE_BUSY ${JSON.stringify(r.codes)} at s ${r.at.slice(0, 40).join(' ')}, ${r.other} other errors`);
  return { name, deferred, immediate };
}

run(async () => {
  const head = await machine();
  const dir = workDir('busy');
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const pg = await freshDb('bench_busy');
  const results = [];
  for (const name of (process.env.BUSY_ONLY ?? 'alone,daemon,prune-always').split(',')) results.push(await variant(name, dir, pg));
  const pctOf = (r) => (r.busy / (r.tx + r.busy));
  const rows = results.flatMap((v) => [v.deferred, v.immediate].map((r) => [
    v.name, r.mode === 'deferred' ? 'BEGIN; SELECT; work; UPDATE; COMMIT' : 'BEGIN IMMEDIATE … (busy_timeout 5 s)',
    fmt(r.tx + r.busy), fmt(r.busy), `${(100 * pctOf(r)).toFixed(3)} %${r.mode === 'deferred' && v.name === 'daemon' ? (pctOf(r) <= TARGET ? ' ✓' : ' ✗') : ''}`, fmt(r.other),
  ]));
  report('busy', [
    '# SQLITE_BUSY: what the daemon costs the application', '', ...head,
    `- application: one connection (the only writer), ${fmt(opt.rows)} accounts; ${opt.seconds} s of deferred read-then-write transactions`
      + ` (0–2 ms of work between read and write), then ${Math.max(10, opt.seconds / 4)} s of the same with BEGIN IMMEDIATE;`
      + ' variants one after the other on fresh files', '',
    table(['variant', 'transactions', 'attempted', 'SQLITE_BUSY', 'failed', 'other errors'], rows), '',
    `Target at default settings: ≤ ${TARGET * 100} % of deferred read-then-write transactions fail, none with BEGIN IMMEDIATE (✓/✗ on the daemon row).`,
  ].join('\n'));
});
