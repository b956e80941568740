/**
 * Values written after the census, in the live path: every value Postgres
 * holds is what SQLite holds, or the apply stops naming table, column and
 * key, keeping the change. And validate --full hashes the raw SQLite value
 * against the stored Postgres value rendered back by the inverse of its
 * conversion, so a lossy conversion cannot hide.
 */
import { afterEach, describe, expect, it } from "vitest";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { compareDatabases } from "../helpers/compare.js";
import { migrate } from "../../src/migrate/migrate.js";
import { silentLogger } from "../../src/observe/logger.js";
import { loadState } from "../../src/replication/state.js";
import { validate } from "../../src/validate/validate.js";
import { Sqlite2pgError } from "../../src/errors.js";
import { liveSource, stopReplicators } from "../helpers/source.js";

afterEach(async () => {
  await stopReplicators();
  await cleanup();
});

async function setup(sql: string) {
  const s = await liveSource(sql);
  const { db, client, sourceId } = s;
  /** validate --full as the CLI runs it while replicating: with the types of the replication's plan. */
  const full = async (mode: "full" | "counts" = "full") => validate(db, client, (await loadState(client, sourceId))!.plan!, mode);
  return { ...s, full };
}

/** The error a promise rejects with. */
async function failure(p: Promise<unknown>): Promise<Sqlite2pgError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(Sqlite2pgError);
  return e as Sqlite2pgError;
}

const GENERATED = `
  CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL, label TEXT GENERATED ALWAYS AS (name || ' @ ' || price) STORED);
  INSERT INTO item (id, name, price) VALUES (1, 'cup', 2.5), (2, 'mug', 3.25);
`;

describe("a generated column Postgres computes is checked against SQLite's value", () => {
  it("in the live apply: refused naming table, column and key, the change kept until the values agree", async () => {
    const s = await setup(GENERATED);
    await s.rep.syncOnce();
    expect((await s.client.query("SELECT label FROM item ORDER BY id")).rows.map((r) => r.label)).toEqual(["cup @ 2.5", "mug @ 3.25"]);
    const before = (await loadState(s.client, s.sourceId))!.appliedSeq;

    s.db.prepare("INSERT INTO item (id, name, price) VALUES (3, 'pen', 2.0)").run();
    expect((s.db.prepare("SELECT label FROM item WHERE id = 3").get() as { label: string }).label).toBe("pen @ 2.0");
    const e = await failure(s.rep.syncOnce());
    expect(e.code).toBe("VALUE_REFUSED");
    expect(e.message).toContain("table item, column label, id=3");
    expect(e.message).toContain("'pen @ 2'");
    expect(e.message).toContain("'pen @ 2.0'");
    expect(e.context).toMatchObject({ table: "item", column: "label", key: "id=3" });
    // Nothing of the batch was committed: the change waits in the changelog.
    expect((await loadState(s.client, s.sourceId))!.appliedSeq).toBe(before);
    expect((await s.client.query("SELECT count(*)::int AS n FROM item WHERE id = 3")).rows[0].n).toBe(0);

    // The operator makes the value one both compute alike: the kept change applies.
    s.db.prepare("UPDATE item SET price = 2.75 WHERE id = 3").run();
    await s.rep.syncOnce();
    expect((await s.client.query("SELECT label FROM item WHERE id = 3")).rows[0].label).toBe("pen @ 2.75");
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
    expect((await s.full()).ok).toBe(true);
  });

  it("in the snapshot: a chunk holding such a row is refused, naming the key", async () => {
    const s = await setup(GENERATED + "INSERT INTO item (id, name, price) VALUES (9, 'pen', 2.0);");
    const e = await failure(s.rep.syncOnce());
    expect(e.code).toBe("VALUE_REFUSED");
    expect(e.message).toContain("table item, column label, id=9");
  });

  it("in a WITHOUT ROWID table with a composite key, naming the key", async () => {
    const s = await setup(`
      CREATE TABLE price (shop TEXT, sku INTEGER, amount REAL, half REAL GENERATED ALWAYS AS (amount / 2) VIRTUAL, tag TEXT GENERATED ALWAYS AS (shop || ':' || amount) STORED, PRIMARY KEY (shop, sku)) WITHOUT ROWID;
      INSERT INTO price (shop, sku, amount) VALUES ('a', 1, 1.5), ('b b', 2, 7.25);
    `);
    await s.rep.syncOnce();
    expect((await s.client.query("SELECT tag FROM price ORDER BY shop")).rows.map((r) => r.tag)).toEqual(["a:1.5", "b b:7.25"]);
    s.db.prepare("INSERT INTO price (shop, sku, amount) VALUES ('c''d', 3, 4.0)").run();
    const e = await failure(s.rep.syncOnce());
    expect(e.message).toContain("table price, column tag, (shop,sku)=('c''d',3)");
    s.db.prepare("UPDATE price SET amount = 4.5 WHERE sku = 3").run();
    await s.rep.syncOnce();
    expect((await compareDatabases(s.path, s.client)).differences).toEqual([]);
    expect((await s.full()).ok).toBe(true);
  });

  it("in migrate: the copy's validation names the row", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, GENERATED + "INSERT INTO item (id, name, price) VALUES (7, 'pen', 2.0);");
    const { url } = await freshDatabase();
    const e = await failure(
      migrate({ sqlite: path, pg: url, schema: "public", jobs: 1, preserveCase: false, dropExisting: false, fixText: false, log: silentLogger() }),
    );
    expect(e.code).toBe("VALIDATION_MISMATCH");
    expect(e.message).toContain("table item");
    expect(e.message).toContain("id=7 (values differ)");
  });
});

describe("unix times written after the census", () => {
  const EPOCH = `
    CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME, at_ms TIMESTAMP);
    INSERT INTO ev VALUES (1, 1700000000, 1700000000123);
  `;

  it("convert exactly to microseconds, and finer ones are refused naming the key", async () => {
    const s = await setup(EPOCH);
    await s.rep.syncOnce();
    const types = (
      await s.client.query(
        "SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'ev'::regclass AND attname IN ('at', 'at_ms') ORDER BY attnum",
      )
    ).rows.map((r) => r.t);
    expect(types).toEqual(["timestamp with time zone", "timestamp with time zone"]);
    s.db.prepare("INSERT INTO ev VALUES (2, 1700000200.123456, 1700000200123.456)").run();
    s.db.prepare("INSERT INTO ev VALUES (3, -1.5, 1700000200000)").run();
    await s.rep.syncOnce();
    await s.client.query("SET TimeZone = 'UTC'");
    const r = (await s.client.query("SELECT id, at::text, at_ms::text FROM ev ORDER BY id")).rows;
    expect(r[1]).toEqual({ id: "2", at: "2023-11-14 22:16:40.123456+00", at_ms: "2023-11-14 22:16:40.123456+00" });
    expect(r[2].at).toBe("1969-12-31 23:59:58.5+00");
    expect((await s.full()).ok).toBe(true);

    s.db.prepare("INSERT INTO ev VALUES (4, 1700000200.1234567, NULL)").run();
    const e = await failure(s.rep.syncOnce());
    expect(e.code).toBe("VALUE_REFUSED");
    expect(e.message).toContain("table ev, column at, id=4");
    expect(e.message).toMatch(/finer than the microseconds/);
    s.db.prepare("UPDATE ev SET at = 1700000200.5 WHERE id = 4").run();
    await s.rep.syncOnce();
    expect((await s.client.query("SELECT at::text FROM ev WHERE id = 4")).rows[0].at).toBe("2023-11-14 22:16:40.5+00");
    expect((await s.full()).ok).toBe(true);
  });
});

describe("validate --full hashes the source's raw value, not the converted one", () => {
  const KINDS = `
    CREATE TABLE k (id INTEGER PRIMARY KEY, at DATETIME, jd DATETIME, price NUMERIC(10,2), ok BOOLEAN, ts DATETIME, day DATE, r REAL);
    INSERT INTO k VALUES (1, 1700000000, 2460000.25, 2.5, 1, '2024-01-02T03:04:05.5', '2024-01-02', 0.1);
    INSERT INTO k VALUES (2, 1700000001, 2460000.5, 0.99, 'no', '2024-01-02 03:04:05', '2024-01-03', 1e300);
    INSERT INTO k VALUES (3, 1700000002, 2460001.75, 12, 0, '2024-01-02 03:04:05.123456', '2024-01-04', -0.0);
  `;
  /** Each lossy step the old conversions took, forced into Postgres by hand, and the row it hits. */
  const LOSSES: [string, string][] = [
    ["UPDATE k SET at = at + interval '1 microsecond' WHERE id = 2", "id=2"],
    ["UPDATE k SET jd = date_trunc('second', jd) + interval '1 millisecond' WHERE id = 1", "id=1"],
    ["UPDATE k SET price = 0.98 WHERE id = 2", "id=2"],
    ["UPDATE k SET ok = NOT ok WHERE id = 3", "id=3"],
    ["UPDATE k SET ts = date_trunc('milliseconds', ts) WHERE id = 3", "id=3"],
    ["UPDATE k SET day = day + 1 WHERE id = 1", "id=1"],
    ["UPDATE k SET r = 0.1::float4::float8 WHERE id = 1", "id=1"],
  ];

  it("a value changed on the way (the old millisecond cut, a rounding, a flipped boolean) is found, naming the key", async () => {
    const s = await setup(KINDS);
    await s.rep.syncOnce();
    const types = (
      await s.client.query(
        "SELECT attname, format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'k'::regclass AND attnum > 0 ORDER BY attnum",
      )
    ).rows;
    expect(Object.fromEntries(types.map((r) => [r.attname, r.t]))).toMatchObject({
      at: "timestamp with time zone",
      jd: "timestamp with time zone",
      price: "numeric(10,2)",
      ok: "boolean",
      ts: "timestamp without time zone",
      day: "date",
      r: "double precision",
    });
    expect((await s.full()).ok).toBe(true);
    for (const [sql, key] of LOSSES) {
      await s.client.query("BEGIN");
      await s.client.query(sql);
      const counts = await s.full("counts");
      expect(counts.ok).toBe(true); // counts cannot see it
      const rep = await s.full();
      await s.client.query("ROLLBACK");
      expect(rep.ok, sql).toBe(false);
      expect(rep.tables.find((t) => t.table === "k")!.differences, sql).toEqual([{ key, kind: "values differ" }]);
    }
    expect((await s.full()).ok).toBe(true);
  });

  it("a julian day that is not a whole millisecond is not converted: kept as double precision, or refused later", async () => {
    const s = await setup(`
      CREATE TABLE j (id INTEGER PRIMARY KEY, a DATETIME, b DATETIME);
      INSERT INTO j VALUES (1, 2460000.123456789, 2460000.25);
    `);
    await s.rep.syncOnce();
    const types = (
      await s.client.query(
        "SELECT attname, format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'j'::regclass AND attnum > 1 ORDER BY attnum",
      )
    ).rows.map((r) => r.t);
    expect(types).toEqual(["double precision", "timestamp with time zone"]);
    s.db.prepare("INSERT INTO j VALUES (2, 1.5, 2460000.123456789)").run();
    const e = await failure(s.rep.syncOnce());
    expect(e.message).toContain("table j, column b, id=2");
    expect(e.message).toMatch(/not a whole millisecond/);
    s.db.prepare("UPDATE j SET b = julianday('2024-05-06 07:08:09.123') WHERE id = 2").run();
    await s.rep.syncOnce();
    expect((await s.full()).ok).toBe(true);
  });

  it("a later timestamp Postgres would move (second 60, 24:00) or a number past numeric(p,s) is refused by key, not changed", async () => {
    const s = await setup(`
      CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME, amount NUMERIC(6,2), doc JSON);
      INSERT INTO t VALUES (1, '2024-01-01 10:00:00', 12.5, '{"a":1}');
    `);
    await s.rep.syncOnce();
    for (const [sql, column, why] of [
      ["INSERT INTO t VALUES (2, '2024-12-31 23:59:60', 1, NULL)", "at", /second 60/],
      ["INSERT INTO t VALUES (2, '2024-02-30 10:00:00', 1, NULL)", "at", /out of range/],
      ["INSERT INTO t VALUES (2, NULL, 12345.5, NULL)", "amount", /numeric\(6,2\) cannot hold/],
      ["INSERT INTO t VALUES (2, NULL, NULL, '{\"a\":')", "doc", /not JSON/],
    ] as const) {
      s.db.prepare(sql).run();
      const e = await failure(s.rep.syncOnce());
      expect(e.code, sql).toBe("VALUE_REFUSED");
      expect(e.message, sql).toContain(`table t, column ${column}, id=2`);
      expect(e.message, sql).toMatch(why);
      s.db.prepare("DELETE FROM t WHERE id = 2").run();
      await s.rep.syncOnce();
    }
    expect((await s.full()).ok).toBe(true);
  });
});
