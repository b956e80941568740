#!/usr/bin/env node
// Soak: the daemon streaming for a long time under a steady application load.
// What must stay flat: the daemon's memory (RSS), its open file descriptors,
// the lag, and the changelog's size (pruning keeps up). At the end the
// daemon converges and `validate --full` must say equal.
//
//   node bench/soak.mjs [--minutes M] [--rate R] [--rows N] [--sample-s S]
//
// Defaults: 30 minutes at 2,000 writes/s (inserts, updates and deletes of
// `orders`, one per transaction, from a worker thread), a sample every 10 s.
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Database, cli, cliOk, fmt, flags, freshDb, machine, onCleanup, report, run, sleep, startDaemon, status, table, waitFor, waitStreaming, workDir,
} from './lib/replication.mjs';

if (!isMainThread) {
  // The application: `rate` writes/s, paced, one statement per transaction.
  const { file, rate, seconds, rows } = workerData;
  const db = new Database(file);
  db.pragma('busy_timeout = 5000');
  db.pragma('synchronous = NORMAL');
  const ins = db.prepare('INSERT INTO orders (customer, amount, note) VALUES (?, ?, ?)');
  const upd = db.prepare('UPDATE orders SET amount = amount + 1, note = ? WHERE id = ?');
  const del = db.prepare('DELETE FROM orders WHERE id = ?');
  let seed = 11;
  const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
  let hi = rows;
  let done = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    while (done < due) {
      const r = rnd();
      if (r < 0.4) { ins.run(`c${done % 5000}`, Math.round(rnd() * 1e6) / 100, `n${done}`); hi++; }
      else if (r < 0.9) upd.run(`u${done}`, 1 + Math.floor(rnd() * hi));
      else del.run(1 + Math.floor(rnd() * hi));
      done++;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
  }
  db.close();
  parentPort.postMessage({ done });
} else {
  const opt = flags('node bench/soak.mjs [--minutes M] [--rate R] [--rows N] [--sample-s S]', { minutes: 30, rate: 2000, rows: 100_000, 'sample-s': 10 });
  const procStatus = (pid, key) => Number((readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${key}:\\s+(\\d+)`, 'm')) ?? [])[1]);
  const fds = (pid) => readdirSync(`/proc/${pid}/fd`).length;
  run(async () => {
    const head = await machine();
    const dir = workDir('soak');
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'soak.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount REAL, note TEXT)');
    const ins = db.prepare('INSERT INTO orders (customer, amount, note) VALUES (?, ?, ?)');
    db.transaction(() => { for (let i = 0; i < opt.rows; i++) ins.run(`c${i % 5000}`, (i % 100000) / 100, `n${i}`); })();
    const pg = await freshDb('bench_soak');
    await cliOk(['init', '--sqlite', file, '--pg', pg]);
    const daemon = startDaemon(file, pg, join(dir, 'daemon.log'));
    await waitStreaming(file, pg, daemon, () => db.prepare('UPDATE orders SET note = note WHERE id = 1').run());
    const pid = daemon.child.pid;
    const seconds = opt.minutes * 60;
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { file, rate: opt.rate, seconds, rows: opt.rows } });
    const finished = new Promise((res, rej) => { worker.on('message', res); worker.on('error', rej); });
    const samples = [];
    const t0 = performance.now();
    let writing = true;
    finished.then(() => { writing = false; });
    while (writing) {
      await sleep(opt['sample-s'] * 1000);
      if (daemon.exited) throw new Error(`the daemon exited: ${JSON.stringify(daemon.exited)}`);
      const st = await status(file, pg);
      const changelog = db.prepare('SELECT count(*) AS n FROM _sqlite2pg_changes').get().n;
      let wal = 0;
      try { wal = statSync(`${file}-wal`).size; } catch { /* none */ }
      const s = { t: (performance.now() - t0) / 1000, rss: procStatus(pid, 'VmRSS') / 1024, fds: fds(pid), lag_changes: st.lag_changes, lag_seconds: st.lag_seconds, changelog, wal: wal / 2 ** 20, applied: st.applied_seq };
      samples.push(s);
      console.error(`t=${s.t.toFixed(0)}s${st.last_error ? ` LAST ERROR ${st.last_error}` : ""} rss=${s.rss.toFixed(1)}MB fds=${s.fds} lag=${s.lag_changes} (${s.lag_seconds}s) changelog=${s.changelog} wal=${s.wal.toFixed(1)}MB`);
    }
    const { done } = await finished;
    await waitFor('converging', async () => (await status(file, pg)).lag_changes === 0, { timeoutMs: 300_000 });
    const stop = await daemon.stop();
    const v = await cli(['validate', '--sqlite', file, '--pg', pg, '--full', '--json']);
    db.close();
    const quarter = Math.max(1, Math.floor(samples.length / 4));
    const avg = (xs, k) => xs.reduce((a, s) => a + s[k], 0) / xs.length;
    const first = samples.slice(0, quarter);
    const last = samples.slice(-quarter);
    const max = (k) => Math.max(...samples.map((s) => s[k]));
    const rows = ['rss', 'fds', 'lag_changes', 'lag_seconds', 'changelog', 'wal'].map((k) => [k, fmt(avg(first, k), 2), fmt(avg(last, k), 2), fmt(max(k), 2)]);
    const everyMinute = samples.filter((s, i) => i % Math.max(1, Math.round(60 / opt['sample-s'])) === 0 || i === samples.length - 1);
    report('soak', [
      '# Soak: the daemon streaming under a steady load', '', ...head,
      `- ${opt.minutes} min at ${fmt(opt.rate)} writes/s (40 % inserts, 50 % updates, 10 % deletes of \`orders\`, one per transaction), ${fmt(opt.rows)} rows to start; ${fmt(done)} writes made`,
      `- daemon stopped with SIGTERM: exit ${stop.code}; \`validate --full\`: exit ${v.code} (${v.code === 0 ? 'equal' : v.stdout.slice(0, 300)})`, '',
      table(['measure', `first quarter (avg)`, `last quarter (avg)`, 'max'], rows), '',
      '<details><summary>every minute</summary>', '',
      table(['t (s)', 'RSS (MB)', 'fds', 'lag (changes)', 'lag (s)', 'changelog rows', 'WAL (MB)'], everyMinute.map((s) => [s.t.toFixed(0), s.rss.toFixed(1), s.fds, s.lag_changes, s.lag_seconds, s.changelog, s.wal.toFixed(1)])),
      '', '</details>',
    ].join('\n'));
    if (stop.code !== 0 || v.code !== 0) throw new Error('the soak did not end exact');
  });
}
