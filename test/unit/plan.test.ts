import { describe, expect, it } from "vitest";
import { Namespace, pgName, truncateIdent } from "../../src/plan/names.js";
import { chooseType } from "../../src/plan/types.js";
import { affinity } from "../../src/sqlite/schema.js";
import { DATE_CLASS, numericTypmod, type ColumnCensus } from "../../src/sqlite/census.js";
import type { SourceColumn } from "../../src/sqlite/schema.js";
import { quoteIdent, quoteLiteral } from "../../src/ident.js";
import { resolveConfig } from "../../src/config/config.js";
import { describeError, exitCodeFor, sourceError } from "../../src/errors.js";
import { redactUrl } from "../../src/postgres/pg.js";

const col = (declaredType: string): SourceColumn => ({
  name: "c",
  cid: 0,
  declaredType,
  notNull: false,
  defaultSql: null,
  pkOrdinal: 0,
  generated: null,
  collation: null,
  checks: [],
});
const census = (c: Partial<ColumnCensus>): ColumnCensus => ({
  nulls: 0,
  integers: 0,
  reals: 0,
  texts: 0,
  blobs: 0,
  minInt: null,
  maxInt: null,
  dateClasses: 0,
  textBooleans: 0,
  textJson: 0,
  julianReals: 0,
  zeroOne: 0,
  numericFits: 0,
  ...c,
});

describe("identifiers", () => {
  it("quotes with doubled quotes, and literals likewise", () => {
    expect(quoteIdent('we"ird; name')).toBe('"we""ird; name"');
    expect(quoteLiteral("it's")).toBe("'it''s'");
    expect(() => quoteIdent("a\u0000b")).toThrow();
  });
  it("folds ASCII only, as Postgres folds unquoted names, and cuts at 63 bytes on a character boundary", () => {
    expect(pgName("CamelCase", false)).toBe("camelcase");
    expect(pgName("ÄBC", false)).toBe("Äbc");
    expect(pgName("CamelCase", true)).toBe("CamelCase");
    const cut = truncateIdent("é".repeat(40));
    expect(Buffer.byteLength(cut)).toBe(62);
  });
  it("names both sides of a collision; generated names take a suffix", () => {
    const ns = new Namespace("tables");
    ns.claim("Users", "users");
    expect(() => ns.claim("USERS", "users")).toThrow(/"Users" and "USERS" both become "users".*fold/);
    expect(ns.claimGenerated("users")).toBe("users_2");
  });
});

describe("type choice", () => {
  it("follows SQLite's affinity rules", () => {
    expect(affinity("unsigned big int")).toBe("integer");
    expect(affinity("varying character(255)")).toBe("text");
    expect(affinity("")).toBe("blob");
    expect(affinity("double precision")).toBe("real");
    expect(affinity("DECIMAL(10,5)")).toBe("numeric");
  });
  it("keeps a row whose INTEGER column holds text, as text", () => {
    const d = chooseType(col("INTEGER"), census({ integers: 5, texts: 1, minInt: 1n, maxInt: 9n }), false)!;
    expect(d.kind).toBe("text");
    expect(d.reason).toMatch(/no row is lost/);
  });
  it("picks dates, timestamps, zones and epochs from the census", () => {
    expect(chooseType(col("DATE"), census({ texts: 3, dateClasses: DATE_CLASS.date }), false)!.kind).toBe("date");
    expect(chooseType(col("DATETIME"), census({ texts: 3, dateClasses: DATE_CLASS.date | DATE_CLASS.timestamp }), false)!.kind).toBe("timestamp");
    expect(chooseType(col("DATETIME"), census({ texts: 3, dateClasses: DATE_CLASS.timestamptz }), false)!.kind).toBe("timestamptz");
    expect(chooseType(col("DATETIME"), census({ texts: 3, dateClasses: DATE_CLASS.timestamp | DATE_CLASS.timestamptz }), false)!.kind).toBe("text");
    expect(chooseType(col("DATETIME"), census({ texts: 3, dateClasses: DATE_CLASS.timestamp | DATE_CLASS.other }), false)!.kind).toBe("text");
    expect(chooseType(col("DATETIME"), census({ integers: 2, minInt: 0n, maxInt: 1700000000n }), false)!.conversion).toBe("epoch_s");
    expect(chooseType(col("DATETIME"), census({ integers: 2, minInt: 1600000000000n, maxInt: 1700000000000n }), false)!.conversion).toBe("epoch_ms");
  });
  it("keeps numeric(p,s) only when every value fits it exactly", () => {
    expect(numericTypmod("NUMERIC(10, 2)")).toEqual({ precision: 10, scale: 2 });
    expect(chooseType(col("NUMERIC(10,2)"), census({ reals: 3, numericFits: 3 }), false)!.sql).toBe("numeric(10,2)");
    expect(chooseType(col("NUMERIC(10,2)"), census({ reals: 3, numericFits: 2 }), false)!.sql).toBe("double precision");
  });
  it("uses double precision only while every integer is exact in it", () => {
    expect(chooseType(col(""), census({ reals: 1, integers: 1, minInt: 1n, maxInt: 2n ** 53n }), false)!.kind).toBe("double precision");
    expect(chooseType(col(""), census({ reals: 1, integers: 1, minInt: 1n, maxInt: 2n ** 53n + 1n }), false)!.kind).toBe("numeric");
  });
  it("refuses blobs mixed with other values", () => {
    expect(chooseType(col("TEXT"), census({ blobs: 1, texts: 1 }), false)).toBeNull();
  });
});

describe("secrets", () => {
  it("are redacted from connection strings of every form", () => {
    expect(redactUrl("postgres://app:hunter2@db/x")).toBe("postgres://app:***@db/x");
    expect(redactUrl("postgres://db/x?password=hunter2")).not.toContain("hunter2");
    expect(redactUrl("host=db user=app password = hunter2")).toBe("host=db user=app password = ***");
    expect(redactUrl("host=db password='my secret' user=x")).toBe("host=db password=*** user=x");
    // A socket URL (empty host) is not a URL the WHATWG parser takes: masked all the same.
    expect(redactUrl("postgres://app:hunter2@/x?host=/run/postgresql")).toBe("postgres://app:***@/x?host=/run/postgresql");
  });
});

describe("configuration and errors", () => {
  it("takes flags over the environment over the file", () => {
    expect(resolveConfig({}, { DATABASE_URL: "postgres://env" }).pg).toBe("postgres://env");
    expect(resolveConfig({ pg: "postgres://flag" }, { DATABASE_URL: "postgres://env" }).pg).toBe("postgres://flag");
    expect(() => resolveConfig({ jobs: 0 }, {})).toThrow(/--jobs/);
  });
  it("maps categories to exit codes and prints one paragraph with context and hint", () => {
    const e = sourceError("VALUE_REFUSED", "bad value", { context: { table: "t", column: "c", key: "id=1" }, hint: "fix it" });
    expect(exitCodeFor(e)).toBe(3);
    expect(exitCodeFor(new Error("boom"))).toBe(70);
    expect(describeError(e)).toBe('error [VALUE_REFUSED]: bad value\n  table=t column=c key="id=1"\n  hint: fix it');
  });
});

describe("census", () => {
  it("counts the rowid alias as integers without a pass over its values, and every other column's kinds", async () => {
    const Database = (await import("better-sqlite3")).default;
    const { censusTable } = await import("../../src/sqlite/census.js");
    const { readSchema } = await import("../../src/sqlite/schema.js");
    const db = new Database(":memory:");
    db.exec("CREATE TABLE u (id INTEGER PRIMARY KEY, n)");
    db.exec("INSERT INTO u VALUES (1, 1), (2, 2.5), (9007199254740993, 'x')");
    const c = censusTable(db, readSchema(db).tables.find((t) => t.name === "u")!);
    expect(c.rows).toBe(3);
    expect(c.columns.get("id")).toMatchObject({ integers: 3, reals: 0, texts: 0, minInt: 1n, maxInt: 9007199254740993n });
    expect(c.columns.get("n")).toMatchObject({ integers: 1, reals: 1, texts: 1 });
    db.close();
  });
});
