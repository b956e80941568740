/**
 * The binary COPY encoder must store exactly what the text encoder stores,
 * and refuse exactly what it refuses, with the same reason. Checked against
 * a real server: random values of every kind and conversion, valid and
 * not, go through both encoders; the accepted ones are copied in text into
 * one table and in binary into another, and the stored values compared.
 */
import { afterEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { from as copyFrom } from "pg-copy-streams";
import type pg from "pg";
import { cleanup, freshDatabase } from "../helpers/db.js";
import { encodeValue, ValueRefused } from "../../src/convert/copy-encode.js";
import { BINARY_HEADER, BINARY_TRAILER, BinaryData, fieldWriter, numericBinary, writeInt8, writeMicros } from "../../src/convert/copy-binary.js";
import type { EncodeColumn } from "../../src/plan/types.js";

afterEach(cleanup);

type Col = EncodeColumn & { sql: string };
const col = (kind: EncodeColumn["kind"], sql: string, extra: Partial<EncodeColumn> = {}): Col => ({
  name: "v",
  kind,
  conversion: "none",
  scale: null,
  precision: null,
  sql,
  ...extra,
});

const COLUMNS: Col[] = [
  col("bigint", "bigint"),
  col("double precision", "double precision"),
  col("numeric", "numeric"),
  col("numeric", "numeric(10,2)", { scale: 2, precision: 10 }),
  col("numeric", "numeric(30,0)", { scale: 0, precision: 30 }),
  col("numeric", "numeric(12,6)", { scale: 6, precision: 12 }),
  col("text", "text"),
  col("text", "text", { keyText: true }),
  col("json", "json"),
  col("bytea", "bytea"),
  col("boolean", "boolean", { conversion: "boolean" }),
  col("boolean", "boolean", { conversion: "boolean", keyExact: true }),
  col("date", "date"),
  col("timestamp", "timestamp"),
  col("timestamp", "timestamp", { keyExact: true }),
  col("timestamptz", "timestamptz"),
  col("timestamptz", "timestamptz", { conversion: "epoch_s" }),
  col("timestamptz", "timestamptz", { conversion: "epoch_ms" }),
  col("timestamptz", "timestamptz", { conversion: "julian" }),
];

const pad = (n: number, w: number) => String(n).padStart(w, "0");
/** ISO dates and timestamps, mostly well formed, some out of range or misshapen. */
const isoText = fc
  .record({
    y: fc.oneof(fc.integer({ min: 1, max: 9999 }), fc.constantFrom(0, 1, 1999, 2000, 2024, 9999)),
    mo: fc.integer({ min: 0, max: 13 }),
    d: fc.integer({ min: 0, max: 32 }),
    h: fc.integer({ min: 0, max: 25 }),
    mi: fc.integer({ min: 0, max: 60 }),
    s: fc.integer({ min: 0, max: 60 }),
    frac: fc.oneof(fc.constant(""), fc.stringMatching(/^\.[0-9]{1,7}$/), fc.constant(".")),
    sep: fc.constantFrom(" ", "T", "_"),
    zone: fc.oneof(fc.constant(""), fc.constant("Z"), fc.stringMatching(/^[+-](0[0-9]|1[0-6]):[0-6][0-9]$/), fc.constant("+0100")),
    form: fc.constantFrom("date", "time", "time", "time"),
  })
  .map((r) => {
    const date = `${pad(r.y, 4)}-${pad(r.mo, 2)}-${pad(r.d, 2)}`;
    return r.form === "date" ? date : `${date}${r.sep}${pad(r.h, 2)}:${pad(r.mi, 2)}:${pad(r.s, 2)}${r.frac}${r.zone}`;
  });

const value = fc.oneof(
  { arbitrary: fc.integer({ min: -1e6, max: 1e6 }), weight: 3 },
  { arbitrary: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), weight: 2 },
  { arbitrary: fc.double({ noNaN: true }), weight: 3 },
  { arbitrary: fc.integer({ min: -1e9, max: 1e9 }).map((n) => n / 100), weight: 3 },
  { arbitrary: fc.integer({ min: -1e12, max: 1e12 }).map((n) => n / 1e6), weight: 2 },
  { arbitrary: fc.integer({ min: -1e10, max: 1e10 }).map((n) => n * 1000), weight: 1 },
  { arbitrary: fc.constantFrom(0, -0, 1, Infinity, -Infinity, 2 ** 53, 2 ** 63, -(2 ** 63), 1e21, 1e-7, 2440587.5, 2460000.25), weight: 1 },
  { arbitrary: isoText, weight: 6 },
  { arbitrary: fc.string({ unit: "binary" }).map((s) => s.replace(/\u0000/g, "")), weight: 2 },
  { arbitrary: fc.constantFrom("true", "false", "t", "f", "yes", "no", "TRUE", "maybe", "0", "1", "[1,2]", '{"a":1}', "{", ""), weight: 2 },
  { arbitrary: fc.json(), weight: 1 },
  { arbitrary: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)), weight: 2 },
);

type Outcome = { refused: string } | { text: string; binary: Buffer };

function viaText(v: unknown, c: Col): { refused: string } | { text: string } {
  try {
    return { text: encodeValue(v, c, 0) };
  } catch (e) {
    if (e instanceof ValueRefused) return { refused: e.reason };
    throw e;
  }
}

function viaBinary(v: unknown, c: Col): { refused: string } | { binary: Buffer } {
  const out = new BinaryData();
  try {
    fieldWriter(c, 0)(v, out);
  } catch (e) {
    if (e instanceof ValueRefused) return { refused: e.reason };
    throw e;
  }
  return { binary: Buffer.concat(out.take()) };
}

async function copyIn(client: pg.Client, sql: string, data: Buffer[]): Promise<void> {
  try {
    await pipeline(Readable.from(data), client.query(copyFrom(sql)));
  } catch (e) {
    throw new Error(`${sql}: ${(e as Error).message} (${(e as { where?: string }).where ?? ""})`);
  }
}

/** The stored value in a form that tells every difference: bits of doubles, numeric's scale, instants in UTC. */
function shown(c: Col): string {
  if (c.kind === "double precision") return "float8send(v)::text";
  if (c.kind === "bytea") return "encode(v, 'hex')";
  if (c.kind === "timestamptz") return "to_char(v AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')";
  if (c.kind === "timestamp") return "to_char(v, 'YYYY-MM-DD HH24:MI:SS.US')";
  return "v::text";
}

describe("binary COPY", () => {
  it("stores what text COPY stores and refuses what it refuses, for every kind", async () => {
    const { client } = await freshDatabase();
    await client.query("SET TimeZone = 'UTC'");
    const values = [...fc.sample(value, { numRuns: 1500, seed: 20261201 }), null];
    let accepted = 0;
    let refused = 0;
    for (const [n, c] of COLUMNS.entries()) {
      const outcomes: { v: unknown; o: Outcome }[] = [];
      for (const v of values) {
        if (v === null) continue;
        const t = viaText(v, c);
        const b = viaBinary(v, c);
        if ("refused" in t || "refused" in b) {
          // Both refuse, with the same reason.
          const what = { column: c.sql, keyExact: c.keyExact, keyText: c.keyText, conversion: c.conversion, value: v };
          expect({ ...what, result: b }).toEqual({ ...what, result: t });
          refused++;
          continue;
        }
        outcomes.push({ v, o: { text: t.text, binary: b.binary } });
      }
      await client.query(`CREATE TABLE t${n} (i int, v ${c.sql}); CREATE TABLE b${n} (i int, v ${c.sql})`);
      const text = outcomes.map((x, i) => `${i}\t${(x.o as { text: string }).text}\n`).join("");
      await copyIn(client, `COPY t${n} FROM STDIN`, [Buffer.from(text)]);
      const bin = new BinaryData();
      bin.pushBuffer(BINARY_HEADER);
      outcomes.forEach((x, i) => {
        bin.int16(2);
        bin.int32(4);
        bin.int32(i);
        bin.pushBuffer((x.o as { binary: Buffer }).binary);
      });
      bin.pushBuffer(BINARY_TRAILER);
      await copyIn(client, `COPY b${n} FROM STDIN (FORMAT binary)`, bin.take());
      const diff = await client.query(
        `SELECT t.i, ${shown(c).replaceAll("v", "t.v")} AS text_copy, ${shown(c).replaceAll("v", "b.v")} AS binary_copy
           FROM t${n} t FULL JOIN b${n} b USING (i)
          WHERE ${shown(c).replaceAll("v", "t.v")} IS DISTINCT FROM ${shown(c).replaceAll("v", "b.v")}`,
      );
      expect({ column: c.sql, conversion: c.conversion, differences: diff.rows.map((r) => ({ ...r, value: String(outcomes[r.i]?.v) })) }).toEqual({
        column: c.sql,
        conversion: c.conversion,
        differences: [],
      });
      accepted += outcomes.length;
    }
    // The sample reaches both outcomes widely.
    expect(accepted).toBeGreaterThan(3000);
    expect(refused).toBeGreaterThan(3000);
  });

  it("writes int8 and timestamps exactly at their extremes", async () => {
    const { client } = await freshDatabase();
    await client.query("CREATE TABLE x (a bigint, t timestamp)");
    const ints = [0, -1, 1, 2 ** 32, -(2 ** 32), 2 ** 53, -(2 ** 53), 2 ** 62, -(2 ** 63), 4294967295, -4294967297];
    // Seconds since 2000-01-01 from year 0001 to 9999, and micros within the second.
    const secs = [-63082281600, 252455615999, 0, -1, 1, 1048575, 1048576, -1048577, 86399, 4102444800];
    const data = new BinaryData();
    data.pushBuffer(BINARY_HEADER);
    const rows: [string, string][] = [];
    for (const [i, a] of ints.entries()) {
      const s = secs[i % secs.length]!;
      const us = [0, 999999, 1, 500000][i % 4]!;
      data.int16(2);
      writeInt8(data, a);
      writeMicros(data, s, us);
      rows.push([BigInt(a).toString(), (BigInt(s) * 1000000n + BigInt(us)).toString()]);
    }
    data.pushBuffer(BINARY_TRAILER);
    await copyIn(client, "COPY x FROM STDIN (FORMAT binary)", data.take());
    const r = await client.query("SELECT a::text, ((extract(epoch FROM t - '2000-01-01') * 1000000)::numeric(30,0))::text AS us FROM x");
    expect(r.rows.map((x) => [x.a, x.us])).toEqual(rows);
  });

  it("numeric_send forms of exponents, zeros and scales read back as numeric_in reads the text", async () => {
    const { client } = await freshDatabase();
    const texts = [
      "0",
      "-0",
      "0.0",
      "1e+21",
      "1.5e-7",
      "-12.50",
      "100000000",
      "0.0001",
      "9999.9999",
      "12345678901234567890.123456789",
      "Infinity",
      "-Infinity",
      "1e-30",
      "5e-324",
    ];
    await client.query("CREATE TABLE n (i int, v numeric)");
    const data = new BinaryData();
    data.pushBuffer(BINARY_HEADER);
    texts.forEach((t, i) => {
      const b = numericBinary(t);
      data.int16(2);
      data.int32(4);
      data.int32(i);
      data.int32(b.length);
      data.pushBuffer(b);
    });
    data.pushBuffer(BINARY_TRAILER);
    await copyIn(client, "COPY n FROM STDIN (FORMAT binary)", data.take());
    const r = await client.query({ text: "SELECT n.v::text AS got, $1::text[] AS texts FROM n ORDER BY i", values: [texts] });
    const want = await client.query({ text: "SELECT t::numeric::text AS want FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i", values: [texts] });
    expect(r.rows.map((x) => x.got)).toEqual(want.rows.map((x) => x.want));
  });
});
