#!/usr/bin/env node
// Capture cost: the application's single-row write rate (one statement per
// transaction, autocommit, WAL + synchronous=NORMAL) on a table without
// sqlite2pg's capture triggers vs with them, on the same machine in the same run.
//
//   node bench/capture.mjs [--ops N] [--runs R] [--base B] [--no-daemon]
//
// Each run builds, per variant, a fresh database of B rows and times N INSERTs,
// then N UPDATEs by id (random existing rows), then N DELETEs by id:
//   without   no triggers
//   triggers  triggers installed with installCapture()/readSchema() (dist/), no
//             daemon: the changelog grows by one row per write (3N by the end)
//   daemon    `sqlite2pg init` + `sqlite2pg run` streaming into Postgres while the
//             application writes: the daemon reads, applies and prunes the
//             changelog, competing for the CPU and SQLite's write lock
// The variants' order rotates from run to run; medians over R runs are reported.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  Database, cliOk, dist, sleep, flags, fmt, freshDb, machine, median, onCleanup, report, run,
  startDaemon, status, table, waitFor, waitStreaming, workDir,
} from './lib/replication.mjs';

const USAGE = 'node bench/capture.mjs [--ops N] [--runs R] [--base B] [--no-daemon]';
const opt = flags(USAGE, { ops: 50_000, runs: 3, base: 100_000 }, ['no-daemon']);
const OPS = ['insert', 'update', 'delete'];
const TARGET = 0.75;

// A seeded PRNG, so every variant sees the same keys and values.
function rng(seed) {
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}
const NAMES = ['Ada', 'Grace', 'Linus', 'Zoë', 'Edsger', 'Barbara', 'Ken', 'Margaret', 'Dennis', 'Frances'];
const row = (r, i) => [`${NAMES[i % NAMES.length]} ${Math.floor(r() * 1e6)}`, `user${i}@example.com`, Math.floor(r() * 1000), Math.round(r() * 1e6) / 100, new Date(1.7e12 + i * 1000).toISOString().replace('T', ' ').slice(0, 19), r() < 0.5 ? 'active' : 'pending'];

const DDL = `CREATE TABLE items (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, qty INTEGER NOT NULL,
  price REAL, created_at TEXT NOT NULL, status TEXT);
CREATE INDEX items_email ON items (email);`;

function build(file) {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(DDL);
  const ins = db.prepare('INSERT INTO items (id, name, email, qty, price, created_at, status) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const r = rng(1);
  db.transaction(() => { for (let i = 1; i <= opt.base; i++) ins.run(i, ...row(r, i)); })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

/** The application: N autocommit INSERTs, UPDATEs and DELETEs; ops/s of each. */
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
  const updIds = Array.from({ length: opt.ops }, () => 1 + Math.floor(r() * opt.base));
  const ids = [];
  const rate = {};
  const time = (fn) => { const t0 = process.hrtime.bigint(); fn(); return opt.ops / (Number(process.hrtime.bigint() - t0) / 1e9); };
  rate.insert = time(() => { for (const v of rows) ids.push(ins.run(...v).lastInsertRowid); });
  rate.update = time(() => { for (const id of updIds) upd.run(Math.round(r() * 1e6) / 100, 'shipped', id); });
  for (let i = ids.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [ids[i], ids[j]] = [ids[j], ids[i]]; }
  rate.delete = time(() => { for (const id of ids) del.run(id); });
  const log = db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name = '_sqlite2pg_changes'").get().n
    ? db.prepare('SELECT count(*) AS n FROM _sqlite2pg_changes').get().n : null;
  db.close();
  return { rate, changelog: log };
}

async function variant(kind, dir, i, pg) {
  const file = join(dir, `${kind}-${i}.db`);
  build(file);
  let daemon = null;
  if (kind === 'triggers') {
    const [{ installCapture }, { readSchema }] = await Promise.all([dist('source/capture.js'), dist('source/schema.js')]);
    const db = new Database(file);
    installCapture(db, readSchema(db).tables);
    db.close();
  } else if (kind === 'daemon') {
    await cliOk(['init', '--sqlite', file, '--pg', pg, '--schema', `cap_${i}`]);
    daemon = startDaemon(file, pg, join(dir, `daemon-${i}.log`));
    const db = new Database(file);
    await waitStreaming(file, pg, daemon, () => db.prepare('UPDATE items SET qty = qty WHERE id = 1').run());
    db.close();
  }
  const res = workload(file, 1000 + i);
  if (daemon) {
    // Not part of the timing: how long the daemon needs to drain what the workload left.
    const t0 = performance.now();
    await waitFor('daemon catching up', async () => (await status(file, pg)).lag_changes === 0, { abort: () => daemon.exited && 'the daemon exited' });
    res.drainS = (performance.now() - t0) / 1000;
    await sleep(1500); // the daemon prunes at most once a second
    const db = new Database(file, { readonly: true });
    res.changelog = db.prepare('SELECT count(*) AS n FROM _sqlite2pg_changes').get().n;
    db.close();
    const stop = await daemon.stop();
    if (stop.code !== 0) throw new Error(`sqlite2pg run exited ${stop.code} (signal ${stop.signal}) on SIGTERM`);
  }
  return res;
}

run(async () => {
  const head = await machine();
  const dir = workDir('capture');
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const kinds = opt['no-daemon'] ? ['without', 'triggers'] : ['without', 'triggers', 'daemon'];
  const pg = opt['no-daemon'] ? null : await freshDb('bench_capture');
  const results = Object.fromEntries(kinds.map((k) => [k, []]));
  for (let i = 0; i < opt.runs; i++) {
    const order = kinds.map((_, j) => kinds[(i + j) % kinds.length]);
    for (const k of order) {
      const r = await variant(k, dir, i, pg);
      results[k].push(r);
      console.error(`run ${i + 1}/${opt.runs} ${k.padEnd(8)} ${OPS.map((o) => `${o} ${fmt(r.rate[o])}/s`).join(', ')}; changelog rows left ${r.changelog ?? '-'}${r.drainS !== undefined ? `; drained ${r.drainS.toFixed(2)} s after` : ''}`);
    }
  }
  const med = (k, o) => median(results[k].map((r) => r.rate[o]));
  const rows = OPS.map((o) => {
    const base = med('without', o);
    const cells = [o, fmt(base)];
    for (const k of kinds.slice(1)) cells.push(fmt(med(k, o)), `${((100 * med(k, o)) / base).toFixed(1)} %${med(k, o) / base >= TARGET ? '' : ' ✗'}`);
    return cells;
  });
  const head2 = ['statement', 'without triggers (ops/s)', 'with triggers (ops/s)', 'ratio'];
  if (kinds.includes('daemon')) head2.push('with triggers + daemon running (ops/s)', 'ratio');
  const md = [
    `# Capture cost: application write rate with vs without capture triggers`, '',
    ...head, `- workload: table \`items\` (INTEGER PRIMARY KEY, 5 text/int/real columns, one secondary index), ${fmt(opt.base)} rows to start;`,
    `  per variant ${fmt(opt.ops)} INSERTs, then ${fmt(opt.ops)} UPDATEs by id, then ${fmt(opt.ops)} DELETEs by id; one statement per transaction (autocommit),`,
    `  journal_mode=WAL, synchronous=NORMAL, one better-sqlite3 connection; fresh database per variant; medians of ${opt.runs} run(s), variant order rotated`, '',
    table(head2, rows), '',
    `Target: with triggers ≥ ${TARGET * 100} % of the rate without (✗ = missed).`, '',
    `- "with triggers": capture installed (installCapture + readSchema from dist/), **no daemon**: the changelog is never pruned and grows by one row per write`
      + ` (${fmt(median(results.triggers.map((r) => r.changelog)))} rows left after each run).`,
    ...(kinds.includes('daemon') ? [
      `- "+ daemon running": \`sqlite2pg init\` + \`sqlite2pg run\` streaming into Postgres during the writes, on the same machine (it competes for the CPU and,`
        + ` when pruning, SQLite's write lock). After the writes it needed a median ${median(results.daemon.map((r) => r.drainS)).toFixed(2)} s more to reach lag 0`
        + `; ${fmt(median(results.daemon.map((r) => r.changelog)))} changelog row(s) left after pruning.`] : ['- daemon variant skipped (--no-daemon).']),
    '', '<details><summary>every run</summary>', '',
    table(['run', 'variant', ...OPS.map((o) => `${o}/s`), 'changelog rows'], kinds.flatMap((k) => results[k].map((r, i) => [i + 1, k, ...OPS.map((o) => fmt(r.rate[o])), r.changelog ?? '-']))),
    '', '</details>',
  ].join('\n');
  report('capture', md);
});
