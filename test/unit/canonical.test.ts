import { describe, expect, it } from "vitest";
import { encodeValue, ValueRefused } from "../../src/convert/copy-encode.js";
import { decimalText, numberText } from "../../src/convert/conversions.js";
import type { EncodeColumn } from "../../src/plan/types.js";
import { canonicalWriter, doubleBits } from "../../src/convert/canonical.js";

const col = (kind: EncodeColumn["kind"], extra: Partial<EncodeColumn> = {}): EncodeColumn => ({ name: "c", kind, conversion: "none", scale: null, ...extra });
const epochS = col("timestamptz", { conversion: "epoch_s" });
const epochMs = col("timestamptz", { conversion: "epoch_ms" });
const julian = col("timestamptz", { conversion: "julian" });

describe("unix times convert exactly, to the microsecond, or are refused", () => {
  it("keeps every digit down to microseconds", () => {
    expect(encodeValue(1700000200.123456, epochS, 0)).toBe("2023-11-14T22:16:40.123456Z");
    expect(encodeValue(1700000200.5, epochS, 0)).toBe("2023-11-14T22:16:40.500Z");
    expect(encodeValue(-1.5, epochS, 0)).toBe("1969-12-31T23:59:58.500Z");
    expect(encodeValue(-0.000001, epochS, 0)).toBe("1969-12-31T23:59:59.999999Z");
    expect(encodeValue(1700000200123.456, epochMs, 0)).toBe("2023-11-14T22:16:40.123456Z");
    expect(encodeValue(1700000200123n, epochMs, 0)).toBe("2023-11-14T22:16:40.123Z");
  });
  it("refuses what timestamptz cannot hold", () => {
    expect(() => encodeValue(1700000200.1234567, epochS, 0)).toThrow(/finer than the microseconds/);
    expect(() => encodeValue(1700000200123.4567, epochMs, 0)).toThrow(ValueRefused);
    expect(() => encodeValue(Infinity, epochS, 0)).toThrow(ValueRefused);
    expect(() => encodeValue(2460000.123456789, julian, 0)).toThrow(/not a whole millisecond/);
    expect(encodeValue(2460000.25, julian, 0)).toBe("2023-02-24T18:00:00.000Z");
  });
});

describe("canonical text of raw SQLite values", () => {
  it("is the value as written, not as converted", () => {
    expect(canonicalWriter(epochS)(1700000200.123456)).toBe("1700000200.123456");
    expect(canonicalWriter(epochS)(1700000200n)).toBe("1700000200");
    expect(canonicalWriter(epochS)("2024-01-01")).toBe("?2024-01-01");
    expect(canonicalWriter(julian)(2460000.25)).toBe(doubleBits(2460000.25));
    expect(canonicalWriter(col("numeric", { scale: 2 }))(0.125)).toBe("0.125");
    expect(canonicalWriter(col("numeric", { scale: 2 }))(12n)).toBe("12");
    expect(canonicalWriter(col("boolean", { conversion: "boolean" }))("Yes")).toBe("t");
    expect(canonicalWriter(col("boolean", { conversion: "boolean" }))(2)).toBe("?2");
    // Names every object has are no boolean words: foreign texts, as any other word.
    for (const w of ["constructor", "__proto__", "toString"]) expect(canonicalWriter(col("boolean", { conversion: "boolean" }))(w)).toBe(`?${w}`);
    // Instants as exact seconds since the unix epoch (a timestamp read as UTC), whatever the spelling.
    expect(canonicalWriter(col("timestamp"))("2024-01-02T03:04:05.500")).toBe("1704164645.5");
    expect(canonicalWriter(col("timestamp"))("2024-01-02")).toBe("1704153600");
    expect(canonicalWriter(col("timestamptz"))("2024-01-02 05:04:05.5+02:00")).toBe("1704164645.5");
    expect(canonicalWriter(col("timestamp"))("1969-12-31 23:59:58.5")).toBe("-1.5");
    expect(canonicalWriter(col("timestamp"))("1969-12-31 23:59:59.75")).toBe("-0.25");
    expect(canonicalWriter(col("timestamp"))("0001-01-01 00:00:00.000001")).toBe("-62135596799.999999");
    expect(canonicalWriter(col("timestamp"))("2024-02-30 00:00:00")).toBe("?2024-02-30 00:00:00");
    expect(canonicalWriter(col("bytea"))(Buffer.from([0, 255]))).toBe("00ff");
    expect(canonicalWriter(col("bytea"))(Buffer.alloc(257))).toMatch(/^m[0-9a-f]{32}$/);
    expect(canonicalWriter(col("text"))(null)).toBeNull();
    expect(decimalText(-0)).toBe("0");
    expect(decimalText(1e21)).toBe("1000000000000000000000");
  });
});

describe("values Postgres would take only by changing them, or refuse without a name", () => {
  it("are refused by the encoder", () => {
    const refused = (v: unknown, c: EncodeColumn, why: RegExp) => expect(() => encodeValue(v, c, 0)).toThrow(why);
    refused("2024-02-30", col("date"), /not a day of the calendar/);
    refused("0000-01-01", col("date"), /not a day of the calendar/);
    refused("2024-01-01 23:59:60", col("timestamp"), /second 60/);
    refused("2024-01-01T24:00:00", col("timestamp"), /24:00/);
    refused("2024-01-01 10:00:00+16:00", col("timestamptz"), /zone out of range/);
    refused(12345678901n, col("numeric", { scale: 2, precision: 10 }), /more than 8 digit\(s\) before the decimal point/);
    refused(123456789.5, col("numeric", { scale: 2, precision: 10 }), /numeric\(10,2\) cannot hold/);
    refused("{not json", col("json"), /not JSON/);
    refused(1e20, col("bigint"), /beyond bigint's range/);
    expect(encodeValue("2024-02-29 23:59:59.999999", col("timestamp"), 0)).toBe("2024-02-29 23:59:59.999999");
    expect(encodeValue(99999999.99, col("numeric", { scale: 2, precision: 10 }), 0)).toBe("99999999.99");
    expect(encodeValue(-99999999n, col("numeric", { scale: 2, precision: 10 }), 0)).toBe("-99999999");
    expect(encodeValue('{"a": [1, 2]}', col("json"), 0)).toBe('{"a": [1, 2]}');
  });
});

describe("numberText spells every number as String() does", () => {
  // Seeded, so a failure names a value that fails again.
  let seed = 0x9e3779b9;
  const rand = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const same = (v: number) => expect(numberText(v), `${v}`).toBe(String(v));

  it("on decimals of up to six places around every magnitude the shortcut covers and past it", () => {
    for (let i = 0; i < 200_000; i++) {
      const places = Math.floor(rand() * 7);
      const magnitude = 10 ** Math.floor(rand() * 16);
      const sign = rand() < 0.5 ? -1 : 1;
      const c = Math.floor(rand() * magnitude * 10 ** places);
      same((sign * c) / 10 ** places);
    }
  });
  it("on arbitrary doubles, the edges of its range and the values next to them", () => {
    const bits = new DataView(new ArrayBuffer(8));
    for (let i = 0; i < 100_000; i++) {
      bits.setUint32(0, Math.floor(rand() * 2 ** 32));
      bits.setUint32(4, Math.floor(rand() * 2 ** 32));
      const v = bits.getFloat64(0);
      if (Number.isFinite(v)) same(v);
    }
    const next = (v: number, dir: 1 | -1) => {
      bits.setFloat64(0, v);
      bits.setBigInt64(0, bits.getBigInt64(0) + BigInt(v >= 0 ? dir : -dir));
      return bits.getFloat64(0);
    };
    for (const v of [1e11, -1e11, 99999999999.9999, 0.0001, 0.00005, 0.5, 1.005, 0.1 + 0.2, 1e-7, 123.45, -0.05, 4503599627370495.5]) {
      same(v);
      same(next(v, 1));
      same(next(v, -1));
    }
    for (const v of [0, -0, 1, -1, 2 ** 53, Number.MAX_VALUE, Number.MIN_VALUE, -Number.MIN_VALUE]) same(v);
  });
});
