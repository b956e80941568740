#!/usr/bin/env node
// `sqlite2pg validate --full` on the benchmark database: wall time and rows/s
// of the real command, optionally side by side with another build (`--base`),
// runs alternating so that other load on the machine hits both alike; then
// where the time goes, in process: the plan, each table's SQLite side and
// Postgres side alone, and the whole comparison.
//
//   node bench/validate.mjs [--scale 1] [--runs 3] [--base DIR] [--reuse] [--keep] [--no-breakdown]
//
// DIR is another sqlite2pg tree with bin/ and a built dist/ (e.g. a `git
// worktree` of main with node_modules linked and `npx tsc -p .` run). The
// source is bench/data/bench-s<scale>.db (generated if missing), copied once
// to bench/data/validate-s<scale>.db and migrated (untimed) into the database
// bench_validate; `--reuse` keeps both from an earlier `--keep` run.
// Postgres: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres).
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { BENCH, BIN, ROOT, cliOk, fmt, machine, median, pgClient, pgUrl, report, table } from './lib/replication.mjs';

const USAGE = 'node bench/validate.mjs [--scale 1] [--runs 3] [--base DIR] [--reuse] [--keep] [--no-breakdown]';
let opt;
try {
  ({ values: opt } = parseArgs({
    options: {
      scale: { type: 'string', default: '1' },
      runs: { type: 'string', default: '3' },
      base: { type: 'string' },
      reuse: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      'no-breakdown': { type: 'boolean', default: false },
    },
  }));
} catch (e) {
  console.error(`${e.message}\nusage: ${USAGE}`);
  process.exit(2);
}
const scale = Number(opt.scale);
const runs = Number(opt.runs);
if (!(scale > 0) || !(runs >= 1)) {
  console.error(`usage: ${USAGE}`);
  process.exit(2);
}
const DB = 'bench_validate';
const url = pgUrl(DB);
const source = join(BENCH, 'data', `bench-s${scale}.db`);
const file = join(BENCH, 'data', `validate-s${scale}.db`);
const variants = [...(opt.base ? [{ name: 'before', root: resolve(opt.base) }] : []), { name: 'after', root: ROOT }];
for (const v of variants) {
  v.bin = v.root === ROOT ? BIN : join(v.root, 'bin', 'sqlite2pg.js');
  if (!existsSync(v.bin) || !existsSync(join(v.root, 'dist', 'validate', 'validate.js'))) {
    console.error(`${v.root}: no bin/sqlite2pg.js or no built dist/ (run npx tsc -p . there)`);
    process.exit(2);
  }
}

/** Run a command; resolves { code, stdout, stderr, wall } (wall in s). */
function run(cmd, args) {
  return new Promise((res) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => res({ code, stdout, stderr, wall: (performance.now() - t0) / 1000 }));
  });
}

// ------------------------------------------------------------ the source ----
if (!existsSync(source)) {
  console.log(`generating ${source} …`);
  const r = await run(process.execPath, [join(BENCH, 'generate.mjs'), '--out', source, '--scale', String(scale)]);
  if (r.code !== 0) throw new Error(`generate.mjs failed: ${r.stderr}`);
}
const admin = await pgClient();
const exists = (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB])).rowCount > 0;
if (!(opt.reuse && exists && existsSync(file))) {
  console.log(`copying ${source} and migrating it into ${DB} (untimed) …`);
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB}`);
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
  copyFileSync(source, file);
  await cliOk(['migrate', '--sqlite', file, '--pg', url, '--drop-existing', '--jobs', '2']);
} else console.log(`reusing ${file} and ${DB}`);
await admin.end();

const header = await machine();

// ---------------------------------------------------------------- the runs ----
const GNU_TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const results = [];
for (let r = 0; r < runs; r++) {
  const order = r % 2 === 0 ? variants : [...variants].reverse();
  for (const v of order) {
    const load = os.loadavg()[0];
    const args = [v.bin, 'validate', '--full', '--json', '--sqlite', file, '--pg', url];
    const out = GNU_TIME ? await run(GNU_TIME, ['-f', 'TIME %e %U %S %M', process.execPath, ...args]) : await run(process.execPath, args);
    if (out.code !== 0) throw new Error(`${v.name}: validate exited ${out.code}: ${out.stderr.slice(-2000)}`);
    const rep = JSON.parse(out.stdout);
    const t = /TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(out.stderr);
    const res = {
      variant: v.name,
      run: r + 1,
      load,
      wall: t ? Number(t[1]) : out.wall,
      cpu: t ? Number(t[2]) + Number(t[3]) : NaN,
      rssMb: t ? Number(t[4]) / 1024 : NaN,
      compare: rep.seconds,
      rows: rep.rows,
    };
    results.push(res);
    console.log(
      `${v.name} run ${res.run}: load ${res.load.toFixed(2)}, wall ${res.wall.toFixed(2)} s, comparison ${res.compare.toFixed(2)} s = ${fmt(res.rows / res.compare)} rows/s`,
    );
  }
}

// ------------------------------------------------------------ the breakdown ----
/** Time each step in process with a variant's own modules (its digest API: before or after the row hash). */
async function breakdown(v) {
  const mod = (p) => import(pathToFileURL(join(v.root, 'dist', p)).href);
  const { openSource } = await mod('sqlite/open.js');
  const { readSchema } = await mod('sqlite/schema.js');
  const { buildPlan } = await mod('plan/plan.js');
  const { CopyPool } = await mod('migrate/copy-pool.js');
  const { connectPg } = await mod('postgres/pg.js');
  const digest = await mod('validate/digest.js');
  const { validate } = await mod('validate/validate.js');
  const db = openSource(file);
  const c = await connectPg(url);
  try {
    const load = os.loadavg()[0];
    let t0 = performance.now();
    const schema = readSchema(db);
    const pool = new CopyPool({ sqlite: file, pg: url, chunkRows: 5000, fixText: false }, 2);
    const plan = buildPlan(db, schema, { schema: 'public', preserveCase: false }, await pool.census(schema.tables));
    await pool.close();
    const planS = (performance.now() - t0) / 1000;
    const hash = digest.rowHashFor ? await digest.rowHashFor(c) : null;
    const tables = [];
    for (const t of plan.tables) {
      t0 = performance.now();
      const p = hash ? await digest.pgDigest(c, plan, t, hash) : await digest.pgDigest(c, plan, t);
      const pgS = (performance.now() - t0) / 1000;
      // Its CPU: the same query without parallel workers (one backend: wall ≈ CPU on an idle core).
      await c.query('SET max_parallel_workers_per_gather = 0');
      t0 = performance.now();
      if (hash) await digest.pgDigest(c, plan, t, hash);
      else await digest.pgDigest(c, plan, t);
      const pgOneS = (performance.now() - t0) / 1000;
      await c.query('RESET max_parallel_workers_per_gather');
      const cpu0 = process.cpuUsage();
      t0 = performance.now();
      const s = hash ? await digest.sqliteDigest(db, t, hash) : await digest.sqliteDigest(db, t);
      const sqliteS = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      tables.push({ table: t.name, rows: s.rows, pgS, pgOneS, sqliteS, sqliteCpuS: (cpu.user + cpu.system) / 1e6, equal: digest.sameDigest(p, s) });
    }
    t0 = performance.now();
    const rep = await validate(db, c, plan, 'full');
    return { load, planS, hash: hash ?? 'md5 (60 bits)', tables, validateS: (performance.now() - t0) / 1000, ok: rep.ok };
  } finally {
    await c.end();
    db.close();
  }
}
const steps = [];
if (!opt['no-breakdown']) for (const v of variants) steps.push({ v, b: await breakdown(v) });

// ---------------------------------------------------------------- the report ----
const lines = [
  `# validate --full — scale ${scale}, ${new Date().toISOString().slice(0, 10)}`,
  '',
  ...header,
  `- source: ${file} (${fmt(results[0].rows)} rows), Postgres database ${DB} as \`sqlite2pg migrate\` left it`,
  `- command: \`node bin/sqlite2pg.js validate --full --json --sqlite … --pg …\`${opt.base ? `; before = ${opt.base}` : ''}; ${runs} run(s) each, alternating`,
  '',
  table(
    ['variant', 'run', 'load avg (1 min) before', 'wall', 'of which the comparison', 'rows/s of the comparison', 'CPU (user+sys) of the process', 'peak RSS'],
    results.map((r) => [r.variant, r.run, r.load.toFixed(2), `${r.wall.toFixed(2)} s`, `${r.compare.toFixed(2)} s`, fmt(r.rows / r.compare), `${r.cpu.toFixed(2)} s`, `${r.rssMb.toFixed(0)} MB`]),
  ),
  '',
  table(
    ['variant', 'median wall', 'median comparison', 'median rows/s'],
    variants.map((v) => {
      const mine = results.filter((r) => r.variant === v.name);
      return [v.name, `${median(mine.map((r) => r.wall)).toFixed(2)} s`, `${median(mine.map((r) => r.compare)).toFixed(2)} s`, `**${fmt(median(mine.map((r) => r.rows / r.compare)))}**`];
    }),
  ),
];
for (const { v, b } of steps) {
  const sum = (k) => b.tables.reduce((a, t) => a + t[k], 0);
  lines.push(
    '',
    `Where the time goes — ${v.name} (in process, load ${b.load.toFixed(2)}; row hash: ${b.hash}): plan ${b.planS.toFixed(2)} s (schema + census in 2 worker threads), then`,
    '',
    table(
      ['table', 'rows', 'Postgres side alone', 'same, one backend', 'SQLite side alone', 'its CPU', 'µs/row SQLite (CPU)', 'µs/row Postgres (one backend)'],
      [
        ...b.tables.map((t) => [
          t.table,
          fmt(t.rows),
          `${t.pgS.toFixed(2)} s`,
          `${t.pgOneS.toFixed(2)} s`,
          `${t.sqliteS.toFixed(2)} s`,
          `${t.sqliteCpuS.toFixed(2)} s`,
          ((t.sqliteCpuS / t.rows) * 1e6).toFixed(2),
          ((t.pgOneS / t.rows) * 1e6).toFixed(2),
        ]),
        ['all', fmt(sum('rows')), `${sum('pgS').toFixed(2)} s`, `${sum('pgOneS').toFixed(2)} s`, `${sum('sqliteS').toFixed(2)} s`, `${sum('sqliteCpuS').toFixed(2)} s`, '', ''],
        ['validate() (both sides together)', '', '', '', `**${b.validateS.toFixed(2)} s**`, '', '', ''],
      ],
    ),
  );
  if (!b.ok || b.tables.some((t) => !t.equal)) lines.push('', `**${v.name}: the digests differ — the database is not what migrate left**`);
}
report(`validate-s${scale}`, lines.join('\n'));

if (!opt.keep) {
  const c = await pgClient();
  await c.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await c.end();
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
}
