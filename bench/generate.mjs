#!/usr/bin/env node
// Generate a deterministic, realistic SQLite database (WAL mode) for the
// migrate benchmark.
//
//   node bench/generate.mjs --out bench/data/bench-s0.01.db --scale 0.01
//
// Scale 1 ≈ 600 MB: users 1M, orders 2M, events 2M rows (see lib/schema.mjs).
// The same --scale always produces byte-identical row data (seeded PRNG).
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SQLITE_DDL, SQLITE_INDEXES, rowsAt } from './lib/schema.mjs';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3');

// ---------------------------------------------------------------- PRNG ----
/** The seeded PRNG of every benchmark (deterministic data, same seed → same values). */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(0x5eed2025);
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1)); // inclusive
const pick = (arr) => arr[Math.floor(rand() * arr.length)];
const chance = (p) => rand() < p;

// ---------------------------------------------------------- vocabulary ----
const FIRST = ['Alice', 'Bob', 'Carol', 'Dave', 'Eve', 'Frank', 'Grace', 'Heidi', 'Ivan', 'Judy',
  'Mallory', 'Niaj', 'Olivia', 'Peggy', 'Rupert', 'Sybil', 'Trent', 'Victor', 'Walter', 'Zoë',
  'José', 'Chloé', 'Björn', 'Søren', 'Łukasz', 'Ana María', '李雷', '韩梅梅', 'Анна', 'محمد'];
const LAST = ['Smith', 'Jones', 'Taylor', 'Brown', 'Williams', 'Wilson', 'Johnson', 'Davies',
  'Müller', 'García', "O'Brien", 'van der Berg', 'Nguyễn', '山田', 'Иванов', 'Kowalski'];
const DOMAINS = ['example.com', 'mail.test', 'corp.example', 'inbox.example.org', 'acme.test'];
const STATUS = ['pending', 'paid', 'paid', 'paid', 'shipped', 'delivered', 'delivered', 'cancelled', 'refunded'];
const KINDS = ['page_view', 'click', 'login', 'logout', 'purchase', 'search', 'error', 'api_call'];
const WORDS = ['please', 'deliver', 'before', 'noon', 'leave', 'at', 'door', 'gift', 'wrap',
  'fragile', 'call', 'me', 'thanks', 'urgent', 'box', 'back', 'entrance', 'floor', '2nd', 'ring'];
// Characters that break naive CSV/COPY handling, and non-ASCII text.
const NASTY = ['\t', '\n', '\r\n', '\\', '\\N', '"', "'", ',', '""', 'NULL', 'é', 'ü', '中文',
  '🙂', '👍🏽', '\u00a0', 'C:\\temp\\new', 'a\\tb', ';', '|'];

const T0 = Date.UTC(2015, 0, 1) / 1000;
const T1 = Date.UTC(2025, 0, 1) / 1000;
const pad = (n) => String(n).padStart(2, '0');
function datetime(sec) {
  const d = new Date(sec * 1000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

function words(n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(pick(WORDS));
  return out.join(' ');
}

// An "arbitrary" double: mostly money-like values with full binary precision,
// some integral, some tiny/huge magnitudes, some NULL.
function double() {
  const r = rand();
  if (r < 0.05) return null;
  if (r < 0.15) return int(-1000, 100000); // integral value stored as REAL
  if (r < 0.25) return (rand() - 0.5) * 10 ** int(-300, 300);
  if (r < 0.30) return 0.1 * int(1, 9) + 0.2; // classic 0.30000000000000004-style
  return (rand() - 0.3) * 20000;
}

function avatar() {
  if (chance(0.3)) return null;
  const b = Buffer.allocUnsafe(int(16, 64));
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(rand() * 256);
  if (chance(0.2)) b[0] = 0; // leading NUL: a trap for C-string based tools
  return b;
}

function note() {
  const r = rand();
  if (r < 0.45) return null;
  if (r < 0.50) return '';
  let s = words(int(2, 12));
  if (chance(0.3)) s += pick(NASTY) + words(int(1, 4));
  if (chance(0.1)) s = pick(NASTY) + s + pick(NASTY);
  return s;
}

function amount() {
  // 2-decimal values; NUMERIC affinity stores 12.00 as INTEGER 12, 12.34 as REAL.
  const cents = chance(0.01) ? int(1, 9_999_999_999) : int(1, 99_999);
  return cents / 100;
}

function payload(uid) {
  const o = { user: uid, session: int(1, 1e9).toString(36), path: '/' + words(int(1, 3)).replace(/ /g, '/'),
    ip: `10.${int(0, 255)}.${int(0, 255)}.${int(1, 254)}` };
  if (chance(0.5)) o.tags = [pick(WORDS), pick(WORDS)];
  if (chance(0.3)) o.ok = chance(0.5);
  if (chance(0.1)) o.msg = words(int(2, 6)) + pick(NASTY);
  if (chance(0.08)) o.ua = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)';
  return JSON.stringify(o);
}

// ---------------------------------------------------------------- main ----
export function generate(out, scale) {
  const rows = rowsAt(scale);
  const tmp = out + '.tmp';
  for (const f of [tmp, tmp + '-wal', tmp + '-shm']) rmSync(f, { force: true });
  mkdirSync(dirname(out), { recursive: true });
  const started = performance.now();

  const db = new Database(tmp);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -200000'); // 200 MB
  db.exec(SQLITE_DDL);

  const BATCH = 50_000;
  const load = (table, sql, n, makeRow) => {
    const t = performance.now();
    const stmt = db.prepare(sql);
    const batch = db.transaction((from, to) => {
      for (let i = from; i <= to; i++) stmt.run(makeRow(i));
    });
    for (let from = 1; from <= n; from += BATCH) batch(from, Math.min(n, from + BATCH - 1));
    console.log(`  ${table.padEnd(7)} ${String(n).padStart(9)} rows  ${((performance.now() - t) / 1000).toFixed(1)} s`);
  };

  load('users', 'INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)', rows.users, (id) => {
    const first = pick(FIRST), last = pick(LAST);
    const local = `${first}.${last}`.toLowerCase().replace(/[^a-z]/g, '') || 'user';
    return [id, `${local}${id}@${pick(DOMAINS)}`, chance(0.03) ? null : `${first} ${last}`,
      datetime(int(T0, T1)), chance(0.8) ? 1 : 0, double(), avatar()];
  });

  load('orders', 'INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)', rows.orders, (id) =>
    [id, chance(0.01) ? null : int(1, rows.users), amount(), pick(STATUS), note(), datetime(int(T0, T1))]);

  let prev = null;
  load('events', 'INSERT INTO events VALUES (?, ?, ?, ?)', rows.events, () => {
    // ~2% exact duplicates of the previous row (the table has no key).
    if (prev && chance(0.02)) return prev;
    prev = [int(T0, T1), pick(KINDS), chance(0.05) ? null : payload(int(1, rows.users)),
      chance(0.1) ? null : double()];
    return prev;
  });

  const t = performance.now();
  db.exec(SQLITE_INDEXES);
  db.exec('ANALYZE');
  console.log(`  indexes + analyze   ${((performance.now() - t) / 1000).toFixed(1)} s`);
  db.pragma('wal_checkpoint(TRUNCATE)'); // keep the file self-contained, still in WAL mode
  db.close();
  for (const f of [out, out + '-wal', out + '-shm']) rmSync(f, { force: true });
  renameSync(tmp, out);

  const secs = (performance.now() - started) / 1000;
  const mb = statSync(out).size / 1e6;
  console.log(`generated ${out}: ${mb.toFixed(1)} MB, ` +
    `${Object.values(rows).reduce((a, b) => a + b)} rows in ${secs.toFixed(1)} s`);
  return { out, rows, mb, secs };
}

if (resolve(process.argv[1] ?? '') === resolve(new URL(import.meta.url).pathname)) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, scale: { type: 'string', default: '1' } } });
  const scale = Number(values.scale);
  if (!values.out || !(scale > 0)) {
    console.error('usage: node bench/generate.mjs --out FILE [--scale S]   (S > 0, 1 = ~600 MB)');
    process.exit(2);
  }
  if (existsSync(values.out)) console.log(`overwriting ${values.out}`);
  generate(values.out, scale);
}
