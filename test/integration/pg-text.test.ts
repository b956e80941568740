/**
 * The validation digest rests on one claim: for every value, pgText() is
 * exactly what Postgres prints, and recordText() is exactly its record
 * output. Checked here against a real server with random values.
 */
import { afterEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import { cleanup, freshDatabase } from "../helpers/db.js";
import { float8SendText, recordText } from "../../src/convert/copy-encode.js";
import { CANONICAL_SESSION } from "../../src/validate/digest.js";

afterEach(cleanup);

describe("Postgres output text", () => {
  it("float8: float8SendText equals float8send for random and edge doubles", async () => {
    const { client } = await freshDatabase();
    await client.query(CANONICAL_SESSION);
    const xs = [
      ...fc.sample(fc.double({ noNaN: true }), 3000),
      0,
      -0,
      1e15,
      5e-324,
      1.7976931348623157e308,
      0.1 + 0.2,
      -20571388929545970,
      Infinity,
      -Infinity,
    ];
    const r = await client.query({
      text: "SELECT float8send(x)::text AS t FROM unnest($1::float8[]) WITH ORDINALITY AS u(x, i) ORDER BY i",
      values: [xs.map((x) => (Object.is(x, -0) ? "-0" : String(x)))],
    });
    const bad = xs.map((x, i) => [x, float8SendText(x), r.rows[i].t]).filter(([, a, b]) => a !== b);
    expect(bad).toEqual([]);
  });

  it("record text: recordText equals record_out for random strings", async () => {
    const { client } = await freshDatabase();
    const strs = [
      ...fc.sample(
        fc.string({ unit: "binary" }).map((s) => s.replace(/\u0000/g, "")),
        2000,
      ),
      "",
      " ",
      "a\tb",
      "\\",
      '"',
      "(",
      ")",
      ",",
      "\v\f\r\n",
    ];
    const r = await client.query({ text: "SELECT row(s, 1, s)::text AS t FROM unnest($1::text[]) WITH ORDINALITY AS u(s, i) ORDER BY i", values: [strs] });
    const bad = strs.map((s, i) => [s, recordText([s, "1", s]), r.rows[i].t]).filter(([, a, b]) => a !== b);
    expect(bad).toEqual([]);
  });
});
