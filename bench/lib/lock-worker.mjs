// One contender of bench/locks.mjs, a process of its own (forked with IPC): opens its own
// adapter (pool of one connection), takes the lock once to connect and warm up, says
// `ready`, and on `go` calls DatabaseManager.distributedLock in a loop until the deadline,
// timing each call (acquire + critical section + release, waits included). Sends back the
// latencies (ms) of the calls that ended before the deadline and the count of all calls
// that completed (the counter check: the one that crossed the deadline committed too).
//
// Config (JSON in argv[2]): { backend: sqlite|postgres|mysql, target: file or URL, lock, work: empty|update }
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const cfg = JSON.parse(process.argv[2]);
const ROOT = new URL('../../', import.meta.url).pathname;
const { SqliteAdapter, PostgresAdapter, MysqlAdapter, DatabaseManager } = await import(pathToFileURL(join(ROOT, 'dist', 'index.js')).href);

const db = cfg.backend === 'sqlite' ? new SqliteAdapter({ file: cfg.target })
  : cfg.backend === 'postgres' ? new PostgresAdapter({ primary: cfg.target, pool: { max: 1 } })
  : new MysqlAdapter({ url: cfg.target, pool: { connectionLimit: 1 } });
const manager = new DatabaseManager(db);
const section = cfg.work === 'update'
  ? (tx) => tx.execute('UPDATE counter SET n = n + 1 WHERE id = ?', [1])
  : async () => undefined;
// Not counted: the connection and the first lock.
await manager.distributedLock(cfg.lock, async () => undefined);

process.on('message', async (m) => {
  if (m.type !== 'go') return;
  await sleep(Math.max(0, m.startAt - Date.now()));
  const lat = new Float64Array(1 << 20);
  let n = 0, completed = 0, error = null;
  try {
    for (;;) {
      const t0 = performance.now();
      await manager.distributedLock(cfg.lock, section);
      const ms = performance.now() - t0;
      completed++;
      if (Date.now() >= m.endAt) break;
      if (n < lat.length) lat[n++] = ms;
    }
  } catch (e) {
    error = `${e.name}: ${e.message}`;
  }
  await db.close();
  process.send({ type: 'done', latencies: lat.slice(0, n), completed, error }, () => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready' });
