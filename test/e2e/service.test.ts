/**
 * The daemon as a system service, with real processes: what systemd hears
 * on a real AF_UNIX datagram notify socket (READY, STATUS, WATCHDOG,
 * RELOADING, STOPPING), what /healthz and /metrics say during a snapshot,
 * a stall, failing applies and streaming, with a standby beside the active
 * daemon, and SIGHUP applying a changed config file.
 *
 * Pauses are made with Postgres locks the test holds, never with timing:
 * a row lock on the snapshot's progress stops the copy between chunks, a
 * CHECK constraint makes applies fail until it is dropped.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { Daemon, runCli, waitFor } from "../helpers/daemon.js";
import { NotifySocket } from "../helpers/notify-socket.js";
import { freePort, startEmbeddedPostgres } from "../../src/postgres/embedded.js";

const live: { daemons: Daemon[]; sockets: NotifySocket[] } = { daemons: [], sockets: [] };
afterEach(async () => {
  for (const d of live.daemons.splice(0)) d.kill("SIGKILL");
  for (const s of live.sockets.splice(0)) s.close();
  await sleep(50);
  await cleanup();
});

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, body: await r.text() };
}

/** The value of one sample in Prometheus text (`name{labels} value`), or null when absent. */
function sample(text: string, name: string, labels = ""): number | null {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    if (line.slice(0, sp) === `${name}${labels}`) return Number(line.slice(sp + 1));
  }
  return null;
}

async function socket(): Promise<NotifySocket> {
  const s = new NotifySocket();
  live.sockets.push(s);
  await s.listening();
  return s;
}

/** A URL with a password in it: the one given, or one with a password trust authentication ignores. */
function withPassword(url: string): { url: string; password: string } {
  const u = new URL(url);
  if (!u.password) u.password = "not-a-real-secret-9f3e";
  return { url: u.toString(), password: decodeURIComponent(u.password) };
}

async function setup(rows: number) {
  const dir = tempDir();
  const path = sqliteFrom(dir, "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);");
  const db = new Database(path);
  db.transaction(() => {
    const ins = db.prepare("INSERT INTO items (v) VALUES (?)");
    for (let i = 0; i < rows; i++) ins.run(i % 50);
  })();
  db.close();
  const { url, client } = await freshDatabase();
  const init = await runCli(["init", "--sqlite", path, "--pg", url]);
  expect(init.code, init.stderr).toBe(0);
  return { dir, path, url, client };
}

describe("under systemd", () => {
  it("notifies readiness, status, watchdog and stopping; health and metrics follow the snapshot, a stall, failures, streaming and a standby", async () => {
    const { dir, path, url, client } = await setup(20000);
    const secret = withPassword(url);
    const config = join(dir, "sqlite2pg.json");
    // Single-row chunks: the snapshot is slow enough to be watched; a reload speeds it up later.
    writeFileSync(config, JSON.stringify({ chunkRows: 1, stallTimeout: 2 }));
    const ns = await socket();
    const port = await freePort();
    const d = new Daemon("active", ["--sqlite", path, "--pg", secret.url, "--config", config, "--listen", String(port), "--poll-ms", "50"], {
      NOTIFY_SOCKET: ns.path,
      WATCHDOG_USEC: "400000",
    });
    live.daemons.push(d);
    try {
      const ready = await ns.waitFor((m) => m.READY === "1", 30_000, "READY=1");
      expect(ready.STATUS).toBeDefined();

      // The snapshot copies, and says so.
      await waitFor(
        "rows copied",
        60_000,
        async () => (sample((await get(port, "/metrics")).body, "sqlite2pg_snapshot_rows_copied", '{table="items"}') ?? 0) > 0,
      );
      // Hold the progress row: the next chunk cannot commit, the snapshot stops between chunks.
      await client.query("BEGIN");
      await client.query("SELECT 1 FROM sqlite2pg.snapshot_progress WHERE table_name = 'items' FOR UPDATE");
      const metrics = (await get(port, "/metrics")).body;
      expect(sample(metrics, "sqlite2pg_phase", '{phase="snapshot"}')).toBe(1);
      expect(sample(metrics, "sqlite2pg_role", '{role="active"}')).toBe(1);
      expect(sample(metrics, "sqlite2pg_snapshot_rows", '{table="items"}')).toBe(20000);
      const ratio = sample(metrics, "sqlite2pg_snapshot_progress_ratio")!;
      expect(ratio).toBeGreaterThan(0);
      expect(ratio).toBeLessThan(1);
      expect(sample(metrics, "process_cpu_seconds_total")).toBeGreaterThan(0);
      expect(sample(metrics, "process_resident_memory_bytes")).toBeGreaterThan(0);
      expect(metrics).toContain("nodejs_eventloop_lag_seconds");
      const status = await ns.waitFor((m) => /^snapshot \d+% \(items [\d.]+k?\/20k\)$/.test(m.STATUS ?? ""), 30_000, "a snapshot STATUS");
      expect(status.STATUS).toMatch(/^snapshot/);
      const watchdogsBefore = ns.with("WATCHDOG", "1").length;
      expect(watchdogsBefore).toBeGreaterThan(0);

      // No progress past the stall timeout: unhealthy, and the watchdog is no longer fed.
      const stalled = await waitFor("an unhealthy stall", 30_000, async () => {
        const h = await get(port, "/healthz");
        return h.status === 503 ? (JSON.parse(h.body) as { reasons: string[]; phase: string; role: string }) : undefined;
      });
      expect(stalled.phase).toBe("snapshot");
      expect(stalled.reasons.join(" ")).toMatch(/no progress for \d+ s/);
      await waitFor("the watchdog left unfed", 30_000, () => d.logged("no longer feeding the systemd watchdog").length > 0);
      const unfed = ns.with("WATCHDOG", "1").length;
      await sleep(1500); // several watchdog intervals (0.2 s): none may be sent while stalled
      expect(ns.with("WATCHDOG", "1").length).toBe(unfed);

      // A standby beside it: ready, healthy in its role, and says so.
      const ns2 = await socket();
      const port2 = await freePort();
      // Its cutover hook waits for a file the test writes: the daemon stays up, cut over, to be looked at.
      const gate = join(dir, "go");
      const hook = `while [ ! -f '${gate}' ]; do sleep 0.05; done`;
      const standby = new Daemon("standby", ["--sqlite", path, "--pg", url, "--listen", String(port2), "--on-cutover", hook, "--validate", "counts"], {
        NOTIFY_SOCKET: ns2.path,
      });
      live.daemons.push(standby);
      const r2 = await ns2.waitFor((m) => m.READY === "1", 30_000, "the standby's READY=1");
      expect(r2.STATUS).toMatch(/^standby/);
      const h2 = await get(port2, "/healthz");
      expect(h2.status).toBe(200);
      expect(JSON.parse(h2.body)).toMatchObject({ ok: true, role: "standby", phase: null, lag_seconds: null });
      const m2 = (await get(port2, "/metrics")).body;
      expect(sample(m2, "sqlite2pg_role", '{role="standby"}')).toBe(1);
      expect(sample(m2, "sqlite2pg_role", '{role="active"}')).toBe(0);
      expect(sample(m2, "sqlite2pg_lag_changes")).toBeNull(); // a standby knows no lag: absent, not 0

      // SIGHUP with bigger chunks in the file: said, applied, and bracketed by RELOADING=1 … READY=1.
      writeFileSync(config, JSON.stringify({ chunkRows: 5000, stallTimeout: 2 }));
      const before = ns.messages.length;
      d.kill("SIGHUP");
      await waitFor("the reload logged", 30_000, () => d.logged("reloaded: chunkRows 1 → 5000").length > 0);
      const afterReload = await waitFor("RELOADING then READY", 30_000, () => {
        const m = ns.messages.slice(before);
        const i = m.findIndex((x) => x.RELOADING === "1");
        return i >= 0 && m.slice(i + 1).some((x) => x.READY === "1") ? m : undefined;
      });
      expect(afterReload.length).toBeGreaterThan(1);

      await client.query("COMMIT"); // the snapshot goes on, 5,000 rows a chunk
      await waitFor("streaming", 120_000, async () => {
        const h = await get(port, "/healthz");
        return h.status === 200 && JSON.parse(h.body).phase === "streaming";
      });
      await waitFor("the watchdog fed again", 30_000, () => ns.with("WATCHDOG", "1").length > unfed);

      // Applies that fail: unhealthy, counted by kind, said in STATUS; healthy again once fixed.
      await client.query("ALTER TABLE public.items ADD CONSTRAINT small_v CHECK (v < 1000)");
      const app = new Database(path);
      app.prepare("INSERT INTO items (v) VALUES (5000)").run();
      const failing = await waitFor("failing health", 30_000, async () => {
        const h = await get(port, "/healthz");
        return h.status === 503 && JSON.parse(h.body).failing ? JSON.parse(h.body) : undefined;
      });
      expect(failing.reasons.join(" ")).toMatch(/failed/);
      await waitFor(
        "errors by kind",
        30_000,
        async () => (sample((await get(port, "/metrics")).body, "sqlite2pg_errors_total", '{kind="SQLSTATE_23514"}') ?? 0) > 0,
      );
      await ns.waitFor((m) => /^streaming, lag \d+ changes .*failed, retrying$/.test(m.STATUS ?? ""), 30_000, "a failing STATUS");
      await client.query("ALTER TABLE public.items DROP CONSTRAINT small_v");
      app.prepare("INSERT INTO notes (body) VALUES ('after')").run();
      app.close();
      await waitFor("healthy, caught up", 30_000, async () => {
        const h = await get(port, "/healthz");
        const b = JSON.parse(h.body);
        return h.status === 200 && b.lag_changes === 0 ? b : undefined;
      });
      const streaming = (await get(port, "/metrics")).body;
      expect(sample(streaming, "sqlite2pg_phase", '{phase="streaming"}')).toBe(1);
      expect(sample(streaming, "sqlite2pg_changes_applied_total")).toBeGreaterThanOrEqual(2);
      expect(sample(streaming, "sqlite2pg_apply_batch_duration_seconds_count")).toBeGreaterThanOrEqual(1);
      expect(sample(streaming, "sqlite2pg_snapshot_progress_ratio")).toBe(1);
      await ns.waitFor((m) => /^streaming, lag 0 changes \/ [\d.]+ s$/.test(m.STATUS ?? ""), 30_000, "a streaming STATUS");

      // The password is in none of what the daemon shows, nor in its command line.
      const cmdline = readFileSync(`/proc/${d.pid}/cmdline`, "utf8");
      expect(cmdline).not.toContain(secret.password);
      expect(cmdline).toContain(":***@");
      for (const p of ["/metrics", "/status", "/healthz"]) expect((await get(port, p)).body).not.toContain(secret.password);
      expect(d.log()).not.toContain(secret.password);

      d.kill("SIGTERM");
      expect(await d.waitExit(30_000)).toEqual({ code: 0, signal: null });
      await ns.waitFor((m) => m.STOPPING === "1", 10_000, "STOPPING=1");
      // The standby takes over: it becomes active, and says so.
      await ns2.waitFor((m) => /^streaming/.test(m.STATUS ?? ""), 60_000, "the standby's streaming STATUS");
      const h3 = JSON.parse((await get(port2, "/healthz")).body);
      expect(h3.role).toBe("active");

      // The cutover: one attempt, its freeze measured, said in STATUS; STOPPING once done.
      standby.kill("SIGUSR2");
      const cut = await waitFor("cut over, hook waiting", 60_000, async () => {
        const m = (await get(port2, "/metrics")).body;
        return sample(m, "sqlite2pg_phase", '{phase="cut-over"}') === 1 ? m : undefined;
      });
      expect(sample(cut, "sqlite2pg_cutover_attempts_total")).toBe(1);
      expect(sample(cut, "sqlite2pg_freeze_duration_seconds_count")).toBe(1);
      expect(sample(cut, "sqlite2pg_freeze_duration_seconds_sum")).toBeGreaterThan(0);
      await ns2.waitFor((m) => /^cut over/.test(m.STATUS ?? ""), 30_000, "a cut-over STATUS");
      writeFileSync(gate, "");
      expect(await standby.waitExit(60_000)).toEqual({ code: 0, signal: null });
      await ns2.waitFor((m) => m.STOPPING === "1" && m.STATUS === "cutover done", 10_000, "STOPPING=1 after the cutover");
    } catch (e) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw new Error(`${(e as Error).message}\n${d.describe()}`);
    }
  }, 300_000);

  it("SIGHUP changes the log level of a running daemon; an invalid file changes nothing", async () => {
    const { dir, path, url } = await setup(10);
    const config = join(dir, "sqlite2pg.json");
    writeFileSync(config, JSON.stringify({ logLevel: "info", pollMs: 50, pruneInterval: 0.2 }));
    const d = new Daemon("reload", ["--sqlite", path, "--pg", url, "--config", config]);
    live.daemons.push(d);
    await waitFor("streaming", 60_000, () => d.logged('"phase streaming"').length > 0);
    const debugLines = () => d.stderrLines().filter((l) => l.includes('"level":20')).length;
    expect(debugLines()).toBe(0);

    writeFileSync(config, JSON.stringify({ logLevel: "debug", pollMs: 50, pruneInterval: 0.2, batchSize: "many" }));
    d.kill("SIGHUP");
    await waitFor("the refusal", 30_000, () => d.logged("reload refused").length > 0);
    expect(d.logged("reload refused")[0]).toContain("batchSize");
    expect(debugLines()).toBe(0);

    writeFileSync(config, JSON.stringify({ logLevel: "debug", pollMs: 50, pruneInterval: 0.2, listen: "127.0.0.1:1" }));
    d.kill("SIGHUP");
    await waitFor("the reload", 30_000, () => d.logged("reloaded: logLevel").length > 0);
    expect(d.logged("reloaded: logLevel")[0]).toContain('"changed":{"logLevel":{"from":"info","to":"debug"}}');
    expect(d.logged("only a restart applies it")[0]).toContain("listen");
    // Debug lines follow (the daemon logs at debug level as it idles and prunes).
    const db = new Database(path);
    db.prepare("INSERT INTO notes (body) VALUES ('x')").run();
    db.close();
    await waitFor("debug lines", 30_000, () => debugLines() > 0);
    d.kill("SIGTERM");
    expect(await d.waitExit(30_000)).toEqual({ code: 0, signal: null });
  }, 120_000);

  it("runs from the environment alone, as a unit's EnvironmentFile gives it: listen, max-lag, validate, on-cutover", async () => {
    const { dir, path, url } = await setup(10);
    const port = await freePort();
    const hookOut = join(dir, "hook.json");
    const d = new Daemon("env-only", [], {
      SQLITE2PG_SQLITE: path,
      DATABASE_URL: url,
      SQLITE2PG_LISTEN: `127.0.0.1:${port}`,
      SQLITE2PG_MAX_LAG: "42",
      SQLITE2PG_VALIDATE: "counts",
      SQLITE2PG_ON_CUTOVER: `printf %s "$SQLITE2PG_RESULT" > '${hookOut}'`,
      SQLITE2PG_POLL_MS: "50",
      SQLITE2PG_CONFIG: `-${join(dir, "absent.json")}`,
    });
    live.daemons.push(d);
    const h = await waitFor("streaming", 60_000, async () => {
      const r = await get(port, "/healthz").catch(() => null);
      const b = r && JSON.parse(r.body);
      return b?.phase === "streaming" ? b : undefined;
    });
    expect(h.max_lag_seconds).toBe(42);
    d.kill("SIGUSR2");
    expect(await d.waitExit(60_000)).toEqual({ code: 0, signal: null });
    const result = JSON.parse(readFileSync(hookOut, "utf8"));
    expect(result.validation).toMatchObject({ mode: "counts", ok: true });
  }, 120_000);

  it("takes the password from PGPASSFILE (libpq's rules), so none is on a command line or in an environment file", async () => {
    const base = mkdtempSync(join(tmpdir(), "sqlite2pg-pgpass-"));
    chmodSync(base, 0o755); // as root the server runs as another user
    const server = await startEmbeddedPostgres(join(base, "data")); // password authentication
    try {
      const password = decodeURIComponent(new URL(server.url).password);
      expect(password.length).toBeGreaterThan(8);
      const noPassword = `postgres://postgres@127.0.0.1:${server.port}/postgres`;
      const dir = tempDir();
      const path = sqliteFrom(dir, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
      const passfile = join(dir, "pgpass");
      writeFileSync(passfile, `127.0.0.1:${server.port}:*:postgres:${password}\n`, { mode: 0o600 });
      const home = join(dir, "home"); // no ~/.pgpass to fall back on
      const env = { PGPASSFILE: passfile, HOME: home };

      const init = await runCli(["init", "--sqlite", path, "--pg", noPassword], 60_000, { env });
      expect(init.code, init.stderr).toBe(0);
      const status = await runCli(["status", "--sqlite", path, "--json"], 60_000, { env: { ...env, DATABASE_URL: noPassword } });
      expect(status.code, status.stderr).toBe(0);
      expect(JSON.parse(status.stdout).phase).toBe("new");
      expect(status.stderr).not.toContain("deprecated");

      // Without the file: PostgreSQL asks for a password nobody has; exit 4, and no password is printed.
      const none = await runCli(["status", "--sqlite", path, "--pg", noPassword], 60_000, { env: { HOME: home } });
      expect(none.code).toBe(4);
      expect(none.stderr).toMatch(/PG_CONNECT/);
      // A file others can read is ignored, as libpq ignores it.
      chmodSync(passfile, 0o644);
      const open = await runCli(["status", "--sqlite", path, "--pg", noPassword], 60_000, { env });
      expect(open.code).toBe(4);
      for (const r of [init, status, none, open]) expect(r.stdout + r.stderr).not.toContain(password);
    } finally {
      await server.stop();
      rmSync(base, { recursive: true, force: true });
    }
  }, 120_000);
});
