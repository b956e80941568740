/**
 * The digest rests on one claim: for every value a column admits, the SQL
 * inverse of the column's conversion, run on what Postgres stored from the
 * encoder's COPY text, gives back exactly the canonical text of the raw
 * SQLite value. Checked here against a real server with random values of
 * every converted kind.
 */
import { afterEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import { cleanup, freshDatabase } from "../helpers/db.js";
import { encodeValue } from "../../src/convert/copy-encode.js";
import type { EncodeColumn } from "../../src/plan/types.js";
import { canonicalSql, canonicalWriter } from "../../src/convert/canonical.js";

afterEach(cleanup);

const col = (kind: EncodeColumn["kind"], extra: Partial<EncodeColumn> = {}): EncodeColumn => ({ name: "c", kind, conversion: "none", scale: null, ...extra });
const pad = (n: number, w: number) => String(n).padStart(w, "0");
const isoArb = fc.record({
  y: fc.integer({ min: 1, max: 9999 }),
  mo: fc.integer({ min: 1, max: 12 }),
  d: fc.integer({ min: 1, max: 28 }),
  h: fc.integer({ min: 0, max: 23 }),
  mi: fc.integer({ min: 0, max: 59 }),
  s: fc.integer({ min: 0, max: 59 }),
  frac: fc.string({ unit: fc.constantFrom(..."0123456789"), maxLength: 6 }),
  t: fc.boolean(),
  zone: fc.constantFrom("Z", "+00:00", "+05:30", "-08:00", "+14:00"),
});
const iso = (v: { y: number; mo: number; d: number; h: number; mi: number; s: number; frac: string; t: boolean }) =>
  `${pad(v.y, 4)}-${pad(v.mo, 2)}-${pad(v.d, 2)}${v.t ? "T" : " "}${pad(v.h, 2)}:${pad(v.mi, 2)}:${pad(v.s, 2)}${v.frac ? "." + v.frac : ""}`;

const CASES: [string, EncodeColumn, unknown[]][] = [
  [
    "unix seconds",
    col("timestamptz", { conversion: "epoch_s" }),
    [
      ...fc.sample(fc.integer({ min: -62135596800, max: 253402300799 }), 300),
      ...fc.sample(
        fc.integer({ min: -2e9, max: 4e9 }).chain((s) => fc.integer({ min: 0, max: 999999 }).map((u) => Number(`${s}.${pad(u, 6)}`))),
        300,
      ),
      1700000200.123456,
      -1.5,
      0,
      0.000001,
    ],
  ],
  [
    "unix milliseconds",
    col("timestamptz", { conversion: "epoch_ms" }),
    [
      ...fc.sample(fc.integer({ min: 100000000000, max: 253402300799999 }), 300),
      ...fc.sample(
        fc.integer({ min: 100000000000, max: 4e12 }).chain((s) => fc.integer({ min: 0, max: 999 }).map((u) => Number(`${s}.${pad(u, 3)}`))),
        300,
      ),
    ],
  ],
  [
    "julian days",
    col("timestamptz", { conversion: "julian" }),
    fc.sample(
      fc.integer({ min: -62135596800000, max: 253402300799999 }).map((ms) => (ms + 210866760000000) / 86400000),
      500,
    ),
  ],
  [
    "numeric(10,2)",
    col("numeric", { scale: 2 }),
    [
      ...fc
        .sample(
          fc.integer({ min: -99999999, max: 99999999 }).map((c) => c / 100),
          300,
        )
        .filter((x) => Number(x.toFixed(2)) === x),
      12n,
      -0,
      0.5,
    ],
  ],
  ["numeric", col("numeric"), [...fc.sample(fc.double({ noNaN: true, noDefaultInfinity: true }), 300), 9223372036854775807n, -5n]],
  ["double precision", col("double precision"), [...fc.sample(fc.double({ noNaN: true }), 300), -0, 3n]],
  ["boolean", col("boolean", { conversion: "boolean" }), [0, 1, 0n, 1n, "true", "F", "yes", "No"]],
  ["timestamp", col("timestamp"), fc.sample(isoArb, 300).map(iso)],
  ["timestamptz", col("timestamptz"), fc.sample(isoArb, 300).map((v) => iso(v) + v.zone)],
  ["date", col("date"), fc.sample(isoArb, 200).map((v) => iso(v).slice(0, 10))],
  ["bytea", col("bytea"), [...fc.sample(fc.uint8Array({ maxLength: 600 }), 150).map((a) => Buffer.from(a)), Buffer.alloc(0)]],
];

describe("the digest's inverse conversions", () => {
  it.each(CASES)("%s: Postgres renders the stored value back into the raw value's canonical text", async (_name, c, values) => {
    const { client } = await freshDatabase();
    const type = c.kind === "numeric" && c.scale !== null ? "numeric(10,2)" : c.kind;
    await client.query(`CREATE TABLE v (i int, x ${type})`);
    const text = values.map((v, i) => `${i}\t${encodeValue(v, c, 0).replace(/^\\\\x/, "\\x")}`);
    await client.query({
      text: `INSERT INTO v SELECT split_part(l, E'\\t', 1)::int, split_part(l, E'\\t', 2)::${type} FROM unnest($1::text[]) AS l`,
      values: [text],
    });
    const r = await client.query(`SELECT i, ${canonicalSql("x", c)} AS t FROM v ORDER BY i`);
    const write = canonicalWriter(c);
    const bad = values.map((v, i) => [String(v), write(v), r.rows[i].t]).filter(([, a, b]) => a !== b);
    expect(bad).toEqual([]);
  });
});
