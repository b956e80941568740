#!/usr/bin/env node
// Side-by-side `migrate` benchmark: the same SQLite file is loaded into a fresh
// Postgres database by each tool, and wall time, rows/s, MB/s, peak RSS and
// the correctness of the result (row counts + sampled values) are reported.
//
//   node bench/migrate.mjs --scale 0.01 [--keep] [--only sqlite2pg,sqlite2pg-run,pgloader,pipe,copy]
//                          [--pipe-mode parallel|sequential] [--timeout-min 120] [--rounds N]
//
// --rounds N runs the whole list N times, one tool after the other in each
// round, and reports every run, each round's ratios and their medians: on a
// machine whose speed drifts, tools run minutes apart are compared within
// a round, and the median says what holds.
//
// Before each tool the harness runs `sync` and a Postgres CHECKPOINT (not
// timed): the file copy it made for the tool, and the previous tool's load,
// are on disk, so their writeback does not run inside the next timed run.
//
// Postgres: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres); trust auth or PGPASSWORD.
// SQLITE2PG_BIN overrides the sqlite2pg entry point (default bin/sqlite2pg.js).
import { createRequire } from 'node:module';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EXPORT_SQL, PG_DDL, PG_POST, PG_POST_FINAL, TABLES } from './lib/schema.mjs';
import { measure as measureNow } from './lib/measure.mjs';
import { verify } from './lib/verify.mjs';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3');
const { Client } = require('pg');

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH, '..');
const ALL_TOOLS = ['sqlite2pg', 'sqlite2pg-run', 'pgloader', 'pgloader-cast', 'pipe', 'copy'];
// pgloader-cast: pgloader told to keep REAL as double precision (its default, float4, loses data).
const PGLOADER_CAST = 'type real to float8 using float-to-string';

const { values: opt } = parseArgs({
  options: {
    scale: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
    only: { type: 'string', default: ALL_TOOLS.join(',') },
    'pipe-mode': { type: 'string', default: 'parallel' },
    'timeout-min': { type: 'string', default: '120' },
    rounds: { type: 'string', default: '1' },
  },
});
const rounds = Number(opt.rounds);
const scale = Number(opt.scale);
const tools = opt.only.split(',').map((s) => s.trim()).filter(Boolean);
const pipeMode = opt['pipe-mode'];
if (!(scale > 0) || tools.some((t) => !ALL_TOOLS.includes(t)) || !['parallel', 'sequential'].includes(pipeMode) || !(Number.isInteger(rounds) && rounds >= 1)) {
  console.error(`usage: node bench/migrate.mjs --scale S [--keep] [--only ${ALL_TOOLS.join(',')}] [--pipe-mode parallel|sequential] [--rounds N]`);
  process.exit(2);
}

const PG = { host: process.env.PGHOST || '127.0.0.1', port: Number(process.env.PGPORT || 5432), user: process.env.PGUSER || 'postgres' };
const pgUrl = (db) => `postgresql://${encodeURIComponent(PG.user)}@${PG.host}:${PG.port}/${db}`;
const client = async (database) => { const c = new Client({ ...PG, database }); await c.connect(); return c; };
const timeoutMs = Number(opt['timeout-min']) * 60_000;

const stamp = new Date().toISOString().replace(/:/g, '').replace(/\..*/, '');
const OUT = join(BENCH, 'out');
const LOGS = join(OUT, 'logs', stamp);
mkdirSync(LOGS, { recursive: true });
const sh = (cmd, args) => { try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim(); } catch { return null; } };
const firstError = (file) => {
  const text = (() => { try { return readFileSync(file, 'utf8'); } catch { return ''; } })();
  return text.split('\n').find((l) => /error|fatal|cannot/i.test(l))?.trim() ?? tail(file, 3);
};
const tail = (file, n = 6) => { try { return readFileSync(file, 'utf8').trim().split('\n').slice(-n).join('\n'); } catch { return ''; } };

// ------------------------------------------------------------ source db ----
const dbFile = join(BENCH, 'data', `bench-s${scale}.db`);
if (!existsSync(dbFile)) {
  console.log(`generating ${dbFile} …`);
  const r = spawnSync(process.execPath, [join(BENCH, 'generate.mjs'), '--out', dbFile, '--scale', String(scale)], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(1);
} else console.log(`reusing ${dbFile}`);
const sqlite = new Database(dbFile, { readonly: true });
const srcCounts = Object.fromEntries(TABLES.map((t) => [t, sqlite.prepare(`SELECT count(*) AS n FROM ${t}`).get().n]));
const totalRows = Object.values(srcCounts).reduce((a, b) => a + b, 0);
const fileMb = statSync(dbFile).size / 1e6;

/**
 * Every tool starts from the same quiet state: the file copies the harness
 * made are on disk and Postgres has checkpointed, so neither the page
 * cache's writeback of a 600 MB copy nor a checkpoint the previous tool's
 * load left due runs inside the next tool's timed run.
 */
async function measure(...args) {
  execFileSync('sync');
  const c = await client('postgres');
  try { await c.query('CHECKPOINT'); } finally { await c.end(); }
  return measureNow(...args);
}

async function recreate(db) {
  const c = await client('postgres');
  try {
    await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${db}`);
  } finally { await c.end(); }
}
async function dropDb(db) {
  const c = await client('postgres');
  try { await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`); } finally { await c.end(); }
}

// ---------------------------------------------------------------- tools ----
// Each returns { db, code, secs, peakKb, byComm, log, note }.
const RUN = {
  async sqlite2pg() {
    const db = 'bench_sqlite2pg', log = join(LOGS, 'sqlite2pg.log');
    await recreate(db);
    const bin = process.env.SQLITE2PG_BIN || join(ROOT, 'bin', 'sqlite2pg.js');
    // sqlite2pg may install capture triggers in its source: give it a private copy (not timed).
    const copy = dbFile.replace(/\.db$/, '.sqlite2pg.db');
    for (const f of [copy, copy + '-wal', copy + '-shm']) rmSync(f, { force: true });
    copyFileSync(dbFile, copy);
    const r = await measure(process.execPath, [bin, 'migrate', '--sqlite', copy, '--pg', pgUrl(db), '--drop-existing', '--jobs', '2'],
      { cwd: ROOT, logFile: log, timeoutMs });
    if (!opt.keep) for (const f of [copy, copy + '-wal', copy + '-shm']) rmSync(f, { force: true });
    return { db, log, ...r, note: existsSync(bin) ? `--jobs 2 (on a byte-identical copy of the file); ${migrateSteps(log)}` : `${bin} not found` };
  },

  // The live path: `init`, then the daemon from its start to phase streaming
  // (snapshot copied, keys built, changelog caught up); timed to the moment
  // the state row says streaming, then the daemon is stopped.
  async 'sqlite2pg-run'() {
    const db = 'bench_sqlite2pg_run', log = join(LOGS, 'sqlite2pg-run.log'), dir = join(LOGS, 'sqlite2pg-run');
    mkdirSync(dir, { recursive: true });
    await recreate(db);
    const bin = process.env.SQLITE2PG_BIN || join(ROOT, 'bin', 'sqlite2pg.js');
    const copy = dbFile.replace(/\.db$/, '.sqlite2pg-run.db');
    for (const f of [copy, copy + '-wal', copy + '-shm']) rmSync(f, { force: true });
    copyFileSync(dbFile, copy);
    const script = `set -euo pipefail
URL='${pgUrl(db)}'; DB='${copy}'; RUNLOG='${join(dir, 'daemon.log')}'
mark() { echo "@@ $1 $(date +%s.%N)"; }
mark start
"${process.execPath}" "${bin}" init --sqlite "$DB" --pg "$URL"
mark initialised
"${process.execPath}" "${bin}" run --sqlite "$DB" --pg "$URL" --no-fallback >"$RUNLOG" 2>&1 & pid=$!
# The daemon logs "phase streaming" once the state row says so. Followed with
# tail -f (inotify, no polling; it ends when the daemon does), not by a psql
# every 50 ms: 20 client processes and server backends a second took CPU from
# the daemon on the same two cores.
grep -q -m1 '"msg":"phase streaming"' < <(tail -n +1 -f --pid=$pid "$RUNLOG") || { wait $pid; cat "$RUNLOG"; exit 1; }
mark streaming
kill -TERM $pid; wait $pid || true
cat "$RUNLOG"
`;
    writeFileSync(join(dir, 'run.sh'), script);
    // The harness's own processes (the shell, tail, grep, cat) are not counted in its memory.
    const r = await measure('bash', [join(dir, 'run.sh')], { cwd: ROOT, logFile: log, timeoutMs, skipComm: ['bash', 'sh', 'time', 'tail', 'grep', 'cat'] });
    if (!opt.keep) for (const f of [copy, copy + '-wal', copy + '-shm']) rmSync(f, { force: true });
    const m = Object.fromEntries([...readFileSync(log, 'utf8').matchAll(/^@@ (\w+) ([\d.]+)$/gm)].map((x) => [x[1], Number(x[2])]));
    // Wall time: from init's start to phase streaming (the daemon's shutdown is not part of it).
    if (m.streaming) r.secs = m.streaming - m.start;
    const split = m.streaming ? `init ${(m.initialised - m.start).toFixed(1)} s + run to streaming ${(m.streaming - m.initialised).toFixed(1)} s` : 'never reached streaming';
    return { db, log, ...r, note: `init, then run --no-fallback until phase streaming; ${split}` };
  },

  async pgloader(cast = false) {
    const db = cast ? 'bench_pgloader_cast' : 'bench_pgloader', log = join(LOGS, `${db}.log`);
    const bin = sh('which', ['pgloader']);
    if (!bin) return { db, log, code: null, secs: 0, peakKb: 0, note: 'pgloader not installed' };
    await recreate(db);
    const args = ['--root-dir', join(LOGS, `${db}-root`), ...(cast ? ['--cast', PGLOADER_CAST] : []), `sqlite://${dbFile}`, pgUrl(db)];
    const r = await measure(bin, args, { cwd: ROOT, logFile: log, timeoutMs });
    const errors = (readFileSync(log, 'utf8').match(/\bERROR\b/g) ?? []).length;
    return { db, log, ...r, note: `${cast ? `--cast '${PGLOADER_CAST}'` : 'defaults'}; ${errors} ERROR line(s) in log` };
  },
  'pgloader-cast': () => RUN.pgloader(true),

  // sqlite3 -csv | psql \copy per table, then the same keys/indexes as the source.
  async pipe() {
    const db = 'bench_pipe', log = join(LOGS, 'pipe.log'), dir = join(LOGS, 'pipe');
    mkdirSync(dir, { recursive: true });
    await recreate(db);
    const url = pgUrl(db);
    writeFileSync(join(dir, 'ddl.sql'), PG_DDL);
    for (const t of TABLES) {
      writeFileSync(join(dir, `export-${t}.sql`), EXPORT_SQL[t].replace(/\s+/g, ' ') + ';\n');
      writeFileSync(join(dir, `post-${t}.sql`), PG_POST[t].join(';\n') + ';\n');
    }
    writeFileSync(join(dir, 'post-final.sql'), PG_POST_FINAL.join(';\n') + ';\n');
    const psql = `psql "$URL" -X -q -v ON_ERROR_STOP=1`;
    const each = (fn) => (pipeMode === 'parallel'
      ? TABLES.map((t) => `${fn(t)} & p_${t}=$!`).join('\n') + '\n' + TABLES.map((t) => `wait $p_${t}`).join('\n')
      : TABLES.map(fn).join('\n'));
    const script = `set -euo pipefail
URL='${url}'; DB='${dbFile}'; DIR='${dir}'
mark() { echo "@@ $1 $(date +%s.%N)"; }
# Three readers open the file at once: the first may be recovering its WAL
# index, and sqlite3 without a busy timeout then fails "database is locked".
mark start
${psql} -f "$DIR/ddl.sql"
${each((t) => `sqlite3 -readonly -bail -cmd ".timeout 10000" -csv "$DB" < "$DIR/export-${t}.sql" | ${psql} -c "\\copy ${t} FROM STDIN csv"`)}
mark loaded
${each((t) => `${psql} -f "$DIR/post-${t}.sql"`)}
${psql} -f "$DIR/post-final.sql"
mark done
`;
    writeFileSync(join(dir, 'pipe.sh'), script);
    const r = await measure('bash', [join(dir, 'pipe.sh')], { cwd: ROOT, logFile: log, timeoutMs });
    const m = Object.fromEntries([...readFileSync(log, 'utf8').matchAll(/^@@ (\w+) ([\d.]+)$/gm)].map((x) => [x[1], Number(x[2])]));
    const split = m.done ? `load ${(m.loaded - m.start).toFixed(1)} s + keys ${(m.done - m.loaded).toFixed(1)} s` : 'incomplete';
    const mem = Object.entries(r.byComm ?? {}).filter(([c]) => c !== 'bash').map(([c, kb]) => `${c} ${(kb / 1024).toFixed(0)}`).join(', ');
    return { db, log, ...r, note: `${pipeMode} (3 tables); ${split}; per-process max MB: ${mem}` };
  },

  // Postgres' own ingest limit: server-side COPY from pre-exported CSV files.
  // Only the COPY statements are timed (no export, no keys); no client RSS.
  async copy() {
    const db = 'bench_copy', log = join(LOGS, 'copy.log');
    const dir = join(os.tmpdir(), `sqlite2pg-bench-csv-${scale}`);
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755);
    for (const t of TABLES) {
      const csv = join(dir, `${t}.csv`);
      const r = spawnSync('bash', ['-c', 'set -o pipefail; sqlite3 -readonly -bail -csv "$1" "$2" > "$3.part" && mv "$3.part" "$3"', '_', dbFile, EXPORT_SQL[t], csv]);
      if (r.status !== 0) return { db, log, code: r.status, secs: 0, peakKb: 0, note: `CSV export failed: ${r.stderr}` };
      chmodSync(csv, 0o644);
    }
    await recreate(db);
    const ddl = await client(db);
    try { await ddl.query(PG_DDL); } finally { await ddl.end(); }
    const copyOne = async (t) => {
      const c = await client(db);
      try { await c.query(`COPY ${t} FROM '${join(dir, `${t}.csv`)}' (FORMAT csv)`); } finally { await c.end(); }
    };
    const t0 = performance.now();
    let code = 0, note = `${pipeMode}; COPY only, no keys${opt.keep ? `; CSVs kept in ${dir}` : ''}`;
    try {
      if (pipeMode === 'parallel') await Promise.all(TABLES.map(copyOne));
      else for (const t of TABLES) await copyOne(t);
    } catch (e) { code = 1; note = `COPY failed: ${e.message}`; writeFileSync(log, String(e.stack)); }
    const secs = (performance.now() - t0) / 1000;
    if (!opt.keep) rmSync(dir, { recursive: true, force: true });
    return { db, log, code, secs, peakKb: null, note };
  },
};

/** The seconds of migrate's steps, from its log (the last run in it: rounds append): schema and census, copy, keys with validation. */
function migrateSteps(log) {
  let at = {};
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const j = JSON.parse(line);
      if (j.step === 1) at = {};
      if (j.step && at[j.step] === undefined) at[j.step] = j.time;
    } catch { /* not a log line */ }
  }
  if (!at[1] || !at[4] || !at[5] || !at[6]) return 'steps not found in its log';
  const s = (a, b) => ((b - a) / 1000).toFixed(1);
  return `steps: schema + census ${s(at[1], at[4])} s, copy ${s(at[4], at[5])} s, keys + validation ${s(at[5], at[6])} s`;
}

// ---------------------------------------------------------------- run -----
const results = [];
for (let round = 1; round <= rounds; round++) for (const name of tools) {
  console.log(`\n== ${name}${rounds > 1 ? ` (round ${round} of ${rounds})` : ''}`);
  let r;
  try { r = await RUN[name](); } catch (e) { r = { code: null, secs: 0, peakKb: 0, note: `harness error: ${e.message}` }; }
  r.name = name;
  r.round = round;
  if (r.code === 0) {
    const c = await client(r.db);
    try {
      r.check = await verify(c, sqlite, srcCounts);
      if (r.check.extraTables?.length) r.note += `; extra tables created: ${r.check.extraTables.join(', ')}`;
    } catch (e) { r.note += `; verify failed: ${e.message}`; } finally { await c.end(); }
  } else if (r.log) {
    console.log(tail(r.log));
  }
  if (!opt.keep && r.db) await dropDb(r.db).catch(() => {});
  console.log(`   exit ${r.code ?? r.error ?? r.signal}, ${r.secs.toFixed(2)} s` +
    (r.check ? `, rows ${JSON.stringify(r.check.counts)}, sample mismatches ${r.check.mismatches}/${r.check.sampled}` : ''));
  results.push(r);
}

// ------------------------------------------------------------- report -----
const fmt = (n, d = 0) => (n == null || !isFinite(n) ? '–' : n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
const ran = (r) => r && r.code === 0 && r.secs > 0;
const ok = (r) => r.code === 0 && r.check?.rowsOk && r.check.mismatches === 0;
function result(r) {
  if (r.code !== 0) return `**FAILED** (exit ${r.code ?? r.error ?? r.signal})`;
  if (!r.check) return 'exit 0, not verified';
  const lost = TABLES.filter((t) => r.check.counts[t] !== srcCounts[t])
    .map((t) => `${t} ${fmt(r.check.counts[t])}/${fmt(srcCounts[t])}`);
  const parts = [];
  if (lost.length) parts.push(`**ROW COUNT MISMATCH**: ${lost.join(', ')}`);
  if (r.check.mismatches) parts.push(`**${r.check.mismatches}/${r.check.sampled} sampled rows differ**`);
  return parts.length ? `exit 0 but ${parts.join('; ')}` : `ok (${r.check.sampled} sampled rows identical)`;
}

const cpu = (readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m) ?? [])[1] ?? os.arch();
let pgVersion = '?';
try { const c = await client('postgres'); pgVersion = (await c.query('SHOW server_version')).rows[0].server_version; await c.end(); } catch { /* */ }
const label = { sqlite2pg: 'sqlite2pg', 'sqlite2pg-run': 'sqlite2pg init + run to streaming', pgloader: 'pgloader', 'pgloader-cast': 'pgloader, REAL cast to float8', pipe: 'raw pipe (sqlite3 -csv \\| psql \\copy)', copy: 'pg server-side COPY (limit)' };

const lines = [];
lines.push(`# migrate benchmark — ${new Date().toISOString().replace('T', ' ').slice(0, 16)} UTC`, '');
lines.push(`Source: \`${dbFile.replace(ROOT + '/', '')}\` (scale ${scale}), ${fmt(fileMb, 1)} MB, ${fmt(totalRows)} rows ` +
  `(${TABLES.map((t) => `${t} ${fmt(srcCounts[t])}`).join(', ')}). Target: fresh database per tool on ${PG.host}:${PG.port}.`, '');
lines.push('| Tool | Result | Wall (s) | Rows/s | MB/s | Peak RSS (MB) | Indexes / FKs | Notes |');
lines.push('|---|---|---:|---:|---:|---:|---|---|');
for (const r of results) {
  lines.push(`| ${label[r.name]}${rounds > 1 ? ` (round ${r.round})` : ''} | ${result(r)} | ${fmt(r.secs, 2)} | ${ran(r) ? fmt(totalRows / r.secs) : '–'} | ${ran(r) ? fmt(fileMb / r.secs, 1) : '–'} | ` +
    `${r.peakKb ? fmt(r.peakKb / 1024, 0) : '–'} | ${r.check ? `${r.check.indexes} / ${r.check.fks}` : '–'} | ${r.note ?? ''} |`);
}
lines.push('', 'Rows/s = total source rows / wall seconds; MB/s = SQLite file size / wall seconds (both computed even when rows were lost).');
lines.push('Peak RSS = the tool\'s whole client process tree (sum over processes except shells, sampled every 50 ms from /proc, ' +
  'floored by the largest per-process VmHWM / GNU time %M); Postgres server backends are not included.', '');
lines.push('Ratios:', '');
const median = (xs) => { const v = xs.filter((x) => x != null).sort((a, b) => a - b); return v.length ? (v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : null; };
const ratioRows = [];
for (let round = 1; round <= rounds; round++) {
  const by = Object.fromEntries(results.filter((r) => r.round === round).map((r) => [r.name, r]));
  const s2p = by.sqlite2pg;
  const ratio = (a, b) => (ran(a) && ran(b) ? a.secs / b.secs : null);
  const row = { round, pipe: ratio(s2p, by.pipe), run: by['sqlite2pg-run'] ? ratio(by['sqlite2pg-run'], s2p) : undefined };
  for (const p of ['pgloader', 'pgloader-cast']) if (by[p]) row[p] = ran(s2p) && ran(by[p]) && ok(by[p]) ? by[p].secs / s2p.secs : null;
  ratioRows.push(row);
}
const show = (x) => (x == null ? 'n/a' : fmt(x, 2) + '×');
const each = (k) => (rounds > 1 ? ` (rounds: ${ratioRows.map((r) => show(r[k])).join(', ')}; median)` : '');
const med = (k) => show(median(ratioRows.map((r) => r[k])));
lines.push(`- sqlite2pg wall time / raw pipe wall time: ${med('pipe')}${each('pipe')}`);
if (tools.includes('sqlite2pg-run')) lines.push(`- sqlite2pg init + run to streaming / sqlite2pg migrate: ${med('run')}${each('run')}`);
for (const p of ['pgloader', 'pgloader-cast']) {
  if (!tools.includes(p)) continue;
  lines.push(`- sqlite2pg rows/s / ${label[p]} rows/s: ${med(p)}${each(p)} (n/a where pgloader did not produce a correct copy)`);
}
const ex = results.filter((r) => r.check?.examples.length);
if (ex.length) {
  lines.push('', 'Sampled value differences (source → Postgres):', '');
  for (const r of ex) for (const e of r.check.examples) lines.push(`- ${r.name}: ${e}`);
}
const typed = results.filter((r) => r.round === 1 && r.check && Object.keys(r.check.columns).length);
if (typed.length) {
  lines.push('', 'Column types created in Postgres (* = NOT NULL):', '');
  for (const r of typed) lines.push(`- ${r.name}: ` + Object.entries(r.check.columns).map(([t, cs]) => `${t}(${cs.join(', ')})`).join(' '));
}
const failed = results.filter((r) => r.code !== 0 && r.log);
if (failed.length) {
  lines.push('', 'Failures (last log lines):', '');
  for (const r of failed) lines.push(`- ${r.name}: \`${firstError(r.log).replace(/\s*\n\s*/g, ' ⏎ ').replace(/`/g, "'").slice(0, 400)}\``);
}
lines.push('', `Machine: ${os.availableParallelism()} CPUs (nproc ${sh('nproc', []) ?? '?'}), ${cpu}, ` +
  `${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM, ${os.type()} ${os.release()}; PostgreSQL ${pgVersion}; ` +
  `node ${process.version}; sqlite3 ${(sh('sqlite3', ['--version']) ?? '?').split(' ')[0]}; ` +
  `${(sh('pgloader', ['--version']) ?? 'pgloader ?').split('\n')[0]}. Logs: \`${LOGS.replace(ROOT + '/', '')}\`.`);

const md = lines.join('\n') + '\n';
const outFile = join(OUT, `migrate-${stamp.slice(0, 10)}-s${scale}.md`);
writeFileSync(outFile, md);
console.log('\n' + md + `\nwritten to ${outFile.replace(ROOT + '/', '')}`);
sqlite.close();
