/**
 * SwitchingDatabase on the way back: a source cut over by a real daemon (a
 * Replicator in this process), then rolled back to its SQLite file. The
 * test plays the daemon's rollback by hand, step by step, as the protocol
 * says:
 *
 *   1. one PostgreSQL transaction: freeze triggers (freezePg), phase
 *      fallback → rolling-back, NOTIFY sqlite2pg_state
 *   2. PostgreSQL's rows into SQLite, checked
 *   3. one PostgreSQL transaction: phase rolling-back → rolled-back,
 *      NOTIFY sqlite2pg_rollback
 *   4. the cutover marker removed, the rollback marker written, SQLite
 *      unfrozen
 *
 * or undoes it before step 3 (unfreezePg, phase rolling-back → fallback,
 * NOTIFY). Every moment in between lasts as long as the test wants: a held
 * write can only be let through by the step the test takes next, and the
 * test checks after which step it was.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { rmSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { cleanup } from "../helpers/db.js";
import { liveSource, stopReplicators } from "../helpers/source.js";
import { waitFor } from "../helpers/daemon.js";
import { SwitchingDatabase } from "../../src/db/switching.js";
import { FreezeTimeoutError } from "../../src/db/errors.js";
import { isRollbackFrozenError } from "../../src/db/frozen.js";
import { DatabaseManager } from "../../src/db/lock.js";
import { postgresTakesWrites, targetOf } from "../../src/db/whereabouts.js";
import { quoteIdent } from "../../src/ident.js";
import { freezePg, unfreezePg, unfrozenPgTables } from "../../src/postgres/freeze.js";
import { inTransaction } from "../../src/postgres/transaction.js";
import { PHASES, Phase, transition } from "../../src/replication/phase.js";
import { markerPath, rollbackMarkerPath, unfreeze } from "../../src/sqlite/freeze.js";

const open: SwitchingDatabase[] = [];
afterEach(async () => {
  for (const db of open.splice(0)) await db.close();
  await stopReplicators();
  await cleanup();
});

const SCHEMA = "CREATE TABLE events (id INTEGER PRIMARY KEY, n INTEGER NOT NULL UNIQUE, writer TEXT NOT NULL);";
const SEED = "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 200) INSERT INTO events (n, writer) SELECT v, 'seed' FROM s;";
/** A PostgreSQL no one listens on: the state cannot be read, the markers decide. */
const UNREACHABLE = "postgres://postgres@127.0.0.1:1/nowhere";

type Source = Awaited<ReturnType<typeof streamingSource>>;

/** A live source, copied and streaming; the cutover's hook fails so the daemon stops at cut-over (see {@link cutOver}). */
async function streamingSource() {
  const s = await liveSource(SCHEMA, {
    rows: SEED,
    options: { batchSize: 500, chunkRows: 1000, cutover: { validate: "counts", maxFreezeMs: 20_000, onCutover: "exit 1" } },
  });
  s.db.close();
  await s.rep.syncOnce();
  return s;
}

/**
 * The daemon's cutover, then phase fallback. The daemon's own fallback is
 * not this test's subject: its --on-cutover command fails, so the cutover
 * stays committed in phase cut-over (marker written), and the test enters
 * fallback itself, as the protocol allows.
 */
async function cutOver(s: Source): Promise<void> {
  const e = await s.rep.cutoverNow().catch((x: unknown) => x);
  expect(e).toMatchObject({ code: "HOOK_FAILED" });
  await transition(s.client, s.sourceId, Phase.cutOver, Phase.fallback);
}

async function cutOverSource(): Promise<Source> {
  const s = await streamingSource();
  await cutOver(s);
  return s;
}

/** Rollback step 1: PostgreSQL refuses writes and the phase is rolling-back, in one transaction, with the notice. */
async function freezePostgres(s: Source): Promise<void> {
  await inTransaction(s.client, async () => {
    await freezePg(s.client, "public", ["events"]);
    expect(await unfrozenPgTables(s.client, "public", ["events"])).toEqual([]);
    await transition(s.client, s.sourceId, Phase.fallback, Phase.rollingBack);
    await s.client.query("SELECT pg_notify('sqlite2pg_state', $1)", [s.sourceId]);
  });
}

/** The rollback undone before step 3: PostgreSQL takes writes again, phase fallback, with the notice. */
async function undoRollback(s: Source): Promise<void> {
  await inTransaction(s.client, async () => {
    await unfreezePg(s.client, "public", ["events"]);
    expect(await unfrozenPgTables(s.client, "public", ["events"])).toEqual(["events"]);
    await transition(s.client, s.sourceId, Phase.rollingBack, Phase.fallback);
    await s.client.query("SELECT pg_notify('sqlite2pg_state', $1)", [s.sourceId]);
  });
}

/**
 * Rollback step 2: PostgreSQL's rows into SQLite, then checked. SQLite is
 * still frozen by the cutover: the rows go in past its freeze triggers, in
 * one transaction that drops and re-creates them, so no other connection
 * ever sees SQLite take writes.
 */
async function drain(s: Source): Promise<void> {
  const rows = (await s.client.query<{ id: string; n: string; writer: string }>("SELECT id, n, writer FROM public.events ORDER BY id")).rows;
  const db = new Database(s.path);
  try {
    db.pragma("busy_timeout = 10000");
    db.transaction(() => {
      const triggers = (db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger'").all() as { name: string; sql: string }[]).filter((t) =>
        /^_sqlite2pg_f(ins|upd|del)_/.test(t.name),
      );
      if (triggers.length !== 3) throw new Error(`SQLite should be frozen by the cutover; its freeze triggers: ${triggers.map((t) => t.name).join(", ")}`);
      for (const t of triggers) db.exec(`DROP TRIGGER main.${quoteIdent(t.name)}`);
      db.exec("DELETE FROM events");
      const put = db.prepare("INSERT INTO events (id, n, writer) VALUES (?, ?, ?)");
      for (const r of rows) put.run(Number(r.id), Number(r.n), r.writer);
      for (const t of triggers) db.exec(t.sql);
    }).immediate();
  } finally {
    db.close();
  }
  expect(sqliteRows(s.path)).toEqual(rows.map((r) => ({ id: Number(r.id), n: Number(r.n), writer: r.writer })));
}

/** Rollback step 3: the phase rolled-back, with its notice, in one transaction. */
async function commitRollback(s: Source): Promise<void> {
  await inTransaction(s.client, async () => {
    await transition(s.client, s.sourceId, Phase.rollingBack, Phase.rolledBack);
    await s.client.query("SELECT pg_notify('sqlite2pg_rollback', $1)", [JSON.stringify({ source_id: s.sourceId, schema: "public" })]);
  });
}

/** Rollback step 4, first half: the cutover marker removed, the rollback marker written. */
function swapMarkers(s: Source): void {
  rmSync(markerPath(s.path));
  writeFileSync(rollbackMarkerPath(s.path), JSON.stringify({ source_id: s.sourceId, schema: "public", rolled_back_at: new Date().toISOString() }));
}

/** Rollback step 4, second half: SQLite takes writes again. */
function unfreezeSqlite(s: Source): void {
  const db = new Database(s.path);
  try {
    unfreeze(db);
  } finally {
    db.close();
  }
}

function switching(path: string, url: string, freezeWaitMs = 10_000): SwitchingDatabase {
  const db = new SwitchingDatabase({ sqlite: path, pg: url, freezeWaitMs });
  open.push(db);
  return db;
}

function sqliteRows(path: string): { id: number; n: number; writer: string }[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare("SELECT id, n, writer FROM events ORDER BY id").all() as { id: number; n: number; writer: string }[];
  } finally {
    db.close();
  }
}

function sqliteNs(path: string): number[] {
  return sqliteRows(path)
    .map((r) => r.n)
    .sort((a, b) => a - b);
}

async function pgNs(client: import("pg").Client): Promise<number[]> {
  return (await client.query("SELECT n FROM public.events ORDER BY n")).rows.map((r) => Number(r.n));
}

describe("SwitchingDatabase on the way back", () => {
  it("knows every phase the daemon writes: where each says the data is, and in which PostgreSQL refuses writes", () => {
    // src/db may not import the daemon: its own copy of the names must cover every phase, a new one too.
    expect(Object.fromEntries(PHASES.map((p) => [p, targetOf(p)]))).toEqual({
      [Phase.new]: "sqlite",
      [Phase.snapshot]: "sqlite",
      [Phase.catchUp]: "sqlite",
      [Phase.streaming]: "sqlite",
      [Phase.cutoverCatchUp]: "sqlite",
      [Phase.frozen]: "sqlite",
      [Phase.cutOver]: "postgres",
      [Phase.fallback]: "postgres",
      [Phase.rollingBack]: "postgres",
      [Phase.rolledBack]: "sqlite",
      [Phase.done]: "postgres",
    });
    expect(PHASES.filter((p) => !postgresTakesWrites(p))).toEqual([Phase.rollingBack, Phase.rolledBack]);
  });

  it("writes keep going through the cutover and back: every acknowledged write once in SQLite, each writer's in order, nothing in PostgreSQL after its freeze", async () => {
    const s = await streamingSource();
    const db = switching(s.path, s.url);
    const switched: string[] = [];
    const watched = new SwitchingDatabase({ sqlite: s.path, pg: s.url, onSwitch: (to) => switched.push(to) });
    open.push(watched);
    await watched.ready();
    let next = 1000;
    const acked: { n: number; writer: string }[] = [];
    const errors: unknown[] = [];
    let stop = false;
    const writer = async (name: string, inTransactions: boolean) => {
      while (!stop) {
        const n = next++;
        try {
          if (inTransactions) {
            await new DatabaseManager(db).distributedLock("writer-c", async (tx) => {
              await tx.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [n, name]);
              await tx.execute("UPDATE events SET writer = ? WHERE n = ?", [name, n]);
            });
          } else {
            await db.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [n, name]);
          }
          acked.push({ n, writer: name });
        } catch (e) {
          errors.push(e);
        }
        await sleep(1);
      }
    };
    const writers = [writer("a", false), writer("b", false), writer("c", true)];
    const moreWrites = async (what: string) => {
      const from = acked.length;
      await waitFor(what, 60_000, () => acked.length >= from + 30);
    };
    await moreWrites("writes on SQLite");
    await cutOver(s);
    await waitFor("the switch to PostgreSQL", 60_000, () => db.dialect === "postgres");
    await moreWrites("writes on PostgreSQL");

    await freezePostgres(s);
    const frozenPg = await pgNs(s.client);
    // Reads during rolling-back still go to PostgreSQL: its data is complete and cannot change.
    expect((await watched.query<{ n: number }>("SELECT n FROM events ORDER BY n")).map((r) => Number(r.n))).toEqual(frozenPg);
    expect(watched.dialect).toBe("postgres");
    // A write made now is refused by PostgreSQL's freeze and held; SQLite stays frozen until step 4 ends.
    let step = 1;
    let heldLanded = 0;
    const held = db.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [900_000, "held"]).then((r) => {
      heldLanded = step;
      return r;
    });
    await drain(s);
    step = 2;
    await commitRollback(s);
    step = 3;
    swapMarkers(s);
    unfreezeSqlite(s);
    step = 4;
    expect((await held).rowsAffected).toBe(1);
    expect(heldLanded).toBe(4);
    await waitFor("the switch back to SQLite", 60_000, () => db.dialect === "sqlite" && watched.dialect === "sqlite");
    await moreWrites("writes on SQLite again");
    stop = true;
    await Promise.all(writers);
    expect(errors).toEqual([]);

    // Exactly the seed and the acknowledged writes, each once, in SQLite.
    const expected = [...Array.from({ length: 200 }, (_, i) => i + 1), ...acked.map((a) => a.n), 900_000].sort((x, y) => x - y);
    expect(sqliteNs(s.path)).toEqual(expected);
    // Nothing reached PostgreSQL after its freeze.
    expect(await pgNs(s.client)).toEqual(frozenPg);
    // Each writer's writes in the order it made them: ids grow with n, across both switches.
    const rows = sqliteRows(s.path);
    for (const w of ["a", "b", "c"]) {
      const ns = rows.filter((r) => r.writer === w).map((r) => r.n);
      expect(ns.length).toBeGreaterThan(30);
      expect(ns).toEqual([...ns].sort((x, y) => x - y));
    }
    // Reads come from SQLite again: a row only SQLite has is seen, by a handle that only listened too.
    const file = new Database(s.path);
    file.prepare("INSERT INTO events (n, writer) VALUES (?, ?)").run(-1, "sqlite only");
    file.close();
    expect(await watched.query("SELECT writer FROM events WHERE n = ?", [-1])).toEqual([{ writer: "sqlite only" }]);
    expect(switched).toEqual(["postgres", "sqlite"]);
  }, 180_000);

  it("holds a write PostgreSQL refused for the rollback, and every call after it, and runs them on PostgreSQL when the rollback is undone", async () => {
    const s = await cutOverSource();
    const db = switching(s.path, s.url);
    await db.ready();
    expect(db.dialect).toBe("postgres");
    await freezePostgres(s);
    let attempts = 0;
    let refused!: () => void;
    const wasRefused = new Promise<void>((resolve) => {
      refused = resolve;
    });
    const tx = db.transaction(async (t) => {
      attempts++;
      try {
        await t.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [8000, "held transaction"]);
      } catch (e) {
        if (isRollbackFrozenError(e)) refused();
        throw e;
      }
      return attempts;
    });
    await wasRefused;
    await waitFor("the refused transaction held", 30_000, () => db.held);
    // Made while it is held: in line behind it, in this order.
    const write = db.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [8001, "in line"]);
    const read = db.query<{ n: number }>("SELECT n FROM events WHERE n >= ? ORDER BY id", [8000]);
    await undoRollback(s);
    expect(await tx).toBe(2);
    expect((await write).rowsAffected).toBe(1);
    expect(await read).toEqual([{ n: 8000 }, { n: 8001 }]);
    expect(db.dialect).toBe("postgres");
    expect(db.held).toBe(false);
    const inPg = await pgNs(s.client);
    expect(inPg.filter((n) => n >= 8000)).toEqual([8000, 8001]);
    expect(sqliteNs(s.path).filter((n) => n >= 8000)).toEqual([]);
  }, 120_000);

  it("fails a write held longer than freezeWaitMs during a rollback with FreezeTimeoutError, having written nothing anywhere", async () => {
    const s = await cutOverSource();
    const db = switching(s.path, s.url, 300);
    await db.ready();
    await freezePostgres(s);
    const e = await db.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [7000, "too late"]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FreezeTimeoutError);
    expect(e).toMatchObject({ kind: "freeze_timeout", dialect: "postgres", retryable: true });
    expect((e as Error).message).toContain("PostgreSQL stayed frozen for the rollback");
    expect(await pgNs(s.client)).not.toContain(7000);
    expect(sqliteNs(s.path)).not.toContain(7000);
    // The rollback undone: run again, it lands on PostgreSQL.
    await undoRollback(s);
    await db.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [7000, "again"]);
    expect(await pgNs(s.client)).toContain(7000);
    expect(sqliteNs(s.path)).not.toContain(7000);
  }, 120_000);

  it("a handle opened after a rollback starts on SQLite: the state, and without it the rollback marker, win over a cutover marker that survived", async () => {
    const s = await cutOverSource();
    await freezePostgres(s);
    await drain(s);
    await commitRollback(s);
    // As if the daemon died right after step 3: the cutover marker is still there, SQLite still frozen.
    const db = switching(s.path, s.url);
    await db.ready();
    expect(db.dialect).toBe("sqlite");
    const impatient = switching(s.path, s.url, 300);
    const e = await impatient.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [9000, "too late"]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FreezeTimeoutError);
    expect(e).toMatchObject({ kind: "freeze_timeout", dialect: "sqlite" });
    expect((e as Error).message).toContain("the rollback committed but SQLite stayed frozen");
    let unfrozen = false;
    let landedUnfrozen: boolean | null = null;
    const write = db.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [9001, "held"]).then((r) => {
      landedUnfrozen = unfrozen;
      return r;
    });
    swapMarkers(s);
    writeFileSync(markerPath(s.path), JSON.stringify({ source_id: s.sourceId, schema: "public" })); // a cutover marker that survived
    unfreezeSqlite(s);
    unfrozen = true;
    expect((await write).rowsAffected).toBe(1);
    expect(landedUnfrozen).toBe(true);
    expect(sqliteNs(s.path)).toContain(9001);
    expect(sqliteNs(s.path)).not.toContain(9000);
    expect(await pgNs(s.client)).not.toContain(9001);

    // The state out of reach: the markers decide, the rollback's first.
    const away = switching(s.path, UNREACHABLE);
    await away.ready();
    expect(away.dialect).toBe("sqlite");
    await away.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [9002, "markers"]);
    expect(sqliteNs(s.path)).toContain(9002);
    // A rollback marker of another source does not count: then the cutover's sends it to PostgreSQL.
    writeFileSync(rollbackMarkerPath(s.path), JSON.stringify({ source_id: "an-earlier-source", schema: "public" }));
    const misled = switching(s.path, UNREACHABLE);
    await misled.ready();
    expect(misled.dialect).toBe("postgres");
    // With the state readable, the state decides whatever the markers say.
    const later = switching(s.path, s.url);
    await later.ready();
    expect(later.dialect).toBe("sqlite");
  }, 120_000);

  it("runs a transaction that PostgreSQL's freeze refused half way again, whole, on SQLite", async () => {
    const s = await cutOverSource();
    const db = switching(s.path, s.url);
    await db.ready();
    let hasRead!: () => void;
    const read = new Promise<void>((resolve) => {
      hasRead = resolve;
    });
    let letGo!: () => void;
    const gate = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    const seen: { on: string; rows: number }[] = [];
    const tx = db.transaction(async (t) => {
      const [r] = await t.query<{ c: number }>("SELECT count(*) AS c FROM events");
      seen.push({ on: db.dialect, rows: Number(r!.c) });
      if (seen.length === 1) {
        hasRead();
        await gate; // the first run waits here, its read done, while the test freezes PostgreSQL
      }
      await t.execute("INSERT INTO events (n, writer) VALUES (?, ?)", [10_000, "tx"]);
      await t.execute("UPDATE events SET writer = ? WHERE n = ?", ["tx, whole", 10_000]);
      return seen.length;
    });
    await read;
    await freezePostgres(s); // the transaction only read: it holds nothing the freeze waits for
    letGo();
    await waitFor("the refused transaction held", 30_000, () => db.held);
    await drain(s);
    await commitRollback(s);
    swapMarkers(s);
    unfreezeSqlite(s);
    expect(await tx).toBe(2);
    expect(seen).toEqual([
      { on: "postgres", rows: 200 },
      { on: "sqlite", rows: 200 },
    ]);
    expect(sqliteRows(s.path).filter((r) => r.n === 10_000)).toMatchObject([{ writer: "tx, whole" }]);
    expect(await pgNs(s.client)).not.toContain(10_000);
  }, 120_000);
});
