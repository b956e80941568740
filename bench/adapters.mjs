#!/usr/bin/env node
// Adapter overhead: the library's Database (SqliteAdapter, PostgresAdapter,
// MysqlAdapter from dist/) against the raw driver underneath, on a loop of simple
// statements, one awaited call per statement, on each backend:
//
//   node bench/adapters.mjs [--round-ms T=500] [--rounds R=10] [--rows B=10000]
//                           [--only sqlite,postgres,mysql] [--breakdown] [--profile]
//
// Statements: `SELECT id, name FROM t WHERE id = ?` (t: B rows, integer key, ids in a
// seeded random order) and `INSERT INTO ins (name, n) VALUES (?, ?)` (autocommit).
//   raw      better-sqlite3 prepared statement (`.all(id)`, `.run(name, n)`), the call
//            wrapped in an async function and awaited — the application-facing shape of
//            the adapter's call, so both sides pay the same await; pg `Pool.query(text,
//            values)` with $1/$2 (pool max 1); mysql2 `pool.execute` (connectionLimit 1).
//            Driver defaults otherwise (only journal_mode=WAL on SQLite, which the adapter
//            also sets).
//   adapter  `db.query(sql, [id])` / `db.execute(sql, [name, n])` with `?`, pool max 1 /
//            connectionLimit 1.
//   sync     (SQLite only, reference) the same prepared statement called synchronously,
//            no await: what an async interface itself costs.
// Each round runs n statements of one variant (n calibrated so that a raw round takes
// about T ms); the variants alternate in pairs of rounds, ABBA (raw adapter, adapter raw,
// …), R rounds each, after a warm-up, so drift and background load hit both alike.
// Reported: median ops/s and µs per statement (wall, and CPU of this process: the client
// side's own work, which other load on the machine disturbs less), and the adapter's
// slowdown (its time per statement over the raw driver's, − 1) as the median over the R
// round pairs with a distribution-free 95 % confidence interval of that median. Target:
// ≤ 5 % slower.
// SQLite runs the INSERT twice, the setting made on both connections: synchronous=NORMAL
// (no fsync at commit in WAL mode; what a connection opening a file already in WAL mode
// gets by default, better-sqlite3 being built with SQLITE_DEFAULT_WAL_SYNCHRONOUS=1 — only
// the connection that switches a file into WAL keeps FULL) and synchronous=FULL (an fsync
// of the WAL per commit).
//
// --breakdown: where the difference goes. For each backend a ladder of variants from the
// raw driver to the adapter, each step adding one thing the adapter does (result value
// conversion, parameter conversion, placeholder translation, the pool options, …), measured
// the same way (alternating rounds); reported as µs per statement and the step's increment.
// --profile: each adapter loop of PostgreSQL and MySQL once more for ~2 s under V8's sampling
// profiler (in process, node:inspector); self time per area and the top functions, in µs per
// statement. (Not SQLite: the profile puts the sub-µs JavaScript around the native statement
// call inside that call; --breakdown measures it.)
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Database as BetterSqlite3, dist, fmt, freshDb, machine, median, onCleanup, report, run, table, workDir } from './lib/replication.mjs';
import { driverVersions, freshMysqlDb, medianCI, mysql, pg, profile, uptime } from './lib/db.mjs';

const USAGE = 'node bench/adapters.mjs [--round-ms T=500] [--rounds R=10] [--rows B=10000] [--only sqlite,postgres,mysql] [--breakdown] [--profile]';
let args;
try {
  args = parseArgs({
    options: {
      'round-ms': { type: 'string', default: '500' }, rounds: { type: 'string', default: '10' }, rows: { type: 'string', default: '10000' },
      only: { type: 'string', default: 'sqlite,postgres,mysql' }, breakdown: { type: 'boolean', default: false }, profile: { type: 'boolean', default: false },
    },
  }).values;
} catch (e) { console.error(`${e.message}\nusage: ${USAGE}`); process.exit(2); }
const opt = {
  roundMs: Number(args['round-ms']), rounds: Number(args.rounds), rows: Number(args.rows),
  only: args.only.split(',').map((s) => s.trim()).filter(Boolean), breakdown: args.breakdown, profile: args.profile,
};
const BACKENDS = ['sqlite', 'postgres', 'mysql'];
if (!(opt.roundMs > 0 && Number.isInteger(opt.rounds) && opt.rounds >= 1 && Number.isInteger(opt.rows) && opt.rows >= 1) || opt.only.some((b) => !BACKENDS.includes(b))) {
  console.error(`bad flag\nusage: ${USAGE}`);
  process.exit(2);
}
const TARGET = 0.05;

const SELECT = 'SELECT id, name FROM t WHERE id = ?';
const INSERT = 'INSERT INTO ins (name, n) VALUES (?, ?)';
const PG_SELECT = 'SELECT id, name FROM t WHERE id = $1';
const PG_INSERT = 'INSERT INTO ins (name, n) VALUES ($1, $2)';

function rng(seed) {
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}
const r = rng(42);
const IDS = Array.from({ length: 65536 }, () => 1 + Math.floor(r() * opt.rows));
const NAMES = Array.from({ length: 4096 }, (_, i) => `name ${i} ${Math.floor(r() * 1e9).toString(36)}`);
const id = (i) => IDS[i & 65535];
const name = (i) => NAMES[i & 4095];

/** n statements of `f` from index `from`, each awaited (or just called, when `sync`): { secs, cpuUs }. */
async function loop(f, from, n, sync) {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  if (sync) for (let i = from; i < from + n; i++) f(i);
  else for (let i = from; i < from + n; i++) await f(i);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { secs, cpuUs: c.user + c.system };
}

/** The pool options MysqlAdapter sets (src/db/mysql-adapter.ts, typeCast aside), for the breakdown's intermediate steps. */
const MYSQL_ADAPTER_POOL = {
  maxPreparedStatements: 512, trace: false, supportBigNumbers: true, bigNumberStrings: true, decimalNumbers: false,
  dateStrings: ['DATE'], timezone: 'Z', jsonStrings: true, multipleStatements: false,
};

/**
 * The backends: `open()` builds the tables and resolves { version, ops, close }; `ops` a
 * list of { label, before?, variants: { raw, adapter, sync? }, ladder? } where a variant is
 * (i) => Promise | value and `ladder` the --breakdown steps [{ label, f, sync? }].
 */
const OPEN = {
  async sqlite() {
    const { SqliteAdapter } = await dist('index.js');
    const { sqliteParams, sqliteRow, integerValue } = await dist('db/values.js');
    const { prepare } = await dist('db/database.js');
    const dir = workDir('adapters');
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'adapters.db');
    const setup = new BetterSqlite3(file);
    setup.pragma('journal_mode = WAL');
    setup.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL); CREATE TABLE ins (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER NOT NULL)');
    const fill = setup.prepare('INSERT INTO t (id, name) VALUES (?, ?)');
    setup.transaction(() => { for (let i = 1; i <= opt.rows; i++) fill.run(i, name(i)); })();
    const version = setup.prepare('SELECT sqlite_version() AS v').get().v;
    setup.close();
    const raw = new BetterSqlite3(file);
    raw.pragma('journal_mode = WAL');
    const db = new SqliteAdapter({ file });
    const sel = raw.prepare(SELECT);
    const ins = raw.prepare(INSERT);
    // The breakdown's own statements, in the adapter's safe-integers mode.
    const sel64 = raw.prepare(SELECT).safeIntegers(true);
    const ins64 = raw.prepare(INSERT).safeIntegers(true);
    const rows = (rs) => { for (const x of rs) sqliteRow(x); return rs; };
    const result = (x) => ({ rowsAffected: Number(x.changes), insertId: integerValue(BigInt(x.lastInsertRowid)) });
    const syncMode = (mode) => async () => { raw.pragma(`synchronous = ${mode}`); await db.execute(`PRAGMA synchronous = ${mode}`); };
    const select = { raw: async (i) => sel.all(id(i)), adapter: (i) => db.query(SELECT, [id(i)]), sync: (i) => sel.all(id(i)) };
    const insert = { raw: async (i) => ins.run(name(i), i), adapter: (i) => db.execute(INSERT, [name(i), i]), sync: (i) => ins.run(name(i), i) };
    return {
      version: `SQLite ${version}`,
      ops: [
        {
          label: 'SELECT by key', before: syncMode('FULL'), variants: select,
          ladder: [
            { label: 'raw: synchronous call, no await', f: select.sync, sync: true },
            { label: 'raw: the call in an async function, awaited (the baseline)', f: select.raw },
            { label: '+ safe integers: results as bigint, then number/bigint (sqliteRow)', f: async (i) => rows(sel64.all(id(i))) },
            { label: '+ parameter conversion (sqliteParams)', f: async (i) => rows(sel64.all(...sqliteParams([id(i)]))) },
            { label: '+ placeholder translation, cached, and count check (prepare)', f: async (i) => { const p = [id(i)]; prepare(SELECT, p, 'sqlite'); return rows(sel64.all(...sqliteParams(p))); } },
            { label: 'adapter: db.query (+ gate, statement cache, closures)', f: select.adapter },
          ],
        },
        {
          label: 'INSERT, synchronous=NORMAL (the default here)', before: syncMode('NORMAL'), variants: insert,
          ladder: [
            { label: 'raw: synchronous call, no await', f: insert.sync, sync: true },
            { label: 'raw: the call in an async function, awaited (the baseline)', f: insert.raw },
            { label: '+ safe integers and the result ({ rowsAffected, insertId })', f: async (i) => result(ins64.run(name(i), i)) },
            { label: '+ parameter conversion (sqliteParams)', f: async (i) => result(ins64.run(...sqliteParams([name(i), i]))) },
            { label: '+ placeholder translation, cached, and count check (prepare)', f: async (i) => { const p = [name(i), i]; prepare(INSERT, p, 'sqlite'); return result(ins64.run(...sqliteParams(p))); } },
            { label: 'adapter: db.execute (+ gate, statement cache, closures)', f: insert.adapter },
          ],
        },
        { label: 'INSERT, synchronous=FULL (an fsync per commit)', before: syncMode('FULL'), variants: insert },
      ],
      close: async () => { await db.close(); raw.close(); },
    };
  },

  async postgres() {
    const { PostgresAdapter } = await dist('index.js');
    const { pgParams, pgTypes } = await dist('db/values.js');
    const { prepare } = await dist('db/database.js');
    const url = await freshDb('bench_adapters');
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    // integer keys: the raw driver returns int8 as text, the adapter as number; int4 is a number on both.
    await c.query('CREATE TABLE t (id integer PRIMARY KEY, name text NOT NULL); CREATE TABLE ins (id bigserial PRIMARY KEY, name text NOT NULL, n integer NOT NULL)');
    await c.query('INSERT INTO t (id, name) SELECT i, $2 || i FROM generate_series(1, $1::int) i', [opt.rows, 'name ']);
    await c.query('ANALYZE t');
    const version = (await c.query('SHOW server_version')).rows[0].server_version;
    await c.end();
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    const db = new PostgresAdapter({ primary: url, pool: { max: 1 } });
    const pools = [pool];
    const ladder = (rawText, sql, params) => {
      const typed = new pg.Pool({ connectionString: url, max: 1, types: pgTypes });
      pools.push(typed);
      return [
        { label: 'raw: pool.query(text, values)', f: (i) => pool.query(rawText, params(i)) },
        { label: '+ a config object: pool.query({ text, values }), as the adapter calls it', f: (i) => pool.query({ text: rawText, values: params(i) }) },
        { label: "+ the adapter's type parsers on the pool (types: pgTypes)", f: (i) => typed.query({ text: rawText, values: params(i) }) },
        { label: '+ placeholder translation, cached (prepare), and pgParams', f: (i) => { const p = params(i); return typed.query({ text: prepare(sql, p, 'postgres').text, values: pgParams(p) }); } },
        { label: `adapter: db.${sql === SELECT ? 'query' : 'execute'}`, f: (i) => (sql === SELECT ? db.query(sql, params(i)) : db.execute(sql, params(i))) },
      ];
    };
    return {
      version: `PostgreSQL ${version}`,
      ops: [
        { label: 'SELECT by key', variants: { raw: (i) => pool.query(PG_SELECT, [id(i)]), adapter: (i) => db.query(SELECT, [id(i)]) }, ladder: ladder(PG_SELECT, SELECT, (i) => [id(i)]) },
        {
          label: 'INSERT (synchronous_commit=on)', variants: { raw: (i) => pool.query(PG_INSERT, [name(i), i]), adapter: (i) => db.execute(INSERT, [name(i), i]) },
          ladder: ladder(PG_INSERT, INSERT, (i) => [name(i), i]),
        },
      ],
      close: async () => { await db.close(); for (const p of pools) await p.end(); },
    };
  },

  async mysql() {
    const { MysqlAdapter } = await dist('index.js');
    const { mysqlParams, mysqlTypeCast } = await dist('db/values.js');
    const { prepare } = await dist('db/database.js');
    const { url, version } = await freshMysqlDb('bench_adapters');
    const c = await mysql.createConnection({ uri: url });
    await c.query('CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL) ENGINE=InnoDB');
    await c.query('CREATE TABLE ins (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, n INT NOT NULL) ENGINE=InnoDB');
    for (let from = 1; from <= opt.rows; from += 1000) {
      const rs = [];
      for (let i = from; i < Math.min(opt.rows + 1, from + 1000); i++) rs.push([i, name(i)]);
      await c.query('INSERT INTO t (id, name) VALUES ?', [rs]);
    }
    const flush = (await c.query('SELECT @@innodb_flush_log_at_trx_commit AS f'))[0][0].f;
    await c.end();
    const pool = mysql.createPool({ uri: url, connectionLimit: 1 });
    const db = new MysqlAdapter({ url, pool: { connectionLimit: 1 } });
    const pools = [pool];
    const ladder = (sql, params, what) => {
      const noTrace = mysql.createPool({ uri: url, connectionLimit: 1, trace: false });
      const withOpts = mysql.createPool({ uri: url, connectionLimit: 1, ...MYSQL_ADAPTER_POOL });
      const withCast = mysql.createPool({ uri: url, connectionLimit: 1, ...MYSQL_ADAPTER_POOL, typeCast: mysqlTypeCast });
      pools.push(noTrace, withOpts, withCast);
      return [
        { label: 'raw: pool.execute (driver defaults)', f: (i) => pool.execute(sql, params(i)) },
        { label: '+ trace: false (no stack captured by mysql2 at each call; the adapter sets it)', f: (i) => noTrace.execute(sql, params(i)) },
        { label: "+ the adapter's value options (supportBigNumbers, bigNumberStrings, dateStrings, timezone, …)", f: (i) => withOpts.execute(sql, params(i)) },
        { label: '+ the typeCast (mysqlTypeCast: BIGINT as number/bigint, TINYINT(1) as boolean)', f: (i) => withCast.execute(sql, params(i)) },
        { label: '+ typed parameters (mysqlParams: integers as LONGLONG) and prepare()', f: (i) => { const p = params(i); prepare(sql, p, 'mysql'); return withCast.execute(sql, mysqlParams(p)); } },
        { label: `adapter: db.${what}`, f: (i) => db[what](sql, params(i)) },
      ];
    };
    return {
      version: `MariaDB/MySQL ${version}`,
      ops: [
        { label: 'SELECT by key', variants: { raw: (i) => pool.execute(SELECT, [id(i)]), adapter: (i) => db.query(SELECT, [id(i)]) }, ladder: ladder(SELECT, (i) => [id(i)], 'query') },
        {
          label: `INSERT (innodb_flush_log_at_trx_commit=${flush})`, variants: { raw: (i) => pool.execute(INSERT, [name(i), i]), adapter: (i) => db.execute(INSERT, [name(i), i]) },
          ladder: ladder(INSERT, (i) => [name(i), i], 'execute'),
        },
      ],
      close: async () => { await db.close(); for (const p of pools) await p.end(); },
    };
  },
};

/**
 * Alternating rounds of the variants `vs` ({ name: { f, sync } }), n statements each:
 * forward order in even rounds, backward in odd ones. { secs: { name: [] }, cpuUs: { name: [] } }.
 */
async function rounds(vs, n, start) {
  const names = Object.keys(vs);
  const secs = Object.fromEntries(names.map((v) => [v, []]));
  const cpuUs = Object.fromEntries(names.map((v) => [v, []]));
  for (let k = 0; k < opt.rounds; k++) {
    for (const v of k % 2 ? [...names].reverse() : names) {
      const x = await loop(vs[v].f, start + k * n, n, vs[v].sync);
      secs[v].push(x.secs);
      cpuUs[v].push(x.cpuUs);
    }
  }
  return { secs, cpuUs };
}

/** Calibrate n on the raw driver (which also warms it up), warm the others; then the rounds. */
async function measureOp(op) {
  await op.before?.();
  let i = 0, done = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < Math.max(300, opt.roundMs / 2)) { await loop(op.variants.raw, i, 50, false); i += 50; done += 50; }
  const n = Math.max(50, Math.round((done / (performance.now() - t0)) * opt.roundMs));
  const vs = Object.fromEntries(Object.entries(op.variants).map(([v, f]) => [v, { f, sync: v === 'sync' }]));
  for (const v of Object.keys(vs)) if (v !== 'raw') await loop(vs[v].f, i, Math.ceil(n / 2), vs[v].sync);
  i += Math.ceil(n / 2);
  return { n, ...(await rounds(vs, n, i)) };
}

async function breakdown(op, n) {
  await op.before?.();
  const vs = Object.fromEntries(op.ladder.map((s, j) => [j, s]));
  for (const s of op.ladder) await loop(s.f, 0, Math.ceil(n / 2), s.sync);
  const m = await rounds(vs, n, n);
  let prev = null;
  return op.ladder.map((s, j) => {
    const wall = median(m.secs[j].map((x) => (x * 1e6) / n));
    const cpu = median(m.cpuUs[j].map((x) => x / n));
    const d = (a, b) => (b === null ? '' : `${a - b >= 0 ? '+' : ''}${(a - b).toFixed(2)}`);
    const row = [s.label, wall.toFixed(2), d(wall, prev?.wall ?? null), cpu.toFixed(2), d(cpu, prev?.cpu ?? null)];
    prev = { wall, cpu };
    return row;
  });
}

/** The adapter's slowdown per round pair: its time per statement over raw's, − 1. */
const slowdowns = (m) => m.secs.adapter.map((s, k) => s / m.secs.raw[k] - 1);
const pctText = (x) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)} %`;

async function profileOp(op, n) {
  await op.before?.();
  const count = Math.max(200, Math.round((n / opt.roundMs) * 2000)); // ~2 s of statements
  const p = await profile(() => loop(op.variants.adapter, 0, count, false));
  return { ...p, count };
}

function profileMarkdown(backend, op, p) {
  const per = (x) => (x / p.count).toFixed(2);
  const areas = Object.entries(p.byArea).filter(([, t]) => t / p.count >= 0.05).sort((a, b) => b[1] - a[1]);
  const top = [...p.byFunction].filter(([f]) => f !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 12);
  return [
    `#### V8 profile: ${backend}, ${op.label}, adapter (${fmt(p.count)} statements, sampled every 50 µs; self time, µs per statement)`, '',
    table(['area', 'µs/stmt', '% of wall'], [...areas.map(([a, t]) => [a, per(t), `${((100 * t) / p.totalUs).toFixed(1)} %`]), ['**wall**', per(p.totalUs), '100 %']]), '',
    table(['top functions (not idle)', 'µs/stmt', '% of wall'], top.map(([f, t]) => [`\`${f}\``, per(t), `${((100 * t) / p.totalUs).toFixed(1)} %`])), '',
  ].join('\n');
}

run(async () => {
  const before = uptime();
  const head = await machine();
  console.error(`uptime before: ${before}`);
  const rows = [], details = [], ladders = [], profiles = [], versions = [];
  for (const backend of opt.only) {
    let b;
    try { b = await OPEN[backend](); } catch (e) {
      rows.push([backend, `not measured: ${e.message.split('\n')[0]}`, '', '', '', '', '', '', '', '', '', '']);
      console.error(`${backend}: ${e.message}`);
      continue;
    }
    versions.push(b.version);
    try {
      for (const op of b.ops) {
        const m = await measureOp(op);
        const rate = (v) => median(m.secs[v].map((s) => m.n / s));
        const wallUs = (v) => (1e6 / rate(v)).toFixed(1);
        const cpuUs = (v) => median(m.cpuUs[v].map((x) => x / m.n)).toFixed(1);
        const ci = medianCI(slowdowns(m));
        const verdict = ci.median <= TARGET ? (ci.hi <= TARGET ? '✓' : '✓ (CI crosses 5 %)') : ci.lo > TARGET ? '✗' : '✗ (CI crosses 5 %)';
        // The adapter's extra client-side work as a share of the raw statement's wall time: what it adds on a quiet machine.
        const cpuShare = (cpuUs('adapter') - cpuUs('raw')) / (1e6 / rate('raw'));
        rows.push([backend, op.label, fmt(rate('raw')), fmt(rate('adapter')), wallUs('raw'), wallUs('adapter'), cpuUs('raw'), cpuUs('adapter'),
          `**${pctText(ci.median)}**`, `${pctText(ci.lo)} … ${pctText(ci.hi)}`, pctText(cpuShare), verdict]);
        if (m.secs.sync) rows.push([backend, `${op.label}: sync call, no await (reference)`, fmt(rate('sync')), '', wallUs('sync'), '', cpuUs('sync'), '', '', '', '', '']);
        for (const v of Object.keys(m.secs)) {
          const rates = m.secs[v].map((s) => m.n / s);
          details.push([backend, op.label, v, fmt(m.n), fmt(Math.min(...rates)), fmt(median(rates)), fmt(Math.max(...rates)), rates.map((x) => fmt(x)).join(' ')]);
        }
        console.error(`${backend} ${op.label}: n=${m.n} raw ${fmt(rate('raw'))}/s adapter ${fmt(rate('adapter'))}/s, slower by ${pctText(ci.median)} [${pctText(ci.lo)}, ${pctText(ci.hi)}]; cpu µs/stmt ${cpuUs('raw')} → ${cpuUs('adapter')}`);
        if (opt.breakdown && op.ladder) {
          const lr = await breakdown(op, m.n);
          ladders.push(`#### ${backend}, ${op.label}\n\n${table(['step (cumulative)', 'wall µs/stmt', 'Δ wall', 'CPU µs/stmt', 'Δ CPU'], lr)}\n`);
          console.error(lr.map((x) => `  ${x.join(' | ')}`).join('\n'));
        }
        // SQLite: the profiler puts the sub-µs JavaScript around the native call inside it; the breakdown measures it.
        if (opt.profile && backend !== 'sqlite') profiles.push(profileMarkdown(backend, op, await profileOp(op, m.n)));
      }
    } finally { await b.close(); }
  }
  const after = uptime();
  console.error(`uptime after: ${after}`);
  const md = [
    '# Adapter overhead against the raw driver', '',
    ...head, `- ${versions.join('; ')}; ${driverVersions()}`,
    `- uptime before: \`${before}\``, `- uptime after: \`${after}\``,
    `- \`node ${process.argv.slice(1).map((a) => a.replace(/^.*\/bench\//, 'bench/')).join(' ')}\`: rounds of ~${opt.roundMs} ms, ${opt.rounds} per variant, alternating (ABBA); t has ${fmt(opt.rows)} rows`, '',
    table(['backend', 'statement', 'raw ops/s', 'adapter ops/s', 'raw µs/stmt', 'adapter µs/stmt', 'raw CPU µs/stmt', 'adapter CPU µs/stmt',
      'adapter slower by (median of pairs)', '95 % CI of the median', 'added client CPU / raw wall', 'target ≤ 5 %'], rows), '',
    'Ops/s and µs are medians over the rounds (µs/stmt: wall time; CPU: this process, user + system). The slowdown is the median over the',
    'round pairs of (adapter time / raw time − 1); its interval is distribution-free (order statistics of the pairs); the target column',
    'judges that median (✓/✗) and says when the interval crosses 5 %. "Added client CPU / raw wall": the adapter\'s extra CPU per',
    'statement in this process over the raw statement\'s wall time — the same question asked of a steadier measure (the SQL sent is the',
    'same, so the server\'s work is too). Raw SQLite is the prepared statement wrapped in an async function and awaited.', '',
    '<details><summary>every round (ops/s)</summary>', '',
    table(['backend', 'statement', 'variant', 'statements/round', 'min', 'median', 'max', 'rounds in order'], details), '', '</details>', '',
    ...(ladders.length ? ['### Breakdown: from the raw driver to the adapter, one step at a time', '',
      'Each step adds one thing the adapter does to the one above it; medians over alternating rounds, µs per statement.', '', ...ladders] : []),
    ...profiles,
  ].join('\n');
  report('adapters', md);
});
