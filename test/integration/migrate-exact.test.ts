import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { migrate } from "../../src/migrate/migrate.js";
import { silentLogger } from "../../src/observe/logger.js";
import { Sqlite2pgError } from "../../src/errors.js";
import { LedgerWriter } from "../helpers/daemon.js";

afterEach(cleanup);

const run = (sqlite: string, url: string, extra: Partial<Parameters<typeof migrate>[0]> = {}) =>
  migrate({ sqlite, pg: url, schema: "public", jobs: 2, preserveCase: false, dropExisting: false, fixText: false, log: silentLogger(), ...extra });

describe("migrate: values arrive value for value", () => {
  it("keeps 64-bit integers, doubles bit for bit, blobs byte for byte and text exactly", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, `CREATE TABLE v (id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB);`);
    const db = new Database(path);
    const reals = [0.1 + 0.2, -0, 1e308, -1e308, 5e-324, Infinity, -Infinity, 7717.84260030836, 123456789.123456789];
    const texts = ["tab\there", "nl\nx", "cr\rx", "back\\slash", "\\N", "quote ' \"", "emoji 🚀 ünï", "", " lead", "\u0001\u001f"];
    const ins = db.prepare("INSERT INTO v VALUES (?, ?, ?, ?, ?)");
    const ints = [9223372036854775807n, -9223372036854775808n, 9007199254740993n, 0n, -1n];
    for (let k = 0; k < 12; k++) {
      ins.run(BigInt(k + 1), ints[k % ints.length], reals[k % reals.length], texts[k % texts.length], k % 2 ? Buffer.from([0, k, 255, 10, 92]) : null);
    }
    ins.run(9223372036854775807n, 1n, null, null, Buffer.alloc(0));
    db.close();
    const { url, client } = await freshDatabase();
    const res = await run(path, url);
    expect(res.rows).toBe(13);
    const types = await client.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'v' ORDER BY ordinal_position");
    expect(types.rows.map((r) => r.data_type)).toEqual(["bigint", "bigint", "double precision", "text", "bytea"]);
    const rows = (await client.query("SELECT id::text, i::text, float8send(r) AS r, t, b FROM v ORDER BY v.id")).rows;
    const src = new Database(path, { readonly: true });
    const want = src.prepare("SELECT id, i, r, t, b FROM v ORDER BY id").safeIntegers(true).all() as {
      id: bigint;
      i: bigint;
      r: number | null;
      t: string | null;
      b: Buffer | null;
    }[];
    src.close();
    expect(rows.length).toBe(want.length);
    rows.forEach((r, k) => {
      const w = want[k]!;
      expect(r.id).toBe(w.id.toString());
      expect(r.i).toBe(w.i.toString());
      if (w.r === null) expect(r.r).toBeNull();
      else {
        const bits = Buffer.alloc(8);
        bits.writeDoubleBE(Number(w.r));
        expect((r.r as Buffer).toString("hex")).toBe(bits.toString("hex"));
      }
      expect(r.t).toBe(w.t);
      if (w.b === null) expect(r.b).toBeNull();
      else expect((r.b as Buffer).equals(w.b)).toBe(true);
    });
  });

  it("types columns by what they hold: text in an INTEGER column keeps its row", async () => {
    const dir = tempDir();
    const path = sqliteFrom(
      dir,
      `
      CREATE TABLE products (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL, price NUMERIC(10,2), ok BOOLEAN, seen DATETIME, at_s DATETIME, at_ms TIMESTAMP, doc JSON);
      INSERT INTO products VALUES (1, 5, 0.99, 1, '2020-01-02 03:04:05', 1700000000, 1700000000123, '{"b":1,"a":[2]}');
      INSERT INTO products VALUES (2, 'abc', 12, 0, '2021-12-31T23:59:59.123456', 0, 1700000000999, '[ 1, 2 ]');
      INSERT INTO products VALUES (3, 7, NULL, NULL, '2022-02-28', NULL, NULL, NULL);
    `,
    );
    const { url, client } = await freshDatabase();
    await run(path, url);
    const types = await client.query(
      "SELECT column_name, format_type(atttypid, atttypmod) AS t FROM information_schema.columns c JOIN pg_attribute a ON a.attname = c.column_name AND a.attrelid = 'products'::regclass WHERE table_name = 'products' ORDER BY ordinal_position",
    );
    expect(Object.fromEntries(types.rows.map((r) => [r.column_name, r.t]))).toEqual({
      id: "bigint",
      qty: "text",
      price: "numeric(10,2)",
      ok: "boolean",
      seen: "timestamp without time zone",
      at_s: "timestamp with time zone",
      at_ms: "timestamp with time zone",
      doc: "json",
    });
    await client.query("SET TimeZone = 'UTC'");
    const r = (await client.query("SELECT qty, price::text, ok, seen::text, at_s::text, at_ms::text, doc::text FROM products ORDER BY id")).rows;
    expect(r[1].qty).toBe("abc");
    expect(r[0].price).toBe("0.99");
    expect(r[1].price).toBe("12.00");
    expect([r[0].ok, r[1].ok, r[2].ok]).toEqual([true, false, null]);
    expect(r[1].seen).toBe("2021-12-31 23:59:59.123456");
    expect(r[2].seen).toBe("2022-02-28 00:00:00");
    expect(r[0].at_s).toBe("2023-11-14 22:13:20+00");
    expect(r[1].at_s).toBe("1970-01-01 00:00:00+00");
    expect(r[0].at_ms).toBe("2023-11-14 22:13:20.123+00");
    expect(r[0].doc).toBe('{"b":1,"a":[2]}');
  });

  it("refuses a NUL byte naming table, column and key, and --fix-text lists the change", async () => {
    const dir = tempDir();
    const path = sqliteFrom(
      dir,
      `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, 'fine'), (42, 'nul' || char(0) || 'inside');`,
    );
    const { url, client } = await freshDatabase();
    const err = await run(path, url).catch((e) => e);
    expect(err).toBeInstanceOf(Sqlite2pgError);
    expect(err.category).toBe("source");
    expect(err.message).toMatch(/table notes, column body, id=42: text with a NUL byte/);
    const fixed = await run(path, url, { dropExisting: true, fixText: true });
    expect(fixed.transformed).toEqual([expect.objectContaining({ table: "notes", column: "body", key: "id=42" })]);
    expect((await client.query("SELECT body FROM notes WHERE id = 42")).rows[0].body).toBe("nulinside");
  });

  it("refuses invalid UTF-8 with the bytes shown", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, `CREATE TABLE f (name TEXT); INSERT INTO f VALUES ('ok'), (CAST(x'41ff42' AS TEXT)), ('real replacement char \uFFFD');`);
    const { url } = await freshDatabase();
    const err = await run(path, url).catch((e) => e);
    expect(err.message).toMatch(/table f, column name, rowid=2: text with invalid UTF-8/);
    expect(err.context.value).toBe("x'41ff42'");
  });

  it("says so, and exits with the validation category, when the application writes during a one-shot copy", async () => {
    const dir = tempDir();
    const path = sqliteFrom(
      dir,
      `
      CREATE TABLE ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, token TEXT NOT NULL UNIQUE, amount REAL, note TEXT);
      CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, total INTEGER NOT NULL);
      INSERT INTO counters VALUES (1, 0, 0), (2, 0, 0), (3, 0, 0), (4, 0, 0), (5, 0, 0);
      WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000) INSERT INTO ledger (token, amount) SELECT 's' || i, i FROM c;
    `,
    );
    const writer = new LedgerWriter(path, 400);
    await new Promise((r) => setTimeout(r, 300));
    const { url } = await freshDatabase();
    const err = await run(path, url).catch((e) => e);
    await writer.stop();
    expect(err).toBeInstanceOf(Sqlite2pgError);
    expect(err.category).toBe("validation");
    expect(err.message + err.hint).toMatch(/sqlite2pg run/);
  });

  it("refuses a non-empty target schema unless --drop-existing", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, `CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);`);
    const { url } = await freshDatabase();
    await run(path, url);
    const err = await run(path, url).catch((e) => e);
    expect(err.code).toBe("TARGET_NOT_EMPTY");
    await expect(run(path, url, { dropExisting: true })).resolves.toMatchObject({ rows: 1 });
  });

  it("continues AUTOINCREMENT sequences past sqlite_sequence, other integer keys past their maximum", async () => {
    const dir = tempDir();
    const path = sqliteFrom(
      dir,
      `
      CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
      INSERT INTO a (v) VALUES ('1'), ('2'), ('3'), ('4'), ('5');
      DELETE FROM a WHERE id >= 4;
      CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT);
      INSERT INTO b VALUES (10, 'x'), (20, 'y');
    `,
    );
    const { url, client } = await freshDatabase();
    await run(path, url);
    expect((await client.query("INSERT INTO a (v) VALUES ('new') RETURNING id")).rows[0].id).toBe("6");
    expect((await client.query("INSERT INTO b (v) VALUES ('new') RETURNING id")).rows[0].id).toBe("21");
  });
});
