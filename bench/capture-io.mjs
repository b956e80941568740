#!/usr/bin/env node
// What a single-row update pays for capture, and who could pay it instead:
// the application's autocommit UPDATEs by random id of a 100,000-row table
// (WAL, synchronous=NORMAL, SQLite's default wal_autocheckpoint), with
//
//   without          no triggers
//   triggers         the capture triggers as `init` installs them, no daemon
//   floor            a trigger that adds 1 to an integer in a one-row table: the least any
//                    trigger that records something in the file can cost
//   triggers+flush   triggers, and a helper process that fsyncs the -wal file every 5 ms
//                    (the WAL's pages reach the disk before the application's checkpoint
//                    asks for them)
//   triggers+ckpt    triggers, and a helper process that runs a PASSIVE checkpoint once 64
//                    frames wait (the -shm header read every 1 ms)
//   daemon           `sqlite2pg init` + `sqlite2pg run` streaming into Postgres meanwhile
//   daemon+ckpt      the daemon, and the checkpointing helper as well
//
//   node bench/capture-io.mjs [--ops N] [--base B] [--runs R] [--only a,b]
//
// Per variant: µs per update (wall), the application's CPU per update, the daemon's CPU
// (where there is no daemon, the helper's) and Postgres' CPU per update, and the most frames the WAL held
// (read from -shm every 64 updates). The variants run one after another, their order
// reversed every other run; medians of R runs, each run's ratio to its own "without".
// bench/capture.mjs is the benchmark as the issue specifies it (inserts, updates,
// deletes; two index shapes); this one takes updates, the statement capture costs most.
import { spawn } from 'node:child_process';
import { existsSync, fsyncSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Database, cliOk, cpuMs, dist, flags, fmt, freshDb, installFloor, installTriggers, machine, median, onCleanup, pgBackendCpuMs,
  report, run, sleep, startDaemon, status, table, waitFor, waitStreaming, workDir,
} from './lib/replication.mjs';

// The helpers run as this same script: `node bench/capture-io.mjs --helper flush|ckpt FILE`.
if (process.argv[2] === '--helper') {
  const [, , , kind, file] = process.argv;
  const { readWalFrames } = await dist('sqlite/wal-index.js');
  if (kind === 'flush') {
    // Only the -wal file: SQLite holds no POSIX lock on it, so opening it here drops none.
    let fd = null;
    setInterval(() => {
      if (fd === null && existsSync(`${file}-wal`)) fd = openSync(`${file}-wal`, 'r');
      if (fd !== null) fsyncSync(fd);
    }, 5);
  } else {
    const db = new Database(file);
    setInterval(() => {
      const h = readWalFrames(`${file}-shm`);
      if (h && h.frames - Math.min(h.backfilled, h.frames) >= 64) db.pragma('wal_checkpoint(PASSIVE)');
    }, 1);
  }
  process.on('SIGTERM', () => process.exit(0));
} else {
  const USAGE = 'node bench/capture-io.mjs [--ops N] [--base B] [--runs R] [--only a,b]';
  const ALL = ['without', 'triggers', 'floor', 'triggers+flush', 'triggers+ckpt', 'daemon', 'daemon+ckpt'];
  const opt = flags(USAGE, { ops: 30_000, base: 100_000, runs: 3, only: ALL.join(',') });
  const only = opt.only.split(',');
  const bad = only.filter((v) => !ALL.includes(v));
  if (bad.length || only[0] !== 'without') {
    console.error(`--only takes ${ALL.join(', ')}, starting with without\nusage: ${USAGE}`);
    process.exit(2);
  }
  const SELF = fileURLToPath(import.meta.url);

  function build(file) {
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec(`CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, email TEXT, qty INTEGER, price REAL, status TEXT);
             CREATE INDEX items_email ON items (email);`);
    const ins = db.prepare('INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)');
    db.transaction(() => { for (let i = 1; i <= opt.base; i++) ins.run(i, `name ${i}`, `user${i}@example.com`, i % 1000, i / 7, 'active'); })();
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
  }

  const helper = (kind, file) => spawn(process.execPath, [SELF, '--helper', kind, file], { stdio: 'inherit' });

  run(async () => {
    const head = await machine();
    const dir = workDir('capture-io');
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    const needsPg = only.some((v) => v.startsWith('daemon'));
    const pg = needsPg ? await freshDb('bench_capture_io') : null;
    const { readWalFrames } = await dist('sqlite/wal-index.js');
    const results = Object.fromEntries(only.map((v) => [v, []]));
    for (let r = 0; r < opt.runs; r++) {
      for (const v of r % 2 ? [...only].reverse() : only) {
        const file = join(dir, `${v.replace(/\W/g, '_')}-${r}.db`);
        build(file);
        let daemon = null;
        let help = null;
        if (v.startsWith('daemon')) {
          await cliOk(['init', '--sqlite', file, '--pg', pg, '--schema', `io_${v.replace(/\W/g, '_')}_${r}`]);
          daemon = startDaemon(file, pg, join(dir, `daemon-${r}.log`));
          const db = new Database(file);
          await waitStreaming(file, pg, daemon, () => db.prepare('UPDATE items SET qty = qty WHERE id = 1').run());
          db.close();
        } else if (v.startsWith('triggers')) {
          await installTriggers(file);
        } else if (v === 'floor') {
          installFloor(file, ['UPDATE']);
        }
        if (v.endsWith('+flush')) help = helper('flush', file);
        if (v.endsWith('+ckpt')) help = helper('ckpt', file);
        if (help) await sleep(500); // the helper has loaded and polls

        const db = new Database(file);
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        db.pragma('busy_timeout = 5000');
        const upd = db.prepare('UPDATE items SET qty = qty + 1, price = ?, status = ? WHERE id = ?');
        let seed = 12345 + r;
        const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
        const args = Array.from({ length: opt.ops }, () => [Math.round(rnd() * 1e6) / 100, 'shipped', 1 + Math.floor(rnd() * opt.base)]);
        const other = () => (daemon ? cpuMs(daemon.child.pid) : help ? cpuMs(help.pid) : 0);
        const o0 = other();
        const p0 = pg ? pgBackendCpuMs('bench_capture_io') : 0;
        let maxFrames = 0;
        const c0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < opt.ops; i++) {
          if ((i & 63) === 0) {
            const h = readWalFrames(`${file}-shm`);
            if (h && h.frames > maxFrames) maxFrames = h.frames;
          }
          upd.run(...args[i]);
        }
        const us = Number(process.hrtime.bigint() - t0) / 1000 / opt.ops;
        const c = process.cpuUsage(c0);
        const res = {
          us,
          appCpu: (c.user + c.system) / opt.ops,
          otherCpu: ((other() - o0) * 1000) / opt.ops,
          pgCpu: pg && daemon ? ((pgBackendCpuMs('bench_capture_io') - p0) * 1000) / opt.ops : 0,
          maxFrames,
        };
        db.close();
        if (help) help.kill('SIGTERM');
        if (daemon) {
          await waitFor('the daemon catching up', async () => (await status(file, pg)).lag_changes === 0, { abort: () => daemon.exited && 'the daemon exited' });
          const stop = await daemon.stop();
          if (stop.code !== 0) throw new Error(`sqlite2pg run exited ${stop.code} (signal ${stop.signal}) on SIGTERM`);
        }
        results[v].push(res);
        console.error(`run ${r + 1}/${opt.runs} ${v.padEnd(15)} ${res.us.toFixed(1)} µs/update; CPU: application ${res.appCpu.toFixed(1)} µs, daemon, else helper ${res.otherCpu.toFixed(1)} µs, Postgres ${res.pgCpu.toFixed(1)} µs; WAL up to ${fmt(res.maxFrames)} frames`);
        for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
      }
    }
    const rows = only.map((v) => {
      const rs = results[v];
      const ratio = median(rs.map((x, i) => results.without[i].us / x.us));
      const m = (k, d = 1) => median(rs.map((x) => x[k])).toFixed(d);
      return [v, m('us'), `${(100 * ratio).toFixed(1)} %`, m('appCpu'), m('otherCpu'), m('pgCpu'), fmt(median(rs.map((x) => x.maxFrames)))];
    });
    report('capture-io', [
      '# Capture cost of a single-row update, and who could pay it', '',
      ...head,
      `- workload: ${fmt(opt.ops)} autocommit \`UPDATE items SET qty = qty + 1, price = ?, status = ? WHERE id = ?\` by random id of ${fmt(opt.base)} rows (an index on email, not updated); WAL, synchronous=NORMAL, the default wal_autocheckpoint (1000 frames); one variant after another, order reversed every other run; medians of ${opt.runs} run(s)`, '',
      table(['variant', 'µs per update', 'rate ÷ without', 'application CPU (µs/update)', 'daemon CPU, else helper CPU (µs/update)', 'Postgres CPU (µs/update)', 'most frames in the WAL'], rows), '',
      'Rate ÷ without is the median of each run\'s ratio to its own "without".',
    ].join('\n'));
  });
}
