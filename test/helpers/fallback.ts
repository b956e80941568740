/**
 * The way back with real processes: a SQLite source `init` ran on, daemons
 * (`sqlite2pg run` with the fallback on), and an application writing to
 * PostgreSQL after the cutover — every kind of write the reverse apply must
 * carry back into the file: inserts with identity ids, updates, deletes, key
 * moves, upserts, writes to a table without a key and its TRUNCATE.
 */
import Database from "better-sqlite3";
import pg from "pg";
import { expect } from "vitest";
import { ROLLBACK_FROZEN_MESSAGE } from "../../src/db/frozen.js";
import { compareDatabases } from "./compare.js";
import { Daemon, Fatal, runCli, waitFor } from "./daemon.js";
import { freshDatabase, sqliteFrom, tempDir } from "./db.js";

/** The application's tables: an AUTOINCREMENT key, a text key WITHOUT ROWID, a table with no key. */
const SCHEMA = `
  CREATE TABLE accounts (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE, balance REAL NOT NULL, active BOOLEAN, created DATETIME, data BLOB);
  CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE log (at INTEGER, msg TEXT);
`;

function seed(path: string, rows: number): void {
  const db = new Database(path);
  db.transaction(() => {
    const acc = db.prepare("INSERT INTO accounts (email, balance, active, created, data) VALUES (?, ?, ?, ?, ?)");
    for (let i = 1; i <= rows; i++) acc.run(`seed${i}@x`, i / 4, i % 2, `2024-01-${String((i % 28) + 1).padStart(2, "0")}T10:00:00Z`, Buffer.from([i % 256]));
    db.prepare("DELETE FROM accounts WHERE id > ?").run(rows - 3); // sqlite_sequence ahead of max(id)
    const kv = db.prepare("INSERT INTO kv VALUES (?, ?)");
    for (let i = 1; i <= 50; i++) kv.run(`k${i}`, i);
    db.prepare("INSERT INTO log VALUES (1, 'seeded'), (2, 'seeded')").run();
  })();
  db.close();
}

/** What a test of the way back works on. */
export interface FallbackSource {
  dir: string;
  path: string;
  url: string;
  client: pg.Client;
  /** Every daemon started, for the failure output. */
  daemons: Daemon[];
}

/** A seeded SQLite file, `init` run on it against a fresh database (or `pgUrl`, a server of the test's own). */
export async function fallbackSource(opts: { rows?: number; url?: string; client?: pg.Client } = {}): Promise<FallbackSource> {
  const dir = tempDir();
  const path = sqliteFrom(dir, SCHEMA);
  seed(path, opts.rows ?? 300);
  const { url, client } = opts.url && opts.client ? { url: opts.url, client: opts.client } : await freshDatabase();
  const init = await runCli(["init", "--sqlite", path, "--pg", url]);
  expect(init.code, init.stderr).toBe(0);
  return { dir, path, url, client, daemons: [] };
}

/**
 * `sqlite2pg run` with the way back on (the helpers' default is the
 * forward path's --no-fallback), a generous --max-freeze unless given (a
 * busy machine must not undo a rollback), and `args` more flags.
 */
export function fallbackDaemon(s: FallbackSource, label: string, o: { args?: string[]; env?: NodeJS.ProcessEnv; maxFreezeS?: number } = {}): Daemon {
  const d = Daemon.start(label, {
    sqlite: s.path,
    pg: s.url,
    pollMs: 50,
    batchSize: 50,
    args: ["--max-freeze", String(o.maxFreezeS ?? 60), ...(o.args ?? [])],
    env: { SQLITE2PG_FALLBACK: "true", ...o.env },
  });
  s.daemons.push(d);
  return d;
}

/** The daemons' stderr tails, for an assertion's message. */
export function daemonLogs(s: FallbackSource): string {
  return s.daemons.map((d) => d.describe(40)).join("\n");
}

/** The phase in the state. */
export async function phaseOf(client: pg.Client): Promise<string | undefined> {
  return (await client.query("SELECT phase FROM sqlite2pg.state")).rows[0]?.phase;
}

/** Wait for `phase`; fails at once when `d` exits first. */
export async function waitPhase(s: FallbackSource, d: Daemon | null, phase: string, ms = 60_000): Promise<void> {
  await waitFor(`phase ${phase}`, ms, async () => {
    const p = await phaseOf(s.client);
    if (p === phase) return true;
    if (d && !d.alive) throw new Fatal(`the daemon exited in phase ${p} before phase ${phase}:\n${d.describe(60)}`);
    return false;
  });
}

/** Changes captured in PostgreSQL that the fallback has not applied yet (null: no capture). */
export async function pendingInPg(client: pg.Client): Promise<number | null> {
  const t = await client.query("SELECT to_regclass('sqlite2pg.pg_changes') IS NOT NULL AS e");
  if (!t.rows[0].e) return null;
  return Number((await client.query("SELECT count(*) AS n FROM sqlite2pg.pg_changes")).rows[0].n);
}

/** Wait until every write made in PostgreSQL so far is applied to SQLite. */
export async function waitApplied(s: FallbackSource, d: Daemon): Promise<void> {
  await waitFor("the fallback applied every change made in PostgreSQL", 60_000, async () => {
    if (!d.alive) throw new Fatal(`the daemon exited:\n${d.describe(60)}`);
    return (await pendingInPg(s.client)) === 0;
  });
}

/** SQLite equals PostgreSQL value for value (the independent comparison). */
export async function expectEqual(s: FallbackSource, path = s.path): Promise<void> {
  const cmp = await compareDatabases(path, s.client, "public", { ignoreColumns: ["_sqlite2pg_rowid"] });
  expect(cmp.tables).toBe(3);
  expect(cmp.differences, daemonLogs(s)).toEqual([]);
}

/**
 * One round of every kind of write, in `c` (one transaction when the caller
 * opened one): identity ids, updates, a delete, a key move on each keyed
 * table, an upsert, writes to the keyless table; `truncate` empties it too.
 */
export async function pgWrites(c: pg.ClientBase, round: number, truncate = false): Promise<void> {
  const ids = (
    await c.query<{ id: string }>(
      "INSERT INTO accounts (email, balance, active, created, data) VALUES ($1, $2, true, now(), $3), ($4, 0.5, NULL, NULL, NULL) RETURNING id",
      [`r${round}a@x`, round + 0.25, Buffer.from([round % 256, 0, 255]), `r${round}b@x`],
    )
  ).rows.map((r) => r.id);
  await c.query(
    "UPDATE accounts SET balance = balance + 1.5, active = NOT coalesce(active, false) WHERE id = (SELECT min(id) FROM accounts WHERE email LIKE 'seed%')",
  );
  await c.query("DELETE FROM accounts WHERE id = (SELECT max(id) FROM accounts WHERE email LIKE 'seed%')");
  await c.query("UPDATE accounts SET id = id + 1000000 WHERE id = $1", [ids[1]]); // a key move
  await c.query("INSERT INTO kv VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = kv.v + 1", [`k${(round % 60) + 1}`, round]);
  await c.query("UPDATE kv SET k = k || '.' || $1 WHERE k = (SELECT min(k) FROM kv WHERE k NOT LIKE '%.%')", [round]); // a text key move
  if (truncate) await c.query("TRUNCATE log");
  await c.query("INSERT INTO log VALUES ($1, $2)", [round, `round ${round}`]);
}

/**
 * An application writing to PostgreSQL in a loop on its own connection,
 * one transaction per round ({@link pgWrites}), until stopped. Rounds the
 * rollback's freeze refused are counted and not retried: the next round
 * goes on, as an application whose PostgreSQL was taken away. Any other
 * error is kept in `errors` (a deadlock, which applications retry, counted).
 */
export class PgWriter {
  rounds = 0;
  /** The numbers of the rounds committed (each leaves `r<n>a@x` and `r<n>b@x` in accounts). */
  readonly committed: number[] = [];
  deadlocks = 0;
  /** Rounds refused by the rollback's freeze. */
  refused = 0;
  readonly errors: string[] = [];
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(url: string, opts: { truncateEvery?: number; from?: number } = {}) {
    this.done = this.loop(url, opts.truncateEvery ?? 0, opts.from ?? 1000);
  }

  private async loop(url: string, truncateEvery: number, from: number): Promise<void> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      for (let round = from; !this.stopped; round++) {
        try {
          await c.query("BEGIN");
          await pgWrites(c, round, truncateEvery > 0 && round % truncateEvery === 0);
          await c.query("COMMIT");
          this.rounds++;
          this.committed.push(round);
        } catch (e) {
          await c.query("ROLLBACK").catch(() => undefined);
          const msg = (e as Error).message;
          // A deadlock is counted apart: applications retry them, and the tests expect none.
          if (msg.includes(ROLLBACK_FROZEN_MESSAGE)) this.refused++;
          else if ((e as { code?: string }).code === "40P01") this.deadlocks++;
          else this.errors.push(msg);
          if (this.errors.length > 50) return;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  /** Wait for at least `n` more committed rounds. */
  async more(n: number): Promise<void> {
    const want = this.rounds + n;
    await waitFor(`${n} more writer rounds in PostgreSQL`, 60_000, () => {
      if (this.errors.length) throw new Fatal(`the PostgreSQL writer failed: ${this.errors[0]}`);
      return this.rounds >= want;
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

/** After a rollback: PostgreSQL refuses writes with the rollback's message; SQLite takes them, its ids past every id PostgreSQL handed out. */
export async function expectRolledBack(s: FallbackSource): Promise<void> {
  expect(await phaseOf(s.client)).toBe("rolled-back");
  await expect(s.client.query("INSERT INTO log VALUES (0, 'after the rollback')")).rejects.toThrow(ROLLBACK_FROZEN_MESSAGE);
  await expect(s.client.query("UPDATE accounts SET balance = 0")).rejects.toThrow(ROLLBACK_FROZEN_MESSAGE);
  await expect(s.client.query("TRUNCATE kv")).rejects.toThrow(ROLLBACK_FROZEN_MESSAGE);
  const handedOut = Number(
    (
      await s.client.query(
        "SELECT coalesce(last_value, 0) AS v FROM pg_sequences WHERE format('%I.%I', schemaname, sequencename) = pg_get_serial_sequence('public.accounts', 'id')",
      )
    ).rows[0].v,
  );
  const pgMax = Math.max(handedOut, Number((await s.client.query("SELECT max(id) AS m FROM accounts")).rows[0].m));
  const db = new Database(s.path);
  try {
    db.pragma("busy_timeout = 10000");
    const id = Number(db.prepare("INSERT INTO accounts (email, balance) VALUES ('back@sqlite', 1)").run().lastInsertRowid);
    expect(id).toBeGreaterThan(pgMax);
    db.prepare("DELETE FROM accounts WHERE id = ?").run(id);
  } finally {
    db.close();
  }
  expect(await pendingInPg(s.client)).toBeNull(); // the capture left PostgreSQL in the rollback's commit
}
