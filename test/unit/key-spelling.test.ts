import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { encodeValue, paramValue, ValueRefused } from "../../src/convert/copy-encode.js";
import { pgTimestampText } from "../../src/convert/conversions.js";
import { keySpellingProblem } from "../../src/plan/key-spelling.js";
import type { EncodeColumn } from "../../src/plan/types.js";

const col = (kind: EncodeColumn["kind"], extra: Partial<EncodeColumn> = {}): EncodeColumn => ({ name: "c", kind, conversion: "none", scale: null, ...extra });
const d2 = (max: number) => fc.integer({ min: 0, max }).map((n) => String(n).padStart(2, "0"));

/** Timestamps of every shape a timestamp column takes: a date alone, 'T' or space, a fraction of 1–6 digits. */
const timestamps = fc
  .tuple(
    fc.integer({ min: 1, max: 9999 }).map((y) => String(y).padStart(4, "0")),
    d2(12),
    d2(28),
    fc.option(fc.tuple(fc.constantFrom("T", " "), d2(23), d2(59), d2(59), fc.option(fc.stringMatching(/^[0-9]{1,6}$/)))),
  )
  .map(([y, m, d, t]) => `${y}-${m}-${d}${t ? `${t[0]}${t[1]}:${t[2]}:${t[3]}${t[4] === null ? "" : `.${t[4]}`}` : ""}`);

describe("key spellings", () => {
  it("takes a key timestamp exactly when Postgres renders its value back as the same text", () => {
    fc.assert(
      fc.property(timestamps, (v) => {
        expect(keySpellingProblem(v, col("timestamp")) === null).toBe(pgTimestampText(v, false) === v);
      }),
      { numRuns: 2000 },
    );
    for (const v of ["2024-01-01T10:00:00", "2024-01-01", "2024-01-01 10:00:00.500", "2024-01-01 10:00:00.0"])
      expect(keySpellingProblem(v, col("timestamp"))).not.toBeNull();
    for (const v of ["2024-01-01 10:00:00", "2024-01-01 10:00:00.5", "2024-01-01 10:00:00.000001"]) expect(keySpellingProblem(v, col("timestamp"))).toBeNull();
  });

  it("refuses other spellings in key columns only, when encoding rows and the keys deleted by", () => {
    const key = col("timestamp", { keyExact: true });
    expect(() => encodeValue("2024-01-01T10:00:00", key, 0)).toThrow(ValueRefused);
    expect(() => paramValue("2024-01-01T10:00:00", key, 0)).toThrow(ValueRefused);
    expect(paramValue("2024-01-01 10:00:00", key, 0)).toBe("2024-01-01 10:00:00");
    expect(encodeValue("2024-01-01T10:00:00", col("timestamp"), 0)).toBe("2024-01-01T10:00:00");
    const flag = col("boolean", { conversion: "boolean", keyExact: true });
    expect(encodeValue(1, flag, 0)).toBe("t");
    expect(encodeValue(0n, flag, 0)).toBe("f");
    for (const v of ["true", "t", "yes", "FALSE"]) expect(() => paramValue(v, flag, 0)).toThrow(ValueRefused);
    expect(() => encodeValue("2024-01-01T10:00:00Z", col("timestamptz", { keyExact: true }), 0)).toThrow(ValueRefused);
    // One-to-one conversions are never in question.
    expect(keySpellingProblem(1700000000, col("timestamptz", { conversion: "epoch_s" }))).toBeNull();
    expect(keySpellingProblem("2024-01-01", col("date"))).toBeNull();
  });
});
