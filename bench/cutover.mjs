#!/usr/bin/env node
// Freeze duration of `sqlite2pg cutover` under a steady writer: how long the application's writes are blocked.
//
//   node bench/cutover.mjs [--cutovers N] [--rate R] [--rows M]      (defaults: 20, 1000 writes/s, 20000 rows)
//
// Per cutover, from scratch: a SQLite file in WAL mode (orders with M rows, counters with 16 rows), a fresh
// Postgres database bench_cut_<pid>_<k>; `sqlite2pg init`; `sqlite2pg run --poll-ms 100 --no-fallback` as a child process (it exits after the cutover);
// `sqlite2pg status --json` polled until phase "streaming"; this process LISTENs on sqlite2pg_cutover;
// the writer (bench/lib/cutover-writer.mjs, its own process: R single-row autocommit writes/s, round robin
// INSERT orders / UPDATE orders / UPDATE counters, every outcome logged with CLOCK_MONOTONIC times);
// after ~2 s of writes `sqlite2pg cutover --wait`; then the daemon must exit 0.
//
// Measured per cutover:
//   freeze_ms  sqlite2pg.state.freeze_ms: the daemon's own number (SQLite freeze commit → Postgres cutover commit)
//   block_ms   application side: arrival of the NOTIFY sqlite2pg_cutover (sent in the cutover's Postgres
//              transaction, so it arrives when that commits) − start of the writer's first refused write;
//              plus the number of writes refused in that window
// Checked per cutover: sqlite2pg.state.validation.ok; every write the writer saw acknowledged is in Postgres
// (counter sums per row = acknowledged counter updates; the set of inserted orders; each updated order carries
// its last acknowledged update) and no refused write is; no write was acknowledged after the first refusal;
// every failure carried the freeze message.
//
// Exit status: 0 when the benchmark ran (targets and checks are reported, not enforced); 1 when it could not
// (setup failed, or no cutover completed at all). Postgres: PGHOST/PGPORT/PGUSER as in bench/lib/replication.mjs.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  BENCH, ROOT, Database, cli, cliOk, daemonLog, flags, fmt, freshDb, machine, onCleanup, pct, pgClient,
  report, run, sleep, startDaemon, table, workDir,
} from './lib/replication.mjs';

const USAGE = 'node bench/cutover.mjs [--cutovers N] [--rate R] [--rows M]';
const opt = flags(USAGE, { cutovers: 20, rate: 1000, rows: 20000 });
if (!(opt.cutovers >= 1 && Number.isInteger(opt.cutovers)) || !(opt.rate > 0) || !(opt.rows >= 1 && Number.isInteger(opt.rows))) {
  console.error(`usage: ${USAGE}`);
  process.exit(2);
}
const WRITER = join(BENCH, 'lib', 'cutover-writer.mjs');
const STREAM_SECONDS = 2;
const now = () => Number(process.hrtime.bigint()) / 1e6; // CLOCK_MONOTONIC, ms: the writer's clock too

/** A SQLite source in WAL mode: orders (M rows) and counters (16 rows at 0); deterministic per seed. */
function makeSource(file, rows, seedValue) {
  let s = seedValue >>> 0;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER, amount REAL, note TEXT); CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)');
  const ins = db.prepare('INSERT INTO orders (id, customer, amount, note) VALUES (?, ?, ?, ?)');
  const cnt = db.prepare('INSERT INTO counters (id, n) VALUES (?, 0)');
  db.transaction(() => {
    for (let i = 1; i <= rows; i++) ins.run(i, 1 + Math.floor(rnd() * 5000), Math.round(rnd() * 1e6) / 100, rnd() < 0.2 ? null : `order ${i}`);
    for (let i = 1; i <= 16; i++) cnt.run(i);
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

/** `sqlite2pg status --json` (the CLI) until phase "streaming"; one no-op change if it sits caught up in catch-up. */
async function waitStreaming(file, pg, daemon, timeoutMs = 300_000) {
  const end = now() + timeoutMs;
  let caughtUpSince = null, nudged = false, last = null;
  for (;;) {
    if (daemon.exited) throw new Error(`the daemon exited before streaming (code ${daemon.exited.code}, signal ${daemon.exited.signal})`);
    const r = await cli(['status', '--sqlite', file, '--pg', pg, '--json'], { timeoutMs: 60_000 });
    if (r.code === 0) {
      last = JSON.parse(r.stdout);
      if (last.phase === 'streaming') return last;
      if (last.phase === 'catch-up' && last.lag_changes === 0) {
        caughtUpSince ??= now();
        if (!nudged && now() - caughtUpSince > 2000) {
          const db = new Database(file);
          db.pragma('busy_timeout = 5000');
          db.prepare('UPDATE counters SET n = n WHERE id = 1').run();
          db.close();
          nudged = true;
        }
      }
    }
    if (now() > end) throw new Error(`not streaming after ${timeoutMs / 1000} s (last status: ${last ? `phase ${last.phase}, lag ${last.lag_changes}` : 'none'})`);
    await sleep(200);
  }
}

/** The writer process; `stop()` sends SIGTERM and resolves its parsed log. */
function startWriter(file, seedValue) {
  const child = spawn(process.execPath, [WRITER, file, String(opt.rate), String(opt.rows), String(seedValue)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '', err = '', lines = 0;
  const recs = [];
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop();
    for (const p of parts) if (p) { recs.push(JSON.parse(p)); lines++; }
  });
  child.stderr.on('data', (d) => (err += d));
  const w = { child, recs, exited: null, startedAt: now(), lines: () => lines };
  const done = new Promise((res) => child.on('close', (code, signal) => { w.exited = { code, signal }; res(w.exited); }));
  w.stop = async () => {
    if (!w.exited) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const e = await done;
    clearTimeout(timer);
    if (e.code !== 0) throw new Error(`the writer exited ${e.code} (signal ${e.signal}): ${err.trim().slice(0, 1000)}`);
    return recs;
  };
  onCleanup(() => { if (!w.exited) child.kill('SIGKILL'); });
  return w;
}

/** The daemon's cutover timeline from its pino log (epoch ms, 1 ms resolution). */
function timeline(logFile) {
  const at = {};
  for (const l of daemonLog(logFile)) {
    const m = String(l.msg ?? '');
    const key = m.startsWith('cutover requested') ? 'requested' : (m.match(/^cutover step (\d)\/5/) ?? [])[1];
    if (key && at[key] === undefined) at[key] = l.time;
  }
  const d = (a, b) => (at[a] !== undefined && at[b] !== undefined ? at[b] - at[a] : NaN);
  // step 1 logs when it starts catching up; step 2 after the freeze commit; 3 when drained; 4 after the commit.
  return { catchUpMs: d('1', '2'), drainMs: d('2', '3'), commitMs: d('3', '4'), errors: daemonLog(logFile).filter((l) => l.level >= 50).map((l) => l.err ?? l.msg) };
}

/** Compare what the writer saw acknowledged with what Postgres holds. */
async function verifyWrites(c, recs) {
  const ok = recs.filter((r) => r.s === 'ok');
  const problems = [];
  // counters: each acknowledged UPDATE added exactly 1 to its row.
  const want = new Map();
  for (const r of ok) if (r.k === 'c') want.set(r.id, (want.get(r.id) ?? 0) + 1);
  const got = new Map((await c.query('SELECT id, n FROM counters')).rows.map((r) => [Number(r.id), Number(r.n)]));
  let counterSum = 0;
  for (const n of got.values()) counterSum += n;
  const okCounter = ok.filter((r) => r.k === 'c').length;
  for (let id = 1; id <= 16; id++) if ((got.get(id) ?? 0) !== (want.get(id) ?? 0)) problems.push(`counters id ${id}: Postgres n=${got.get(id)}, acknowledged ${want.get(id) ?? 0}`);
  // inserts: exactly the acknowledged ones, under the same ids.
  const okIns = new Map(ok.filter((r) => r.k === 'i').map((r) => [`w${r.i}`, r.id]));
  const pgIns = new Map((await c.query("SELECT id, note FROM orders WHERE note LIKE 'w%'")).rows.map((r) => [r.note, Number(r.id)]));
  let insFound = 0;
  for (const [note, id] of okIns) {
    if (!pgIns.has(note)) problems.push(`acknowledged insert ${note} (id ${id}) missing in Postgres`);
    else if (pgIns.get(note) !== id) problems.push(`insert ${note}: id ${id} in SQLite, ${pgIns.get(note)} in Postgres`);
    else insFound++;
  }
  for (const note of pgIns.keys()) if (!okIns.has(note)) problems.push(`Postgres holds insert ${note}, which the writer did not see acknowledged`);
  // updates of orders: each updated row carries its last acknowledged update.
  const lastUpd = new Map();
  for (const r of ok) if (r.k === 'u') lastUpd.set(r.id, `u${r.i}`);
  const ids = [...lastUpd.keys()];
  const pgUpd = new Map((await c.query('SELECT id, note FROM orders WHERE id = ANY($1::bigint[])', [ids])).rows.map((r) => [Number(r.id), r.note]));
  let updFound = 0;
  for (const [id, note] of lastUpd) {
    if (pgUpd.get(id) !== note) problems.push(`orders id ${id}: Postgres note ${JSON.stringify(pgUpd.get(id))}, last acknowledged update ${note}`);
    else updFound++;
  }
  const refused = recs.filter((r) => r.s === 'frozen');
  const firstRefused = refused.length ? Math.min(...refused.map((r) => r.i)) : Infinity;
  const okAfter = ok.filter((r) => r.i > firstRefused).length;
  if (okAfter) problems.push(`${okAfter} write(s) acknowledged after the first refusal`);
  const errors = recs.filter((r) => r.s === 'error');
  if (errors.length) problems.push(`${errors.length} write(s) failed without the freeze message, e.g. ${JSON.stringify(errors[0].e)}`);
  return {
    ok: ok.length, okCounter, counterSum, okIns: okIns.size, insFound, okUpd: ok.filter((r) => r.k === 'u').length, updRows: lastUpd.size, updFound,
    errors: errors.length, problems,
  };
}

/** One cutover from scratch; returns its measurements (`failure` set when the product misbehaved). */
async function oneCutover(k, dir, logDir) {
  const name = `bench_cut_${process.pid}_${k}`;
  const file = join(dir, `c${k}.db`);
  const logFile = join(dir, `c${k}-daemon.log`);
  const res = { k, failure: null, checks: [] };
  const pg = await freshDb(name);
  let c = null, daemon = null, writer = null;
  try {
    makeSource(file, opt.rows, 1000 + k);
    await cliOk(['init', '--sqlite', file, '--pg', pg]);
    daemon = startDaemon(file, pg, logFile, ['--poll-ms', '100', '--no-fallback']);
    await waitStreaming(file, pg, daemon);

    c = await pgClient(name);
    let notifyAt = null;
    c.on('notification', (m) => { if (m.channel === 'sqlite2pg_cutover' && notifyAt === null) notifyAt = now(); });
    await c.query('LISTEN sqlite2pg_cutover');

    writer = startWriter(file, 7000 + k);
    const t0 = now();
    while (writer.lines() === 0) {
      if (writer.exited) throw new Error(`the writer exited at once (code ${writer.exited.code})`);
      if (now() - t0 > 30_000) throw new Error('the writer wrote nothing in 30 s');
      await sleep(10);
    }
    await sleep(STREAM_SECONDS * 1000);
    const requestedAt = now();
    const cut = await cli(['cutover', '--sqlite', file, '--pg', pg, '--wait', '--timeout', '120'], { timeoutMs: 180_000 });
    res.cutoverCliMs = now() - requestedAt;
    res.cutoverOut = cut.stdout.trim().split('\n').pop();
    if (cut.code !== 0) res.failure = `sqlite2pg cutover --wait exited ${cut.code}: ${(cut.stderr || cut.stdout).trim().slice(0, 500)}`;
    const exit = await Promise.race([new Promise((r) => { const t = setInterval(() => { if (daemon.exited) { clearInterval(t); r(daemon.exited); } }, 20); }), sleep(30_000).then(() => null)]);
    if (!exit) res.failure ??= 'the daemon did not exit within 30 s of the cutover';
    else if (exit.code !== 0) res.failure ??= `the daemon exited ${exit.code} (signal ${exit.signal})`;
    await sleep(200); // the writer keeps trying against the frozen file
    const recs = await writer.stop();
    if (notifyAt === null) await sleep(500); // a notification still on its way
    res.notified = notifyAt !== null;

    const st = (await c.query('SELECT phase, freeze_ms, validation FROM sqlite2pg.state')).rows[0];
    res.phase = st?.phase;
    res.freezeMs = st?.freeze_ms ?? NaN;
    res.validation = st?.validation ?? null;
    if (!res.validation?.ok) res.checks.push(`validation: ${JSON.stringify(res.validation)}`);
    if (res.phase !== 'done') res.checks.push(`phase ${res.phase}, not done`);

    const refused = recs.filter((r) => r.s === 'frozen').sort((a, b) => a.t0 - b.t0);
    const acked = recs.filter((r) => r.s === 'ok');
    const firstRefused = refused[0];
    const lastAck = acked.length ? acked.reduce((a, b) => (a.t1 > b.t1 ? a : b)) : null;
    res.writes = recs.length;
    res.achievedRate = recs.length > 1 ? ((recs.length - 1) * 1000) / (recs[recs.length - 1].t0 - recs[0].t0) : NaN;
    res.refusedTotal = refused.length;
    if (!firstRefused) res.checks.push('no write was refused: the writer never saw the freeze');
    if (notifyAt === null) res.checks.push('no NOTIFY sqlite2pg_cutover arrived');
    res.blockMs = firstRefused && notifyAt !== null ? notifyAt - firstRefused.t0 : NaN;
    res.refusedInBlock = notifyAt !== null ? refused.filter((r) => r.t0 <= notifyAt).length : NaN;
    res.gapMs = lastAck && notifyAt !== null ? notifyAt - lastAck.t1 : NaN; // last acknowledgement → commit
    res.requestToRefusalMs = firstRefused ? firstRefused.t0 - requestedAt : NaN;
    res.slowestWriteMs = Math.max(0, ...recs.filter((r) => r.t1 >= requestedAt).map((r) => r.t1 - r.t0));
    Object.assign(res, timeline(logFile));

    const v = await verifyWrites(c, recs);
    res.verify = v;
    res.checks.push(...v.problems.slice(0, 5));
    if (v.problems.length > 5) res.checks.push(`… and ${v.problems.length - 5} more`);
  } catch (e) {
    res.failure ??= e.message;
  } finally {
    if (writer && !writer.exited) await writer.stop().catch(() => undefined);
    if (daemon && !daemon.exited) await daemon.stop(10_000);
    if (c) await c.end().catch(() => undefined);
    if (res.failure || res.checks.length) { // keep the daemon's log of a cutover that went wrong
      mkdirSync(logDir, { recursive: true });
      try { copyFileSync(logFile, join(logDir, `c${k}-daemon.log`)); res.log = join(logDir, `c${k}-daemon.log`); } catch { /* none */ }
    }
    const d = await pgClient();
    try { await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`); } finally { await d.end(); }
    for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`, `${file}-sqlite2pg-cutover.json`, `${file}-sqlite2pg.pid`, logFile]) rmSync(f, { force: true });
  }
  return res;
}

run(async () => {
  const head = await machine();
  const dir = workDir('cutover');
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const logDir = join(BENCH, 'out', 'logs', `cutover-${new Date().toISOString().replace(/[:.]/g, '').slice(0, 17)}`);
  const results = [];
  for (let k = 1; k <= opt.cutovers; k++) {
    const r = await oneCutover(k, dir, logDir);
    results.push(r);
    const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
    console.error(`cutover ${k}/${opt.cutovers}: freeze_ms ${f(r.freezeMs)}, block ${f(r.blockMs)} ms, refused ${r.refusedInBlock ?? '–'}`
      + `${r.failure ? `; FAILED: ${r.failure}` : ''}${r.checks.length ? `; CHECKS: ${r.checks.join('; ')}` : ''}`);
  }
  const measured = results.filter((r) => Number.isFinite(r.freezeMs) || Number.isFinite(r.blockMs));
  if (!measured.length) throw new Error(`no cutover completed: ${results.map((r) => r.failure ?? r.checks.join('; ')).join(' | ')}`);

  const sorted = (key) => measured.map((r) => r[key]).filter(Number.isFinite).sort((a, b) => a - b);
  const ms = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
  const stats = (key) => { const s = sorted(key); return [fmt(s.length), ms(pct(s, 50)), ms(pct(s, 95)), ms(pct(s, 99)), ms(pct(s, 100))]; };
  const target = (key) => { const s = sorted(key); return s.length ? (pct(s, 99) < 100 ? '✓' : '✗') : '–'; };
  const failed = results.filter((r) => r.failure || r.checks.length);
  const vs = results.map((r) => r.verify).filter(Boolean);
  const sum = (f) => vs.reduce((a, v) => a + f(v), 0);
  const md = [
    '# Cutover: how long the application\'s writes are blocked', '', ...head,
    `- command: \`node bench/cutover.mjs --cutovers ${opt.cutovers} --rate ${opt.rate} --rows ${opt.rows}\``,
    `- ${opt.cutovers} cutover(s), each from scratch: SQLite in WAL mode with \`orders(id INTEGER PRIMARY KEY, customer INTEGER, amount REAL, note TEXT)\` (${fmt(opt.rows)} rows) and \`counters(id INTEGER PRIMARY KEY, n INTEGER)\` (16 rows), a fresh Postgres database;`
      + ' `sqlite2pg init`, `sqlite2pg run --poll-ms 100 --no-fallback` (validation: counts), `status --json` until phase streaming',
    `- writer: its own process, ${fmt(opt.rate)} single-row autocommit writes/s (WAL, synchronous=NORMAL, busy_timeout 5000), round robin INSERT orders / UPDATE orders by id / UPDATE counters SET n = n + 1;`
      + ` \`sqlite2pg cutover --wait\` after ${STREAM_SECONDS} s of writes`,
    '- **freeze_ms**: `sqlite2pg.state.freeze_ms`, the daemon\'s own measurement (SQLite freeze commit → Postgres cutover commit, wall clock, 1 ms resolution)',
    '- **block_ms**: the application\'s view: arrival of `NOTIFY sqlite2pg_cutover` (sent in the cutover transaction) at this process − start of the writer\'s first refused write (CLOCK_MONOTONIC in both processes);'
      + ' **refused**: writes refused with the freeze message in that window', '',
    table(['measure', 'cutovers', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'target p99 < 100 ms'],
      [['freeze_ms (daemon)', ...stats('freezeMs'), target('freezeMs')], ['block_ms (writer → NOTIFY)', ...stats('blockMs'), target('blockMs')],
        ['last acknowledged write → NOTIFY', ...stats('gapMs'), ''], ['refused writes per cutover', ...stats('refusedInBlock').map((x, i) => (i ? x.replace(/\.0$/, '') : x)), '']]), '',
    `Percentiles are nearest-rank over ${measured.length} cutover(s): with fewer than 100, p99 is the maximum${measured.length < 20 ? ', and p95 too' : ''}.`, '',
    '## Per cutover', '',
    table(['#', 'freeze_ms', 'block ms', 'refused', 'last ack → NOTIFY ms', 'catch-up ms', 'frozen → drained ms', 'drained → committed ms', 'request → 1st refusal ms', 'slowest write ms', 'writes/s', 'validation', 'writes lost', 'result'],
      results.map((r) => [r.k, ms(r.freezeMs), ms(r.blockMs), Number.isFinite(r.refusedInBlock) ? r.refusedInBlock : '–', ms(r.gapMs), ms(r.catchUpMs), ms(r.drainMs), ms(r.commitMs),
        ms(r.requestToRefusalMs), ms(r.slowestWriteMs), fmt(r.achievedRate), r.validation ? (r.validation.ok ? `${r.validation.mode}: ok` : `${r.validation.mode}: DIFFERS`) : '–',
        r.verify ? String(r.verify.problems.length ? r.verify.problems.length + ' problem(s)' : 0) : '–', r.failure || r.checks.length ? `✗ ${[r.failure, ...r.checks].filter(Boolean).join('; ').replace(/\|/g, '\\|')}` : '✓'])), '',
    '- catch-up / frozen → drained / drained → committed: from the daemon\'s log (`cutover step 1…4/5` lines, 1 ms resolution); the freeze is frozen → committed',
    `- acknowledged writes checked against Postgres: ${fmt(sum((v) => v.ok))} in all; counters: sum ${fmt(sum((v) => v.counterSum))} = acknowledged counter updates ${fmt(sum((v) => v.okCounter))}`
      + ` ${sum((v) => v.counterSum) === sum((v) => v.okCounter) ? '✓' : '✗'}; inserted orders found ${fmt(sum((v) => v.insFound))} / ${fmt(sum((v) => v.okIns))};`
      + ` updated orders carrying their last acknowledged update ${fmt(sum((v) => v.updFound))} / ${fmt(sum((v) => v.updRows))} rows (${fmt(sum((v) => v.okUpd))} updates);`
      + ` writes failed without the freeze message: ${fmt(sum((v) => v.errors))}`,
    `- refused writes in all (also after the NOTIFY, until the writer stopped ~0.2 s after the daemon exited): ${fmt(results.reduce((a, r) => a + (r.refusedTotal ?? 0), 0))}`,
    failed.length ? `- **${failed.length} cutover(s) went wrong** (see the result column)${failed.some((r) => r.log) ? `; daemon logs kept in ${logDir}` : ''}` : '- every cutover: daemon exit 0, validation ok, no acknowledged write lost, no refused write applied',
  ].join('\n');
  report('cutover', md);
});
