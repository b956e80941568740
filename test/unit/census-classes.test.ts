import Database from "better-sqlite3";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { censusTable } from "../../src/sqlite/census.js";
import { affinity, readSchema } from "../../src/sqlite/schema.js";

/**
 * The census counts storage classes and the integer range without looking
 * at what SQLite guarantees (the rowid alias's values, a REAL column's
 * integers). The reference here reads every value with typeof(), one row at
 * a time, the way the copy reads them: the census must agree with it.
 */
function reference(db: Database.Database, table: string, column: string) {
  const rows = db.prepare(`SELECT typeof("${column}"), "${column}" FROM "${table}"`).raw(true).safeIntegers(true).all() as [string, unknown][];
  const out = { nulls: 0, integers: 0, reals: 0, texts: 0, blobs: 0, minInt: null as bigint | null, maxInt: null as bigint | null };
  for (const [kind, v] of rows) {
    if (kind === "null") out.nulls++;
    else if (kind === "integer") {
      out.integers++;
      const b = v as bigint;
      if (out.minInt === null || b < out.minInt) out.minInt = b;
      if (out.maxInt === null || b > out.maxInt) out.maxInt = b;
    } else if (kind === "real") out.reals++;
    else if (kind === "text") out.texts++;
    else out.blobs++;
  }
  return out;
}

/** Declared types of every affinity, REAL's spellings among them, and names SQLite does not read as REAL. */
const DECLARED = [
  "INTEGER",
  "int",
  "REAL",
  "real",
  "FLOAT",
  "double precision",
  "DOUBLE",
  "FLOATING POINT",
  "ﬂoat",
  "TEXT",
  "BLOB",
  "",
  "NUMERIC",
  "NUMERIC(10,2)",
  "DATETIME",
  "BOOLEAN",
];

const value = fc.oneof(
  fc.constant(null),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.integer({ min: -5, max: 5 }),
  fc.double({ noNaN: true }),
  fc.constantFrom(0.5, 3, -0, 1e300, 2 ** 63, -(2 ** 63)),
  fc.string({ maxLength: 6 }),
  fc.constantFrom("12", "1.5", " 7", "0x10", "2024-01-02 03:04:05"),
  fc.uint8Array({ maxLength: 4 }).map((a) => Buffer.from(a)),
);

function check(strict: boolean, types: string[], rows: unknown[][], rowid: "alias" | "none" | "without"): void {
  const db = new Database(":memory:");
  db.defaultSafeIntegers(true);
  const cols = types.map((t, i) => `c${i} ${strict && t !== "INTEGER" && t !== "REAL" && t !== "TEXT" && t !== "BLOB" ? "ANY" : t}`);
  const key = rowid === "none" ? "" : rowid === "alias" ? "id INTEGER PRIMARY KEY, " : "id INTEGER NOT NULL PRIMARY KEY, ";
  db.exec(
    `CREATE TABLE t (${key}${cols.join(", ")})${rowid === "without" ? " WITHOUT ROWID" : ""}${strict ? (rowid === "without" ? ", STRICT" : " STRICT") : ""}`,
  );
  const ins = db.prepare(`INSERT INTO t VALUES (${[...(rowid === "none" ? [] : ["?"]), ...types.map(() => "?")].join(", ")})`);
  let n = 0;
  for (const r of rows) {
    try {
      ins.run(...(rowid === "none" ? [] : [BigInt(rowid === "alias" && n % 3 === 0 ? -n * 1000 : n)]), ...r);
    } catch {
      // A STRICT column refuses some values: the row is simply not there.
    }
    n++;
  }
  const table = readSchema(db).tables.find((x) => x.name === "t")!;
  const census = censusTable(db, table);
  expect(census.rows).toBe(Number(db.prepare("SELECT count(*) FROM t").pluck().get()));
  for (const c of table.columns) {
    const got = census.columns.get(c.name)!;
    const want = reference(db, "t", c.name);
    expect({ column: c.name, declared: c.declaredType, ...pickClasses(got) }).toEqual({ column: c.name, declared: c.declaredType, ...want });
  }
  db.close();
}

/** A census of no values. */
const NOTHING = { nulls: 0, integers: 0, reals: 0, texts: 0, blobs: 0, minInt: null, maxInt: null };

const pickClasses = (c: { nulls: number; integers: number; reals: number; texts: number; blobs: number; minInt: bigint | null; maxInt: bigint | null }) => ({
  nulls: c.nulls,
  integers: c.integers,
  reals: c.reals,
  texts: c.texts,
  blobs: c.blobs,
  minInt: c.minInt,
  maxInt: c.maxInt,
});

describe("the census's storage classes and integer range", () => {
  it("agree with typeof() read row by row, for every affinity, with and without a rowid alias, STRICT or not", () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.constantFrom("alias", "none", "without") as fc.Arbitrary<"alias" | "none" | "without">,
        fc
          .array(fc.constantFrom(...DECLARED), { minLength: 1, maxLength: 4 })
          .chain((types) => fc.tuple(fc.constant(types), fc.array(fc.tuple(...types.map(() => value)), { maxLength: 25 }))),
        (strict, rowid, [types, rows]) => check(strict, types, rows, rowid),
      ),
      { numRuns: 400 },
    );
  });

  it("read a REAL column's whole numbers as reals, including integers bound into it and the ends of 64 bits", () => {
    check(
      false,
      ["REAL", "double precision", "FLOAT"],
      [
        [5n, 7n, 2n ** 62n],
        [-(2n ** 63n), 3, 0.5],
        [null, "x", Buffer.from([1])],
        [1, 1, 1],
      ],
      "alias",
    );
    const db = new Database(":memory:");
    db.exec("CREATE TABLE r (id INTEGER PRIMARY KEY, v REAL); INSERT INTO r(v) VALUES (5), (9223372036854775807), (-3), (NULL)");
    const c = censusTable(db, readSchema(db).tables[0]!).columns.get("v")!;
    expect(pickClasses(c)).toEqual({ ...NOTHING, nulls: 1, reals: 3 });
    db.close();
  });

  it("take the rowid alias's range from its ends, including an empty table and the ends of 64 bits", () => {
    const db = new Database(":memory:");
    db.exec("CREATE TABLE k (id INTEGER PRIMARY KEY, v TEXT)");
    const table = () => readSchema(db).tables[0]!;
    expect(pickClasses(censusTable(db, table()).columns.get("id")!)).toEqual(NOTHING);
    db.prepare("INSERT INTO k VALUES (?, 'a'), (?, 'b'), (?, NULL)").run(-(2n ** 63n), 2n ** 63n - 1n, 4n);
    expect(pickClasses(censusTable(db, table()).columns.get("id")!)).toEqual({ ...NOTHING, integers: 3, minInt: -(2n ** 63n), maxInt: 2n ** 63n - 1n });
    db.close();
  });

  it("name the affinity as SQLite does, folding ASCII letters only", () => {
    const db = new Database(":memory:");
    for (const t of DECLARED) {
      db.exec(`DROP TABLE IF EXISTS a; CREATE TABLE a (x ${t})`);
      db.prepare("INSERT INTO a VALUES (?)").run(5n);
      db.prepare("INSERT INTO a VALUES (?)").run("5");
      const [fromInt, fromText] = db.prepare("SELECT typeof(x) FROM a ORDER BY rowid").pluck().all() as string[];
      const expected = {
        integer: ["integer", "integer"],
        numeric: ["integer", "integer"],
        real: ["real", "real"],
        text: ["text", "text"],
        blob: ["integer", "text"],
      }[affinity(t)];
      expect([t, fromInt, fromText]).toEqual([t, ...expected]);
    }
    db.close();
  });
});
