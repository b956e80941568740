/**
 * Keys are identity, and SQLite keys on the spelling: '2024-01-01 10:00:00'
 * and '2024-01-01T10:00:00' are two keys, 1 and 'true' are two keys. A key
 * column keeps a conversion that would make them one Postgres value
 * (timestamp, timestamptz, boolean) only while every value is in the one
 * spelling the conversion renders back; otherwise it is text, exactly as
 * written. A value in another spelling written later is refused by name,
 * never deleting the other row's copy. Conversions that are one-to-one
 * (dates, epoch instants, numbers) keep their types.
 */
import { afterEach, describe, expect, it } from "vitest";
import { cleanup, freshDatabase } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { Replicator } from "../../src/replication/replicator.js";
import { migrate } from "../../src/migrate/migrate.js";
import { silentLogger } from "../../src/observe/logger.js";
import { CHANGES } from "../../src/sqlite/capture.js";
import { loadState } from "../../src/replication/state.js";
import { liveSource, stopReplicators } from "../helpers/source.js";

afterEach(async () => {
  await stopReplicators();
  await cleanup();
});

async function setup(sql: string, rows?: string) {
  const s = await liveSource(sql, { rows, options: { chunkRows: 3 } });
  const { db, client, sourceId } = s;
  const pending = async () => {
    const applied = (await loadState(client, sourceId))!.appliedSeq;
    return (db.prepare(`SELECT count(*) AS n FROM ${CHANGES} WHERE seq > ?`).get(applied) as { n: number }).n;
  };
  return { ...s, pending };
}

const typeOf = async (client: { query: (q: string, p: unknown[]) => Promise<{ rows: { data_type: string }[] }> }, table: string, column: string) =>
  (
    await client.query("SELECT data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2", [
      table,
      column,
    ])
  ).rows[0]?.data_type;

const runMigrate = (sqlite: string, url: string) =>
  migrate({ sqlite, pg: url, schema: "public", jobs: 2, preserveCase: false, dropExisting: false, fixText: false, log: silentLogger() });

describe("key columns whose conversion would make two SQLite keys one", () => {
  it("keeps a timestamp key in its one spelling, and refuses another spelling written later without deleting the other row", async () => {
    const s = await setup(
      `CREATE TABLE ev (at DATETIME PRIMARY KEY, v TEXT) WITHOUT ROWID;
       CREATE TABLE log (id INTEGER PRIMARY KEY, at TIMESTAMP UNIQUE, v TEXT);`,
      `INSERT INTO ev VALUES ('2024-01-01 10:00:00', 'a'), ('2024-01-02 10:00:00.5', 'b');
       INSERT INTO log (at, v) VALUES ('2024-01-01 10:00:00', 'x');`,
    );
    await s.exact();
    expect(await typeOf(s.client, "ev", "at")).toBe("timestamp without time zone");
    let day = 10;
    for (const [table, sql, key, bad] of [
      ["ev", "INSERT INTO ev VALUES ('2024-01-01T10:00:00', 'second spelling')", "at='2024-01-01T10:00:00'", "2024-01-01T10:00:00"],
      ["ev", "INSERT INTO ev VALUES ('2024-01-01', 'midnight as a date')", "at='2024-01-01'", "2024-01-01"],
      ["ev", "INSERT INTO ev VALUES ('2024-01-02 10:00:00.500', 'trailing zeros')", "at='2024-01-02 10:00:00.500'", "2024-01-02 10:00:00.500"],
      ["log", "INSERT INTO log (id, at, v) VALUES (7, '2024-01-01T10:00:00', 'y')", "id=7", "2024-01-01T10:00:00"],
    ] as const) {
      const before = (await s.client.query(`SELECT * FROM ${table} ORDER BY 1`)).rows;
      s.db.exec(sql);
      const err = await s.rep.syncOnce().catch((e) => e);
      expect(err.code, sql).toBe("VALUE_REFUSED");
      expect(err.message).toContain(`table ${table}, column at, ${key}: a key timestamp not spelled as Postgres renders it back`);
      // Nothing deleted or written in Postgres, and the change waits in the changelog.
      expect((await s.client.query(`SELECT * FROM ${table} ORDER BY 1`)).rows).toEqual(before);
      expect(await s.pending()).toBeGreaterThan(0);
      // Fixed in SQLite (the row rewritten in the canonical spelling): it resumes, exact.
      s.db.prepare(`UPDATE ${table} SET at = ? WHERE at = ?`).run(`2024-03-${day++} 00:00:00`, bad);
      await s.exact();
    }
    expect((await s.client.query("SELECT count(*)::int AS n FROM ev")).rows[0].n).toBe(5);
  });

  it("keeps a key column holding other spellings (T, date alone, zones, trailing zeros) as text, exact while streaming and in migrate", async () => {
    const s = await setup(
      `CREATE TABLE ev (at DATETIME PRIMARY KEY, v TEXT) WITHOUT ROWID;
       CREATE TABLE tz (at TIMESTAMPTZ PRIMARY KEY, v TEXT) WITHOUT ROWID;
       CREATE TABLE u (id INTEGER PRIMARY KEY, at DATETIME UNIQUE);`,
      `INSERT INTO ev VALUES ('2024-01-01 10:00:00', 'a'), ('2024-01-01T10:00:00', 'b'), ('2024-01-02', 'c'), ('2024-01-02 00:00:00', 'd'),
         ('2024-01-03 10:00:00.5', 'e'), ('2024-01-03 10:00:00.500', 'f');
       INSERT INTO tz VALUES ('2024-01-01T10:00:00Z', 'utc'), ('2024-01-01T12:00:00+02:00', 'same instant'), ('2024-01-01T10:00:00+00:00', 'again');
       INSERT INTO u (at) VALUES ('2024-01-01 10:00:00'), ('2024-01-01T10:00:00');`,
    );
    await s.exact();
    expect(await typeOf(s.client, "ev", "at")).toBe("text");
    expect(await typeOf(s.client, "tz", "at")).toBe("text");
    expect(await typeOf(s.client, "u", "at")).toBe("text");
    expect((await s.client.query("SELECT count(*)::int AS n FROM ev")).rows[0].n).toBe(6);
    expect((await s.client.query("SELECT count(*)::int AS n FROM tz")).rows[0].n).toBe(3);
    s.db.exec(`INSERT INTO ev VALUES ('2024-01-03T10:00:00.5', 'g'); UPDATE ev SET v = 'z' WHERE at = '2024-01-01T10:00:00';
      DELETE FROM ev WHERE at = '2024-01-02'; INSERT INTO tz VALUES ('2024-01-01T05:00:00-05:00', 'third');
      INSERT INTO u (at) VALUES ('2024-01-01 10:00:00.000');`);
    await s.exact();
    expect((await s.client.query("SELECT v FROM ev ORDER BY at")).rows.map((r) => r.v)).toEqual(["a", "z", "d", "e", "f", "g"]);
    const m = await freshDatabase();
    await runMigrate(s.path, m.url);
    expect((await compareDatabases(s.path, m.client)).differences).toEqual([]);
    expect(await typeOf(m.client, "ev", "at")).toBe("text");
  });

  it("booleans: a key holding 1 and 'true' is refused by name; a 0/1 key refuses a word written later", async () => {
    const s = await setup(
      `CREATE TABLE f (k TEXT, flag BOOLEAN, PRIMARY KEY (k, flag)) WITHOUT ROWID;`,
      `INSERT INTO f VALUES ('a', 1), ('a', 'true'), ('b', 0);`,
    );
    const err = await s.rep.syncOnce().catch((e) => e);
    expect(err.code).toBe("VALUES_REFUSED");
    expect(err.message).toMatch(/table f, column flag: a key column/);
    expect(err.message).toMatch(/\(k,flag\)=\('a','true'\)/);
    const mig = await runMigrate(s.path, (await freshDatabase()).url).catch((e) => e);
    expect(mig.code).toBe("VALUES_REFUSED");

    const t = await setup(`CREATE TABLE f (k TEXT, flag BOOLEAN, PRIMARY KEY (k, flag)) WITHOUT ROWID;`, `INSERT INTO f VALUES ('a', 1), ('b', 0);`);
    await t.exact();
    expect(await typeOf(t.client, "f", "flag")).toBe("boolean");
    t.db.exec("INSERT INTO f VALUES ('a', 'true')");
    const e2 = await t.rep.syncOnce().catch((e) => e);
    expect(e2.code).toBe("VALUE_REFUSED");
    expect(e2.message).toContain("table f, column flag, (k,flag)=('a','true'): a boolean key spelled as a word");
    expect((await t.client.query("SELECT k, flag FROM f ORDER BY k")).rows).toEqual([
      { k: "a", flag: true },
      { k: "b", flag: false },
    ]);
    expect(await t.pending()).toBe(1);
    t.db.exec("DELETE FROM f WHERE flag = 'true'; INSERT INTO f VALUES ('c', 1)");
    await t.exact();
  });

  it("one-to-one conversions keep their types: epoch instants, dates, numbers (1 and 1.0 are one key in SQLite too)", async () => {
    const s = await setup(
      `CREATE TABLE ep (at DATETIME PRIMARY KEY, v TEXT) WITHOUT ROWID;
       CREATE TABLE d (day DATE PRIMARY KEY, v TEXT) WITHOUT ROWID;
       CREATE TABLE n (k PRIMARY KEY, v TEXT) WITHOUT ROWID;`,
      `INSERT INTO ep VALUES (1700000000, 'a'), (1700000001, 'b');
       INSERT INTO d VALUES ('2024-01-01', 'a');
       INSERT INTO n VALUES (1, 'one'), (2.5, 'two and a half');`,
    );
    await s.exact();
    expect(await typeOf(s.client, "ep", "at")).toBe("timestamp with time zone");
    expect(await typeOf(s.client, "d", "day")).toBe("date");
    expect(await typeOf(s.client, "n", "k")).toBe("double precision");
    expect(() => s.db.exec("INSERT INTO n VALUES (1.0, 'the same key')")).toThrow(/UNIQUE constraint failed/);
    s.db.exec(`INSERT INTO ep VALUES (1700000002, 'c'); INSERT INTO d VALUES ('2024-01-02', 'b'); INSERT INTO n VALUES (3, 'three');`);
    await s.exact();
    // A date spelled with a time is refused by the date column itself, not read as the other day's row.
    s.db.exec("INSERT INTO d VALUES ('2024-01-01 00:00:00', 'same day')");
    const err = await s.rep.syncOnce().catch((e) => e);
    expect(err.code).toBe("VALUE_REFUSED");
    expect(err.message).toContain("table d, column day, day='2024-01-01 00:00:00'");
    expect((await s.client.query("SELECT v FROM d ORDER BY day")).rows.map((r) => r.v)).toEqual(["a", "b"]);
  });

  it("after an upgrade, a table whose timestamp key an older version typed without the spelling check is planned and copied again", async () => {
    const s = await setup(
      "CREATE TABLE ev (at DATETIME PRIMARY KEY, v TEXT) WITHOUT ROWID;",
      "INSERT INTO ev VALUES ('2024-01-01 10:00:00', 'a'), ('2024-01-02 10:00:00', 'b');",
    );
    await s.exact();
    await s.rep.stop();
    // The plan as an older version stored it: the key column typed timestamp, unmarked.
    await s.client.query(`UPDATE sqlite2pg.state SET plan = regexp_replace(plan::text, ',\\s*"keyExact":\\s*true', '', 'g')::jsonb`);
    expect((await s.client.query("SELECT plan::text AS p FROM sqlite2pg.state")).rows[0].p).not.toContain("keyExact");
    s.db.exec("INSERT INTO ev VALUES ('2024-01-01T10:00:00', 'second spelling')");
    const rep = new Replicator({ sqlite: s.path, pg: s.url, log: silentLogger(), pollIntervalMs: 0, watch: false, batchSize: 50, chunkRows: 3 });
    try {
      await rep.syncOnce();
    } finally {
      await rep.stop();
    }
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
    expect(await typeOf(s.client, "ev", "at")).toBe("text");
    expect((await s.client.query("SELECT v FROM ev ORDER BY at")).rows.map((r) => r.v)).toEqual(["a", "second spelling", "b"]);
  });
});
