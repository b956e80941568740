#!/usr/bin/env node
// The application of bench/cutover.mjs: single-row writes to a SQLite file at a
// steady rate, each in autocommit, until SIGTERM. One JSON line per write on stdout:
//
//   {"i":7,"k":"u","id":123,"t0":…,"t1":…,"s":"ok"}          acknowledged (committed)
//   {"i":8,"k":"c","id":5,"t0":…,"t1":…,"s":"frozen"}         refused by the freeze
//   {"i":9,"k":"i","t0":…,"t1":…,"s":"error","e":"message"}   any other failure
//
// Kinds, round robin:  i%3 == 0  "i": INSERT INTO orders (customer, amount, note) VALUES (…, 'w<i>')
//                      i%3 == 1  "u": UPDATE orders SET amount = …, note = 'u<i>' WHERE id = <random 1..rows>
//                      i%3 == 2  "c": UPDATE counters SET n = n + 1 WHERE id = <random 1..16>
// t0/t1: process.hrtime (CLOCK_MONOTONIC, ms): the same clock as the benchmark process.
// Pacing: write k is due at start + k/rate; a stalled writer catches up in a burst.
//
//   node bench/lib/cutover-writer.mjs FILE RATE ROWS [SEED]
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3');

const FROZEN = 'sqlite2pg: database frozen';
const [file, rateArg, rowsArg, seedArg] = process.argv.slice(2);
const rate = Number(rateArg), rows = Number(rowsArg);
if (!file || !(rate > 0) || !(rows >= 1)) {
  console.error('usage: node bench/lib/cutover-writer.mjs FILE RATE ROWS [SEED]');
  process.exit(2);
}
const now = () => Number(process.hrtime.bigint()) / 1e6;

// mulberry32: deterministic per seed.
let seed = Number(seedArg ?? 1) >>> 0;
const rnd = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const db = new Database(file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = 5000');
const ins = db.prepare('INSERT INTO orders (customer, amount, note) VALUES (?, ?, ?)');
const updOrder = db.prepare('UPDATE orders SET amount = ?, note = ? WHERE id = ?');
const updCounter = db.prepare('UPDATE counters SET n = n + 1 WHERE id = ?');

let stop = false;
process.on('SIGTERM', () => { stop = true; });
process.on('SIGINT', () => { stop = true; });

let i = 0;
const start = now();
function write() {
  const k = ['i', 'u', 'c'][i % 3];
  const amount = Math.round(rnd() * 1e6) / 100;
  const rec = { i, k };
  let run;
  if (k === 'i') run = () => ins.run(1 + Math.floor(rnd() * 5000), amount, `w${i}`);
  else if (k === 'u') { rec.id = 1 + Math.floor(rnd() * rows); run = () => updOrder.run(amount, `u${i}`, rec.id); }
  else { rec.id = 1 + Math.floor(rnd() * 16); run = () => updCounter.run(rec.id); }
  rec.t0 = now();
  try {
    const r = run();
    rec.t1 = now();
    if (r.changes !== 1) { rec.s = 'error'; rec.e = `${r.changes} rows changed`; }
    else {
      rec.s = 'ok';
      if (k === 'i') rec.id = Number(r.lastInsertRowid);
    }
  } catch (e) {
    rec.t1 = now();
    const msg = String(e?.message ?? e);
    rec.s = msg.includes(FROZEN) ? 'frozen' : 'error';
    if (rec.s === 'error') rec.e = msg;
  }
  i++;
  return JSON.stringify(rec);
}

function tick() {
  const due = Math.floor(((now() - start) * rate) / 1000) + 1;
  const out = [];
  while (i < due && !stop) out.push(write());
  if (out.length) process.stdout.write(out.join('\n') + '\n');
  if (stop) {
    db.close();
    process.stdout.write('', () => process.exit(0));
    return;
  }
  const wait = start + (i * 1000) / rate - now();
  setTimeout(tick, Math.max(0, Math.min(wait, 5)));
}
tick();
