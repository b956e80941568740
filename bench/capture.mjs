#!/usr/bin/env node
// Capture cost: the application's single-row write rate (one statement per
// transaction, autocommit, WAL + synchronous=NORMAL) on a table without
// sqlite2pg's capture triggers vs with them, on the same machine in the same run.
//
//   node bench/capture.mjs [--ops N] [--runs R] [--base B] [--no-daemon] [--floor]
//
// Two table shapes, both `items` (INTEGER PRIMARY KEY + text/int/real columns) with
// an index on email: "plain" (CREATE INDEX) and "unique" (CREATE UNIQUE INDEX — init
// then also installs BEFORE INSERT/UPDATE triggers that record rows REPLACE deletes).
// Each run builds, per shape and variant, a fresh database of B rows and times N
// INSERTs, then N UPDATEs by id (random existing rows; email untouched), then N DELETEs by id:
//   without   no triggers
//   triggers  triggers installed with installCapture()/readSchema() (dist/), no
//             daemon: the changelog grows by every change it records, never pruned
//   floor     (--floor) not a capture: AFTER INSERT/UPDATE/DELETE triggers that each add 1
//             to an integer in a one-row table. Any trigger that records something in the
//             file makes every commit write one more page; this is the least such a trigger
//             can cost, the bound for "triggers"
//   daemon    `sqlite2pg init` + `sqlite2pg run` streaming into Postgres while the
//             application writes: the daemon reads, applies and prunes the
//             changelog, competing for the CPU and SQLite's write lock
// "without", "triggers" (and "floor") run side by side in alternating blocks of writes (ABBA),
// so load from other work on the machine hits both alike; "daemon" runs alone
// after them. Medians over R runs are reported.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  Database, cliOk, sleep, flags, fmt, freshDb, installFloor, installTriggers, machine, median, onCleanup, report, run,
  startDaemon, status, table, waitFor, waitStreaming, workDir,
} from './lib/replication.mjs';

const USAGE = 'node bench/capture.mjs [--ops N] [--runs R] [--base B] [--no-daemon] [--floor]';
const opt = flags(USAGE, { ops: 50_000, runs: 3, base: 100_000 }, ['no-daemon', 'floor']);
const OPS = ['insert', 'update', 'delete'];
const TARGET = 0.75;

// A seeded PRNG, so every variant sees the same keys and values.
function rng(seed) {
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}
const NAMES = ['Ada', 'Grace', 'Linus', 'Zoë', 'Edsger', 'Barbara', 'Ken', 'Margaret', 'Dennis', 'Frances'];
const row = (r, i) => [`${NAMES[i % NAMES.length]} ${Math.floor(r() * 1e6)}`, `user${i}@example.com`, Math.floor(r() * 1000), Math.round(r() * 1e6) / 100, new Date(1.7e12 + i * 1000).toISOString().replace('T', ' ').slice(0, 19), r() < 0.5 ? 'active' : 'pending'];

const SHAPES = ['plain', 'unique'];
const ddl = (shape) => `CREATE TABLE items (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, qty INTEGER NOT NULL,
  price REAL, created_at TEXT NOT NULL, status TEXT);
CREATE ${shape === 'unique' ? 'UNIQUE ' : ''}INDEX items_email ON items (email);`;

function build(file, shape) {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(ddl(shape));
  const ins = db.prepare('INSERT INTO items (id, name, email, qty, price, created_at, status) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const r = rng(1);
  db.transaction(() => { for (let i = 1; i <= opt.base; i++) ins.run(i, ...row(r, i)); })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

/**
 * The application on one file: N autocommit INSERTs, then N UPDATEs by id, then N
 * DELETEs by id (of the inserted rows, shuffled). `block(op, from, to)` runs writes
 * [from, to) of a phase and returns the seconds they took.
 */
function workload(file, seed) {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  const ins = db.prepare('INSERT INTO items (name, email, qty, price, created_at, status) VALUES (?, ?, ?, ?, ?, ?)');
  const upd = db.prepare('UPDATE items SET qty = qty + 1, price = ?, status = ? WHERE id = ?');
  const del = db.prepare('DELETE FROM items WHERE id = ?');
  const r = rng(seed);
  const rows = Array.from({ length: opt.ops }, (_, i) => row(r, opt.base + i + 1));
  const upds = Array.from({ length: opt.ops }, () => [Math.round(r() * 1e6) / 100, 'shipped', 1 + Math.floor(r() * opt.base)]);
  const ids = Array.from({ length: opt.ops }, (_, i) => opt.base + i + 1);
  for (let i = ids.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [ids[i], ids[j]] = [ids[j], ids[i]]; }
  const one = { insert: (i) => ins.run(...rows[i]), update: (i) => upd.run(...upds[i]), delete: (i) => del.run(ids[i]) };
  return {
    block(op, from, to) {
      const f = one[op];
      const t0 = process.hrtime.bigint();
      for (let i = from; i < to; i++) f(i);
      return Number(process.hrtime.bigint() - t0) / 1e9;
    },
    /** Rows in the changelog now (null without capture). */
    changelog() {
      const has = db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name = '_sqlite2pg_changes'").get().n;
      return has ? db.prepare('SELECT count(*) AS n FROM _sqlite2pg_changes').get().n : null;
    },
    close() { db.close(); },
  };
}

/** Run the workloads side by side, in blocks of writes alternating ABBA, so background load hits them alike. */
function interleaved(works) {
  const secs = works.map(() => ({ insert: 0, update: 0, delete: 0 }));
  const logged = works.map(() => ({})); // changelog rows per statement, per op
  const size = Math.max(100, Math.ceil(opt.ops / 50));
  for (const op of OPS) {
    const before = works.map((w) => w.changelog());
    for (let from = 0, b = 0; from < opt.ops; from += size, b++) {
      const order = works.map((_, j) => (b % 2 ? works.length - 1 - j : j));
      for (const j of order) secs[j][op] += works[j].block(op, from, Math.min(opt.ops, from + size));
    }
    works.forEach((w, j) => { const n = w.changelog(); logged[j][op] = n === null ? null : (n - before[j]) / opt.ops; });
  }
  return works.map((w, j) => {
    const left = w.changelog();
    w.close();
    return { rate: Object.fromEntries(OPS.map((op) => [op, opt.ops / secs[j][op]])), perStmt: logged[j], changelog: left };
  });
}

async function prepare(kind, shape, dir, i, pg) {
  const file = join(dir, `${kind}-${shape}-${i}.db`);
  build(file, shape);
  let daemon = null;
  if (kind === 'triggers') {
    await installTriggers(file);
  } else if (kind === 'floor') {
    installFloor(file);
  } else if (kind === 'daemon') {
    await cliOk(['init', '--sqlite', file, '--pg', pg, '--schema', `cap_${shape}_${i}`]);
    daemon = startDaemon(file, pg, join(dir, `daemon-${shape}-${i}.log`));
    const db = new Database(file);
    await waitStreaming(file, pg, daemon, () => db.prepare('UPDATE items SET qty = qty WHERE id = 1').run());
    db.close();
  }
  return { file, daemon };
}

/** The daemon variant: the workload alone, the daemon streaming meanwhile; then how long it needed to drain. */
async function withDaemon(shape, dir, i, pg) {
  const { file, daemon } = await prepare('daemon', shape, dir, i, pg);
  const [res] = interleaved([workload(file, 1000 + i)]);
  const t0 = performance.now();
  await waitFor('daemon catching up', async () => (await status(file, pg)).lag_changes === 0, { abort: () => daemon.exited && 'the daemon exited' });
  res.drainS = (performance.now() - t0) / 1000;
  await sleep(1500); // a prune due now (the daemon's defaults: every 60 s, or at 500,000 applied changes) has time to run
  const db = new Database(file, { readonly: true });
  res.changelog = db.prepare('SELECT count(*) AS n FROM _sqlite2pg_changes').get().n;
  db.close();
  const stop = await daemon.stop();
  if (stop.code !== 0) throw new Error(`sqlite2pg run exited ${stop.code} (signal ${stop.signal}) on SIGTERM`);
  return res;
}

run(async () => {
  const head = await machine();
  const dir = workDir('capture');
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const side = opt.floor ? ['without', 'triggers', 'floor'] : ['without', 'triggers']; // run interleaved
  const kinds = opt['no-daemon'] ? side : [...side, 'daemon'];
  const pg = opt['no-daemon'] ? null : await freshDb('bench_capture');
  const results = Object.fromEntries(SHAPES.map((sh) => [sh, Object.fromEntries(kinds.map((k) => [k, []]))]));
  const log = (i, k, r) => console.error(`run ${i + 1}/${opt.runs} ${k.padEnd(15)} ${OPS.map((o) => `${o} ${fmt(r.rate[o])}/s`).join(', ')}; changelog rows left ${r.changelog ?? '-'}${r.drainS !== undefined ? `; drained ${r.drainS.toFixed(2)} s after` : ''}`);
  for (let i = 0; i < opt.runs; i++) {
    for (const shape of i % 2 ? [...SHAPES].reverse() : SHAPES) {
      const order = i % 2 ? [...side].reverse() : side;
      const files = [];
      for (const k of order) files.push((await prepare(k, shape, dir, i, pg)).file);
      const rs = interleaved(files.map((f) => workload(f, 1000 + i)));
      order.forEach((k, j) => { results[shape][k].push(rs[j]); log(i, `${shape} ${k}`, rs[j]); });
      if (kinds.includes('daemon')) { const r = await withDaemon(shape, dir, i, pg); results[shape].daemon.push(r); log(i, `${shape} daemon`, r); }
      for (const f of readdirSync(dir)) if (f.endsWith('.db') || f.endsWith('-wal') || f.endsWith('-shm')) rmSync(join(dir, f));
    }
  }
  const rows = SHAPES.flatMap((shape) => OPS.map((o) => {
    const res = results[shape];
    const med = (k) => median(res[k].map((r) => r.rate[o]));
    const cells = [`${o} (${shape} email index)`, fmt(med('without'))];
    for (const k of kinds.slice(1)) {
      // Median of the per-run ratios (each run's variants are paired), not the ratio of medians.
      const ratio = median(res[k].map((x, i) => x.rate[o] / res.without[i].rate[o]));
      cells.push(fmt(med(k)), `${(100 * ratio).toFixed(1)} %${ratio >= TARGET ? '' : ' ✗'}`);
      if (k === 'triggers') cells.push(median(res.triggers.map((r) => r.perStmt[o])).toFixed(2));
    }
    return cells;
  }));
  const head2 = ['statement', 'without triggers (ops/s)', 'with triggers (ops/s)', 'ratio', 'changelog rows per statement'];
  if (kinds.includes('floor')) head2.push('floor: one-row counter trigger (ops/s)', 'ratio');
  if (kinds.includes('daemon')) head2.push('with triggers + daemon running (ops/s)', 'ratio');
  const all = (k, f) => median(SHAPES.flatMap((sh) => results[sh][k].map(f)));
  const md = [
    `# Capture cost: application write rate with vs without capture triggers`, '',
    ...head, `- workload: table \`items\` (INTEGER PRIMARY KEY, 5 text/int/real columns, an index on email: plain, or UNIQUE), ${fmt(opt.base)} rows to start;`,
    `  per variant ${fmt(opt.ops)} INSERTs, then ${fmt(opt.ops)} UPDATEs by id (qty, price, status; not email), then ${fmt(opt.ops)} DELETEs by id; one statement per transaction (autocommit),`,
    `  journal_mode=WAL, synchronous=NORMAL, one better-sqlite3 connection; fresh database per variant; without/with triggers${opt.floor ? '/floor' : ''} interleaved in blocks of writes (ABBA), daemon variant alone after them; medians of ${opt.runs} run(s)`, '',
    table(head2, rows), '',
    `Target: with triggers ≥ ${TARGET * 100} % of the rate without (✗ = missed). Rates are medians over the runs; ratios are medians of each run's ratio to that run's "without".`, '',
    `- "with triggers": capture installed (installCapture + readSchema from dist/), **no daemon**: the changelog is never pruned; it held`
      + ` ${fmt(all('triggers', (r) => r.changelog))} rows at the end of a run (median).`,
    ...(kinds.includes('floor') ? [`- "floor" (--floor): not a capture — AFTER INSERT/UPDATE/DELETE triggers that each add 1 to an integer in a one-row table,`
      + ` interleaved with the other two. Any trigger that records a change in the file makes each commit write one more page to the WAL; this is the least`
      + ` such a trigger costs, a bound for "with triggers".`] : []),
    ...(kinds.includes('daemon') ? [
      `- "+ daemon running": \`sqlite2pg init\` + \`sqlite2pg run\` streaming into Postgres during the writes, on the same machine (it competes for the CPU and,`
        + ` when pruning, SQLite's write lock). After the writes it needed a median ${all('daemon', (r) => r.drainS).toFixed(2)} s more to reach lag 0`
        + ` (the daemon reads the WAL-index header every 10 ms, so a commit wakes it within about that)`
        + `; ${fmt(all('daemon', (r) => r.changelog))} changelog row(s) left at the end (the daemon prunes every 60 s, or once 500,000 applied changes wait: a shorter run leaves them).`] : ['- daemon variant skipped (--no-daemon).']),
    '', '<details><summary>every run</summary>', '',
    table(['run', 'shape', 'variant', ...OPS.map((o) => `${o}/s`), 'changelog rows'],
      SHAPES.flatMap((sh) => kinds.flatMap((k) => results[sh][k].map((r, i) => [i + 1, sh, k, ...OPS.map((o) => fmt(r.rate[o])), r.changelog ?? '-'])))),
    '', '</details>',
  ].join('\n');
  report('capture', md);
});
