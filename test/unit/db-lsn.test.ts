/**
 * WAL positions as numbers for read-your-writes: PostgreSQL writes them as
 * two hex halves (`X/Y`), which compare wrongly as text ("0/A" > "0/10")
 * and as floats beyond 2^53; parseLsn makes them one 64-bit bigint.
 */
import { describe, expect, it } from "vitest";
import { parseLsn } from "../../src/db/replicas.js";

describe("parseLsn", () => {
  it("reads both halves as hex: high 32 bits, low 32 bits", () => {
    expect(parseLsn("0/0")).toBe(0n);
    expect(parseLsn("0/3000148")).toBe(0x3000148n);
    expect(parseLsn("1/0")).toBe(2n ** 32n);
    expect(parseLsn("16/B374D848")).toBe((0x16n << 32n) + 0xb374d848n);
    expect(parseLsn("FFFFFFFF/FFFFFFFF")).toBe(2n ** 64n - 1n);
    expect(parseLsn("ab/cd")).toBe(parseLsn("AB/CD"));
  });

  it("orders positions as numbers, where text and float comparisons go wrong", () => {
    expect(parseLsn("0/A") < parseLsn("0/10")).toBe(true);
    expect(parseLsn("0/FFFFFFFF") < parseLsn("1/0")).toBe(true);
    expect(parseLsn("FFFFFFFF/FFFFFFFE") < parseLsn("FFFFFFFF/FFFFFFFF")).toBe(true);
  });

  it("refuses anything else", () => {
    for (const bad of ["", "0", "0/", "/0", "0/0/0", "G/0", "0/123456789", " 0/0"]) expect(() => parseLsn(bad), bad).toThrow(/not a WAL position/);
  });
});
