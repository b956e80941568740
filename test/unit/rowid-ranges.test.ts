import { describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import fc from "fast-check";
import { ChunkReader, rowidBounds, rowidNeedsBigInt, splitRowidRange } from "../../src/sqlite/reader.js";

const table = (rowids: bigint[]) => {
  const db = new Database(":memory:");
  db.exec("CREATE TABLE t (v TEXT)");
  const ins = db.prepare("INSERT INTO t (rowid, v) VALUES (?, 'x')");
  for (const r of rowids) ins.run(r);
  return db;
};

const readAll = (db: Database.Database, range: { after: bigint | null; upTo: bigint | null }) => {
  const t = { source: { name: "t", rowidAlias: null, columns: [{ name: "v" }] }, readOrder: { kind: "rowid" as const }, bigIntegers: true };
  const r = new ChunkReader(db, t as never, ["v"], 1000, range);
  const out: bigint[] = [];
  for (let rows = r.read(); rows; rows = r.read()) for (const row of rows) out.push(row[0] as bigint);
  return out;
};

describe("rowid ranges", () => {
  it("bounds are the lowest and highest rowid, null for an empty table, exact at the ends of 64 bits", () => {
    expect(rowidBounds(table([]), "t")).toEqual({ lo: null, hi: null });
    expect(rowidBounds(table([7n]), "t")).toEqual({ lo: 7n, hi: 7n });
    const ends = table([-(2n ** 63n), 0n, 2n ** 63n - 1n]);
    expect(rowidBounds(ends, "t")).toEqual({ lo: -(2n ** 63n), hi: 2n ** 63n - 1n });
    expect(rowidNeedsBigInt(ends, "t")).toBe(true);
    expect(rowidNeedsBigInt(table([-(2n ** 53n) + 1n, 2n ** 53n - 1n]), "t")).toBe(false);
    expect(rowidNeedsBigInt(table([2n ** 53n]), "t")).toBe(true);
  });

  it("a split's ranges read every row exactly once, in order, whatever the rowids and the number of parts", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.oneof(fc.bigInt({ min: -50n, max: 50n }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })), { maxLength: 60 }),
        fc.integer({ min: 1, max: 5 }),
        (rowids, parts) => {
          const db = table(rowids);
          const ranges = splitRowidRange(db, "t", parts);
          expect(ranges.length).toBeLessThanOrEqual(parts);
          expect(ranges[0]!.after).toBeNull();
          expect(ranges.at(-1)!.upTo).toBeNull();
          const read = ranges.flatMap((r) => readAll(db, r));
          expect(read).toEqual([...rowids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
        },
      ),
      { numRuns: 300 },
    );
  });
});
