#!/usr/bin/env node
// The way back (fallback and rollback): what the capture in PostgreSQL costs the application, how fast the
// daemon applies PostgreSQL's writes to the SQLite file, how far SQLite lags, and how long a rollback freezes
// PostgreSQL. Four sub-benchmarks, each on its own source and database, selected with --only:
//
//   node bench/fallback.mjs [--only capture,apply,lag,rollback]
//     capture:  [--clients 4] [--seconds 3] [--rounds 4] [--batch 100] [--capture-rows 100000] [--no-daemon] [--async-commit]
//     apply:    [--changes 500000] [--rows 100000] [--batch-size B]
//     lag:      [--rate 1000] [--lag-seconds 30] [--poll-every-ms 2]
//     rollback: [--rollbacks 10] [--rollback-rate 100] [--rollback-rows 2000]
//
// Every source is cut over for real: a SQLite file in WAL mode, `sqlite2pg init`, `sqlite2pg run --cutover
// --validate counts` (SQLITE2PG_FALLBACK=true) until `status` says phase fallback: the capture triggers of
// src/postgres/capture.ts are then on the PostgreSQL tables, and the daemon applies to SQLite what they record.
//
// capture   The application's writes in PostgreSQL on `items` (the plan's table: bigint identity key, bigint,
//           text, timestamp, double precision, boolean; --capture-rows rows to start), from --clients connections
//           at once, as fast as they go: "single" = one row per autocommit transaction (40 % INSERT … RETURNING id,
//           40 % UPDATE by id, 20 % DELETE by id, each client on its own ids), "batched" = one statement of --batch
//           rows per autocommit transaction (INSERT … SELECT FROM unnest, UPDATE/DELETE … WHERE id = ANY), same mix.
//           Variants on the same table: *without* capture (uninstallPgCapture), *with* capture (installPgCapture,
//           nothing consuming the changes), *with capture + daemon* (`sqlite2pg run` applying to SQLite meanwhile;
//           --no-daemon skips it). Blocks of --seconds each, the variants in alternating order per round (A B C,
//           C B A, …), each block after a VACUUM of items, an emptied change table and a CHECKPOINT. Reported:
//           median rate per variant, the median of the per-round ratios with ÷ without, and the CPU the
//           PostgreSQL backends spent per transaction (from /proc). Target: with ÷ without ≥ 0.75.
//           --async-commit sets synchronous_commit = off in the clients (a diagnosis: commits stop waiting
//           for the WAL flush, so the rates show CPU alone).
// apply     --changes row changes (40 % inserts, 40 % updates of random live rows, 20 % deletes; in transactions
//           of 1,000 rows: 3 multi-row statements, each row firing the capture trigger once) made in PostgreSQL
//           while the daemon is stopped, over `items` with --rows rows; then `sqlite2pg run` (the real daemon, a
//           child process) timed from its spawn until sqlite2pg.state.fallback_applied has grown by the backlog
//           (polled every 100 ms; one `status --json` at the end must show fallback lag 0); "from first batch"
//           excludes the daemon's start-up. Then the daemon is stopped and `sqlite2pg validate --full` must say
//           equal. Target ≥ 30,000 changes/s.
// lag       The daemon running in phase fallback; a writer (worker thread, one pg connection, autocommit) makes
//           --rate writes/s in PostgreSQL for --lag-seconds, alternating INSERT and UPDATE of a random row of
//           `ticks`, each setting n to a sequence number (one connection: n grows in commit order). This thread
//           polls the SQLite file (read-only connection) with `SELECT max(n)` every --poll-every-ms ms; latency =
//           the poll that first saw write k − the moment its commit returned (monotonic clock shared by both
//           threads; an upper bound, resolution one poll). `status` (the CLI's readStatus, in process) is sampled
//           every second for fallback.lag_seconds / lag_changes. Target: p99 < 1 s.
// rollback  --rollbacks times, each from scratch (items with --rollback-rows rows, counters with 16): cut over,
//           a writer (worker thread, one pg connection) at --rollback-rate writes/s in PostgreSQL (round robin
//           INSERT items / UPDATE items by id / UPDATE counters n = n + 1; each outcome recorded), after 2 s
//           `sqlite2pg rollback --wait`; the daemon must exit 0. freeze_ms = sqlite2pg.state.rollback_freeze_ms
//           (the daemon's measure: before the freeze transaction's BEGIN → SQLite unfrozen); block_ms = the
//           application's view: NOTIFY sqlite2pg_rollback at this process − start of the first refused write.
//           Checked: phase rolled-back, validation ok, every acknowledged write in SQLite (counter sums, inserted
//           rows, the last acknowledged update of each row), no refused write there. Target: p99 < 100 ms.
//
// Exit status: 0 when the benchmark ran (targets are reported with ✓/✗, not enforced); 1 when the tool failed
// (a command's exit code, the daemon dying, a timeout, SQLite not matching PostgreSQL). Postgres: PGHOST, PGPORT,
// PGUSER as in bench/lib/replication.mjs; dist/ must be built (`npm run build`).
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mulberry32 } from './generate.mjs';
import {
  Database, cli, cliOk, cpuMs, daemonLog, dist, fmt, freshDb, machine, median, onCleanup, pct, pgBackendCpuMs,
  pgClient, report, run, sleep, startDaemon, status, table, waitFor, workDir,
} from './lib/replication.mjs';

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms, CLOCK_MONOTONIC: the same in every thread

// ---------------------------------------------------------------------------------------------------------------
// Worker threads: the PostgreSQL writers of "lag" and "rollback".
// ---------------------------------------------------------------------------------------------------------------

/** Lag writer: `total` writes paced at `rate`/s on one connection; commit times into a shared array. */
async function lagWriter() {
  const { Client } = createRequire(import.meta.url)('pg');
  const { url, rate, total, first, rows, commitBuf, durBuf, progBuf } = workerData;
  const c = new Client({ connectionString: url });
  await c.connect();
  const commit = new Float64Array(commitBuf), dur = new Float64Array(durBuf), prog = new Int32Array(progBuf);
  const rnd = mulberry32(first);
  let late = 0;
  const t0 = now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - now();
    if (wait > 0) await sleep(wait);
    else late = Math.max(late, -wait);
    const w0 = now();
    if (i % 2 === 0) await c.query("INSERT INTO ticks (n, at, note) VALUES ($1, now(), 'tick')", [first + i]);
    else await c.query('UPDATE ticks SET n = $1, at = now() WHERE id = $2', [first + i, 1 + Math.floor(rnd() * rows)]);
    commit[i] = now();
    dur[i] = commit[i] - w0;
    Atomics.store(prog, 0, i + 1);
    prog[1] = Math.min(2 ** 31 - 1, Math.ceil(late));
  }
  await c.end();
}

/** Rollback writer: round robin INSERT items / UPDATE items / UPDATE counters at `rate`/s until told to stop. */
async function rollbackWriter() {
  const { Client } = createRequire(import.meta.url)('pg');
  const { url, rate, rows, seed, frozenMessage } = workerData;
  const c = new Client({ connectionString: url });
  c.on('error', () => undefined);
  await c.connect();
  let stop = false;
  parentPort.on('message', (m) => { if (m === 'stop') stop = true; });
  const rnd = mulberry32(seed);
  const recs = [];
  const t0 = now();
  for (let i = 0; !stop; i++) {
    const wait = t0 + (i * 1000) / rate - now();
    if (wait > 0) await sleep(wait);
    const k = ['i', 'u', 'c'][i % 3];
    const rec = { i, k, t0: now() };
    try {
      if (k === 'i') await c.query("INSERT INTO items (customer, qty, name, note, created_at, amount, active) VALUES ($1, 1, $2, NULL, '2025-01-02 03:04:05', $3, true)", [1 + Math.floor(rnd() * 5000), `w${i}`, Math.round(rnd() * 1e6) / 100]);
      else if (k === 'u') { rec.id = 1 + Math.floor(rnd() * rows); await c.query('UPDATE items SET note = $1, amount = $2 WHERE id = $3', [`u${i}`, Math.round(rnd() * 1e6) / 100, rec.id]); }
      else { rec.id = 1 + Math.floor(rnd() * 16); await c.query('UPDATE counters SET n = n + 1 WHERE id = $1', [rec.id]); }
      rec.s = 'ok';
    } catch (e) {
      rec.s = String(e.message).includes(frozenMessage) ? 'frozen' : 'error';
      if (rec.s === 'error') rec.e = e.message;
    }
    rec.t1 = now();
    recs.push(rec);
  }
  await c.end().catch(() => undefined);
  parentPort.postMessage(recs);
}

if (!isMainThread) {
  await (workerData.kind === 'lag' ? lagWriter() : rollbackWriter());
} else {
  main();
}

// ---------------------------------------------------------------------------------------------------------------
// The main thread.
// ---------------------------------------------------------------------------------------------------------------

function main() {
  const USAGE = 'node bench/fallback.mjs [--only capture,apply,lag,rollback] [--clients N] [--seconds S] [--rounds R] [--batch B] [--capture-rows M] [--no-daemon] [--async-commit]'
    + ' [--changes N] [--rows R] [--batch-size B] [--rate R] [--lag-seconds S] [--poll-every-ms P] [--rollbacks N] [--rollback-rate R] [--rollback-rows M]';
  const numeric = {
    clients: 4, seconds: 3, rounds: 4, batch: 100, 'capture-rows': 100_000, changes: 500_000, rows: 100_000, 'batch-size': null,
    rate: 1000, 'lag-seconds': 30, 'poll-every-ms': 2, rollbacks: 10, 'rollback-rate': 100, 'rollback-rows': 2000,
  };
  let v;
  try {
    ({ values: v } = parseArgs({ options: { only: { type: 'string' }, 'no-daemon': { type: 'boolean' }, 'async-commit': { type: 'boolean' }, ...Object.fromEntries(Object.keys(numeric).map((k) => [k, { type: 'string' }])) } }));
  } catch (e) { console.error(`${e.message}\nusage: ${USAGE}`); process.exit(2); }
  const opt = { only: (v.only ?? 'capture,apply,lag,rollback').split(',').map((s) => s.trim()).filter(Boolean), noDaemon: !!v['no-daemon'], asyncCommit: !!v['async-commit'] };
  for (const [k, d] of Object.entries(numeric)) {
    opt[k] = v[k] === undefined ? d : Number(v[k]);
    if (opt[k] !== null && !(Number.isFinite(opt[k]) && opt[k] > 0)) { console.error(`bad --${k}\nusage: ${USAGE}`); process.exit(2); }
  }
  const SUBS = { capture: captureBench, apply: applyBench, lag: lagBench, rollback: rollbackBench };
  const bad = opt.only.filter((s) => !SUBS[s]);
  if (bad.length || !opt.only.length) { console.error(`unknown --only ${bad.join(',')}\nusage: ${USAGE}`); process.exit(2); }
  // The way back is the default; said explicitly so that a setting in the environment cannot turn it off.
  process.env.SQLITE2PG_FALLBACK = 'true';

  run(async () => {
    const head = await machine();
    const dir = workDir('fallback');
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    const parts = [];
    const args = process.argv.slice(2).join(' ');
    for (const s of opt.only) {
      console.error(`== ${s}`);
      parts.push(await SUBS[s](opt, dir));
    }
    report('fallback', ['# The way back: fallback and rollback', '', ...head, `- command: \`node bench/fallback.mjs${args ? ' ' + args : ''}\``, '', ...parts].join('\n'));
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Sources and cutover.
// ---------------------------------------------------------------------------------------------------------------

const ITEMS_DDL = `CREATE TABLE items (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL, qty INTEGER, name TEXT NOT NULL, note TEXT,
  created_at DATETIME NOT NULL, amount REAL, active BOOLEAN NOT NULL);
CREATE INDEX items_customer ON items (customer);`;
const WORDS = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'été', 'naïve', '"q"', 'tab\there', 'line\nbreak', '\\N', '🙂'];
const ts = (i) => new Date(1.7e12 + i * 997_000).toISOString().replace('T', ' ').slice(0, 19);

/** A SQLite file in WAL mode with `items` (rows rows), plus `extra` SQL run first (more tables). */
function makeSource(file, rows, { extra = '', seed = 1 } = {}) {
  const rnd = mulberry32(seed);
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(ITEMS_DDL + extra);
  const ins = db.prepare('INSERT INTO items (id, customer, qty, name, note, created_at, amount, active) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  db.transaction(() => {
    for (let i = 1; i <= rows; i++) {
      ins.run(i, 1 + Math.floor(rnd() * 5000), Math.floor(rnd() * 100), `name ${i}`, rnd() < 0.3 ? null : Array.from({ length: 4 }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(' '),
        ts(i), rnd() < 0.1 ? null : Math.round(rnd() * 1e8) / 100, rnd() < 0.5 ? 1 : 0);
    }
  })();
  return db;
}

/**
 * A real cutover of `file` into a fresh database `name`: init, `run --cutover --validate counts`, `status` until
 * phase fallback. Returns the running daemon (still applying, phase fallback) and the database's URL.
 */
async function cutOver(file, name, logFile, extra = []) {
  const pg = await freshDb(name);
  await cliOk(['init', '--sqlite', file, '--pg', pg]);
  const daemon = startDaemon(file, pg, logFile, ['--cutover', '--validate', 'counts', ...extra]);
  await waitFor('waiting for phase fallback', async () => (await status(file, pg)).phase === 'fallback', {
    timeoutMs: 300_000, everyMs: 100, abort: () => daemon.exited && `the daemon exited (code ${daemon.exited.code}, signal ${daemon.exited.signal}); log ${logFile}`,
  });
  return { pg, daemon };
}

async function stopOk(daemon, what) {
  const r = await daemon.stop();
  if (r.code !== 0) throw new Error(`sqlite2pg run (${what}) exited ${r.code} (signal ${r.signal})`);
  return r;
}

const ms = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const pctOf = (xs, p) => pct([...xs].sort((a, b) => a - b), p);

// ---------------------------------------------------------------------------------------------------------------
// 1. capture: the application's write rate with and without the capture triggers.
// ---------------------------------------------------------------------------------------------------------------

async function captureBench(opt, dir) {
  const name = 'bench_fallback_capture';
  const file = join(dir, 'capture.db');
  const logFile = join(dir, 'capture-daemon.log');
  makeSource(file, opt['capture-rows'], { seed: 11 }).close();
  const cut = await cutOver(file, name, logFile);
  await stopOk(cut.daemon, 'capture setup');
  const { installPgCapture, uninstallPgCapture } = await dist('postgres/capture.js');
  const TABLES = [{ name: 'items', key: ['id'] }];
  const admin = await pgClient(name);
  onCleanup(() => admin.end());
  const def = (await admin.query(`SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) AS d
    FROM pg_attribute a WHERE a.attrelid = 'public.items'::regclass AND a.attnum > 0 AND NOT a.attisdropped`)).rows[0].d;

  let captured = true; // the cutover installed it
  const setCapture = async (on) => {
    if (on === captured) return;
    if (on) await installPgCapture(admin, 'public', TABLES);
    else await uninstallPgCapture(admin, 'public', TABLES);
    captured = on;
  };
  const rnd = mulberry32(99);
  const text = () => Array.from({ length: 3 }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(' ');

  /** One block of `seconds` on `clients` (each { c, ids }): returns { tx, rows, secs, pgCpuMs }. */
  async function block(clients, kind) {
    const B = kind === 'batched' ? opt.batch : 1;
    const end = now() + opt.seconds * 1000;
    const cpu0 = pgBackendCpuMs(name);
    const t0 = now();
    const counts = await Promise.all(clients.map(async (cl) => {
      let tx = 0, rows = 0, k = 0;
      while (now() < end) {
        const x = (k++ * 0.618034) % 1; // a deterministic 40/40/20 mix, interleaved
        const op = cl.ids.length < B * 2 || x < 0.4 ? 'i' : x < 0.8 ? 'u' : 'd';
        if (B === 1) {
          if (op === 'i') {
            const r = await cl.c.query('INSERT INTO items (customer, qty, name, note, created_at, amount, active) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id',
              [1 + Math.floor(rnd() * 5000), 1, `c${cl.n}`, text(), ts(k), rnd() * 1e4, rnd() < 0.5]);
            cl.ids.push(r.rows[0].id);
          } else if (op === 'u') {
            await cl.c.query('UPDATE items SET qty = qty + 1, note = $2, amount = $3 WHERE id = $1', [cl.ids[Math.floor(rnd() * cl.ids.length)], text(), rnd() * 1e4]);
          } else {
            const j = Math.floor(rnd() * cl.ids.length);
            const id = cl.ids[j];
            cl.ids[j] = cl.ids[cl.ids.length - 1];
            cl.ids.pop();
            await cl.c.query('DELETE FROM items WHERE id = $1', [id]);
          }
        } else if (op === 'i') {
          const col = (f) => Array.from({ length: B }, f);
          const r = await cl.c.query(`INSERT INTO items (customer, qty, name, note, created_at, amount, active)
            SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::timestamp[], $6::float8[], $7::boolean[]) RETURNING id`,
          [col(() => 1 + Math.floor(rnd() * 5000)), col(() => 1), col(() => `c${cl.n}`), col(text), col(() => ts(k)), col(() => rnd() * 1e4), col(() => rnd() < 0.5)]);
          for (const row of r.rows) cl.ids.push(row.id);
        } else {
          const pick = [];
          for (let j = 0; j < B; j++) {
            const at = Math.floor(rnd() * cl.ids.length);
            pick.push(cl.ids[at]);
            if (op === 'd') { cl.ids[at] = cl.ids[cl.ids.length - 1]; cl.ids.pop(); }
          }
          if (op === 'u') await cl.c.query('UPDATE items SET qty = qty + 1, note = $2, amount = amount + 1 WHERE id = ANY($1::bigint[])', [pick, text()]);
          else await cl.c.query('DELETE FROM items WHERE id = ANY($1::bigint[])', [pick]);
        }
        tx++;
        rows += B;
      }
      return { tx, rows };
    }));
    const secs = (now() - t0) / 1000;
    return { tx: counts.reduce((a, x) => a + x.tx, 0), rows: counts.reduce((a, x) => a + x.rows, 0), secs, pgCpuMs: pgBackendCpuMs(name) - cpu0 };
  }

  const variants = opt.noDaemon ? ['without', 'with'] : ['without', 'with', 'with+daemon'];
  const results = {}; // kind → variant → [{ rate, rowRate, cpuPerTx }]
  let daemonStarts = 0;
  const benchCpu0 = process.cpuUsage();
  for (const kind of ['single', 'batched']) {
    // Each client writes its own ids: the live ids dealt round robin.
    const ids = (await admin.query('SELECT id FROM items')).rows.map((r) => r.id);
    const clients = [];
    for (let n = 0; n < opt.clients; n++) {
      const c = await pgClient(name);
      if (opt.asyncCommit) await c.query('SET synchronous_commit = off');
      clients.push({ n, c, ids: ids.filter((_, i) => i % opt.clients === n) });
    }
    results[kind] = Object.fromEntries(variants.map((x) => [x, []]));
    for (let r = 0; r < opt.rounds; r++) {
      const order = r % 2 === 0 ? variants : [...variants].reverse();
      for (const variant of order) {
        await setCapture(variant !== 'without');
        if (captured) await admin.query('TRUNCATE sqlite2pg.pg_changes');
        await admin.query('VACUUM ANALYZE items');
        await admin.query('CHECKPOINT');
        let daemon = null;
        if (variant === 'with+daemon') {
          daemon = startDaemon(file, cut.pg, logFile);
          daemonStarts++;
          await waitFor('the daemon taking the source', async () => (await admin.query('SELECT daemon_pid FROM sqlite2pg.state')).rows[0]?.daemon_pid === daemon.child.pid,
            { timeoutMs: 60_000, everyMs: 50, abort: () => daemon.exited && `the daemon exited (code ${daemon.exited.code})` });
        }
        const dCpu0 = daemon ? cpuMs(daemon.child.pid) : 0;
        const b = await block(clients, kind);
        let daemonCpu = NaN, left = NaN;
        if (daemon) {
          daemonCpu = cpuMs(daemon.child.pid) - dCpu0;
          left = Number((await admin.query('SELECT count(*) AS n FROM sqlite2pg.pg_changes')).rows[0].n);
          if (daemon.exited) throw new Error(`the daemon exited during the block (code ${daemon.exited.code}); log ${logFile}`);
          await stopOk(daemon, 'with+daemon block');
        }
        const res = { rate: b.tx / b.secs, rowRate: b.rows / b.secs, cpuPerTx: (b.pgCpuMs * 1000) / b.tx, daemonCpu: daemonCpu / b.secs / 1000, left };
        results[kind][variant].push(res);
        console.error(`capture ${kind} round ${r + 1} ${variant}: ${fmt(res.rate)} tx/s (${fmt(res.rowRate)} rows/s), Postgres CPU ${fmt(res.cpuPerTx)} µs/tx`
          + `${daemon ? `, daemon ${(100 * res.daemonCpu).toFixed(0)} % of a core, ${fmt(left)} changes left unapplied at the end` : ''}`);
      }
    }
    for (const cl of clients) await cl.c.end();
  }
  const benchCpu = process.cpuUsage(benchCpu0);
  await setCapture(true);

  const ratios = (kind, variant) => results[kind][variant].map((x, i) => x.rate / results[kind].without[i].rate);
  const rows = [];
  for (const kind of ['single', 'batched']) {
    for (const variant of variants) {
      const xs = results[kind][variant];
      const rs = variant === 'without' ? null : ratios(kind, variant);
      rows.push([
        kind === 'single' ? `single row, autocommit (${opt.clients} clients)` : `${opt.batch} rows per statement (${opt.clients} clients)`, variant,
        fmt(median(xs.map((x) => x.rate))), fmt(median(xs.map((x) => x.rowRate))), fmt(median(xs.map((x) => x.cpuPerTx))),
        rs ? `**${median(rs).toFixed(2)}×** (${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)})` : '',
        variant === 'with' ? (median(rs) >= 0.75 ? '✓' : '✗') : variant === 'with+daemon' ? `daemon ${(100 * median(xs.map((x) => x.daemonCpu))).toFixed(0)} % of a core` : '',
      ]);
    }
  }
  const perRound = ['single', 'batched'].map((kind) => `- per round, ${kind} (transactions/s, ${variants.join(' / ')}): `
    + results[kind].without.map((_, i) => variants.map((x) => fmt(results[kind][x][i].rate)).join(' / ')).join('; '));
  return [
    '## 1. Capture cost: the application\'s writes in PostgreSQL with and without the capture triggers', '',
    `- table \`items\` as the plan made it (${def}), ${fmt(opt['capture-rows'])} rows to start, cut over for real (\`run --cutover\`), daemon then stopped;`
      + ' variants switched with `installPgCapture` / `uninstallPgCapture` (dist/postgres/capture.js) on the same table',
    `- ${opt.clients} client connection(s) in this process${opt.asyncCommit ? ' (**synchronous_commit = off**)' : ''}, each writing as fast as it can, on its own ids; mix 40 % INSERT … RETURNING id, 40 % UPDATE by id, 20 % DELETE by id;`
      + ` "batched": one statement of ${opt.batch} rows per transaction (INSERT … SELECT FROM unnest, UPDATE/DELETE … WHERE id = ANY)`,
    `- ${opt.rounds} round(s) of ${opt.seconds} s blocks, variants in alternating order (${variants.join(' → ')}, then reversed); before each block VACUUM ANALYZE items, TRUNCATE of the change table, CHECKPOINT;`
      + ' "with": nothing consumes the changes during the block; "with+daemon": `sqlite2pg run` (phase fallback) applies them to SQLite meanwhile',
    `- this process used ${((benchCpu.user + benchCpu.system) / 1e6).toFixed(1)} CPU-s for the clients; Postgres CPU per transaction = CPU of the database's backends (/proc) ÷ transactions`, '',
    table(['workload', 'variant', 'transactions/s (median)', 'rows/s', 'Postgres CPU µs/tx', 'ratio to without (median of rounds, range)', 'target ≥ 0.75×'], rows), '',
    ...perRound, '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// 2. apply: the daemon draining a backlog of captured changes into SQLite.
// ---------------------------------------------------------------------------------------------------------------

async function applyBench(opt, dir) {
  const TARGET = 30_000;
  const name = 'bench_fallback_apply';
  const file = join(dir, 'apply.db');
  const logFile = join(dir, 'apply-daemon.log');
  const extra = opt['batch-size'] ? ['--batch-size', String(opt['batch-size'])] : [];
  makeSource(file, opt.rows, { seed: 21 }).close();
  const t0 = now();
  const cut = await cutOver(file, name, logFile, extra);
  const cutS = (now() - t0) / 1000;
  await stopOk(cut.daemon, 'apply setup');
  const c = await pgClient(name);
  onCleanup(() => c.end());

  // The backlog: transactions of 1,000 row changes, 40 % inserts, 40 % updates, 20 % deletes of live rows.
  const rnd = mulberry32(23);
  const live = (await c.query('SELECT id FROM items')).rows.map((r) => r.id);
  const mix = { insert: 0, update: 0, delete: 0 };
  const g0 = now();
  // Until exactly --changes rows changed (an update picking an id twice changes it once): one captured change each.
  for (let done = 0; done < opt.changes;) {
    const n = Math.min(1000, opt.changes - done);
    const ni = Math.round(n * 0.4), nu = Math.round(n * 0.4), nd = n - ni - nu;
    const col = (k, f) => Array.from({ length: k }, f);
    const upd = col(nu, () => live[Math.floor(rnd() * live.length)]);
    const del = col(nd, () => { const j = Math.floor(rnd() * live.length); const id = live[j]; live[j] = live[live.length - 1]; live.pop(); return id; });
    await c.query('BEGIN');
    const ins = await c.query(`INSERT INTO items (customer, qty, name, note, created_at, amount, active)
      SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::timestamp[], $6::float8[], $7::boolean[]) RETURNING id`,
    [col(ni, () => 1 + Math.floor(rnd() * 5000)), col(ni, () => Math.floor(rnd() * 100)), col(ni, (_, j) => `new ${done + j}`),
      col(ni, () => (rnd() < 0.3 ? null : WORDS[Math.floor(rnd() * WORDS.length)] + ' ' + WORDS[Math.floor(rnd() * WORDS.length)])),
      col(ni, (_, j) => ts(done + j)), col(ni, () => (rnd() < 0.1 ? null : Math.round(rnd() * 1e8) / 100)), col(ni, () => rnd() < 0.5)]);
    // Updates name rows by id; a row the same batch deletes is updated first (both changes captured).
    const u = await c.query('UPDATE items SET qty = qty + 1, note = $2, amount = amount + 0.25, active = NOT active WHERE id = ANY($1::bigint[])', [upd, `updated ${done}`]);
    const d = await c.query('DELETE FROM items WHERE id = ANY($1::bigint[])', [del]);
    await c.query('COMMIT');
    for (const r of ins.rows) live.push(r.id);
    mix.insert += ins.rowCount; mix.update += u.rowCount; mix.delete += d.rowCount;
    done += ins.rowCount + u.rowCount + d.rowCount;
  }
  const genS = (now() - g0) / 1000;
  const backlog = Number((await c.query("SELECT count(*) AS n FROM sqlite2pg.pg_changes WHERE sch = 'public'")).rows[0].n);
  const distinct = Number((await c.query("SELECT count(DISTINCT k) AS n FROM sqlite2pg.pg_changes WHERE sch = 'public'")).rows[0].n);
  const applied0 = Number((await c.query('SELECT fallback_applied AS a FROM sqlite2pg.state')).rows[0].a);
  console.error(`apply: backlog of ${fmt(backlog)} changes (${fmt(distinct)} distinct keys) made in ${genS.toFixed(1)} s`);

  const autovacuum = async () => Object.fromEntries((await c.query(
    "SELECT relname, autovacuum_count + autoanalyze_count AS n FROM pg_stat_user_tables WHERE relname IN ('items', 'pg_changes')")).rows.map((r) => [r.relname, Number(r.n)]));
  const av0 = await autovacuum();
  // From now: the backend that made the backlog is one of the database's and keeps the CPU it spent.
  const pgCpu0 = pgBackendCpuMs(name);
  const s0 = now();
  const daemon = startDaemon(file, cut.pg, logFile, extra);
  let first = null, cpu = { daemon: 0, pg: 0 };
  await waitFor('draining the backlog', async () => {
    const a = Number((await c.query('SELECT fallback_applied AS a FROM sqlite2pg.state')).rows[0].a) - applied0;
    cpu = { daemon: cpuMs(daemon.child.pid) || cpu.daemon, pg: Math.max(cpu.pg, pgBackendCpuMs(name) - pgCpu0) };
    if (first === null && a > 0) first = now();
    return a >= backlog;
  }, { timeoutMs: 3_600_000, everyMs: 100, abort: () => daemon.exited && `the daemon exited (code ${daemon.exited.code}); log ${logFile}` });
  const wallS = (now() - s0) / 1000;
  const fromFirstS = (now() - first) / 1000;
  const av1 = await autovacuum();
  const avRuns = Object.keys(av1).sort().map((t) => `${t} ${(av1[t] ?? 0) - (av0[t] ?? 0)}`).join(', ');
  const st = JSON.parse((await cliOk(['status', '--json', '--sqlite', file, '--pg', cut.pg])).stdout);
  if (st.fallback?.lag_changes !== 0) throw new Error(`status --json after the drain: fallback ${JSON.stringify(st.fallback)}`);
  const errors = daemonLog(logFile).filter((l) => l.level >= 50);
  const stop = await stopOk(daemon, 'apply');
  const v0 = now();
  const val = await cli(['validate', '--full', '--json', '--sqlite', file, '--pg', cut.pg]);
  const valS = (now() - v0) / 1000;
  let valRep = null;
  try { valRep = JSON.parse(val.stdout); } catch { /* below */ }
  if (val.code !== 0 || !valRep?.ok) throw new Error(`validate --full after the apply: exit ${val.code}: ${(val.stdout || val.stderr).slice(0, 2000)}`);
  const rate = backlog / wallS;
  console.error(`apply: ${fmt(backlog)} changes in ${wallS.toFixed(2)} s = ${fmt(rate)}/s (from the first batch ${fmt(backlog / fromFirstS)}/s)`);
  return [
    '## 2. Reverse apply throughput: a backlog drained by the daemon', '',
    `- \`items\` (${fmt(opt.rows)} rows to start: integer key, 2 integers, 2 texts, DATETIME text, REAL, BOOLEAN 0/1), cut over for real in ${cutS.toFixed(1)} s, daemon stopped;`
      + ` backlog made in PostgreSQL in ${genS.toFixed(1)} s: ${fmt(opt.changes)} row changes in transactions of ≤ 1,000 (inserts ${fmt(mix.insert)}, updates ${fmt(mix.update)}, deletes ${fmt(mix.delete)});`
      + ` **${fmt(backlog)} captured changes** over ${fmt(distinct)} distinct keys`,
    `- drained by the real daemon: \`sqlite2pg run\`${extra.length ? ' ' + extra.join(' ') : ''} (phase fallback, default batch 10,000), a child process, timed from its spawn until`
      + ' sqlite2pg.state.fallback_applied grew by the backlog (polled every 100 ms); `status --json` then: fallback lag_changes 0', '',
    table(['changes', 'wall from spawn (s)', 'changes/s', 'from first batch (s)', 'changes/s', 'target'],
      [[fmt(backlog), wallS.toFixed(2), `**${fmt(rate)}**`, fromFirstS.toFixed(2), fmt(backlog / fromFirstS), `≥ ${fmt(TARGET)}/s ${rate >= TARGET ? '✓' : '✗'}`]]), '',
    `CPU while draining: the daemon ${(cpu.daemon / 1000).toFixed(1)} s (${((100 * cpu.daemon) / 1000 / wallS).toFixed(0)} % of a core), the database's Postgres processes`
      + ` ${(cpu.pg / 1000).toFixed(1)} s (${((100 * cpu.pg) / 1000 / wallS).toFixed(0)} %; autovacuum workers included — autovacuum/autoanalyze runs during the drain: ${avRuns}). Daemon stopped by SIGTERM in ${stop.stopMs.toFixed(0)} ms, exit 0; ${errors.length} error line(s) in its log${errors.length ? ': ' + errors.slice(0, 3).map((e) => e.err ?? e.msg).join(' / ') : ''}.`,
    `\`sqlite2pg validate --full\` afterwards: ${valRep.ok ? 'equal' : 'DIFFERENT'} (${fmt(valRep.rows)} rows, ${valS.toFixed(1)} s).`, '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// 3. lag: PostgreSQL commit → visible in SQLite, at a steady rate.
// ---------------------------------------------------------------------------------------------------------------

async function lagBench(opt, dir) {
  const name = 'bench_fallback_lag';
  const file = join(dir, 'lag.db');
  const logFile = join(dir, 'lag-daemon.log');
  const seedRows = 10_000;
  const db = makeSource(file, 1000, { seed: 31, extra: 'CREATE TABLE ticks (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, at DATETIME NOT NULL, note TEXT); CREATE INDEX ticks_n ON ticks (n);' });
  const seed = db.prepare("INSERT INTO ticks (n, at, note) VALUES (0, '2025-01-01 00:00:00', 'seed')");
  db.transaction(() => { for (let i = 0; i < seedRows; i++) seed.run(); })();
  db.close();
  const { pg, daemon } = await cutOver(file, name, logFile);
  const reader = new Database(file, { readonly: true });
  const maxN = reader.prepare('SELECT max(n) AS m FROM ticks');
  const total = Math.round(opt.rate * opt['lag-seconds']);
  const commitBuf = new SharedArrayBuffer(total * 8), durBuf = new SharedArrayBuffer(total * 8), progBuf = new SharedArrayBuffer(8);
  const visible = new Float64Array(total);
  const first = 1;
  const lag = [];
  let statusErr = null;
  await sleep(1000);
  const idle0 = cpuMs(daemon.child.pid);
  await sleep(2000);
  const idleCpu = (cpuMs(daemon.child.pid) - idle0) / 2000;
  const sampler = setInterval(() => status(file, pg).then((s) => lag.push(s.fallback), (e) => (statusErr = e)), 1000);
  const cpu0 = cpuMs(daemon.child.pid), pgCpu0 = pgBackendCpuMs(name), t0 = now();
  const worker = new Worker(new URL(import.meta.url), { workerData: { kind: 'lag', url: pg, rate: opt.rate, total, first, rows: seedRows, commitBuf, durBuf, progBuf } });
  let writerExit = null, writerErr = null;
  worker.on('exit', (x) => (writerExit = x));
  worker.on('error', (e) => (writerErr = e));
  let seen = first - 1, polls = 0, doneAt = null;
  try {
    while (seen < first + total - 1) {
      const m = Number(maxN.get().m);
      const t = now();
      polls++;
      for (let k = seen + 1; k <= m; k++) visible[k - first] = t;
      seen = Math.max(seen, m);
      if (writerErr) throw writerErr;
      if (daemon.exited) throw new Error(`the daemon exited (code ${daemon.exited.code}); log ${logFile}`);
      if (writerExit !== null) doneAt ??= t;
      if (doneAt !== null && t - doneAt > 60_000) throw new Error(`write ${seen + 1} not visible in SQLite 60 s after the writer finished`);
      await sleep(opt['poll-every-ms']);
    }
  } finally { clearInterval(sampler); }
  while (writerExit === null) await sleep(5);
  if (writerExit !== 0) throw new Error(`the lag writer exited ${writerExit}`);
  if (statusErr) throw statusErr;
  const wall = now() - t0;
  const daemonCpu = (cpuMs(daemon.child.pid) - cpu0) / wall, pgCpu = (pgBackendCpuMs(name) - pgCpu0) / wall;
  reader.close();
  const commit = new Float64Array(commitBuf);
  const lat = Array.from(visible, (x, i) => x - commit[i]).sort((a, b) => a - b);
  const achieved = (total - 1) / ((commit[total - 1] - commit[0]) / 1000);
  const dur = new Float64Array(durBuf).sort();
  const late = new Int32Array(progBuf)[1];
  await stopOk(daemon, 'lag');
  const maxLagS = Math.max(0, ...lag.filter(Boolean).map((x) => x.lag_seconds));
  const maxLagN = Math.max(0, ...lag.filter(Boolean).map((x) => x.lag_changes));
  console.error(`lag: ${fmt(opt.rate)} writes/s: p50 ${ms(pct(lat, 50))} ms, p99 ${ms(pct(lat, 99))} ms, max ${ms(pct(lat, 100))} ms; status lag max ${maxLagS} s / ${maxLagN} changes`);
  return [
    '## 3. Fallback lag: PostgreSQL commit → visible in SQLite', '',
    `- \`ticks\` (INTEGER PRIMARY KEY, n INTEGER indexed, DATETIME, TEXT; ${fmt(seedRows)} rows) cut over for real; the daemon (\`sqlite2pg run\`, phase fallback, defaults) applying;`
      + ` its CPU while idle: ${(100 * idleCpu).toFixed(1)} % of a core`,
    `- writer: a worker thread, one pg connection, autocommit, ${fmt(opt.rate)} writes/s for ${opt['lag-seconds']} s, alternating INSERT and UPDATE of a random row, each setting n to a sequence number;`
      + ` reader: this thread, a read-only SQLite connection, \`SELECT max(n) FROM ticks\` every ${opt['poll-every-ms']} ms (${polls} polls, one per ${(wall / polls).toFixed(1)} ms)`,
    '- latency = first poll that saw the write − the moment its commit returned to the writer (upper bound); `status` fallback lag sampled every second', '',
    table(['writes/s (asked)', 'achieved', 'writes', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'status: max lag_seconds', 'max lag_changes', 'daemon CPU', 'Postgres CPU', 'target p99 < 1 s'],
      [[fmt(opt.rate), fmt(achieved), fmt(total), ms(pct(lat, 50)), ms(pct(lat, 95)), `**${ms(pct(lat, 99))}**`, ms(pct(lat, 100)), maxLagS.toFixed(3), fmt(maxLagN),
        `${(100 * daemonCpu).toFixed(0)} %`, `${(100 * pgCpu).toFixed(0)} %`, pct(lat, 99) < 1000 ? '✓' : '✗']]), '',
    `One write (its query, commit included) took p50 ${pct(dur, 50).toFixed(2)} ms, p99 ${pct(dur, 99).toFixed(2)} ms, max ${pct(dur, 100).toFixed(1)} ms; the writer fell at most ${fmt(late)} ms behind its schedule.`
      + ` ${lag.length} status samples.`, '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// 4. rollback: how long PostgreSQL is frozen.
// ---------------------------------------------------------------------------------------------------------------

/** The daemon's rollback timeline from its log (epoch ms). */
function rollbackTimeline(logFile) {
  const at = {};
  for (const l of daemonLog(logFile)) {
    const m = String(l.msg ?? '').match(/^rollback step (\d)\/8/);
    if (m && at[m[1]] === undefined) at[m[1]] = l.time;
  }
  const d = (a, b) => (at[a] !== undefined && at[b] !== undefined ? at[b] - at[a] : NaN);
  return { catchUpMs: d('1', '2'), drainMs: d('2', '3'), validateMs: d('3', '5'), commitMs: d('5', '6'), unfreezeMs: d('6', '7'), frozenToUnfrozenMs: d('2', '7') };
}

/** Compare the writer's acknowledged writes with what SQLite holds after the rollback. */
function verifyRollback(file, recs) {
  const db = new Database(file, { readonly: true });
  try {
    const ok = recs.filter((r) => r.s === 'ok');
    const problems = [];
    const want = new Map();
    for (const r of ok) if (r.k === 'c') want.set(r.id, (want.get(r.id) ?? 0) + 1);
    for (const r of db.prepare('SELECT id, n FROM counters').all()) if (r.n !== (want.get(r.id) ?? 0)) problems.push(`counters id ${r.id}: SQLite n=${r.n}, acknowledged ${want.get(r.id) ?? 0}`);
    const okIns = new Set(ok.filter((r) => r.k === 'i').map((r) => `w${r.i}`));
    const got = new Set(db.prepare("SELECT name FROM items WHERE name LIKE 'w%'").all().map((r) => r.name));
    for (const n of okIns) if (!got.has(n)) problems.push(`acknowledged insert ${n} missing in SQLite`);
    for (const n of got) if (!okIns.has(n)) problems.push(`SQLite holds insert ${n}, which was not acknowledged`);
    const lastUpd = new Map();
    for (const r of ok) if (r.k === 'u') lastUpd.set(r.id, `u${r.i}`);
    const note = db.prepare('SELECT note FROM items WHERE id = ?');
    for (const [id, want2] of lastUpd) { const n = note.get(id)?.note; if (n !== want2) problems.push(`items id ${id}: SQLite note ${JSON.stringify(n)}, last acknowledged ${want2}`); }
    const refused = recs.filter((r) => r.s === 'frozen');
    const firstRefused = refused.length ? Math.min(...refused.map((r) => r.i)) : Infinity;
    if (ok.some((r) => r.i > firstRefused)) problems.push('a write was acknowledged after the first refusal');
    const errors = recs.filter((r) => r.s === 'error');
    if (errors.length) problems.push(`${errors.length} write(s) failed without the freeze message, e.g. ${errors[0].e}`);
    return { ok: ok.length, ins: okIns.size, upd: lastUpd.size, counters: ok.filter((r) => r.k === 'c').length, problems };
  } finally { db.close(); }
}

async function oneRollback(opt, dir, k) {
  const name = `bench_fallback_rb_${k}`;
  const file = join(dir, `rb${k}.db`);
  const logFile = join(dir, `rb${k}-daemon.log`);
  const res = { k, checks: [] };
  makeSource(file, opt['rollback-rows'], { seed: 40 + k, extra: `CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counters (id, n) VALUES ${Array.from({ length: 16 }, (_, i) => `(${i + 1}, 0)`).join(', ')};` }).close();
  const { ROLLBACK_FROZEN_MESSAGE } = await dist('db/frozen.js');
  const { pg, daemon } = await cutOver(file, name, logFile);
  const c = await pgClient(name);
  let worker = null;
  try {
    let notifyAt = null;
    c.on('notification', (m) => { if (m.channel === 'sqlite2pg_rollback' && notifyAt === null) notifyAt = now(); });
    await c.query('LISTEN sqlite2pg_rollback');
    worker = new Worker(new URL(import.meta.url), { workerData: { kind: 'rollback', url: pg, rate: opt['rollback-rate'], rows: opt['rollback-rows'], seed: 700 + k, frozenMessage: ROLLBACK_FROZEN_MESSAGE } });
    const recsP = new Promise((res2, rej) => { worker.once('message', res2); worker.once('error', rej); });
    await sleep(2000);
    const requestedAt = now();
    const rb = await cli(['rollback', '--sqlite', file, '--pg', pg, '--wait', '--timeout', '120'], { timeoutMs: 180_000 });
    res.cliMs = now() - requestedAt;
    if (rb.code !== 0) throw new Error(`sqlite2pg rollback --wait exited ${rb.code}: ${(rb.stderr || rb.stdout).trim().slice(0, 500)}`);
    await waitFor('the daemon exiting after the rollback', () => daemon.exited, { timeoutMs: 30_000, everyMs: 20 });
    if (daemon.exited.code !== 0) throw new Error(`the daemon exited ${daemon.exited.code} after the rollback; log ${logFile}`);
    await sleep(200); // the writer keeps trying against frozen PostgreSQL
    worker.postMessage('stop');
    const recs = await recsP;
    if (notifyAt === null) await sleep(500);
    const st = (await c.query('SELECT phase, rollback_freeze_ms, rollback_validation FROM sqlite2pg.state')).rows[0];
    res.freezeMs = Number(st.rollback_freeze_ms);
    if (st.phase !== 'rolled-back') res.checks.push(`phase ${st.phase}`);
    if (!st.rollback_validation?.ok) res.checks.push(`validation ${JSON.stringify(st.rollback_validation)}`);
    const refused = recs.filter((r) => r.s === 'frozen').sort((a, b) => a.t0 - b.t0);
    res.writes = recs.length;
    res.refused = refused.length;
    res.blockMs = refused.length && notifyAt !== null ? notifyAt - refused[0].t0 : NaN;
    res.refusedInBlock = notifyAt !== null ? refused.filter((r) => r.t0 <= notifyAt).length : NaN;
    if (!refused.length) res.checks.push('no write was refused');
    if (notifyAt === null) res.checks.push('no NOTIFY sqlite2pg_rollback');
    Object.assign(res, rollbackTimeline(logFile));
    res.freezeTxMs = res.freezeMs - res.frozenToUnfrozenMs; // BEGIN of the freezing transaction → its commit logged (step 2)
    res.verify = verifyRollback(file, recs);
    res.checks.push(...res.verify.problems.slice(0, 5));
  } finally {
    if (worker) await worker.terminate().catch(() => undefined);
    if (!daemon.exited) await daemon.stop(10_000);
    await c.end().catch(() => undefined);
    const d = await pgClient();
    try { await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`); } finally { await d.end(); }
    if (!res.checks.length) for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-sqlite2pg-cutover.json`, `${file}-sqlite2pg-rollback.json`, logFile]) rmSync(f, { force: true });
  }
  return res;
}

async function rollbackBench(opt, dir) {
  const results = [];
  for (let k = 1; k <= opt.rollbacks; k++) {
    const r = await oneRollback(opt, dir, k);
    results.push(r);
    console.error(`rollback ${k}/${opt.rollbacks}: freeze_ms ${ms(r.freezeMs)}, block ${ms(r.blockMs)} ms, refused ${r.refusedInBlock}${r.checks.length ? `; CHECKS: ${r.checks.join('; ')}` : ''}`);
  }
  const stats = (key) => { const s = results.map((r) => r[key]).filter(Number.isFinite).sort((a, b) => a - b); return [fmt(s.length), ms(pct(s, 50)), ms(pct(s, 95)), ms(pct(s, 99)), ms(pct(s, 100))]; };
  const p99 = pctOf(results.map((r) => r.freezeMs).filter(Number.isFinite), 99);
  const failed = results.filter((r) => r.checks.length);
  const vs = results.map((r) => r.verify);
  return [
    '## 4. Rollback: how long PostgreSQL is frozen', '',
    `- ${opt.rollbacks} rollback(s), each from scratch: \`items\` (${fmt(opt['rollback-rows'])} rows) and \`counters\` (16 rows) cut over for real (\`run --cutover --validate counts\`), then`
      + ` a writer in PostgreSQL (worker thread, one connection, autocommit) at ${fmt(opt['rollback-rate'])} writes/s: INSERT items / UPDATE items by id / UPDATE counters n = n + 1;`
      + ' after 2 s `sqlite2pg rollback --wait` (validation: counts, the default); the daemon exits 0',
    '- **freeze_ms**: sqlite2pg.state.rollback_freeze_ms, the daemon\'s measure (before the freezing transaction\'s BEGIN → SQLite unfrozen);'
      + ' **block_ms**: the writer\'s first refused write → NOTIFY sqlite2pg_rollback at this process (the commit of step 6; SQLite is unfrozen just after it)', '',
    table(['measure', 'rollbacks', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'target p99 < 100 ms'], [
      ['freeze_ms (daemon)', ...stats('freezeMs'), p99 < 100 ? '✓' : '✗'], ['block_ms (writer → NOTIFY)', ...stats('blockMs'), ''],
      ['refused writes in the block', ...stats('refusedInBlock').map((x, i) => (i ? x.replace(/\.0$/, '') : x)), ''],
      ['freezing transaction (BEGIN → step 2 logged)', ...stats('freezeTxMs'), ''], ['step 2 → 3: frozen → drained', ...stats('drainMs'), ''], ['step 3 → 5: sequences + validation', ...stats('validateMs'), ''],
      ['step 5 → 6: commit', ...stats('commitMs'), ''], ['step 6 → 7: SQLite unfrozen', ...stats('unfreezeMs'), '']]), '',
    `Percentiles are nearest-rank over ${results.length} rollback(s)${results.length < 100 ? ': p99 is the maximum' : ''}; the step times come from the daemon's log (1 ms resolution).`,
    `Acknowledged writes checked in SQLite: ${fmt(vs.reduce((a, x) => a + x.ok, 0))} (inserts ${fmt(vs.reduce((a, x) => a + x.ins, 0))}, rows updated ${fmt(vs.reduce((a, x) => a + x.upd, 0))},`
      + ` counter increments ${fmt(vs.reduce((a, x) => a + x.counters, 0))}); ${failed.length ? `**${failed.length} rollback(s) with problems**: ${failed.map((r) => `#${r.k}: ${r.checks.join('; ')}`).join(' | ')}` : 'every one present, no refused write applied, validation ok, daemon exit 0'}.`, '',
  ].join('\n');
}

