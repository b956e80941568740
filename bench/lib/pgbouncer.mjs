// A throwaway PgBouncer for the benchmarks, in front of one PostgreSQL server: the
// plain-JS counterpart of test/helpers/pgbouncer.ts (a bench script cannot import
// a .ts helper). On a free port of 127.0.0.1, transaction pooling by default.
//
//   const bouncer = await startPgBouncer({ target: 'postgresql://postgres@127.0.0.1:5432/postgres', poolSize: 8 });
//   // … connect to bouncer.url(database) …
//   await bouncer.stop();
//
// Clients reach any database of the target server by its name, as any user, without a
// password (auth_type = any: loopback and throwaway); PgBouncer logs in to the server as
// the target URL's user. PgBouncer refuses to run as root: as root it runs as `postgres`
// (which must exist: the Debian PostgreSQL package creates it). Spawned through
// `setpriv --pdeathsig` when available, and killed on this process's exit, so it never
// outlives the benchmark.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Client } = require('pg');

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null;

function binary() {
  if (existsSync('/usr/sbin/pgbouncer')) return '/usr/sbin/pgbouncer';
  const r = spawnSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' });
  return (r.status === 0 && r.stdout.trim()) || null;
}

/** Who runs it: this user, or as root `postgres`. */
function runAs() {
  if (process.getuid?.() !== 0) return {};
  const id = (flag) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  const u = id('-u'), g = id('-g');
  if (u.status !== 0 || g.status !== 0) throw new Error('PgBouncer does not run as root, and there is no user "postgres" to run it as');
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}

const quote = (v) => `'${String(v).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * Start PgBouncer in front of `target` (a postgres URL: host, port, user, password used).
 * Resolves { port, version, url(db), adminUrl, stop() }.
 */
export async function startPgBouncer({ target, poolSize = 8, poolMode = 'transaction', timeoutMs = 30_000 }) {
  const bin = binary();
  if (!bin) throw new Error('PgBouncer is not installed (apt-get install -y pgbouncer)');
  const version = /PgBouncer (\S+)/.exec(spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1] ?? 'unknown';
  const t = new URL(target);
  const user = decodeURIComponent(t.username || 'postgres');
  const ids = runAs();
  // A 0755 directory the server's user can enter (os.tmpdir() may be root's 0700).
  const dir = mkdtempSync(join(existsSync('/var/tmp') ? '/var/tmp' : '/tmp', `sqlite2pg-bench-pgbouncer-${process.pid}-`));
  chmodSync(dir, 0o755);
  const own = (p) => { if (ids.uid !== undefined) chownSync(p, ids.uid, ids.gid); };
  const ini = join(dir, 'pgbouncer.ini');
  const log = join(dir, 'pgbouncer.log');
  const server = [
    `host=${quote(t.hostname || '127.0.0.1')}`, `port=${t.port || '5432'}`, `user=${quote(user)}`,
    ...(t.password ? [`password=${quote(decodeURIComponent(t.password))}`] : []),
  ].join(' ');
  const port = await freePort();
  writeFileSync(ini, [
    '[databases]', `* = ${server}`, '',
    '[pgbouncer]', 'listen_addr = 127.0.0.1', `listen_port = ${port}`, 'unix_socket_dir =', 'auth_type = any',
    `admin_users = ${user}`, `pool_mode = ${poolMode}`, `default_pool_size = ${poolSize}`, 'min_pool_size = 0',
    'reserve_pool_size = 0', 'max_client_conn = 1000', 'server_login_retry = 1', 'ignore_startup_parameters = extra_float_digits', '',
  ].join('\n'), { mode: 0o600 });
  own(ini);
  const fd = openSync(log, 'a', 0o644);
  own(log);
  const [cmd, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'SIGTERM', '--', bin, ini]] : [bin, [ini]];
  const child = spawn(cmd, argv, { ...ids, cwd: '/', stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let exit = null;
  const exited = new Promise((res) => {
    child.once('error', (e) => { exit ??= e.message; res(); });
    child.once('exit', (code, signal) => { exit ??= code === null ? `signal ${signal}` : `exit status ${code}`; res(); });
  });
  const kill = () => { if (exit === null) child.kill('SIGTERM'); };
  process.on('exit', kill);
  const tail = () => { try { return readFileSync(log, 'utf8').trim().split('\n').slice(-10).join('\n'); } catch { return ''; } };
  const stop = async () => {
    process.off('exit', kill);
    if (exit === null) {
      child.kill('SIGTERM'); // immediate shutdown: clients are disconnected
      if ((await Promise.race([exited.then(() => 'done'), sleep(10_000, 'late')])) === 'late') { child.kill('SIGKILL'); await exited; }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const url = (db) => `postgresql://${encodeURIComponent(user)}@127.0.0.1:${port}/${db}`;
  const adminUrl = url('pgbouncer');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exit !== null) { const why = tail(); await stop(); throw new Error(`PgBouncer stopped while starting (${exit}):\n${why}`); }
    const c = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 2000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query('SHOW VERSION');
      return { port, version, poolSize, poolMode, url, adminUrl, stop };
    } catch (e) {
      if (Date.now() > deadline) { const why = tail(); await stop(); throw new Error(`PgBouncer did not answer on port ${port} within ${timeoutMs / 1000} s (${e.message}):\n${why}`); }
    } finally {
      await c.end().catch(() => undefined);
    }
    await sleep(50);
  }
}
