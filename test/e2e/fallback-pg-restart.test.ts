/**
 * PostgreSQL itself restarted under a daemon in the fallback (a server of
 * this test's own, stopped and started again on the same data and port),
 * with changes captured in PostgreSQL and not yet applied to SQLite: the
 * daemon stays up, retries, applies the backlog once the server is back and
 * keeps following it; `finish` then ends with SQLite equal to PostgreSQL.
 */
import { join } from "node:path";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { type EmbeddedServer, freePort, startEmbeddedPostgres } from "../../src/postgres/embedded.js";
import { cleanup, tempDir } from "../helpers/db.js";
import { cliStatus, runCli, waitFor } from "../helpers/daemon.js";
import {
  daemonLogs,
  expectEqual,
  fallbackDaemon,
  type FallbackSource,
  fallbackSource,
  PgWriter,
  pendingInPg,
  waitApplied,
  waitPhase,
} from "../helpers/fallback.js";

const live: { sources: FallbackSource[]; writers: PgWriter[]; clients: pg.Client[] } = { sources: [], writers: [], clients: [] };
let server: EmbeddedServer | null = null;
afterEach(async () => {
  for (const w of live.writers.splice(0)) await w.stop();
  for (const c of live.clients.splice(0)) await c.end().catch(() => undefined);
  for (const s of live.sources.splice(0)) for (const d of s.daemons) d.kill("SIGKILL");
  await server?.stop({ removeData: true }).catch(() => undefined);
  server = null;
  await cleanup();
});

async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on("error", () => undefined); // the server going away is this test's subject
  live.clients.push(c);
  await c.connect();
  return c;
}

function writer(url: string, from: number, truncateEvery = 8): PgWriter {
  const w = new PgWriter(url, { truncateEvery, from });
  live.writers.push(w);
  return w;
}

describe("PostgreSQL restarted under the daemon during the fallback", () => {
  it("keeps the daemon up; it applies the backlog once the server is back and keeps following it; `finish` ends it exactly", async () => {
    const dir = tempDir();
    const port = await freePort();
    const pgdir = join(dir, "pg");
    server = await startEmbeddedPostgres(pgdir, { port, trust: true });
    const url = server.url;
    const s = await fallbackSource({ url, client: await connect(url) });
    live.sources.push(s);
    const d = fallbackDaemon(s, "run", { args: ["--cutover"] });
    await waitPhase(s, d, "fallback");
    // No TRUNCATE while the daemon may be stopped: a stop that lands inside a
    // fallback turn leaves its snapshot open, and TRUNCATE's lock would wait
    // for it until the daemon runs again.
    const w1 = writer(url, 1000, 0);
    await w1.more(10);
    // The daemon paused, the writes after this wait in PostgreSQL across the restart.
    d.kill("SIGSTOP");
    await w1.more(10);
    await w1.stop();
    expect(w1.errors).toEqual([]);
    expect(await pendingInPg(s.client)).toBeGreaterThan(0);

    await server.stop(); // the server goes away under the daemon …
    d.kill("SIGCONT");
    await waitFor("the daemon's failed attempt", 30_000, () => d.logged("apply failed; will retry").length > 0);
    expect(d.alive, daemonLogs(s)).toBe(true); // … which keeps running
    server = await startEmbeddedPostgres(pgdir, { port, trust: true }); // same data, same port
    s.client = await connect(url);
    await waitApplied(s, d);
    await waitFor("the daemon's recovery", 30_000, () => d.logged('"msg":"recovered"').length > 0);
    // It holds the source's lock again: `status`, and `finish` below, see it running.
    await waitFor("the daemon holding the source's lock again", 30_000, async () => (await cliStatus(s.path, url)).daemon_running);
    // It keeps following PostgreSQL.
    const w2 = writer(url, 5000);
    await w2.more(20);
    await w2.stop();
    expect(w2.errors).toEqual([]);
    await waitApplied(s, d);
    await expectEqual(s);

    const fin = await runCli(["finish", "--sqlite", s.path, "--pg", url, "--wait"], 120_000, { env: { SQLITE2PG_FALLBACK: "true" } });
    expect(fin.code, fin.stderr + daemonLogs(s)).toBe(0);
    expect(fin.stdout).toMatch(/Finish requested; the daemon is notified/);
    expect(await d.waitExit(60_000), daemonLogs(s)).toEqual({ code: 0, signal: null });
    expect((await s.client.query("SELECT phase, last_error FROM sqlite2pg.state")).rows[0]).toEqual({ phase: "done", last_error: null });
    await expectEqual(s);
  });
});
