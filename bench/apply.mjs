#!/usr/bin/env node
// Apply throughput: how fast `sqlite2pg run` drains a backlog of changes.
//
//   node bench/apply.mjs [--changes N] [--rows R] [--batch-size B] [--sample S] [--timeout-s T]
//
// 1. a source with three tables: accounts (INTEGER PRIMARY KEY, R rows), inventory
//    (WITHOUT ROWID, 2-column text/int key, R/2 rows), events (no key at all, R/2 rows);
// 2. `sqlite2pg init`, `sqlite2pg run` until status says streaming with lag 0, SIGTERM;
// 3. with the daemon stopped, N changes (one row each; ~40 % INSERT, 40 % UPDATE,
//    20 % DELETE; half on accounts, a quarter on each other table), committed in
//    transactions of 1,000 statements;
// 4. `sqlite2pg run` again; timed from its spawn until status shows lag_changes 0
//    (polled every 100 ms with the CLI's readStatus, in this process);
// 5. SIGTERM, then verification: row count, the full key set (md5) and S random rows
//    value by value, for every table.
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  Database, cliOk, cpuMs, daemonLog, flags, fmt, freshDb, machine, onCleanup, pgClient, report, run,
  pgBackendCpuMs, startDaemon, status, table, waitFor, waitStreaming, workDir,
} from './lib/replication.mjs';

const USAGE = 'node bench/apply.mjs [--changes N] [--rows R] [--batch-size B] [--sample S] [--timeout-s T]';
const opt = flags(USAGE, { changes: 1_000_000, rows: 100_000, 'batch-size': null, sample: 300, 'timeout-s': 3600 });
const TARGET = 50_000;

function rng(seed) {
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}
const r = rng(42);
const pick = (a) => a[Math.floor(r() * a.length)];
const text = (n) => Array.from({ length: n }, () => pick(['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'été', 'naïve', '"q"', 'tab\there', 'line\nbreak', '\\N', '🙂'])).join(' ');
const ts = (i) => new Date(1.7e12 + i * 997).toISOString().replace('T', ' ').slice(0, 19);

// Each table: DDL, a row generator, and its statements; keys live in memory so updates and deletes hit existing rows.
const TABLES = {
  accounts: {
    ddl: 'CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT, balance REAL NOT NULL, created_at TEXT NOT NULL, note TEXT)',
    key: ['id'], pgKey: ['id'], share: 0.5,
    ins: 'INSERT INTO accounts (id, email, name, balance, created_at, note) VALUES (?, ?, ?, ?, ?, ?)',
    row: (k) => [k, `user${k}@example.com`, r() < 0.1 ? null : `Name ${k}`, (r() - 0.3) * 1e5, ts(k), r() < 0.5 ? text(6) : null],
    upd: 'UPDATE accounts SET balance = ?, note = ? WHERE id = ?', updArgs: (k) => [r() * 1e4, text(3), k],
    del: 'DELETE FROM accounts WHERE id = ?',
  },
  inventory: {
    ddl: 'CREATE TABLE inventory (sku TEXT NOT NULL, warehouse INTEGER NOT NULL, qty INTEGER NOT NULL, price REAL, updated_at TEXT, PRIMARY KEY (sku, warehouse)) WITHOUT ROWID',
    key: ['sku', 'warehouse'], pgKey: ['sku', 'warehouse'], share: 0.25,
    ins: 'INSERT INTO inventory (sku, warehouse, qty, price, updated_at) VALUES (?, ?, ?, ?, ?)',
    row: (k) => [...k, Math.floor(r() * 500), Math.round(r() * 1e5) / 100, ts(r() * 1e6)],
    upd: 'UPDATE inventory SET qty = qty + 1, updated_at = ? WHERE sku = ? AND warehouse = ?', updArgs: (k) => [ts(r() * 1e6), ...k],
    del: 'DELETE FROM inventory WHERE sku = ? AND warehouse = ?',
  },
  events: {
    ddl: 'CREATE TABLE events (ts INTEGER NOT NULL, kind TEXT NOT NULL, payload TEXT, value REAL)',
    key: ['rowid'], pgKey: ['_sqlite2pg_rowid'], share: 0.25,
    ins: 'INSERT INTO events (rowid, ts, kind, payload, value) VALUES (?, ?, ?, ?, ?)',
    row: (k) => [k, 1.7e9 + k, pick(['click', 'view', 'buy']), `{"n":${k},"s":${JSON.stringify(text(2))}}`, r() * 100],
    upd: 'UPDATE events SET value = ?, kind = ? WHERE rowid = ?', updArgs: (k) => [r() * 100, 'edited', k],
    del: 'DELETE FROM events WHERE rowid = ?',
  },
};
const nextKey = { accounts: 0, inventory: 0, events: 0 };
const makeKey = (t) => (t === 'inventory' ? [`SKU-${String(++nextKey[t]).padStart(8, '0')}`, 1 + (nextKey[t] % 5)] : ++nextKey[t]);
const live = { accounts: [], inventory: [], events: [] };

function populate(db) {
  db.exec(Object.values(TABLES).map((t) => t.ddl + ';').join('\n') + 'CREATE INDEX events_ts ON events (ts); CREATE INDEX accounts_email ON accounts (email);');
  for (const [name, t] of Object.entries(TABLES)) {
    const ins = db.prepare(t.ins);
    const n = name === 'accounts' ? opt.rows : Math.floor(opt.rows / 2);
    db.transaction(() => { for (let i = 0; i < n; i++) { const k = makeKey(name); live[name].push(k); ins.run(...t.row(k)); } })();
  }
}

/** N single-row changes: returns how many of each (table, op). */
function backlog(db) {
  const st = Object.fromEntries(Object.entries(TABLES).map(([n, t]) => [n, { ins: db.prepare(t.ins), upd: db.prepare(t.upd), del: db.prepare(t.del) }]));
  const mix = {};
  const keyArgs = (k) => (Array.isArray(k) ? k : [k]);
  const one = () => {
    const x = r();
    const name = x < 0.5 ? 'accounts' : x < 0.75 ? 'inventory' : 'events';
    const y = r();
    const op = y < 0.4 || live[name].length === 0 ? 'insert' : y < 0.8 ? 'update' : 'delete';
    if (op === 'insert') { const k = makeKey(name); live[name].push(k); st[name].ins.run(...TABLES[name].row(k)); }
    else if (op === 'update') st[name].upd.run(...TABLES[name].updArgs(pick(live[name])));
    else { const a = live[name]; const i = Math.floor(r() * a.length); const k = a[i]; a[i] = a[a.length - 1]; a.pop(); st[name].del.run(...keyArgs(k)); }
    mix[`${name} ${op}`] = (mix[`${name} ${op}`] ?? 0) + 1;
  };
  const tx = db.transaction((n) => { for (let i = 0; i < n; i++) one(); });
  for (let done = 0; done < opt.changes; done += 1000) tx(Math.min(1000, opt.changes - done));
  return mix;
}

const qi = (s) => `"${s}"`;
const keyText = (v) => (typeof v === 'bigint' ? v.toString() : String(v));

/** Compare one table: count, md5 of the sorted key set, and `sample` random rows value by value. */
async function verifyTable(db, pg, name) {
  const t = TABLES[name];
  const keys = t.key.map((k) => (k === 'rowid' ? 'rowid' : qi(k)));
  const srcCount = db.prepare(`SELECT count(*) AS n FROM ${name}`).get().n;
  const pgCount = Number((await pg.query(`SELECT count(*) AS n FROM ${name}`)).rows[0].n);
  const srcKeys = db.prepare(`SELECT ${keys.join(', ')} FROM ${name} ORDER BY ${keys.join(', ')}`).raw(true).all();
  const srcMd5 = createHash('md5').update(srcKeys.map((k) => k.map(keyText).join('|')).join('\n')).digest('hex');
  const pgMd5 = (await pg.query(`SELECT md5(coalesce(string_agg(${t.pgKey.map((k) => `${qi(k)}::text`).join(" || '|' || ")}, E'\\n' ORDER BY ${t.pgKey.map((k) => (k === 'sku' ? `${qi(k)} COLLATE "C"` : qi(k))).join(', ')}), '')) AS h FROM ${name}`)).rows[0].h;
  const cols = db.prepare(`SELECT name FROM pragma_table_info(?)`).all(name).map((c) => c.name);
  const sample = db.prepare(`SELECT ${keys.join(', ')}, ${cols.map(qi).join(', ')} FROM ${name} ORDER BY random() LIMIT ?`).raw(true).all(opt.sample);
  let bad = 0; const examples = [];
  for (const row of sample) {
    const kv = row.slice(0, keys.length);
    const got = (await pg.query(`SELECT ${cols.map(qi).join(', ')} FROM ${name} WHERE ${t.pgKey.map((k, i) => `${qi(k)} = $${i + 1}`).join(' AND ')}`, kv.map(keyText))).rows[0];
    const diff = cols.filter((c, i) => {
      const s = row[keys.length + i]; const p = got?.[c] ?? null;
      return !(s === null ? p === null : typeof s === 'number' ? Number(p) === s : String(p) === String(s));
    });
    if (!got || diff.length) { bad++; if (examples.length < 3) examples.push(`${name} key ${kv.join('/')}: ${got ? diff.join(', ') : 'missing'}`); }
  }
  return { name, srcCount, pgCount, keysOk: srcMd5 === pgMd5, sampled: sample.length, bad, examples };
}

run(async () => {
  const head = await machine();
  const dir = workDir('apply');
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const pg = await freshDb('bench_apply');
  const file = join(dir, 'source.db');
  const logFile = join(dir, 'daemon.log');
  const extra = opt['batch-size'] ? ['--batch-size', String(opt['batch-size'])] : [];

  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  populate(db);
  const initialRows = Object.values(live).reduce((s, a) => s + a.length, 0);
  await cliOk(['init', '--sqlite', file, '--pg', pg]);
  let t0 = performance.now();
  let daemon = startDaemon(file, pg, logFile, extra);
  await waitStreaming(file, pg, daemon, () => db.prepare('UPDATE accounts SET id = id WHERE id = 1').run(), opt['timeout-s'] * 1000);
  const snapshotS = (performance.now() - t0) / 1000;
  let stop = await daemon.stop();
  if (stop.code !== 0) throw new Error(`sqlite2pg run exited ${stop.code} (signal ${stop.signal}) on SIGTERM`);
  console.error(`snapshot of ${fmt(initialRows)} rows + streaming in ${snapshotS.toFixed(1)} s; daemon stopped in ${stop.stopMs.toFixed(0)} ms`);

  const g0 = performance.now();
  const mix = backlog(db);
  const genS = (performance.now() - g0) / 1000;
  const before = await status(file, pg);
  console.error(`backlog: ${fmt(before.lag_changes)} changes generated in ${genS.toFixed(1)} s (lag ${before.lag_seconds} s)`);

  t0 = performance.now();
  daemon = startDaemon(file, pg, logFile, extra);
  let first = null; let samples = 0; let cpu = { daemon: 0, pg: 0 };
  await waitFor('draining the backlog', async () => {
    const s = await status(file, pg);
    samples++;
    cpu = { daemon: cpuMs(daemon.child.pid) || cpu.daemon, pg: Math.max(cpu.pg, pgBackendCpuMs('bench_apply')) };
    if (first === null && s.applied_seq > before.applied_seq) first = performance.now();
    return s.lag_changes === 0 && s.applied_seq >= before.newest_seq ? s : null;
  }, { timeoutMs: opt['timeout-s'] * 1000, everyMs: 100, abort: () => daemon.exited && `the daemon exited (code ${daemon.exited.code})` });
  const wallS = (performance.now() - t0) / 1000;
  const fromFirstS = first ? (performance.now() - first) / 1000 : NaN;
  stop = await daemon.stop();
  if (stop.code !== 0) throw new Error(`sqlite2pg run exited ${stop.code} (signal ${stop.signal}) on SIGTERM`);
  const errors = daemonLog(logFile).filter((l) => l.level >= 50);
  // The CLI itself once (the polling above used its readStatus in-process).
  const cliStatus = JSON.parse((await cliOk(['status', '--json', '--sqlite', file, '--pg', pg])).stdout);
  if (cliStatus.lag_changes !== 0 || cliStatus.daemon_running) throw new Error(`status --json after the daemon stopped: ${JSON.stringify(cliStatus)}`);
  const n = before.lag_changes;
  const rate = n / wallS;
  console.error(`drained ${fmt(n)} changes in ${wallS.toFixed(2)} s (${fmt(rate)}/s); ${samples} status polls`);

  const c = await pgClient('bench_apply');
  const v = [];
  try { for (const name of Object.keys(TABLES)) v.push(await verifyTable(db, c, name)); } finally { await c.end(); db.close(); }
  const ok = v.every((x) => x.srcCount === x.pgCount && x.keysOk && x.bad === 0);

  const md = [
    `# Apply throughput: draining a backlog of ${fmt(n)} changes`, '', ...head,
    `- source: accounts (INTEGER PRIMARY KEY) ${fmt(opt.rows)} rows, inventory (WITHOUT ROWID, key (sku, warehouse)) and events (no key) ${fmt(Math.floor(opt.rows / 2))} rows each;`
      + ` snapshot + first streaming in ${snapshotS.toFixed(1)} s`,
    `- backlog made with the daemon stopped: ${fmt(opt.changes)} single-row statements in transactions of 1,000 (${genS.toFixed(1)} s), ${fmt(n)} changelog rows:`
      + ` ${Object.entries(mix).sort().map(([k, x]) => `${k} ${fmt(x)}`).join(', ')}`,
    `- daemon: \`sqlite2pg run\`${extra.length ? ' ' + extra.join(' ') : ''} (default batch 10,000 changes); timed from spawn until \`status\` shows lag_changes 0, polled every 100 ms`, '',
    table(['changes', 'wall from spawn (s)', 'changes/s', 'from first committed batch (s)', 'changes/s', 'target'],
      [[fmt(n), wallS.toFixed(2), fmt(rate), fromFirstS.toFixed(2), fmt(n / fromFirstS), `≥ ${fmt(TARGET)}/s ${rate >= TARGET ? '✓' : '✗ missed'}`]]), '',
    `CPU while draining: the daemon ${(cpu.daemon / 1000).toFixed(1)} s (${((100 * cpu.daemon) / 1000 / wallS).toFixed(0)} % of a core),`
      + ` its Postgres backends ${(cpu.pg / 1000).toFixed(1)} s (${((100 * cpu.pg) / 1000 / wallS).toFixed(0)} %, seen from /proc; the status polls' short-lived backends excluded).`,
    `Daemon stopped by SIGTERM in ${stop.stopMs.toFixed(0)} ms, exit ${stop.code}; \`status --json\` afterwards: phase ${cliStatus.phase}, lag ${cliStatus.lag_changes}, daemon_running ${cliStatus.daemon_running}; ${errors.length} error line(s) in its log${errors.length ? ': ' + errors.slice(0, 3).map((e) => e.err ?? e.msg).join(' / ') : ''}.`, '',
    `Verification (${ok ? 'OK' : 'MISMATCH'}):`, '',
    table(['table', 'SQLite rows', 'Postgres rows', 'key set (md5)', 'rows compared', 'differ'],
      v.map((x) => [x.name, fmt(x.srcCount), fmt(x.pgCount), x.keysOk ? 'same' : 'DIFFERENT', fmt(x.sampled), x.bad])),
    ...v.flatMap((x) => x.examples.map((e) => `- ${e}`)),
  ].join('\n');
  report('apply', md);
  if (!ok) throw new Error('Postgres does not hold what SQLite holds (see the verification table)');
});
