/**
 * Crash safety with real processes: the daemon (`sqlite2pg run`, from dist/)
 * under a concurrent application writer (a child process running a seeded
 * random workload, test/helpers/workload.mjs) is
 *
 *   1. stopped like `kill -9` at every named crash point
 *      (src/observe/crash-points.ts: a snapshot chunk committed, the key
 *      build, a catch-up batch committed, a streaming batch before and
 *      after its commit, a prune chunk, the capture re-install), each
 *      time deterministically there, then at random moments whose landing
 *      is not asserted; restarted each time;
 *   2. cut off from Postgres: its connections terminated by the server;
 *   3. starved of SQLite's write lock: the application holds BEGIN
 *      IMMEDIATE for seconds.
 *
 * Each time it must stay up (or come back), converge to an exact copy
 * (an independent value-by-value comparison), exit 0 on SIGTERM, prune the
 * changelog and leave no error behind.
 *
 * The seed: SQLITE2PG_FAULT_SEED=<n> replays a run (the same workload and
 * the same kill schedule; the interleaving with the processes is the
 * machine's). It is printed at the start and in every failure report,
 * with the kill log and the tails of the daemons' stderr.
 */
import { afterEach, describe, expect, it, onTestFailed } from "vitest";
import Database from "better-sqlite3";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { cleanup, freshDatabase, serverUrl, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { cliStatus, Daemon, Fatal, runCli, waitFor, Writer, type Status, type WriterStats } from "../helpers/daemon.js";
import { populate, prng } from "../helpers/workload.mjs";

const SEED = process.env.SQLITE2PG_FAULT_SEED ? Number(process.env.SQLITE2PG_FAULT_SEED) : Date.now() % 2 ** 31;
const IGNORE = { ignoreColumns: ["_sqlite2pg_rowid"] };

/** What happened in one test, for the failure report. */
class Journal {
  readonly t0 = Date.now();
  readonly lines: string[] = [];
  readonly daemons: Daemon[] = [];
  writer: Writer | null = null;
  writerStats: WriterStats | null = null;

  constructor(
    readonly name: string,
    readonly seed: number,
  ) {
    onTestFailed(() => {
      process.stderr.write(this.report());
    });
  }

  note(s: string): void {
    this.lines.push(`+${String(Date.now() - this.t0).padStart(6)} ms  ${s}`);
  }

  report(): string {
    const shown = this.daemons.filter((d, i) => i >= this.daemons.length - 3 || (d.exitInfo && d.exitInfo.signal !== "SIGKILL"));
    return [
      `\n===== ${this.name}: failure report (SQLITE2PG_FAULT_SEED=${this.seed}) =====`,
      ...this.lines,
      this.writerStats ? `writer: ${JSON.stringify(this.writerStats)}` : "",
      this.writer ? this.writer.describe() : "",
      ...shown.map((d) => d.describe(60)),
      "===== end of report =====\n",
    ].join("\n");
  }
}

/** What a test started, ended after it whatever happened. */
const live: { daemons: Daemon[]; writers: Writer[]; dbs: Database.Database[] } = { daemons: [], writers: [], dbs: [] };

afterEach(async () => {
  for (const d of live.daemons.splice(0)) d.kill("SIGKILL");
  for (const w of live.writers.splice(0)) w.kill();
  for (const db of live.dbs.splice(0)) if (db.open) db.close();
  await sleep(100);
  await cleanup();
});

/** A SQLite file with the workload's tables and `counts` rows, `init` run on it, and a fresh Postgres database. */
async function setup(j: Journal, counts: { items: number; stock: number; events: number }) {
  const dir = tempDir();
  const path = join(dir, "app.db");
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  populate(db, j.seed, counts);
  db.close();
  const { url, client, name } = await freshDatabase();
  const init = await runCli(["init", "--sqlite", path, "--pg", url]);
  expect(init.code, `sqlite2pg init failed:\n${init.stderr}`).toBe(0);
  // The test's own view of the source (read-only use, plus the lock probe).
  const src = new Database(path);
  live.dbs.push(src);
  src.pragma("busy_timeout = 0");
  const changes = {
    newest: () => Number((src.prepare("SELECT coalesce(max(seq), 0) AS m FROM _sqlite2pg_changes").get() as { m: number }).m),
    count: () => Number((src.prepare("SELECT count(*) AS n FROM _sqlite2pg_changes").get() as { n: number }).n),
  };
  const state = async () => {
    const r = await client.query("SELECT phase, applied_seq::int8 AS applied, last_error FROM sqlite2pg.state");
    const p = await client.query("SELECT coalesce(sum(rows), 0)::int8 AS rows, count(*) FILTER (WHERE NOT done)::int AS open FROM sqlite2pg.snapshot_progress");
    return {
      phase: r.rows[0].phase as string,
      applied: Number(r.rows[0].applied),
      lastError: r.rows[0].last_error as string | null,
      snapRows: Number(p.rows[0].rows),
      snapOpen: Number(p.rows[0].open),
    };
  };
  /**
   * The state, failing fast when the daemon is stuck: changes to apply and
   * no progress (phase, applied_seq, snapshot rows) for 15 s.
   */
  let mark = { sig: "", at: Date.now() };
  const progress = async () => {
    const st = await state();
    const sig = `${st.phase}/${st.applied}/${st.snapRows}`;
    if (sig !== mark.sig) mark = { sig, at: Date.now() };
    else if (changes.newest() > st.applied && Date.now() - mark.at > 15_000) {
      throw new Fatal(
        `the daemon is stuck: no progress for ${Date.now() - mark.at} ms with ${changes.newest() - st.applied} change(s) to apply (phase ${st.phase}, applied ${st.applied}, snapshot rows ${st.snapRows}); last_error in the state: ${JSON.stringify(st.lastError)}`,
      );
    }
    return st;
  };
  const writer = (pace = 3) => {
    const w = new Writer(path, j.seed, pace);
    live.writers.push(w);
    j.writer = w;
    return w;
  };
  let n = 0;
  const daemon = (label?: string) => {
    const d = Daemon.start(label ?? `#${++n}`, { sqlite: path, pg: url, pollMs: 50, batchSize: 200, chunkRows: 500 });
    live.daemons.push(d);
    j.daemons.push(d);
    return d;
  };
  return { dir, path, url, client, name, src, changes, state, progress, writer, daemon };
}

type Setup = Awaited<ReturnType<typeof setup>>;

/** Every daemon so far that ended without being killed by the test (crashed or exited). */
function unexpectedExits(j: Journal): string[] {
  return j.daemons.filter((d) => d.exitInfo && d.exitInfo.signal !== "SIGKILL" && d.exitInfo.signal !== "SIGTERM").map((d) => d.describe(60));
}

/**
 * The end of every scenario: the writer stopped, a daemon (the given one,
 * or a new one) converges — `status --json` says streaming with no lag —,
 * SIGTERM stops it with status 0, and Postgres holds exactly what SQLite
 * holds. Returns the final status.
 */
async function converge(j: Journal, s: Setup, d: Daemon, timeoutMs: number): Promise<Status> {
  const newest = s.changes.newest();
  j.note(`converging: newest seq ${newest}`);
  let last: Status | null = null;
  await waitFor(
    "status: phase streaming and lag_changes 0",
    timeoutMs,
    async () => {
      if (!d.alive) throw new Fatal(`the daemon exited: ${d.describe(60)}`);
      await s.progress();
      last = await cliStatus(s.path, s.url);
      return last.phase === "streaming" && last.lag_changes === 0 && last.applied_seq === newest;
    },
    300,
  ).catch((e) => {
    throw new Error(`${(e as Error).message}; last status ${JSON.stringify(last)}\n${d.describe(60)}`);
  });
  j.note(`converged: ${JSON.stringify(last)}`);
  // Idle once more so the last prune has run, then stop.
  await sleep(300);
  d.kill("SIGTERM");
  const ex = await d.waitExit(20_000);
  j.note(`SIGTERM → ${JSON.stringify(ex)}`);
  expect(ex, `the daemon did not exit within 20 s of SIGTERM:\n${d.describe(60)}`).not.toBeNull();
  expect(ex, `the daemon did not exit 0 on SIGTERM:\n${d.describe(60)}`).toEqual({ code: 0, signal: null });
  const cmp = await compareDatabases(s.path, s.client, "public", IGNORE);
  j.note(`compare: ${cmp.tables} tables, ${cmp.rows} rows, ${cmp.differences.length} difference(s)`);
  expect(cmp.tables).toBe(3);
  expect(cmp.differences).toEqual([]);
  const st = await cliStatus(s.path, s.url);
  j.note(`final status: ${JSON.stringify(st)}`);
  expect(st.last_error).toBeNull();
  expect(st.daemon_running).toBe(false);
  expect(st.phase).toBe("streaming");
  expect(st.lag_changes).toBe(0);
  return st;
}

describe("replication survives faults (real processes)", () => {
  it("kill -9 at every named point (snapshot chunk, key build, catch-up batch, streaming before/after commit, prune, capture install), then at random moments, under a random writer converges exactly", {
    timeout: 240_000,
  }, async () => {
    const j = new Journal("kill -9", SEED);
    console.log(`replication-faults kill -9: SQLITE2PG_FAULT_SEED=${SEED}`);
    const rng = prng(SEED ^ 0x6b696c6c);
    const s = await setup(j, { items: 30000, stock: 8000, events: 8000 });
    const writer = s.writer(3);
    await writer.ready();
    j.note("writer started");

    const kills: { n: number; point: string; pass: number; state: string }[] = [];
    /** The daemon down for a while: the writer goes on, the backlog grows. */
    const downtime = async (lo: number, hi: number) => {
      const ms = rng.int(lo, hi);
      if (ms) await sleep(ms);
    };
    const describeState = async () => {
      const st = await s.state();
      return `state ${st.phase}, applied ${st.applied}, snapshot rows ${st.snapRows} (${st.snapOpen} tables open), newest ${s.changes.newest()}, changelog rows ${s.changes.count()}`;
    };
    /**
     * A daemon told to stop itself (SIGKILL) at the named point, at its
     * pass-th passage: it must get there — and die there, nowhere else —
     * within the deadline. Then it is restarted by the next step.
     */
    const crashAt = async (point: string, pass = 1) => {
      const d = Daemon.start(`#${kills.length + 1} ${point}`, {
        sqlite: s.path,
        pg: s.url,
        pollMs: 50,
        batchSize: 200,
        chunkRows: 500,
        env: { SQLITE2PG_CRASH_AT: point, SQLITE2PG_CRASH_AFTER: String(pass) },
      });
      live.daemons.push(d);
      j.daemons.push(d);
      j.note(`start daemon ${d.label} (pid ${d.pid}): crash at ${point}, pass ${pass}`);
      const deadline = Date.now() + 90_000;
      while (d.alive && Date.now() < deadline) {
        await s.progress(); // fails fast when nothing moves for 15 s
        await sleep(50);
      }
      const ex = await d.waitExit(1_000);
      expect(ex, `daemon ${d.label} did not reach crash point ${point} (pass ${pass}) within 90 s:\n${d.describe(60)}`).not.toBeNull();
      expect(ex!.signal, `daemon ${d.label} ended otherwise than at its crash point:\n${d.describe(60)}`).toBe("SIGKILL");
      expect(d.logged(`sqlite2pg crash point ${point} (pass ${pass})`), `daemon ${d.label} was killed, but not at ${point}:\n${d.describe(60)}`).toHaveLength(
        1,
      );
      const where = await describeState();
      kills.push({ n: kills.length + 1, point, pass, state: where });
      j.note(`kill ${kills.length} at ${point} (pass ${pass}): ${where}`);
      expect(unexpectedExits(j)).toEqual([]);
    };
    /** A daemon run until the phase is reached, then stopped with SIGTERM (exit 0). */
    const runUntil = async (phase: string) => {
      const d = Daemon.start("until " + phase, { sqlite: s.path, pg: s.url, pollMs: 50, batchSize: 200, chunkRows: 500 });
      live.daemons.push(d); // not a journal daemon: its exit 0 on SIGTERM is expected
      j.note(`start daemon ${d.label} (pid ${d.pid}) until ${phase}`);
      await waitFor(
        `phase ${phase}`,
        90_000,
        async () => {
          if (!d.alive) throw new Fatal(`daemon ${d.label} exited: ${d.describe(60)}`);
          return (await s.progress()).phase === phase;
        },
        50,
      );
      d.kill("SIGTERM");
      expect(await d.waitExit(20_000), d.describe(60)).toEqual({ code: 0, signal: null });
    };

    // The snapshot: a few chunks in, twice (the second resumes the first's progress).
    await crashAt("snapshot-chunk-committed", rng.int(1, 6));
    await downtime(0, 300);
    await crashAt("snapshot-chunk-committed", rng.int(1, 6));
    // Every table copied: inside the transaction that builds keys and indexes.
    await crashAt("key-build");
    // Catch-up: the backlog is every change made since the snapshot began.
    await downtime(300, 1000);
    await crashAt("catch-up-batch-committed");
    await downtime(300, 1000);
    await crashAt("catch-up-batch-committed", rng.int(1, 2));
    // Streaming: a batch written but not committed, and committed but not pruned.
    await runUntil("streaming");
    await crashAt("stream-before-commit", rng.int(1, 3));
    await downtime(0, 500);
    await crashAt("stream-after-commit", rng.int(1, 3));
    // Pruning: the batches the last daemon applied are pruned by the next one, one chunk at a time.
    await downtime(300, 1000);
    await crashAt("prune-chunk");
    // The changelog and triggers re-installed (init run again): killed inside that transaction.
    const reinit = await runCli(["init", "--sqlite", s.path, "--pg", s.url], 60_000, { env: { SQLITE2PG_CRASH_AT: "capture-install" } });
    expect(reinit.signal, reinit.stderr).toBe("SIGKILL");
    expect(reinit.stderr).toContain("sqlite2pg crash point capture-install (pass 1)");
    kills.push({ n: kills.length + 1, point: "capture-install", pass: 1, state: await describeState() });
    j.note(`kill ${kills.length}: init at capture-install`);
    const again = await runCli(["init", "--sqlite", s.path, "--pg", s.url], 60_000);
    expect(again.code, again.stderr).toBe(0);
    // Random moments: where they land is not asserted, only that the daemon comes back exact.
    for (let k = 0; k < 3; k++) {
      const d = s.daemon();
      j.note(`start daemon ${d.label} (pid ${d.pid}) for a random kill`);
      await sleep(rng.int(100, 2500));
      expect(d.alive, `daemon ${d.label} exited before the random kill:\n${d.describe(60)}`).toBe(true);
      d.kill("SIGKILL");
      await d.waitExit(10_000);
      j.note(`random kill: ${await describeState()}`);
      await downtime(0, 500);
    }

    j.writerStats = await writer.stop();
    j.note(
      `writer stopped: ${j.writerStats.committed} transactions committed, ${j.writerStats.rolledBack} rolled back, ${j.writerStats.statements} statements`,
    );
    expect(j.writerStats.committed).toBeGreaterThan(300);

    const final = await converge(j, s, s.daemon("final"), 90_000);
    const left = s.changes.count();
    j.note(`changelog rows left: ${left} of ${final.newest_seq} changes made`);
    console.log(
      `replication-faults kill -9 (seed ${SEED}): ${kills.map((k) => `${k.point}#${k.pass}`).join(", ")} + 3 random; ${final.newest_seq} changes; ${left} changelog rows left`,
    );
    expect(kills.map((k) => k.point)).toEqual([
      "snapshot-chunk-committed",
      "snapshot-chunk-committed",
      "key-build",
      "catch-up-batch-committed",
      "catch-up-batch-committed",
      "stream-before-commit",
      "stream-after-commit",
      "prune-chunk",
      "capture-install",
    ]);
    expect(left).toBeLessThan(Math.max(10, final.newest_seq / 100));
  });

  it("survives its Postgres connections being terminated (and refused for a while) while streaming, and converges", { timeout: 90_000 }, async () => {
    const j = new Journal("pg_terminate_backend", SEED);
    console.log(`replication-faults pg_terminate_backend: SQLITE2PG_FAULT_SEED=${SEED}`);
    const rng = prng(SEED ^ 0x7465726d);
    const s = await setup(j, { items: 3000, stock: 1000, events: 1000 });
    const d = s.daemon();
    await waitFor("phase streaming", 60_000, async () => {
      if (!d.alive) throw new Fatal(`the daemon exited:\n${d.describe(60)}`);
      return (await s.progress()).phase === "streaming";
    });
    // The writer starts once streaming: this test is about Postgres, not the snapshot.
    const writer = s.writer(3);
    await writer.ready();
    j.note("streaming; writer started");
    await sleep(500);
    const terminate = async () => {
      const r = await s.client.query(
        "SELECT pid, application_name AS app, pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name LIKE 'sqlite2pg%' AND datname = current_database() AND pid <> pg_backend_pid()",
      );
      return r.rows.filter((x) => x.ok).map((x) => x.app as string);
    };
    const lockHeld = async () =>
      (
        await s.client.query(
          "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
      ).rows[0].n > 0;
    const killed: string[] = [];
    const rounds = ["one", "burst", "refused", "burst", "one"] as const;
    for (const [i, kind] of rounds.entries()) {
      await sleep(rng.int(300, 900));
      const names: string[] = [];
      if (kind === "refused") {
        // As in a server restart: the connections end and new ones are
        // refused for a while (the daemon's reconnect fails), then accepted.
        const admin = new pg.Client({ connectionString: serverUrl() });
        await admin.connect();
        try {
          await admin.query(`ALTER DATABASE "${s.name}" WITH ALLOW_CONNECTIONS false`);
          names.push(...(await terminate()));
          await sleep(1500);
        } finally {
          await admin.query(`ALTER DATABASE "${s.name}" WITH ALLOW_CONNECTIONS true`);
          await admin.end();
        }
      } else {
        // One statement, or a burst a few ms apart, which also hits the
        // connections the daemon opens to recover.
        const n = kind === "one" ? 1 : rng.int(4, 10);
        for (let b = 0; b < n; b++) {
          names.push(...(await terminate()));
          if (n > 1) await sleep(rng.int(0, 15));
        }
      }
      killed.push(...names);
      await sleep(300);
      const st = await s.state();
      j.note(
        `round ${i + 1} (${kind}): ended ${names.length} backend(s) [${names.join(", ")}]; daemon ${d.alive ? "alive" : "EXITED"}; advisory lock ${(await lockHeld()) ? "held" : "not held"}; applied ${st.applied}, newest ${s.changes.newest()}`,
      );
      expect(d.alive, `the daemon exited after its connections were terminated:\n${d.describe(60)}`).toBe(true);
    }
    expect(killed).toContain("sqlite2pg");
    expect(killed).toContain("sqlite2pg lock");
    // Still replicating under the writer: what is committed now gets applied.
    const target = s.changes.newest();
    await waitFor(
      `applied_seq ≥ ${target} while the writer runs`,
      30_000,
      async () => {
        if (!d.alive) throw new Fatal(`the daemon exited:\n${d.describe(60)}`);
        return (await s.progress()).applied >= target;
      },
      100,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n${d.describe(60)}`);
    });
    const mid = await cliStatus(s.path, s.url);
    const held = await lockHeld();
    j.note(
      `after the terminations, the same daemon running: status daemon_running=${mid.daemon_running}, advisory lock held: ${held}, phase ${mid.phase}, lag ${mid.lag_changes}`,
    );
    console.log(
      `replication-faults pg_terminate_backend (seed ${SEED}): terminated [${killed.join(", ")}]; afterwards the daemon runs with its advisory lock ${held ? "held" : "NOT held"} (status daemon_running=${mid.daemon_running})`,
    );
    j.writerStats = await writer.stop();
    await converge(j, s, d, 60_000);
    expect(s.changes.count()).toBeLessThan(10);
  });

  it("keeps applying while the application holds SQLite's write lock for 3 s, and converges after", { timeout: 90_000 }, async () => {
    const j = new Journal("write lock held", SEED);
    console.log(`replication-faults write lock: SQLITE2PG_FAULT_SEED=${SEED}`);
    const s = await setup(j, { items: 6000, stock: 1000, events: 1000 });
    const d = s.daemon();
    await waitFor("phase streaming", 60_000, async () => {
      if (!d.alive) throw new Fatal(`the daemon exited:\n${d.describe(60)}`);
      return (await s.progress()).phase === "streaming";
    });
    const writer = s.writer(3);
    await writer.ready();
    j.note("streaming; writer started");
    await sleep(1500);
    // The application's writer pauses; the daemon catches up and idles.
    await writer.pause();
    await waitFor("caught up with the writer", 30_000, async () => (await s.progress()).applied >= s.changes.newest(), 50);
    await sleep(300);
    const st0 = await s.state();
    // Then the application writes a batch job: 4000 changes in a transaction
    // that holds the write lock for a moment, commits, and at once takes the
    // write lock again for 3 s (as the next long transaction would).
    const app = new Database(s.path);
    live.dbs.push(app);
    app.pragma("busy_timeout = 10000");
    app.exec("BEGIN IMMEDIATE");
    app.prepare("UPDATE items SET price = price + 1 WHERE id IN (SELECT id FROM items ORDER BY id LIMIT 4000)").run();
    await sleep(300);
    app.exec("COMMIT");
    app.exec("BEGIN IMMEDIATE");
    const lockedAt = Date.now();
    const before = s.changes.newest(); // every commit so far: nothing else can commit while the lock is held
    app.prepare("INSERT INTO items (id, name, price, data) VALUES (-424242, 'written in the open transaction', 1.5, x'00ff')").run();
    await writer.resume(); // the writer now waits for the lock too
    j.note(`write lock taken; newest committed seq ${before}, applied ${st0.applied} (${before - st0.applied} change(s) to apply)`);
    let caughtUpAt: number | null = null;
    const samples: string[] = [];
    while (Date.now() - lockedAt < 3000) {
      const st = await s.state();
      samples.push(`${Date.now() - lockedAt}ms:${st.applied - st0.applied}`);
      if (caughtUpAt === null && st.applied >= before) caughtUpAt = Date.now() - lockedAt;
      expect(d.alive, `the daemon exited while the write lock was held:\n${d.describe(60)}`).toBe(true);
      await sleep(100);
    }
    const uncommitted = await s.client.query("SELECT count(*)::int AS n FROM items WHERE id = -424242");
    const stLock = await s.state();
    j.note(`during the 3 s hold (changes applied since the lock): ${samples.join(" ")}`);
    app.exec("COMMIT");
    const releasedAt = Date.now();
    j.note(`lock released after ${releasedAt - lockedAt} ms; newest ${s.changes.newest()}`);
    console.log(
      `replication-faults write lock (seed ${SEED}): ${before - st0.applied} change(s) committed before the lock; applied ${caughtUpAt === null ? `only ${stLock.applied - st0.applied} during the 3 s hold` : `${caughtUpAt} ms into the hold`}`,
    );
    expect(uncommitted.rows[0].n, "a row of the open transaction reached Postgres").toBe(0);
    expect(
      caughtUpAt,
      `the daemon did not apply, during the 3 s hold, the ${before - st0.applied} changes committed before it: ${stLock.applied - st0.applied} applied (changes applied since the lock, sampled: ${samples.join(" ")})\n${d.describe(60)}`,
    ).not.toBeNull();
    // After the release: the held transaction and the writer's queued ones arrive.
    const after = s.changes.newest();
    await waitFor(
      `applied_seq ≥ ${after} after the release`,
      60_000,
      async () => {
        if (!d.alive) throw new Fatal(`the daemon exited:\n${d.describe(60)}`);
        return (await s.progress()).applied >= after;
      },
      100,
    );
    j.note(`caught up with the release ${Date.now() - releasedAt} ms after it`);
    expect((await s.client.query("SELECT count(*)::int AS n FROM items WHERE id = -424242")).rows[0].n).toBe(1);
    app.close();
    j.writerStats = await writer.stop();
    j.note(`writer: ${j.writerStats.committed} committed, ${j.writerStats.busyRetries} busy retries`);
    await converge(j, s, d, 60_000);
    // Pruning went on once the lock was released.
    expect(s.changes.count()).toBeLessThan(10);
  });
});
