/**
 * The same JavaScript values from every backend (real SQLite, PostgreSQL
 * and MySQL/MariaDB): integers at the edges of the safe range and of 64
 * bits, booleans, blobs (empty, every byte value), NULL, Unicode text,
 * decimals, dates and timestamps, doubles, JSON; the parameters each backend
 * accepts; what `execute` reports; and the placeholder count checked before
 * anything is sent.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/database.js";
import { DatabaseUsageError, ParameterCountError, type Dialect } from "../../src/db/errors.js";
import { closeBackends, DIALECTS, freshBackend, unavailable } from "../helpers/backends.js";

afterEach(closeBackends);

const DDL: Record<Dialect, string> = {
  sqlite:
    "CREATE TABLE v (k INTEGER PRIMARY KEY, i INTEGER, flag BOOLEAN, data BLOB, txt TEXT, amount NUMERIC, at TEXT, local TEXT, day TEXT, f REAL, doc TEXT)",
  postgres:
    "CREATE TABLE v (k int PRIMARY KEY, i bigint, flag boolean, data bytea, txt text, amount numeric(30,10), at timestamptz, local timestamp(3), day date, f double precision, doc jsonb)",
  mysql:
    "CREATE TABLE v (k INT PRIMARY KEY, i BIGINT, flag BOOLEAN, data LONGBLOB, txt TEXT, amount DECIMAL(30,10), at TIMESTAMP(3) NULL, local DATETIME(3), day DATE, f DOUBLE, doc JSON)",
};

/** Integers at the edges: what is written (number or bigint) and what must come back. */
const INTEGERS: [unknown, number | bigint][] = [
  [0, 0],
  [1, 1],
  [-1, -1],
  [5n, 5],
  [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  [-Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER],
  [2n ** 53n, 2n ** 53n],
  [2n ** 53n + 1n, 2n ** 53n + 1n],
  [-(2n ** 53n), -(2n ** 53n)],
  [-(2n ** 53n) - 1n, -(2n ** 53n) - 1n],
  [-(2n ** 63n), -(2n ** 63n)],
  [2n ** 63n - 1n, 2n ** 63n - 1n],
];

const EVERY_BYTE = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const TEXT = "héllo wörld — 日本語 😀 'quoted' \"double\" ? -- /* */ $$ \\ tab\tnewline\n";
const INSTANT = new Date("2024-02-29T23:59:59.123Z");
const EPOCH2K = new Date("2000-01-01T00:00:00.000Z");

async function table(db: Database): Promise<void> {
  await db.execute(DDL[db.dialect]);
}

for (const dialect of DIALECTS) {
  describe.skipIf(unavailable(dialect))(`${dialect}: values`, () => {
    it("integers: number within ±(2^53 − 1), bigint beyond, never rounded, up to the 64-bit limits", async () => {
      const db = (await freshBackend(dialect)).open();
      await table(db);
      for (const [k, [written]] of INTEGERS.entries()) await db.execute("INSERT INTO v (k, i) VALUES (?, ?)", [k, written]);
      const rows = await db.query<{ k: number; i: number | bigint }>("SELECT k, i FROM v ORDER BY k");
      expect(rows.map((r) => r.i)).toStrictEqual(INTEGERS.map(([, back]) => back));
      expect(rows.map((r) => typeof r.k)).toStrictEqual(INTEGERS.map(() => "number"));
      // Integers compare exactly through parameters too.
      expect(await db.query("SELECT k FROM v WHERE i = ?", [2n ** 53n + 1n])).toStrictEqual([{ k: 7 }]);
      expect(await db.query("SELECT k FROM v WHERE i = ?", [2n ** 63n - 1n])).toStrictEqual([{ k: 11 }]);
      // An aggregate count is a number on every backend.
      expect(await db.query("SELECT COUNT(*) AS n FROM v")).toStrictEqual([{ n: INTEGERS.length }]);
    });

    it("booleans, blobs (empty and every byte), NULL, Unicode text, decimals, dates, doubles, JSON", async () => {
      const db = (await freshBackend(dialect)).open();
      await table(db);
      const insert = "INSERT INTO v (k, flag, data, txt, amount, at, local, day, f, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
      const amount = dialect === "sqlite" ? 12.5 : "12345678901234567890.1234567890";
      await db.execute(insert, [1, true, Buffer.alloc(0), TEXT, amount, INSTANT, INSTANT, "2024-02-29", 0.1, '{"a": 1}']);
      await db.execute(insert, [2, false, EVERY_BYTE, "", "-0.0000000001", INSTANT, INSTANT, "1999-12-31", -1e300, "[]"]);
      await db.execute(insert, [3, null, null, null, null, null, null, null, null, null]);
      await db.execute(insert, [4, true, new Uint8Array([0, 0, 1]), "x", 0, EPOCH2K, EPOCH2K, "2000-01-01", 1.5, "null"]);
      const rows = await db.query("SELECT k, flag, data, txt, amount, at, local, day, f, doc FROM v ORDER BY k");

      // SQLite has no boolean, timestamp or exact decimal type: 1/0, the ISO 8601 text written, and a number.
      const bool = (b: boolean) => (dialect === "sqlite" ? (b ? 1 : 0) : b);
      const instant = (d: Date) => (dialect === "sqlite" ? d.toISOString() : d);
      expect(rows).toStrictEqual([
        {
          k: 1,
          flag: bool(true),
          data: Buffer.alloc(0),
          txt: TEXT,
          amount: dialect === "sqlite" ? 12.5 : "12345678901234567890.1234567890",
          at: instant(INSTANT),
          local: instant(INSTANT),
          day: "2024-02-29",
          f: 0.1,
          doc: '{"a": 1}',
        },
        {
          k: 2,
          flag: bool(false),
          data: EVERY_BYTE,
          txt: "",
          amount: dialect === "sqlite" ? -1e-10 : "-0.0000000001",
          at: instant(INSTANT),
          local: instant(INSTANT),
          day: "1999-12-31",
          f: -1e300,
          doc: "[]",
        },
        { k: 3, flag: null, data: null, txt: null, amount: null, at: null, local: null, day: null, f: null, doc: null },
        {
          k: 4,
          flag: bool(true),
          data: Buffer.from([0, 0, 1]),
          txt: "x",
          amount: dialect === "sqlite" ? 0 : "0.0000000000",
          at: instant(EPOCH2K),
          local: instant(EPOCH2K),
          day: "2000-01-01",
          f: 1.5,
          doc: "null",
        },
      ]);
      expect(Buffer.isBuffer(rows[1]!.data)).toBe(true);
      // A boolean parameter finds the row on every backend.
      expect(await db.query("SELECT k FROM v WHERE flag = ? ORDER BY k", [true])).toStrictEqual([{ k: 1 }, { k: 4 }]);
      // A timestamp parameter compares as the same instant.
      if (dialect !== "sqlite") expect(await db.query("SELECT k FROM v WHERE at = ? ORDER BY k", [INSTANT])).toStrictEqual([{ k: 1 }, { k: 2 }]);
    });

    it("the same values through a transaction's connection as outside it", async () => {
      const db = (await freshBackend(dialect)).open();
      await table(db);
      await db.execute("INSERT INTO v (k, i, data, day) VALUES (?, ?, ?, ?)", [1, 2n ** 63n - 1n, EVERY_BYTE, "2024-02-29"]);
      const outside = await db.query("SELECT i, data, day FROM v");
      const inside = await db.transaction((tx) => tx.query("SELECT i, data, day FROM v"));
      expect(inside).toStrictEqual(outside);
      expect(outside).toStrictEqual([{ i: 2n ** 63n - 1n, data: EVERY_BYTE, day: "2024-02-29" }]);
    });

    it("execute reports rows changed (matched by an UPDATE) and the inserted id", async () => {
      const db = (await freshBackend(dialect)).open();
      const ddl: Record<Dialect, string> = {
        sqlite: "CREATE TABLE a (id INTEGER PRIMARY KEY, n INTEGER)",
        postgres: "CREATE TABLE a (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n int)",
        mysql: "CREATE TABLE a (id BIGINT AUTO_INCREMENT PRIMARY KEY, n INT)",
      };
      expect(await db.execute(ddl[dialect])).toStrictEqual({ rowsAffected: 0 });
      const first = await db.execute("INSERT INTO a (n) VALUES (?)", [1]);
      const big = await db.execute("INSERT INTO a (id, n) VALUES (?, ?)", [2n ** 62n, 2]);
      if (dialect === "postgres") {
        // PostgreSQL has no insert id: RETURNING says it.
        expect(first).toStrictEqual({ rowsAffected: 1 });
        expect(await db.query("INSERT INTO a (n) VALUES (?) RETURNING id", [3])).toStrictEqual([{ id: 2 }]);
      } else {
        expect(first).toStrictEqual({ rowsAffected: 1, insertId: 1 });
        expect(big).toStrictEqual({ rowsAffected: 1, insertId: 2n ** 62n });
        await db.execute("INSERT INTO a (id, n) VALUES (?, ?)", [2, 3]);
      }
      // An UPDATE that leaves a value as it was still counts the row (MySQL: found rows, as the others).
      expect(await db.execute("UPDATE a SET n = n WHERE n >= ?", [1])).toStrictEqual({ rowsAffected: 3 });
      expect(await db.execute("DELETE FROM a WHERE n = ?", [3])).toStrictEqual({ rowsAffected: 1 });
      // A SELECT or DDL through execute changes nothing.
      expect(await db.execute("SELECT * FROM a")).toStrictEqual({ rowsAffected: 0 });
      // A statement without rows through query gives none.
      expect(await db.query("UPDATE a SET n = 7 WHERE n = ?", [1])).toStrictEqual([]);
    });

    it("refuses a parameter count that does not match, and undefined, before anything is sent", async () => {
      const db = (await freshBackend(dialect)).open();
      await table(db);
      const tooFew = db.execute("INSERT INTO v (k, txt) VALUES (?, ?)", [1]);
      await expect(tooFew).rejects.toBeInstanceOf(ParameterCountError);
      await expect(tooFew).rejects.toMatchObject({ kind: "parameter_count", dialect, expected: 2, given: 1 });
      await expect(db.execute("INSERT INTO v (k) VALUES (?)", [1, 2])).rejects.toThrow(/1 placeholder \(\?\) but 2 parameters were given/);
      // A ? in a literal or comment is no placeholder, on every backend.
      await db.execute("INSERT INTO v (k, txt) VALUES (?, '?') -- and ?", [9]);
      await expect(db.execute("INSERT INTO v (k, txt) VALUES (?, ?)", [1, undefined])).rejects.toBeInstanceOf(DatabaseUsageError);
      await expect(db.transaction((tx) => tx.query("SELECT ? AS x", []))).rejects.toBeInstanceOf(ParameterCountError);
      expect(await db.query("SELECT k, txt FROM v")).toStrictEqual([{ k: 9, txt: "?" }]);
    });
  });
}
