/**
 * The digest hashes each SQLite row's fields as bytes written straight into
 * a buffer (RecordWriter) with a port of PostgreSQL's hashtextextended: a
 * field's bytes must be exactly the UTF-8 of its canonical text, a row's
 * record text (md5 digests, and rows named one by one) exactly the UTF-8 of
 * what the string path builds (rowRecorder, compared with the server's
 * text), and the hash exactly the server's.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { ColumnPlan } from "../../src/plan/plan.js";
import type { EncodeColumn } from "../../src/plan/types.js";
import { RecordWriter } from "../../src/validate/record-bytes.js";
import { DigestBuilder, rowRecorder } from "../../src/validate/digest.js";
import { canonicalWriter } from "../../src/convert/canonical.js";
import { hashBytesExtended2, hashTextExtended, seedWords } from "../../src/validate/lookup3.js";

const col = (kind: EncodeColumn["kind"], extra: Partial<EncodeColumn> = {}): ColumnPlan =>
  ({ name: "c", kind, conversion: "none", scale: null, ...extra }) as ColumnPlan;

const COLUMNS: ColumnPlan[] = [
  col("bigint"),
  col("double precision"),
  col("numeric", { scale: 2 }),
  col("numeric"),
  col("text"),
  col("json"),
  col("bytea"),
  col("boolean", { conversion: "boolean" }),
  col("date"),
  col("timestamp"),
  col("timestamptz"),
  col("timestamptz", { conversion: "epoch_s" }),
  col("timestamptz", { conversion: "epoch_ms" }),
  col("timestamptz", { conversion: "julian" }),
];

/** Characters record_out quotes for, multibyte ones, NUL, and both halves of surrogate pairs on their own. */
const tricky = fc.constantFrom(...' \t\n\v\f\r"\\(),?x0.-é€中\u0000\u007f\u0080\u07ff\u0800\uffff\ud83d\ude00\ud800\udfff'.split(""), "😀");
const text = fc.oneof(fc.string({ unit: tricky, maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }), fc.string({ maxLength: 20 }));
/** Every raw value better-sqlite3 can hand over, whatever the column: foreign ones too. */
const raw = fc.oneof(
  fc.constant(null),
  fc.integer(),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.double(),
  fc.constantFrom(0, -0, 1, 0.1, 1e300, 2460000.25, 1700000000.5),
  text,
  fc.constantFrom("2024-01-02", "2024-01-02 03:04:05", "2024-01-02T03:04:05.120", "2024-01-02 03:04:05+05:30", "true", "No", ""),
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  // An empty blob (its canonical text is empty, which record_out quotes) and one past the hex limit.
  fc.constantFrom(Buffer.alloc(0), Buffer.alloc(300, 7)),
);

describe("RecordWriter", () => {
  it("writes exactly the UTF-8 of rowRecorder's text, for every column kind and any raw value", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...COLUMNS), { minLength: 1, maxLength: 8 }), fc.array(raw, { minLength: 8, maxLength: 8 }), (cols, values) => {
        const row = [42, ...values.slice(0, cols.length)];
        const w = new RecordWriter(cols);
        const len = w.write(row, 1);
        expect(Buffer.from(w.buf.subarray(0, len))).toEqual(Buffer.from(rowRecorder(cols)(row, 1), "utf8"));
      }),
      { numRuns: 3000 },
    );
  });

  it("writes one field as exactly the UTF-8 of its canonical text, for every column kind and any raw value", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...COLUMNS), { minLength: 1, maxLength: 8 }), fc.array(raw, { minLength: 8, maxLength: 8 }), (cols, values) => {
        const w = new RecordWriter(cols, "fields");
        cols.forEach((c, i) => {
          const v = values[i];
          if (v === null || v === undefined) return;
          const len = w.writeField(i, v);
          expect(Buffer.from(w.buf.subarray(0, len))).toEqual(Buffer.from(canonicalWriter(c)(v)!, "utf8"));
        });
      }),
      { numRuns: 3000 },
    );
  });

  it("grows its buffer for long values, and still writes short rows after them", () => {
    const cols = [col("text"), col("text")];
    const w = new RecordWriter(cols);
    for (const row of [
      ["a", "b"],
      ["x".repeat(5000) + '"', "é".repeat(3000)],
      ["(", ""],
      ["\\".repeat(10000), null],
      ["z", "y"],
    ]) {
      const len = w.write(row, 0);
      expect(w.buf.subarray(0, len).toString("utf8")).toBe(rowRecorder(cols)(row, 0));
    }
  });
});

describe("hashTextExtended", () => {
  it("gives what PostgreSQL 15's hashtextextended gives", () => {
    // SELECT x, s, hashtextextended(x, s) on a little-endian server.
    const server: [string, bigint, bigint][] = [
      ["", 0n, -6939563903564495251n],
      ["", 6364136223846793005n, 8181772883433451155n],
      ["a", 1n, 3325245193489759299n],
      ["abc", -1n, 1911237551546830967n],
      ["(1,abc)", 0n, -2499101382112880042n],
      ["0123456789ab", 6364136223846793005n, -5147562800254483257n],
      ["0123456789abcdefghijklmnopqrstuvwxyz", 1n, -2406378843534258124n],
      ["héllo wörld €😀", -1n, 5499859572065931140n],
      ["héllo wörld €😀", 6364136223846793005n, 3015163845541546062n],
    ];
    for (const [text, seed, h] of server) expect(hashTextExtended(text, seed), `${text} ${seed}`).toBe(h);
  });
});

describe("hashBytesExtended2", () => {
  it("hashes under its second seed exactly as under its first", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 100 }),
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
        (bytes, s, t) => {
          const one = new Uint32Array(4);
          const two = new Uint32Array(4);
          hashBytesExtended2(bytes, bytes.length, Int32Array.of(...seedWords(s), ...seedWords(t)), one);
          hashBytesExtended2(bytes, bytes.length, Int32Array.of(...seedWords(t), ...seedWords(s)), two);
          expect([one[2], one[3], one[0], one[1]]).toEqual([two[0], two[1], two[2], two[3]]);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("DigestBuilder", () => {
  const rows = [
    ["a", 1n],
    ["b", null],
    ["a", 1n],
  ];
  const digestOf = (order: number[]) => {
    const cols = [col("text"), col("bigint")];
    const d = new DigestBuilder("lookup3");
    const w = d.writer(cols);
    for (const i of order) d.addRow(w, rows[i]!, 0);
    return d.digest();
  };
  const one = (row: unknown[], cols = [col("text"), col("text")]) => {
    const d = new DigestBuilder("lookup3");
    d.addRow(d.writer(cols), row, 0);
    return d.digest().sums;
  };

  it("is independent of row order and counts duplicates", () => {
    expect(digestOf([0, 1, 2])).toEqual(digestOf([2, 1, 0]));
    expect(digestOf([0, 1, 2])).not.toEqual(digestOf([0, 1]));
    expect(digestOf([0, 1, 2]).rows).toBe(3);
  });

  it("tells NULL from the empty text, values moved between columns, and equal values in two columns from none", () => {
    const seen = [one([null, null]), one(["", ""]), one([null, ""]), one(["", null]), one(["a", "b"]), one(["b", "a"]), one(["a", "a"]), one(["b", "b"])];
    expect(new Set(seen.map(String)).size).toBe(seen.length);
    // Equal values in two columns do not cancel: the row hash is not that of an empty row.
    expect(one(["a", "a"])).not.toEqual([0n, 0n]);
  });

  it("hashes a row as the XOR of its fields' hashes, each under its column's own seed", () => {
    const s0 = 6364136223846793005n;
    const s1 = 1442695040888963407n;
    const xor = (a: string, b: string, s: bigint) => BigInt.asIntN(64, hashTextExtended(a, s) ^ hashTextExtended(b, s + 1n));
    expect(one(["ab", "é😀"])).toEqual([xor("ab", "é😀", s0), xor("ab", "é😀", s1)]);
  });

  it("hashes a field that outgrows the writer's buffer from the grown buffer", () => {
    const long = "é".repeat(3000);
    expect(one(["a", long])).toEqual([
      BigInt.asIntN(64, hashTextExtended("a", 6364136223846793005n) ^ hashTextExtended(long, 6364136223846793006n)),
      BigInt.asIntN(64, hashTextExtended("a", 1442695040888963407n) ^ hashTextExtended(long, 1442695040888963408n)),
    ]);
  });

  it("refuses a writer of record texts", () => {
    const d = new DigestBuilder("lookup3");
    expect(() => d.addRow(new RecordWriter([col("text")]), ["a"], 0)).toThrow(/field by field/);
  });

  it("sums both seeds' signed hashes exactly, across the flushes that keep its Numbers exact", () => {
    const d = new DigestBuilder("lookup3");
    const w = d.writer([col("text")]);
    const n = (1 << 20) + 5; // one flush and some
    let a = 0n;
    let b = 0n;
    for (let i = 0; i < n; i++) {
      const t = `r${i % 1000}`;
      d.addRow(w, [t], 0);
      if (i < 1000) {
        a += hashTextExtended(t, 6364136223846793005n);
        b += hashTextExtended(t, 1442695040888963407n);
      }
    }
    const times = BigInt(Math.floor(n / 1000));
    let ra = a * times;
    let rb = b * times;
    for (let i = 0; i < n % 1000; i++) {
      ra += hashTextExtended(`r${i}`, 6364136223846793005n);
      rb += hashTextExtended(`r${i}`, 1442695040888963407n);
    }
    expect(d.digest()).toEqual({ rows: n, hash: "lookup3", sums: [ra, rb] });
  });

  it("refuses to merge a digest hashed another way", () => {
    const d = new DigestBuilder("lookup3");
    expect(() => d.merge(new DigestBuilder("md5").digest())).toThrow(/md5/);
  });
});
