/**
 * The `?` placeholder rule of the application library, on the three
 * dialects: which `?` are parameters, the PostgreSQL `$n` rewrite, `??` for
 * PostgreSQL's own `?` operators, the refused spellings, and the lock-name
 * derivations that must never change.
 */
import { describe, expect, it } from "vitest";
import { translatePlaceholders } from "../../src/db/placeholders.js";
import { mysqlLockName, pgAdvisoryLockKey } from "../../src/db/lock.js";
import { DatabaseError, DatabaseUsageError } from "../../src/db/errors.js";

const pg = (sql: string, scs = true) => translatePlaceholders(sql, "postgres", { standardConformingStrings: scs });

describe("PostgreSQL: ? becomes $n outside literals, identifiers, comments and dollar quotes", () => {
  it.each([
    ["SELECT ?", "SELECT $1", 1],
    ["SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = $1 AND b = $2", 2],
    ["INSERT INTO t VALUES (?,?,?)", "INSERT INTO t VALUES ($1,$2,$3)", 3],
    ["SELECT ?::int8, ?::text[]", "SELECT $1::int8, $2::text[]", 2],
    ["SELECT 'a?b', ?", "SELECT 'a?b', $1", 1],
    ["SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1", 1],
    // standard_conforming_strings = on: a backslash is an ordinary character in '…'
    ["SELECT 'C:\\', ?", "SELECT 'C:\\', $1", 1],
    // E'…': backslash escapes, so \' does not end the string
    ["SELECT E'it\\'s ?', ?", "SELECT E'it\\'s ?', $1", 1],
    ["SELECT e'\\\\', ?", "SELECT e'\\\\', $1", 1],
    ["SELECT E'a''?b', ?", "SELECT E'a''?b', $1", 1],
    ["SELECT U&'d\\0061t?', ?", "SELECT U&'d\\0061t?', $1", 1],
    ["SELECT B'101', X'1F', ?", "SELECT B'101', X'1F', $1", 1],
    ['SELECT "col?" FROM "t""?" WHERE x = ?', 'SELECT "col?" FROM "t""?" WHERE x = $1', 1],
    ["SELECT 1 -- what? \n, ?", "SELECT 1 -- what? \n, $1", 1],
    ["SELECT ? -- trailing ?", "SELECT $1 -- trailing ?", 1],
    ["SELECT /* ? /* nested ? */ still ? */ ?", "SELECT /* ? /* nested ? */ still ? */ $1", 1],
    ["SELECT $$ a ? b $$, ?", "SELECT $$ a ? b $$, $1", 1],
    ["SELECT $fn$ it's ? $x$ ? $fn$, ?", "SELECT $fn$ it's ? $x$ ? $fn$, $1", 1],
    ["CREATE FUNCTION f() RETURNS int AS $body$ SELECT '?' $body$ LANGUAGE sql", "CREATE FUNCTION f() RETURNS int AS $body$ SELECT '?' $body$ LANGUAGE sql", 0],
    ["SELECT a$b, ?", "SELECT a$b, $1", 1],
    ["SELECT doc ?? 'k' FROM t WHERE id = ?", "SELECT doc ? 'k' FROM t WHERE id = $1", 1],
    ["SELECT doc ??| ? FROM t", "SELECT doc ?| $1 FROM t", 1],
    ["SELECT doc ??& ?::text[]", "SELECT doc ?& $1::text[]", 1],
    ["SELECT ?,?,?,?,?,?,?,?,?,?,?", "SELECT $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11", 11],
    ["SELECT 'unterminated ?", "SELECT 'unterminated ?", 0],
  ])("%s", (sql, text, params) => {
    const t = pg(sql);
    expect(t.text).toBe(text);
    expect(t.params).toBe(params);
  });

  it("reads '…' with backslash escapes when standard_conforming_strings is off", () => {
    expect(pg("SELECT 'a\\'?', ?", false)).toMatchObject({ text: "SELECT 'a\\'?', $1", params: 1 });
    // With the setting off, \' does not end the string: the ? is inside it; on, it ends there and the ? is a parameter.
    expect(pg("SELECT 'a\\', ?, 'b'", false).params).toBe(0);
    expect(pg("SELECT 'a\\', ?, 'b'", true)).toMatchObject({ text: "SELECT 'a\\', $1, 'b'", params: 1 });
  });

  it("refuses $n and ?n parameters: one style", () => {
    expect(() => pg("SELECT $1")).toThrow(DatabaseUsageError);
    expect(() => pg("SELECT ?1")).toThrow(/numbered/);
    expect(pg("SELECT '$1', \"$2\", $$ $3 $$").params).toBe(0);
  });

  it("names the statement's verb, after the common table expressions of WITH", () => {
    expect(pg("select 1").verb).toBe("select");
    expect(pg("  /* c */ INSERT INTO t VALUES (1)").verb).toBe("insert");
    expect(pg("WITH x AS (SELECT 1), y(a) AS (SELECT 2) UPDATE t SET a = 1").verb).toBe("update");
    expect(pg("(SELECT 1) UNION (SELECT 2)").verb).toBe("select");
    expect(pg("").verb).toBe("");
  });
});

describe("MySQL: strings with backslash escapes, backtick identifiers, # and -- comments", () => {
  const my = (sql: string) => translatePlaceholders(sql, "mysql");
  it.each([
    ["SELECT ?", 1],
    ["SELECT 'a?b', \"c?d\", `e?f`, ?", 1],
    ["SELECT 'it\\'s ?', ?", 1],
    ['SELECT "say \\"?\\"", ?', 1],
    ["SELECT 'it''s ?', ?", 1],
    ["SELECT `a``?` FROM t WHERE x = ?", 1],
    ["SELECT 1 # what?\n, ?", 1],
    ["SELECT 1 -- what?\n, ?", 1],
    ["SELECT 1 /* ? */, ?", 1],
    // `--` without a space after it is two minus signs in MySQL, not a comment.
    ["SELECT 1--?", 1],
    ["SELECT $$ ?", 1],
  ])("%s", (sql, params) => {
    const t = my(sql);
    expect(t.params).toBe(params);
    expect(t.text).toBe(sql);
  });

  it("refuses ?? (MySQL has no ? operator) and numbered parameters", () => {
    expect(() => my("SELECT doc ??| ?")).toThrow(DatabaseUsageError);
    expect(() => my("SELECT ?1")).toThrow(DatabaseUsageError);
  });
});

describe("SQLite: its quoting forms and comments; other parameter spellings refused", () => {
  const lite = (sql: string) => translatePlaceholders(sql, "sqlite");
  it.each([
    ["SELECT ?", 1],
    ["SELECT 'a?b', \"c?d\", `e?f`, [g?h], ?", 1],
    ["SELECT 'C:\\', ?", 1],
    ["SELECT x'3f', ?", 1],
    ["SELECT 1 -- ?\n, ?", 1],
    ["SELECT /* ? */ ?", 1],
    ["SELECT json_extract(doc, '$.a') FROM t WHERE id = ?", 1],
    ["SELECT a$b FROM t", 0],
  ])("%s", (sql, params) => {
    expect(lite(sql)).toMatchObject({ text: sql, params });
  });

  it.each([["SELECT :name"], ["SELECT @name"], ["SELECT $name"], ["SELECT ?2"], ["SELECT ??"]])("refuses %s", (sql) => {
    expect(() => lite(sql)).toThrow(DatabaseUsageError);
  });

  it("a refusal is a typed usage error naming the place", () => {
    try {
      lite("SELECT 1, :who");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(DatabaseError);
      expect(e).toMatchObject({ kind: "usage", dialect: "sqlite" });
      expect((e as Error).message).toMatch(/offset 10/);
    }
  });
});

describe("the lock names", () => {
  it("pins the PostgreSQL advisory-lock key of a few names (never to change: old and new versions must agree)", () => {
    expect(pgAdvisoryLockKey("counter")).toBe(2702120870841829590n);
    expect(pgAdvisoryLockKey("jobs:nightly-report")).toBe(4037147245186621623n);
    expect(pgAdvisoryLockKey("é🔒")).toBe(-7490173869550707677n);
    expect(pgAdvisoryLockKey("")).toBe(4023223364010874519n);
  });

  it("keeps MySQL lock names up to 64 characters and hashes longer ones to 64", () => {
    expect(mysqlLockName("counter")).toBe("counter");
    const n64 = "x".repeat(64);
    expect(mysqlLockName(n64)).toBe(n64);
    const long = mysqlLockName("x".repeat(65));
    expect(long).toHaveLength(64);
    expect(long.startsWith("sqlite2pg-lock:")).toBe(true);
    expect(mysqlLockName("y".repeat(65))).not.toBe(long);
  });
});
