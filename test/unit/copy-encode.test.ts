import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { encodeValue, escapeCopyText, formatDouble, float8SendText, pgText, paramValue, recordText, ValueRefused } from "../../src/convert/copy-encode.js";
import { julianToMillis, pgTimestampText, plainDecimal } from "../../src/convert/conversions.js";
import type { EncodeColumn } from "../../src/plan/types.js";
import { isSuspectText } from "../../src/sqlite/text.js";

const col = (kind: EncodeColumn["kind"], extra: Partial<EncodeColumn> = {}): EncodeColumn => ({ name: "c", kind, conversion: "none", scale: null, ...extra });

/** Decode a COPY text field the way Postgres' COPY FROM does. */
function unescapeCopy(s: string): string {
  return s.replace(/\\(.)/g, (_, c: string) => (({ n: "\n", r: "\r", t: "\t", b: "\b", f: "\f", v: "\v", "\\": "\\" }) as Record<string, string>)[c] ?? c);
}

describe("COPY text escaping", () => {
  it("escapes backslash and control characters and nothing else", () => {
    expect(escapeCopyText("a\tb\nc\rd\\e\bf\fg\vh")).toBe("a\\tb\\nc\\rd\\\\e\\bf\\fg\\vh");
    expect(escapeCopyText("plain 'quotes' \"and\" ünïcödé 🚀")).toBe("plain 'quotes' \"and\" ünïcödé 🚀");
    expect(escapeCopyText("\\N")).toBe("\\\\N"); // the text \N is not NULL
  });
  it("round-trips any string without NUL", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary" }).filter((s) => !s.includes("\u0000")),
        (s) => {
          const e = escapeCopyText(s);
          expect(e).not.toMatch(/[\t\n\r]/);
          expect(unescapeCopy(e)).toBe(s);
        },
      ),
    );
  });
  it("flags NUL and U+FFFD as suspect", () => {
    expect(isSuspectText("a\u0000b")).toBe(true);
    expect(isSuspectText("bad \uFFFD")).toBe(true);
    expect(isSuspectText("fine")).toBe(false);
  });
});

describe("doubles", () => {
  it("formats the shortest exact decimal, keeping -0 and infinities", () => {
    expect(formatDouble(0.1 + 0.2)).toBe("0.30000000000000004");
    expect(formatDouble(-0)).toBe("-0");
    expect(formatDouble(Infinity)).toBe("Infinity");
    expect(formatDouble(-Infinity)).toBe("-Infinity");
    expect(formatDouble(5e-324)).toBe("5e-324");
  });
  it("reads back bit for bit", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true }), (x) => {
        expect(Object.is(Number(formatDouble(x)), x)).toBe(true);
      }),
    );
  });
  it("digest form is the bytes float8send prints", () => {
    expect(float8SendText(1)).toBe("\\x3ff0000000000000");
    expect(float8SendText(-0)).toBe("\\x8000000000000000");
  });
});

describe("encodeValue", () => {
  it("writes NULL as \\N and integers exactly, beyond 2^53 as bigint", () => {
    expect(encodeValue(null, col("bigint"), 0)).toBe("\\N");
    expect(encodeValue(9223372036854775807n, col("bigint"), 0)).toBe("9223372036854775807");
    expect(encodeValue(-9223372036854775808n, col("bigint"), 0)).toBe("-9223372036854775808");
    // A real holding an integer beyond 2^53: its exact digits, not the shortest decimal (another integer).
    expect(encodeValue(2 ** 62, col("bigint"), 0)).toBe("4611686018427387904");
    expect(encodeValue(-(2 ** 63), col("bigint"), 0)).toBe("-9223372036854775808");
  });
  it("writes blobs as bytea hex, byte for byte", () => {
    expect(encodeValue(Buffer.from([0, 255, 10, 92]), col("bytea"), 0)).toBe("\\\\x00ff0a5c");
  });
  it("refuses a blob in a non-bytea column and text in a bytea column", () => {
    expect(() => encodeValue(Buffer.from([1]), col("text"), 3)).toThrow(ValueRefused);
    expect(() => encodeValue("x", col("bytea"), 0)).toThrow(/text in a bytea column/);
  });
  it("converts booleans, epoch seconds/milliseconds and julian days", () => {
    expect(encodeValue(1, col("boolean", { conversion: "boolean" }), 0)).toBe("t");
    expect(encodeValue("FALSE", col("boolean", { conversion: "boolean" }), 0)).toBe("f");
    expect(() => encodeValue(2, col("boolean", { conversion: "boolean" }), 0)).toThrow(ValueRefused);
    expect(encodeValue(1700000000, col("timestamptz", { conversion: "epoch_s" }), 0)).toBe("2023-11-14T22:13:20.000Z");
    expect(encodeValue(1700000000123, col("timestamptz", { conversion: "epoch_ms" }), 0)).toBe("2023-11-14T22:13:20.123Z");
    expect(encodeValue(2440587.5, col("timestamptz", { conversion: "julian" }), 0)).toBe("1970-01-01T00:00:00.000Z");
    expect(julianToMillis(2460000.25)).toBe(Date.UTC(2023, 1, 24, 18, 0, 0));
  });
});

describe("values written after the census", () => {
  it("are refused where the column's type would change them", () => {
    const refused = (v: unknown, c: EncodeColumn) => expect(() => encodeValue(v, c, 0)).toThrow(ValueRefused);
    refused("3.140", col("double precision"));
    refused("NaN", col("double precision"));
    refused(9007199254740993n, col("double precision"));
    refused(0.125, col("numeric", { scale: 2 }));
    refused(-Infinity, col("numeric", { scale: 2, precision: 10 }));
    // Scales past toFixed's 100 digits: decided by the shortest decimal, never a RangeError.
    expect(encodeValue(0.5, col("numeric", { scale: 150, precision: 200 }), 0)).toBe("0.5");
    refused(1e-120, col("numeric", { scale: 110, precision: 200 }));
    expect(encodeValue(1e-120, col("numeric", { scale: 130, precision: 200 }), 0)).toBe("1e-120");
    refused("12", col("bigint"));
    refused("2024-01-01 10:00:00+05:00", col("timestamp"));
    refused("2024-01-01 10:00:00", col("timestamptz"));
    refused("2024-01-01 10:00", col("date"));
    refused(5, col("json"));
    refused("", col("timestamptz", { conversion: "epoch_s" }));
    refused(1e15, col("timestamptz", { conversion: "epoch_s" }));
    expect(encodeValue(0.12, col("numeric", { scale: 2 }), 0)).toBe("0.12");
    expect(encodeValue("2024-01-01T10:00:00.5", col("timestamp"), 0)).toBe("2024-01-01T10:00:00.5");
    expect(encodeValue(9007199254740992n, col("double precision"), 0)).toBe("9007199254740992");
  });
  it("are boolean words only if they are: a name every object has is refused, not read as true", () => {
    const bool = col("boolean", { conversion: "boolean" });
    for (const w of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf", "Constructor"]) {
      expect(() => encodeValue(w, bool, 0), w).toThrow(ValueRefused);
      expect(() => paramValue(w, bool, 0), w).toThrow(ValueRefused);
    }
    expect(encodeValue("Yes", bool, 0)).toBe("t");
    expect(encodeValue("no", bool, 0)).toBe("f");
  });
  it("refuse a number in a text key column, where it would become the same key as the text of its digits", () => {
    const key = col("text", { keyText: true });
    expect(() => encodeValue(1n, key, 0)).toThrow(/an integer in a key column of text/);
    expect(() => encodeValue(1.5, key, 0)).toThrow(/a real in a key column of text/);
    expect(() => paramValue(1n, key, 0)).toThrow(ValueRefused);
    expect(encodeValue("1", key, 0)).toBe("1");
    expect(paramValue("1", key, 0)).toBe("1");
    expect(encodeValue(1n, col("text"), 0)).toBe("1"); // not a key: text holds the number's exact spelling
  });
});

describe("Postgres output text", () => {
  it("renders numeric(p,s) with its scale", () => {
    const c = col("numeric", { scale: 2 });
    expect(pgText(0.99, c, 0)).toBe("0.99");
    expect(pgText(1, c, 0)).toBe("1.00");
    expect(pgText(-1.5, c, 0)).toBe("-1.50");
    expect(pgText(12n, c, 0)).toBe("12.00");
  });
  it("expands exponents for unconstrained numeric", () => {
    expect(plainDecimal("1e+21")).toBe("1000000000000000000000");
    expect(plainDecimal("1.5e-7")).toBe("0.00000015");
    expect(plainDecimal("-2.5e+3")).toBe("-2500");
    expect(pgText(1e21, col("numeric"), 0)).toBe("1000000000000000000000");
  });
  it("prints timestamps without trailing zeros, zones moved to UTC", () => {
    expect(pgTimestampText("2020-01-02", false)).toBe("2020-01-02 00:00:00");
    expect(pgTimestampText("2020-01-02T03:04:05.500", false)).toBe("2020-01-02 03:04:05.5");
    expect(pgTimestampText("2020-01-02 03:04:05.123456Z", true)).toBe("2020-01-02 03:04:05.123456+00");
    expect(pgTimestampText("2020-01-02 01:30:00+02:00", true)).toBe("2020-01-01 23:30:00+00");
    expect(pgTimestampText("0050-03-01 00:30:00-01:00", true)).toBe("0050-03-01 01:30:00+00");
    expect(pgText(1700000000, col("timestamptz", { conversion: "epoch_s" }), 0)).toBe("2023-11-14 22:13:20+00");
  });
  it("quotes record fields as record_out does", () => {
    expect(recordText(["1", null, "", "a b", 'x"y\\z', "a,b(c)", "plain"])).toBe('(1,,"","a b","x""y\\\\z","a,b(c)",plain)');
  });
});
