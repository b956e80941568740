#!/usr/bin/env node
// Replication latency: SQLite commit → row visible in Postgres, with `sqlite2pg run` streaming.
//
//   node bench/latency.mjs [--rate R[,R2…]] [--seconds S] [--rows B] [--poll-every-ms P] [--poll-ms D] [--probes K]
//
// A writer (worker thread, its own better-sqlite3 connection; autocommit, WAL,
// synchronous=NORMAL) makes R writes/s for S seconds: alternately an INSERT and an
// UPDATE of a random row of `ticks`, each setting n = a global sequence number.
// This thread polls Postgres with `SELECT max(n) FROM ticks` every P ms (default 2):
// batches are applied in changelog order, one transaction each, so max(n) ≥ k means
// write k is visible. Latency = time of the poll that first saw it − time its commit
// returned (one monotonic clock; an upper bound, resolution ≈ one poll period).
// `status` (the CLI's readStatus, in-process) is sampled every second for lag.
// Afterwards K probes (single writes ~0.3 s apart, the daemon idle in between) show
// which wake-up path the daemon uses: the WAL-index watch (ms) or the --poll-ms timer.
// --poll-ms D is passed to `sqlite2pg run` (default: not passed, the daemon's 1000).
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  Database, cliOk, cpuMs, fmt, freshDb, machine, onCleanup, pct, pgClient, report, run, sleep,
  startDaemon, status, table, waitStreaming, workDir,
} from './lib/replication.mjs';

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms, monotonic, the same clock in every thread

function open(file) {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  return db;
}

/** The writer (worker thread): `total` writes paced at `rate`/s; commit times into the shared array. */
function writer() {
  const { file, rate, total, first, rows, commitBuf, durBuf, progBuf } = workerData;
  const db = open(file);
  const ins = db.prepare("INSERT INTO ticks (n, written_at, note) VALUES (?, ?, 'tick')");
  const upd = db.prepare('UPDATE ticks SET n = ?, written_at = ? WHERE id = ?');
  const maxId = db.prepare('SELECT max(id) AS m FROM ticks').get().m;
  const commit = new Float64Array(commitBuf), dur = new Float64Array(durBuf);
  const prog = new Int32Array(progBuf);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  let late = 0;
  const t0 = now();
  for (let i = 0; i < total;) {
    const due = Math.min(total, Math.floor(((now() - t0) * rate) / 1000) + 1);
    late = Math.max(late, now() - (t0 + (i * 1000) / rate));
    for (; i < due; i++) {
      const w0 = now();
      if (i % 2 === 0) ins.run(first + i, Date.now());
      else upd.run(first + i, Date.now(), 1 + Math.floor(Math.random() * Math.min(rows, maxId)));
      commit[i] = now();
      dur[i] = commit[i] - w0;
      Atomics.store(prog, 0, i + 1);
    }
    prog[1] = Math.min(2 ** 31 - 1, Math.ceil(late));
    const wait = t0 + (i * 1000) / rate - now();
    if (i < total && wait > 0) Atomics.wait(nap, 0, 0, Math.min(wait, 5));
  }
  db.close();
}

const USAGE = 'node bench/latency.mjs [--rate R[,R2…]] [--seconds S] [--rows B] [--poll-every-ms P] [--poll-ms D] [--probes K]';
let o = {};
if (isMainThread) try {
  o = parseArgs({ options: Object.fromEntries(['rate', 'seconds', 'rows', 'poll-every-ms', 'poll-ms', 'probes'].map((k) => [k, { type: 'string' }])) }).values;
} catch (e) { console.error(`${e.message}\nusage: ${USAGE}`); process.exit(2); }
const rates = (o.rate ?? '1000').split(',').map(Number);
const opt = { seconds: Number(o.seconds ?? 30), rows: Number(o.rows ?? 10000), every: Number(o['poll-every-ms'] ?? 2), pollMs: o['poll-ms'] === undefined ? null : Number(o['poll-ms']), probes: Number(o.probes ?? 10) };
if (rates.some((r) => !(r > 0)) || Object.values(opt).some((v) => v !== null && !(v >= 0))) { console.error(`usage: ${USAGE}`); process.exit(2); }

/** One phase: `rate` writes/s for `seconds`; returns the latency distribution and lag samples. */
async function phase(ctx, rate) {
  const total = Math.round(rate * opt.seconds);
  const commitBuf = new SharedArrayBuffer(total * 8), durBuf = new SharedArrayBuffer(total * 8), progBuf = new SharedArrayBuffer(8);
  const first = ctx.next; ctx.next += total;
  const visible = new Float64Array(total);
  const lag = []; let statusErr = null, walMax = 0;
  const sampler = setInterval(() => {
    try { walMax = Math.max(walMax, statSync(`${ctx.file}-wal`).size); } catch { /* no -wal right now */ }
    status(ctx.file, ctx.pg).then((s) => lag.push(s), (e) => (statusErr = e));
  }, 1000);
  const cpu0 = cpuMs(ctx.daemon.child.pid), t0 = now();
  const worker = new Worker(new URL(import.meta.url), { workerData: { file: ctx.file, rate, total, first, rows: opt.rows, commitBuf, durBuf, progBuf } });
  let writerExit = null; let writerErr = null;
  worker.on('exit', (c) => (writerExit = c)); worker.on('error', (e) => (writerErr = e));
  let seen = first - 1, polls = 0, doneAt = null;
  try {
    while (seen < first + total - 1) {
      const m = Number((await ctx.c.query('SELECT max(n) AS m FROM ticks')).rows[0].m);
      const t = now(); polls++;
      for (let k = seen + 1; k <= m; k++) visible[k - first] = t;
      seen = Math.max(seen, m);
      if (writerErr) throw writerErr;
      if (ctx.daemon.exited) throw new Error(`the daemon exited (code ${ctx.daemon.exited.code})`);
      if (writerExit !== null) doneAt ??= t;
      if (doneAt !== null && t - doneAt > 60_000) throw new Error(`write ${seen + 1} not visible in Postgres 60 s after the writer finished`);
      await sleep(opt.every);
    }
  } finally { clearInterval(sampler); }
  while (writerExit === null) await sleep(5);
  if (statusErr) throw statusErr;
  const wall = now() - t0, daemonCpu = cpuMs(ctx.daemon.child.pid) - cpu0;
  const commit = new Float64Array(commitBuf);
  const lat = Array.from(visible, (v, i) => v - commit[i]).sort((a, b) => a - b);
  const writeSecs = (commit[total - 1] - commit[0]) / 1000;
  const dur = new Float64Array(durBuf).sort();
  return {
    writeP99: pct(dur, 99), writeMax: pct(dur, 100), rate, total, achieved: (total - 1) / writeSecs, writerLateMs: new Int32Array(progBuf)[1], lat, polls, pollPeriod: wall / polls,
    maxLagChanges: Math.max(0, ...lag.map((s) => s.lag_changes)), maxLagSeconds: Math.max(0, ...lag.map((s) => s.lag_seconds)),
    lagSamples: lag.length, walMax, phases: [...new Set(lag.map((s) => s.phase))], daemonCpu: daemonCpu / wall,
  };
}

/**
 * Probes with the daemon idle in between (~0.3 s apart): even ones are a single
 * write, odd ones two writes 20 ms apart (the end of a burst). Returns how long
 * the (last) write took to become visible, for each kind.
 */
async function probes(ctx) {
  const db = open(ctx.file);
  const ins = db.prepare("INSERT INTO ticks (n, written_at, note) VALUES (?, ?, 'probe')");
  const out = { single: [], burst: [] };
  for (let i = 0; i < opt.probes; i++) {
    await sleep(250 + Math.random() * 100);
    if (i % 2) { ins.run(ctx.next++, Date.now()); await sleep(20); }
    const n = ctx.next++;
    ins.run(n, Date.now());
    const t0 = now();
    for (;;) {
      const m = Number((await ctx.c.query('SELECT max(n) AS m FROM ticks')).rows[0].m);
      if (m >= n) break;
      if (now() - t0 > 30_000) throw new Error(`probe ${n} not visible after 30 s`);
      await sleep(opt.every);
    }
    out[i % 2 ? 'burst' : 'single'].push(now() - t0);
  }
  db.close();
  out.single.sort((a, b) => a - b); out.burst.sort((a, b) => a - b);
  return out;
}

if (!isMainThread) writer();
else run(async () => {
  const head = await machine();
  const dir = workDir('latency');
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const pg = await freshDb('bench_latency');
  const file = join(dir, 'source.db');
  const db = open(file);
  db.exec('CREATE TABLE ticks (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, written_at INTEGER NOT NULL, note TEXT); CREATE INDEX ticks_n ON ticks (n)');
  const seed = db.prepare("INSERT INTO ticks (n, written_at, note) VALUES (0, ?, 'seed')");
  db.transaction(() => { for (let i = 0; i < opt.rows; i++) seed.run(Date.now()); })();
  await cliOk(['init', '--sqlite', file, '--pg', pg]);
  const extra = opt.pollMs === null ? [] : ['--poll-ms', String(opt.pollMs)];
  const daemon = startDaemon(file, pg, join(dir, 'daemon.log'), extra);
  await waitStreaming(file, pg, daemon, () => db.prepare('UPDATE ticks SET n = n WHERE id = 1').run());
  db.close();
  const c = await pgClient('bench_latency');
  onCleanup(() => c.end());
  const ctx = { file, pg, daemon, c, next: 1 };
  const idle0 = cpuMs(daemon.child.pid); await sleep(2000);
  const idleCpu = (cpuMs(daemon.child.pid) - idle0) / 2000;
  const res = [];
  for (const rate of rates) {
    const r = await phase(ctx, rate);
    res.push(r);
    console.error(`${fmt(rate)} writes/s: p50 ${pct(r.lat, 50).toFixed(1)} ms, p99 ${pct(r.lat, 99).toFixed(1)} ms, max ${pct(r.lat, 100).toFixed(1)} ms; max lag ${r.maxLagChanges} changes / ${r.maxLagSeconds} s`);
  }
  const pr = opt.probes ? await probes(ctx) : { single: [], burst: [] };
  const stop = await daemon.stop();
  if (stop.code !== 0) throw new Error(`sqlite2pg run exited ${stop.code} (signal ${stop.signal}) on SIGTERM`);
  const pollMs = opt.pollMs ?? 1000;
  const path = (xs) => (pollMs < 100 ? `the watcher and the --poll-ms ${pollMs} timer cannot be told apart at this interval`
    : pct(xs, 50) < pollMs / 4 ? 'the WAL-index watch' : `the --poll-ms ${pollMs} timer, not the WAL-index watch`);
  const probeLine = (xs) => `median ${pct(xs, 50).toFixed(1)} ms, max ${pct(xs, 100).toFixed(1)} ms (${xs.map((x) => x.toFixed(0)).join(', ')})`;
  const wake = !pr.single.length ? ['- wake-up path: not probed (--probes 0)'] : [
    `- wake-up path, idle daemon, one write: ${path(pr.single)} — visible after ${probeLine(pr.single)}`,
    ...(pr.burst.length ? [`- wake-up path, idle daemon, two writes 20 ms apart (the end of a burst), the second one: ${path(pr.burst)} — visible after ${probeLine(pr.burst)}`] : []),
  ];
  const ms = (x) => x.toFixed(1);
  const md = [
    `# Replication latency: SQLite commit → visible in Postgres`, '', ...head,
    `- source: table \`ticks\` (INTEGER PRIMARY KEY, ${fmt(opt.rows)} rows to start, index on n); writer: 1 connection in a worker thread, autocommit, WAL, synchronous=NORMAL,`
      + ` alternating INSERT / UPDATE-by-id; each phase ${opt.seconds} s`,
    `- daemon: \`sqlite2pg run\`${extra.length ? ' ' + extra.join(' ') : ' (default --poll-ms 1000, --batch-size 10000)'}; idle CPU ${(100 * idleCpu).toFixed(1)} % of a core`,
    `- visibility: \`SELECT max(n) FROM ticks\` on its own connection every ${opt.every} ms; latency = first poll that saw the write − its commit (upper bound)`, '',
    table(['writes/s (target)', 'achieved', 'writes', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'max lag_changes', 'max lag_seconds', 'poll period ms', 'daemon CPU', 'target'],
      res.map((r) => {
        const target = r.rate <= 1000 ? `p99 < 100 ms ${pct(r.lat, 99) < 100 ? '✓' : '✗'}` : `lag < 1 s ${r.maxLagSeconds < 1 && pct(r.lat, 100) < 1000 ? '✓' : '✗'}`;
        return [fmt(r.rate), fmt(r.achieved), fmt(r.total), ms(pct(r.lat, 50)), ms(pct(r.lat, 95)), ms(pct(r.lat, 99)), ms(pct(r.lat, 100)),
          fmt(r.maxLagChanges), r.maxLagSeconds.toFixed(3), r.pollPeriod.toFixed(1), `${(100 * r.daemonCpu).toFixed(0)} %`, target];
      })), '',
    `Targets: p99 < 100 ms at 1,000 writes/s; lag (status lag_seconds, sampled each second, and the largest latency) < 1 s at 10,000 writes/s.`,
    ...res.map((r) => `- at ${fmt(r.rate)} writes/s: one write (INSERT/UPDATE call, commit included) took p99 ${r.writeP99.toFixed(2)} ms, max ${r.writeMax.toFixed(1)} ms;`
      + ` the writer fell at most ${fmt(r.writerLateMs)} ms behind its schedule${r.achieved < 0.95 * r.rate ? ' — the machine could not sustain the rate' : ''}`),
    `- status sampled ${res.map((r) => r.lagSamples).join(' / ')} time(s); phases seen: ${[...new Set(res.flatMap((r) => r.phases))].join(', ')};`
      + ` largest -wal file seen: ${res.map((r) => `${(r.walMax / 2 ** 20).toFixed(1)} MiB`).join(' / ')}`,
    ...wake,
    `- daemon stopped by SIGTERM in ${stop.stopMs.toFixed(0)} ms, exit ${stop.code}`,
  ].join('\n');
  report('latency', md);
});
