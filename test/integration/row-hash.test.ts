/**
 * validate --full hashes each row's text with PostgreSQL's own
 * hashtextextended on the server and with a port of it in this process.
 * Checked here: the port equals the server on random texts (multibyte,
 * every length, any seed), and one changed bit in any value of any column
 * kind — on either side — makes the digest differ and is named by key.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import fc from "fast-check";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { migrateFile } from "../helpers/migrate.js";
import { validate } from "../../src/validate/validate.js";
import { pgDigest, rowHashFor, sameDigest, sqliteDigest } from "../../src/validate/digest.js";
import { hashTextExtended } from "../../src/validate/lookup3.js";

afterEach(cleanup);

describe("the port of hashtextextended", () => {
  it("gives the server's value on random texts of every length, multibyte included, under random seeds", async () => {
    const { client } = await freshDatabase();
    // Texts PostgreSQL can hold: any code point but NUL, lone surrogates left out (they are not UTF-8).
    const unit = fc.oneof(
      fc.constantFrom(...'aZ0 "\\,()\t\n\u0001é€中\u07ff\u0800\uffff'.split(""), "😀", "\u{10ffff}"),
      fc
        .integer({ min: 1, max: 0x10ffff })
        .filter((c) => c < 0xd800 || c > 0xdfff)
        .map((c) => String.fromCodePoint(c)),
    );
    const texts = [
      ...Array.from({ length: 40 }, (_, n) => "x".repeat(n)), // every tail length, and several blocks
      ...fc.sample(fc.string({ unit, maxLength: 30 }), 1500),
      ...fc.sample(fc.string({ unit, minLength: 100, maxLength: 400 }), 300),
    ];
    const seeds = fc.sample(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), texts.length).map((s, i) => (i % 7 === 0 ? 0n : s));
    const r = await client.query<{ h: string }>(
      "SELECT hashtextextended(x, s)::text AS h FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS u(x, s, i) ORDER BY i",
      [texts, seeds.map(String)],
    );
    const wrong = texts.flatMap((t, i) => (BigInt(r.rows[i]!.h) === hashTextExtended(t, seeds[i]!) ? [] : [{ t, seed: seeds[i] }]));
    expect(wrong).toEqual([]);
    expect(await rowHashFor(client)).toBe("lookup3");
  });
});

const ROWS = 1200;
const TEXTS = ["plain", "with space", 'quote " and \\ backslash', "(paren, comma)", "", "é€中😀", "tab\tnew\nline", "NULL", "\\N"];

/** A table with a column of every kind the plan makes, filled with varied values. */
function source(): string {
  const path = sqliteFrom(
    tempDir(),
    `CREATE TABLE k (
       id INTEGER PRIMARY KEY, big INTEGER, r REAL, price NUMERIC(10,2), t TEXT, j JSON, b BLOB, ok BOOLEAN,
       day DATE, ts DATETIME, tz DATETIME, unix DATETIME, jd DATETIME
     )`,
  );
  const db = new Database(path);
  const ins = db.prepare("INSERT INTO k VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  db.transaction(() => {
    for (let i = 1; i <= ROWS; i++) {
      const pad = (n: number) => String(n).padStart(2, "0");
      ins.run(
        i,
        i % 5 === 0 ? 9007199254740993n + 1000n * BigInt(i) : BigInt(i * 7919 - 3000),
        i % 11 === 0 ? null : Math.sin(i) * 10 ** (i % 40),
        ((i * 37) % 100000) / 100,
        i % 13 === 0 ? null : `${TEXTS[i % TEXTS.length]} ${i}`,
        JSON.stringify({ i, s: TEXTS[i % TEXTS.length] }),
        i % 17 === 0 ? null : Buffer.from(Array.from({ length: (i % 40) + 1 }, (_, k) => (i * 31 + k * 7) & 255)),
        i % 2,
        `2024-${pad((i % 12) + 1)}-${pad((i % 28) + 1)}`,
        `2023-${pad((i % 12) + 1)}-${pad((i % 28) + 1)} ${pad(i % 24)}:${pad(i % 60)}:${pad((i * 7) % 60)}${i % 3 ? "." + String((i * 1237) % 1000000).padStart(6, "0") : ""}`,
        `2022-03-04 05:06:${pad(i % 60)}${["+05:30", "-08:00", "Z"][i % 3]}`,
        1700000000 + i * 3600,
        2460000.3125 + i / 8, // never integral: NUMERIC affinity would store a whole one as an integer
      );
    }
  })();
  db.close();
  return path;
}

/** One bit of a double's IEEE representation flipped. */
function flipDouble(x: number, bit: number): number {
  const v = new DataView(new ArrayBuffer(8));
  v.setFloat64(0, x);
  v.setUint8(7 - (bit >> 3), v.getUint8(7 - (bit >> 3)) ^ (1 << (bit & 7)));
  return v.getFloat64(0);
}

/** One bit of the UTF-16 code unit at `at` flipped (an ASCII letter stays ASCII, é becomes è). */
function flipText(s: string, at: number, bit = 0): string {
  return s.slice(0, at) + String.fromCharCode(s.charCodeAt(at) ^ (1 << bit)) + s.slice(at + 1);
}

/**
 * Per column: the value of one row with one bit flipped, as SQLite holds
 * it; and a change of one unit (one bit of the value, or the smallest step
 * its type has) as Postgres holds it.
 */
const FLIPS: { col: string; kind: string; sqlite: (v: unknown) => unknown; pg: string; id?: number }[] = [
  { col: "big", kind: "bigint", sqlite: (v) => BigInt(v as number | bigint) ^ (1n << 40n), pg: "big # (1::bigint << 40)" },
  { col: "r", kind: "double precision", sqlite: (v) => flipDouble(v as number, 0), pg: "$1" },
  { col: "price", kind: "numeric", sqlite: (v) => flipDouble(v as number, 0), pg: "price + 0.01" },
  { col: "t", kind: "text", sqlite: (v) => flipText(v as string, (v as string).length - 1), pg: "$1" },
  { col: "t", kind: "text", sqlite: (v) => flipText(v as string, 0), pg: "$1", id: 9 * 40 + 5 }, // "é€中😀 365": é becomes è
  { col: "j", kind: "json", sqlite: (v) => flipText(v as string, 2, 5), pg: "$1" },
  { col: "b", kind: "bytea", sqlite: (v) => Buffer.from((v as Buffer).map((x, k) => (k === 0 ? x ^ 0x80 : x))), pg: "$1" },
  { col: "ok", kind: "boolean", sqlite: (v) => Number(v) ^ 1, pg: "NOT ok" },
  { col: "day", kind: "date", sqlite: (v) => flipText(v as string, 9), pg: "day + 1" },
  { col: "ts", kind: "timestamp", sqlite: (v) => flipText(v as string, 18), pg: "ts + interval '1 microsecond'" },
  { col: "tz", kind: "timestamptz", sqlite: (v) => flipText(v as string, 18), pg: "tz + interval '1 microsecond'" },
  { col: "unix", kind: "timestamptz", sqlite: (v) => Number(v) ^ 1, pg: "unix + interval '1 microsecond'" },
  { col: "jd", kind: "timestamptz", sqlite: (v) => flipDouble(v as number, 0), pg: "jd + interval '1 millisecond'" },
];

describe("validate --full and one changed bit", () => {
  it("finds it in any column kind, on either side, and names the row", async () => {
    const path = source();
    const { url, client } = await freshDatabase();
    const { plan } = await migrateFile(path, url, { jobs: 1 });
    const t = plan.tables[0]!;
    expect(Object.fromEntries(t.columns.map((c) => [c.name, c.kind]))).toEqual({ id: "bigint", ...Object.fromEntries(FLIPS.map((f) => [f.col, f.kind])) });
    expect(TEXTS[365 % TEXTS.length]!.startsWith("é")).toBe(true);
    expect(t.columns.find((c) => c.name === "unix")!.conversion).toBe("epoch_s");
    expect(t.columns.find((c) => c.name === "jd")!.conversion).toBe("julian");
    const db = new Database(path);
    try {
      expect((await validate(db, client, plan, "full")).ok).toBe(true);
      const differs = async (what: string) => {
        const rep = await validate(db, client, plan, "full");
        return { what, ok: rep.ok, differences: rep.tables[0]!.differences };
      };
      for (const [n, f] of FLIPS.entries()) {
        const id = f.id ?? 100 + n * 83; // a different row each time, far from the ends of the rowid range
        const old = db
          .prepare(`SELECT ${f.col} AS v FROM k WHERE id = ?`)
          .safeIntegers(f.col === "big")
          .get(id) as { v: unknown };
        expect(old.v, f.col).not.toBeNull();
        const flipped = f.sqlite(old.v);
        expect(flipped, f.col).not.toEqual(old.v);

        db.prepare(`UPDATE k SET ${f.col} = ? WHERE id = ?`).run(flipped, id);
        const inSqlite = await differs(`${f.col} in SQLite`);
        db.prepare(`UPDATE k SET ${f.col} = ? WHERE id = ?`).run(old.v, id);
        expect(inSqlite).toEqual({ what: inSqlite.what, ok: false, differences: [{ key: `id=${id}`, kind: "values differ" }] });

        await client.query("BEGIN");
        await client.query(`UPDATE k SET ${f.col} = ${f.pg} WHERE id = ${id}`, f.pg === "$1" ? [flipped] : []);
        const inPg = await differs(`${f.col} in Postgres`);
        await client.query("ROLLBACK");
        expect(inPg).toEqual({ what: inPg.what, ok: false, differences: [{ key: `id=${id}`, kind: "values differ" }] });
      }
      expect((await validate(db, client, plan, "full")).ok).toBe(true);
    } finally {
      db.close();
    }
  });

  it("the md5 fallback (a server this process cannot hash like) sees it too", async () => {
    const path = source();
    const { url, client } = await freshDatabase();
    const { plan } = await migrateFile(path, url, { jobs: 1 });
    const t = plan.tables[0]!;
    const db = new Database(path);
    try {
      const both = async () => Promise.all([pgDigest(client, plan, t, "md5"), sqliteDigest(db, t, "md5")]);
      const [p, s] = await both();
      expect(p.rows).toBe(ROWS);
      expect(sameDigest(p, s)).toBe(true);
      expect(sameDigest(s, await sqliteDigest(db, t, "lookup3"))).toBe(false); // never equal across hashes
      await client.query("UPDATE k SET r = $1 WHERE id = 77", [flipDouble((db.prepare("SELECT r FROM k WHERE id = 77").get() as { r: number }).r, 0)]);
      const [p2, s2] = await both();
      expect(sameDigest(p2, s2)).toBe(false);
    } finally {
      db.close();
    }
  });
});
