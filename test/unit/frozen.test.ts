import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { FROZEN_MESSAGE, isFrozenError } from "../../src/db/frozen.js";

describe("the frozen-write contract", () => {
  it("the freeze triggers raise exactly the message the library recognises", () => {
    const sql = readFileSync(new URL("../../triggers/freeze.sql", import.meta.url), "utf8");
    const raised = [...sql.matchAll(/RAISE\(ABORT, '([^']*)'\)/g)].map((m) => m[1]);
    expect(raised.length).toBeGreaterThan(0);
    for (const m of raised) expect(m).toBe(FROZEN_MESSAGE);
  });

  it("recognises the refusal by its message, not by any error", () => {
    expect(isFrozenError(new Error(`SqliteError: ${FROZEN_MESSAGE}`))).toBe(true);
    expect(isFrozenError(new Error("SQLITE_BUSY: database is locked"))).toBe(false);
    expect(isFrozenError(FROZEN_MESSAGE)).toBe(false); // a string is not an error
  });
});
