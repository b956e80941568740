import Database from "better-sqlite3";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DATE_CLASS, dateClassSql } from "../../src/sqlite/census.js";

/**
 * The census's date classes, computed by the general expression alone (the
 * census's expression before its fast path for SQLite's own timestamp
 * form): the reference the census must agree with, value for value.
 */
function generalDateClassSql(col: string): string {
  const DATE_SHAPE = "[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]";
  const TIME_SHAPE = "[0-2][0-9]:[0-5][0-9]:[0-5][0-9]";
  const rest = `substr(${col},20)`;
  const tzLen = `(CASE WHEN ${rest} GLOB '*Z' THEN 1 WHEN ${rest} GLOB '*[+-][0-2][0-9]:[0-5][0-9]' THEN 6 ELSE 0 END)`;
  const frac = `substr(${rest},1,length(${rest})-${tzLen})`;
  const fracOk = `(${frac} = '' OR (${frac} GLOB '.[0-9]*' AND length(${frac}) BETWEEN 2 AND 7 AND NOT substr(${frac},2) GLOB '*[^0-9]*'))`;
  return `(CASE WHEN typeof(${col})<>'text' THEN NULL
    WHEN length(${col}) = 10 THEN CASE WHEN ${col} GLOB '${DATE_SHAPE}' AND date(${col}) = ${col} AND ${col} >= '0001' THEN 2 ELSE 1 END
    WHEN NOT ${col} GLOB '${DATE_SHAPE}[ T]${TIME_SHAPE}*' OR substr(${col},1,4) = '0000' THEN 1
    WHEN datetime(substr(${col},1,19)) IS NOT substr(${col},1,10)||' '||substr(${col},12,8) THEN 1
    WHEN length(${col}) = 19 THEN 4
    WHEN NOT ${fracOk} THEN 1
    WHEN ${tzLen} > 0 THEN 8
    ELSE 4 END)`;
}

const digits = (n: number) => fc.array(fc.constantFrom(..."0123456789"), { minLength: n, maxLength: n }).map((a) => a.join(""));
const pick = <T>(...xs: fc.Arbitrary<T>[]) => fc.oneof(...xs);
/** Texts near every shape the census tells apart: valid and invalid dates, times, fractions, zones, separators, years 0000 and 9999. */
const dateLike = fc
  .record({
    year: pick(digits(4), fc.constantFrom("0000", "0001", "1970", "2000", "2024", "9999", "99999", "-001", "20x4")),
    month: pick(digits(2), fc.constantFrom("01", "02", "12", "13", "00", "1")),
    day: pick(digits(2), fc.constantFrom("01", "28", "29", "30", "31", "32", "00", "1")),
    sep: fc.constantFrom(" ", "T", "t", "_", "  ", ""),
    hour: pick(digits(2), fc.constantFrom("00", "23", "24", "29")),
    minute: pick(digits(2), fc.constantFrom("00", "59", "60")),
    second: pick(digits(2), fc.constantFrom("00", "59", "60")),
    frac: fc.constantFrom("", ".", ".1", ".123", ".123456", ".1234567", ".12a", ".000", ","),
    zone: fc.constantFrom("", "Z", "z", "+05:30", "-08:00", "+25:00", "+5:30", "+05:3", " Z", "+0530"),
    tail: fc.constantFrom("", "", "", " ", "x", "\n"),
    form: fc.constantFrom("date", "time", "minutes", "timestamp"),
  })
  .map((p) => {
    const date = `${p.year}-${p.month}-${p.day}`;
    if (p.form === "date") return date + p.tail;
    if (p.form === "minutes") return `${date}${p.sep}${p.hour}:${p.minute}${p.tail}`;
    if (p.form === "time") return `${p.hour}:${p.minute}:${p.second}`;
    return `${date}${p.sep}${p.hour}:${p.minute}:${p.second}${p.frac}${p.zone}${p.tail}`;
  });

describe("census date classes", () => {
  it("agree with the general expression on every shape, whatever the column's collation", () => {
    const db = new Database(":memory:");
    // No declared type keeps every text a text (a DATETIME column would turn '2024' into an integer).
    db.exec("CREATE TABLE t (v, n TEXT COLLATE NOCASE, r TEXT COLLATE RTRIM)");
    const insert = db.prepare("INSERT INTO t VALUES (?, ?, ?)");
    const fixed: unknown[] = [
      null,
      42,
      2.5,
      Buffer.from("2024-01-01 00:00:00"),
      "",
      "now",
      "2459000.5",
      "2024-02-29 12:00:00",
      "2023-02-29 12:00:00",
      "0000-01-01 00:00:00",
      "0001-01-01 00:00:00",
      "9999-12-31 23:59:59",
      "2024-01-01T00:00:00",
      "2024-01-01 00:00:00Z",
      "2024-01-01 00:00:00.5",
      "2024-01-01 24:00:00",
      "2024-01-01",
      "1234567890123456789",
    ];
    const values = [
      ...fixed,
      ...fc.sample(dateLike, { numRuns: 20_000, seed: 20261201 }),
      ...fc.sample(fc.string({ maxLength: 30 }), { numRuns: 2000, seed: 7 }),
    ];
    db.transaction(() => {
      for (const v of values) insert.run(v, typeof v === "string" ? v : null, typeof v === "string" ? v : null);
    })();
    for (const col of ["v", "n", "r"]) {
      const rows = db.prepare(`SELECT ${col} AS v, ${generalDateClassSql(col)} AS general, ${dateClassSql(col)} AS fast FROM t`).all() as {
        v: unknown;
        general: number | null;
        fast: number | null;
      }[];
      const differing = rows.filter((r) => r.general !== r.fast);
      expect(differing).toEqual([]);
      if (col === "v") {
        // The sample reaches every class, so the comparison is not vacuous.
        const seen = new Set(rows.map((r) => r.fast));
        for (const k of [null, DATE_CLASS.other, DATE_CLASS.date, DATE_CLASS.timestamp, DATE_CLASS.timestamptz]) expect(seen.has(k)).toBe(true);
      }
    }
    db.close();
  });
});
