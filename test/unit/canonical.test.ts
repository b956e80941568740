import { describe, expect, it } from "vitest";
import { decimalText, encodeValue, ValueRefused, type EncodeColumn } from "../../src/target/copy-encode.js";
import { canonicalWriter, doubleBits } from "../../src/validate/canonical.js";

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
    expect(canonicalWriter(col("timestamp"))("2024-01-02T03:04:05.500")).toBe("2024-01-02 03:04:05.5");
    expect(canonicalWriter(col("text"))(null)).toBeNull();
    expect(decimalText(-0)).toBe("0");
    expect(decimalText(1e21)).toBe("1000000000000000000000");
  });
});
