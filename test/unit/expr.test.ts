import { describe, expect, it } from "vitest";
import { translateExpr, type ExprContext, type PgTypeName } from "../../src/plan/expr.js";
import { translateDefault } from "../../src/plan/expr-default.js";
import { quoteIdent } from "../../src/ident.js";

/** SQLite folds only ASCII letters when it compares names. */
const fold = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** A table's columns, matched case-insensitively as SQLite does. */
function table(cols: Record<string, PgTypeName | null>, withTypes = false): ExprContext {
  const find = (n: string): string | undefined => Object.keys(cols).find((c) => fold(c) === fold(n));
  const ctx: ExprContext = { column: (n) => (find(n) === undefined ? null : quoteIdent(find(n)!)) };
  if (withTypes) ctx.columnType = (n) => (find(n) === undefined ? null : cols[find(n)!]!);
  return ctx;
}

const COLS: Record<string, PgTypeName | null> = {
  a: "bigint",
  b: "bigint",
  name: "text",
  price: "double precision",
  amount: "numeric",
  status: "text",
  "x y": "text",
  'q"t': "text",
  Größe: "double precision",
  名前: "text",
  flag: "boolean",
  data: "bytea",
  at: "timestamp",
  order: "bigint",
};
const ctx = table(COLS);
const typed = table(COLS, true);

const ok = (expr: string, c: ExprContext = ctx): string => {
  const r = translateExpr(expr, c);
  if (!r.ok) throw new Error(`refused ${expr}: ${r.reason}`);
  return r.sql;
};
const no = (expr: string, c: ExprContext = ctx): string => {
  const r = translateExpr(expr, c);
  if (r.ok) throw new Error(`translated ${expr} to ${r.sql}`);
  return r.reason;
};

describe("translateExpr: translated", () => {
  it.each([
    // column references, every quoting, case-insensitive
    ["a", '"a"'],
    ["A", '"a"'],
    ['"x y"', '"x y"'],
    ['[q"t]', '"q""t"'],
    ["`order`", '"order"'],
    ['"GRößE" > 0', '"Größe" > 0'],
    // SQLite folds ASCII only: "GRÖSSE" is not the column, so it is a string
    ['"GRÖSSE" > 0', "'GRÖSSE' > 0"],
    ["größe >= 0", '"Größe" >= 0'],
    ["名前 <> ''", `"名前" <> ''`],
    // literals
    ["a = 1", '"a" = 1'],
    ["a = -1", '"a" = -1'],
    ["a = +1", '"a" = 1'],
    ["a = 0x10", '"a" = 16'],
    ["a = 0xffffffffffffffff", '"a" = -1'],
    ["a = -0x8000000000000001", '"a" = 9223372036854775807'],
    ["a = 1_000", '"a" = 1000'],
    ["a > -9223372036854775808", '"a" > -9223372036854775808'],
    ["price > 0.5", '"price" > 0.5::double precision'],
    ["price > .5e1", '"price" > 5::double precision'],
    ["price < 9223372036854775808", '"price" < 9223372036854776000::double precision'],
    ["name = 'it''s'", `"name" = 'it''s'`],
    ["name <> 'a\\b'", `"name" <> 'a\\b'`],
    ["data = x'00FF'", `"data" = '\\x00ff'::bytea`],
    ["data <> x''", `"data" <> '\\x'::bytea`],
    ["a IS NULL", '"a" IS NULL'],
    ["name = NULL", '"name" = NULL'],
    ["flag = TRUE", '"flag" = TRUE'],
    ["flag = false", '"flag" = FALSE'],
    // comparisons and logic
    ["a == b", '"a" = "b"'],
    ["a != b", '"a" <> "b"'],
    ["a <> b", '"a" <> "b"'],
    ["a < b AND a <= b OR a > b AND a >= b", '(("a" < "b") AND ("a" <= "b")) OR (("a" > "b") AND ("a" >= "b"))'],
    ["NOT a = b", 'NOT ("a" = "b")'],
    ["NOT a AND b", '(NOT "a") AND "b"'],
    ["a > 0 AND (b < 10 OR b IS NULL)", '("a" > 0) AND (("b" < 10) OR ("b" IS NULL))'],
    ["((a))", '"a"'],
    // null tests and IS
    ["a IS NOT NULL", '"a" IS NOT NULL'],
    ["a ISNULL", '"a" IS NULL'],
    ["a NOTNULL", '"a" IS NOT NULL'],
    ["a NOT NULL", '"a" IS NOT NULL'],
    ["a IS b", '"a" IS NOT DISTINCT FROM "b"'],
    ["a IS NOT b", '"a" IS DISTINCT FROM "b"'],
    ["a IS DISTINCT FROM b", '"a" IS DISTINCT FROM "b"'],
    ["a IS NOT DISTINCT FROM b + 1", '"a" IS NOT DISTINCT FROM ("b" + 1)'],
    ["flag IS TRUE", '"flag" IS TRUE'],
    ["flag IS NOT FALSE", '"flag" IS NOT FALSE'],
    ["a = b IS NULL", '("a" = "b") IS NULL'],
    // IN and BETWEEN
    ["status IN ('a', 'b')", `"status" IN ('a', 'b')`],
    ["a NOT IN (1, 2, 3)", '"a" NOT IN (1, 2, 3)'],
    ["a IN (b + 1, 2)", '"a" IN ("b" + 1, 2)'],
    ["a IN ()", "FALSE"],
    ["a NOT IN ()", "TRUE"],
    ["a BETWEEN 1 AND 10", '"a" BETWEEN 1 AND 10'],
    ["a NOT BETWEEN b - 1 AND b + 1 AND a > 0", '("a" NOT BETWEEN ("b" - 1) AND ("b" + 1)) AND ("a" > 0)'],
    // arithmetic
    ["a + b * 2 - 1", '("a" + ("b" * 2)) - 1'],
    ["(a + b) * 2", '("a" + "b") * 2'],
    ["a - -1", '"a" - -1'],
    ["-a", '-"a"'],
    ["- -a", '-(-"a")'],
    ["-(-5)", "- -5"],
    ["~a", '~"a"'],
    ["a & b | 1", '("a" & "b") | 1'],
    ["a / 2", '"a" / 2'],
    ["a / b", '"a" / NULLIF("b", 0)'],
    ["a % 3", '"a" % 3'],
    ["a % b", '"a" % NULLIF("b", 0)'],
    ["a / 0", '"a" / NULLIF(0, 0)'],
    ["price / 2.5", '"price" / 2.5::double precision'],
    // strings
    ["name || 'x'", `"name" || 'x'`],
    ["name || a", '"name" || "a"'],
    ["name LIKE 'Ab%'", `translate("name", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') LIKE 'ab%' ESCAPE ''`],
    [
      "name NOT LIKE status",
      `translate("name", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') NOT LIKE translate("status", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') ESCAPE ''`,
    ],
    ["name LIKE 'É\\_%' ESCAPE '\\'", `translate("name", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') LIKE 'É\\_%' ESCAPE '\\'`],
    ["name GLOB 'ab*'", `"name" LIKE 'ab%' ESCAPE '\\'`],
    ["name NOT GLOB '*_?%\\'", `"name" NOT LIKE '%\\__\\%\\\\' ESCAPE '\\'`],
    ["a > 0 AND name like 'x%'", `("a" > 0) AND (translate("name", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') LIKE 'x%' ESCAPE '')`],
    // functions
    ["lower(name) = 'x'", `translate("name", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') = 'x'`],
    ["UPPER(name) = upper('aé')", `translate("name", 'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ') = 'Aé'`],
    ["length(name) > 0", 'length("name") > 0'],
    ["length(trim(name)) BETWEEN 1 AND 10", 'length(btrim("name")) BETWEEN 1 AND 10'],
    ["ltrim(name, 'x') = rtrim(name)", `ltrim("name", 'x') = rtrim("name")`],
    ["abs(a) < 5", 'abs("a") < 5'],
    ["coalesce(a, b, 0) > 0", 'coalesce("a", "b", 0) > 0'],
    ["ifnull(a, 0) > 0", 'coalesce("a", 0) > 0'],
    ["nullif(a, 0)", 'nullif("a", 0)'],
    ["substr(name, 1, 3) = 'abc'", `substr("name", 1, 3) = 'abc'`],
    ["SUBSTRING(name, 2)", 'substr("name", 2)'],
    ["instr(name, '@') > 1", `strpos("name", '@') > 1`],
    ["replace(name, ' ', '') <> ''", `replace("name", ' ', '') <> ''`],
    ["iif(a > 0, 'p', 'n')", `(CASE WHEN "a" > 0 THEN 'p' ELSE 'n' END)`],
    ["likely(a > 0)", '("a" > 0)'],
    ["likelihood(a > 0, 0.9) AND b", '("a" > 0) AND "b"'],
    // CASE
    ["CASE WHEN a > 0 THEN 'p' WHEN a < 0 THEN 'n' ELSE 'z' END", `CASE WHEN "a" > 0 THEN 'p' WHEN "a" < 0 THEN 'n' ELSE 'z' END`],
    ["CASE a WHEN 1 THEN 'one' END = 'one'", `(CASE "a" WHEN 1 THEN 'one' END) = 'one'`],
    // COLLATE BINARY is byte order, which Postgres's "C" collation is
    ["name COLLATE BINARY < 'b'", `("name" COLLATE "C") < 'b'`],
    // CAST of literals whose conversion is exact
    ["CAST(1 AS TEXT) = name", `CAST(1 AS text) = "name"`],
    ["cast('x' as varchar(10))", `CAST('x' AS text)`],
    ["CAST(2 AS REAL)", "CAST(2 AS double precision)"],
    ["CAST(2 AS INTEGER)", "CAST(2 AS bigint)"],
    ["CAST(2 AS NUMERIC)", "2"],
    ["CAST(NULL AS INTEGER)", "NULL"],
    // an unknown "name" is a string in SQLite
    [`status IN ("active", "inactive")`, `"status" IN ('active', 'inactive')`],
    // comments and whitespace
    ["a /* c */ >\n\t-- d\n 0", '"a" > 0'],
  ])("%s", (input, expected) => {
    expect(ok(input)).toBe(expected);
  });

  it("uses ctx.column for every identifier it emits", () => {
    const weird: ExprContext = { column: (n) => (n === "a" ? '"renamed ""a"""' : null) };
    expect(ok("a > 0 and length(a) < a", weird)).toBe('("renamed ""a""" > 0) AND (length("renamed ""a""") < "renamed ""a""")');
  });

  it("reads TRUE and FALSE as columns when the table has columns of those names", () => {
    const c = table({ true: "bigint", x: "bigint" });
    expect(ok("true = 1", c)).toBe('"true" = 1');
    expect(ok("false = 1", c)).toBe("FALSE = 1");
    expect(ok("x IS true", c)).toBe('"x" IS NOT DISTINCT FROM "true"');
    expect(ok(`x = "false"`, c)).toBe(`"x" = 'false'`);
  });

  it("with column types: CAST of a column whose conversion is exact", () => {
    expect(ok("CAST(a AS TEXT)", typed)).toBe('CAST("a" AS text)');
    expect(ok("CAST(a AS REAL) > price", typed)).toBe('CAST("a" AS double precision) > "price"');
    expect(ok("CAST(name AS TEXT)", typed)).toBe('CAST("name" AS text)');
    expect(ok("name || a", typed)).toBe('"name" || "a"');
  });
});

describe("translateExpr: refused", () => {
  it.each([
    ["c > 0", /column "c" is not in this table/],
    ["[c] > 0", /column "c" is not in this table/],
    ["rowid > 0", /rowid/],
    ["t.a > 0", /qualified column reference t\.a/],
    ["typeof(a) = 'integer'", /function typeof\(\) is not translated/],
    ["json_valid(name)", /JSON function json_valid\(\)/],
    ["round(price, 2) = price", /function round\(\) is not translated: SQLite rounds halves/],
    ["randomblob(4)", /randomblob\(\).*not deterministic/],
    ["max(a, b) > 0", /scalar max\(\)/],
    ["datetime(name) IS NOT NULL", /date\/time function datetime\(\)/],
    ["strftime('%Y', at) > '2000'", /date\/time function strftime\(\)/],
    ["frobnicate(a)", /function frobnicate\(\) has no exact Postgres equivalent/],
    // Names every object has are no known functions either.
    ["constructor(a)", /function constructor\(\) has no exact Postgres equivalent/],
    ["tostring(a)", /function tostring\(\) has no exact Postgres equivalent/],
    ["count(*) > 0", /aggregate call count\(\* …\)/],
    ["count(distinct a)", /aggregate call count\(DISTINCT …\)/],
    ["sum(a) over ()", /window or aggregate call sum\(\)/],
    ["group_concat(a order by b)", /ORDER BY inside group_concat\(\)/],
    ["substr(name, -2)", /substr\(\) is translated only with literal positions/],
    ["substr(name, 1, -2)", /substr\(\)/],
    ["substr(name, a)", /substr\(\)/],
    ["substr(name, 0)", /substr\(\)/],
    ["lower(name, 1)", /function lower\(\) with 2 arguments is not valid SQLite/],
    ["coalesce(a)", /function coalesce\(\) with 1 argument/],
    ["a << 2", /shift operator <<.*0\.\.63/],
    ["a >> 2", /shift operator >>/],
    ["name -> '$.a'", /JSON operator ->/],
    ["name ->> '$.a'", /JSON operator ->>/],
    ["name MATCH 'x'", /MATCH has no Postgres equivalent/],
    ["name REGEXP 'x'", /REGEXP has no Postgres equivalent/],
    ["name GLOB '[a-z]*'", /GLOB character classes/],
    ["name GLOB status", /GLOB with a pattern that is not a string literal/],
    ["name LIKE 'x' ESCAPE 'ab'", /ESCAPE needs a one-character string literal/],
    ["name LIKE 'x' ESCAPE status", /ESCAPE needs a one-character string literal/],
    ["name LIKE 'x' ESCAPE 'e'", /escape character is not translated/],
    ["name COLLATE NOCASE = 'x'", /COLLATE NOCASE has no exact Postgres equivalent/],
    ["name COLLATE RTRIM = 'x'", /COLLATE RTRIM/],
    ["a IN (SELECT b FROM t)", /subqueries are not translated/],
    ["a IN t", /IN with a table/],
    ["EXISTS (SELECT 1)", /subqueries/],
    ["(SELECT 1) = a", /subqueries/],
    ["(a, b) = (1, 2)", /row values/],
    ["a = ?", /bound parameter \?/],
    ["a = :x", /bound parameter :x/],
    ["at < CURRENT_TIMESTAMP", /CURRENT_TIMESTAMP is not deterministic/],
    ["RAISE(ABORT, 'x')", /RAISE\(\)/],
    ["CAST(a AS TEXT)", /CAST\(… AS TEXT\) of a value whose type is not known/],
    ["CAST(name AS INTEGER)", /CAST/],
    ["CAST(1.5 AS INTEGER)", /CAST of a real value AS INTEGER converts differently/],
    ["CAST(1.5 AS TEXT)", /CAST of a real value AS TEXT/],
    ["CAST('1' AS REAL)", /CAST of a text value AS REAL/],
    ["CAST(x'00' AS BLOB)", /CAST\(… AS BLOB\)/],
    ["1.5 || 'x'", /\|\| on a real operand/],
    ["(a > 0) || 'x'", /\|\| on a bool operand/],
    ["x'00' || name", /\|\| on a blob operand/],
    ["5.5 % 2", /% on a real operand/],
    ["a = 0x10000000000000000", /hex literal 0x10000000000000000 does not fit in 64 bits/],
    ["price > 1e999", /numeric literal 1e999 is out of range/],
    ["name = 'a\u0000b'", /NUL character/],
    ["a >", /cannot parse the expression \(expected an expression at the end\)/],
    ["a b", /cannot parse the expression \(unexpected text near "b"\)/],
    ["(a", /cannot parse the expression \(expected "\)" at the end\)/],
    ["name = 'x", /cannot parse the expression \(unterminated string/],
    ["CASE END", /expected WHEN/],
    ["CAST(a AS)", /expected a type name/],
    ["a BETWEEN 1", /expected AND/],
    ["a IS DISTINCT b", /expected FROM/],
    ["", /expected an expression/],
  ])("%s", (input, reason) => {
    expect(no(input)).toMatch(reason);
  });

  it("with column types: operands whose text or remainder differs", () => {
    expect(no("price || 'x'", typed)).toMatch(/\|\| on a real operand/);
    expect(no("amount || ''", typed)).toMatch(/\|\| on a real operand/);
    expect(no("flag || ''", typed)).toMatch(/\|\| on a bool operand/);
    expect(no("data || name", typed)).toMatch(/\|\| on a blob operand/);
    expect(no("at || ''", typed)).toMatch(/\|\| on a date\/time or json operand/);
    expect(no("price % 2", typed)).toMatch(/% on a real operand/);
    expect(no("amount / 2", typed)).toMatch(/\/ on a numeric column/);
    expect(no("2 / amount", typed)).toMatch(/\/ on a numeric column/);
    expect(ok("price / 2", typed)).toBe('"price" / 2');
    expect(no("CAST(price AS INTEGER)", typed)).toMatch(/CAST of a real value AS INTEGER/);
    expect(no("CAST(name AS INTEGER)", typed)).toMatch(/CAST of a text value AS INTEGER/);
  });

  it("reasons are one line", () => {
    for (const e of ["c > 0", "typeof(a)", "a >", "name GLOB '[x]'"]) expect(no(e)).not.toMatch(/\n/);
  });
});

describe("translateDefault", () => {
  const d = (text: string, type: PgTypeName): string => {
    const r = translateDefault(text, type);
    if (!r.ok) throw new Error(`refused ${text} for ${type}: ${r.reason}`);
    return r.sql;
  };
  const refused = (text: string, type: PgTypeName): string => {
    const r = translateDefault(text, type);
    if (r.ok) throw new Error(`translated ${text} for ${type} to ${r.sql}`);
    return r.reason;
  };

  it("refuses a call of a function named like an object's property, as any unknown function", () => {
    for (const f of ["constructor()", "toString('now')", "__proto__()", "hasOwnProperty('now')"]) expect(refused(f, "text"), f).toMatch(/not translated/);
  });

  it.each<[string, PgTypeName, string]>([
    // integers
    ["0", "bigint", "0"],
    ["-1", "integer", "-1"],
    ["- 1", "smallint", "-1"],
    ["+1", "bigint", "1"],
    ["0x10", "bigint", "16"],
    ["-0x10", "bigint", "-16"],
    ["0xffffffffffffffff", "bigint", "-1"],
    ["9223372036854775807", "bigint", "9223372036854775807"],
    ["-9223372036854775808", "bigint", "-9223372036854775808"],
    ["32767", "smallint", "32767"],
    ["-2147483648", "integer", "-2147483648"],
    ["1.0", "integer", "1"],
    ["1e2", "bigint", "100"],
    ["'0'", "integer", "0"],
    ["' 12 '", "bigint", "12"],
    ["'3.0e+5'", "bigint", "300000"],
    ["(0)", "bigint", "0"],
    ["((-1))", "bigint", "-1"],
    ["('7')", "bigint", "7"],
    ["TRUE", "bigint", "1"],
    ["false", "integer", "0"],
    ["NULL", "bigint", "NULL"],
    ["(null)", "integer", "NULL"],
    // reals and numerics
    ["0.5", "double precision", "0.5"],
    ["-1.5e3", "double precision", "-1500"],
    ["+1.5", "double precision", "1.5"],
    [".5", "numeric", "0.5"],
    ["1", "double precision", "1"],
    ["0x10", "numeric", "16"],
    ["'1.50'", "numeric", "1.5"],
    ["'2'", "double precision", "2"],
    ["1e21", "double precision", "1e+21"],
    ["9223372036854775808", "double precision", "9223372036854776000"],
    // text
    ["'it''s'", "text", "'it''s'"],
    ["('x')", "text", "'x'"],
    ['""', "text", "''"],
    ['"abc"', "text", "'abc'"],
    ["abc", "text", "'abc'"],
    ["[a b]", "text", "'a b'"],
    [`'"0"'`, "text", `'"0"'`],
    ["0", "text", "'0'"],
    ["-5", "text", "'-5'"],
    ["0x10", "text", "'16'"],
    ["true", "text", "'1'"],
    ["'a\\b'", "text", "'a\\b'"],
    ["'名前'", "text", "'名前'"],
    // booleans
    ["0", "boolean", "false"],
    ["1", "boolean", "true"],
    ["'0'", "boolean", "false"],
    ["'1'", "boolean", "true"],
    ["'true'", "boolean", "true"],
    ["'false'", "boolean", "false"],
    ["TRUE", "boolean", "true"],
    ["FALSE", "boolean", "false"],
    ["(1)", "boolean", "true"],
    // blobs
    ["x'00FF'", "bytea", "'\\x00ff'::bytea"],
    ["X''", "bytea", "'\\x'::bytea"],
    // dates and times as literals
    ["'2024-01-02'", "date", "'2024-01-02'"],
    ["'2024-01-02 03:04:05'", "timestamp", "'2024-01-02 03:04:05'"],
    ["'2024-01-02T03:04:05.123456'", "timestamp", "'2024-01-02T03:04:05.123456'"],
    ["'2024-01-02'", "timestamp", "'2024-01-02'"],
    ["'2024-01-02 03:04:05Z'", "timestamptz", "'2024-01-02 03:04:05Z'"],
    ["'2024-01-02T03:04:05+02:00'", "timestamptz", "'2024-01-02T03:04:05+02:00'"],
    // json
    [`'{"a": [1, "x"]}'`, "json", `'{"a": [1, "x"]}'`],
    ["'[]'", "json", "'[]'"],
    ["5", "json", "'5'"],
    // the time of the insert
    ["CURRENT_TIMESTAMP", "timestamp", "(date_trunc('second', CURRENT_TIMESTAMP AT TIME ZONE 'UTC'))"],
    ["current_timestamp", "timestamptz", "date_trunc('second', CURRENT_TIMESTAMP)"],
    ["CURRENT_TIMESTAMP", "text", "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"],
    ["datetime('now')", "timestamp", "(date_trunc('second', CURRENT_TIMESTAMP AT TIME ZONE 'UTC'))"],
    ["(datetime('now'))", "text", "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"],
    ["(DATETIME('NOW'))", "timestamptz", "date_trunc('second', CURRENT_TIMESTAMP)"],
    ["datetime()", "timestamp", "(date_trunc('second', CURRENT_TIMESTAMP AT TIME ZONE 'UTC'))"],
    ["CURRENT_DATE", "date", "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')::date"],
    ["current_date", "text", "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'YYYY-MM-DD')"],
    ["(date('now'))", "date", "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')::date"],
    ["current_date", "timestamp", "((CURRENT_TIMESTAMP AT TIME ZONE 'UTC')::date::timestamp)"],
    ["CURRENT_TIME", "text", "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'HH24:MI:SS')"],
    ["(time('now'))", "text", "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'HH24:MI:SS')"],
    ["(strftime('%s','now'))", "bigint", "(floor(extract(epoch from CURRENT_TIMESTAMP))::bigint)"],
    ["strftime('%s','now')", "integer", "(floor(extract(epoch from CURRENT_TIMESTAMP))::bigint)"],
    ["strftime('%s','now')", "text", "((floor(extract(epoch from CURRENT_TIMESTAMP))::bigint)::text)"],
    ["(unixepoch())", "bigint", "(floor(extract(epoch from CURRENT_TIMESTAMP))::bigint)"],
    ["unixepoch('now')", "double precision", "(floor(extract(epoch from CURRENT_TIMESTAMP))::bigint)"],
    ["(strftime('%Y-%m-%d %H:%M:%f', 'now'))", "text", "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS')"],
    ["(strftime('%Y-%m-%d %H:%M:%f', 'now'))", "timestamp", "(date_trunc('milliseconds', CURRENT_TIMESTAMP AT TIME ZONE 'UTC'))"],
    ["(strftime('%Y-%m-%d %H:%M:%f', 'now'))", "timestamptz", "date_trunc('milliseconds', CURRENT_TIMESTAMP)"],
    ["(strftime('%Y-%m-%dT%H:%M:%SZ','now'))", "text", `to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`],
    ["strftime('%Y/%m/%d %j %%', 'now')", "text", "to_char(CURRENT_TIMESTAMP AT TIME ZONE 'UTC', 'YYYY/MM/DD DDD\" %\"')"],
    ["strftime('%Y-%m-%d %H:%M:%S','now')", "timestamp", "(date_trunc('second', CURRENT_TIMESTAMP AT TIME ZONE 'UTC'))"],
    ["(julianday('now'))", "double precision", "((floor(extract(epoch from CURRENT_TIMESTAMP) * 1000) + 210866760000000)::double precision / 86400000.0)"],
  ])("%s for %s", (text, type, expected) => {
    expect(d(text, type)).toBe(expected);
  });

  it.each<[string, PgTypeName, RegExp]>([
    [`'"0"'`, "integer", /'"0"' is text that is not a number; an integer column cannot hold it/],
    ["'abc'", "double precision", /text that is not a number; a double precision column/],
    ["'0x10'", "bigint", /text that is not a number/],
    ["''", "numeric", /text that is not a number/],
    ["1.5", "bigint", /1\.5 is not an integer; a bigint column cannot hold it/],
    ["'1.5'", "integer", /is not an integer/],
    ["1e20", "bigint", /is not an integer/],
    ["32768", "smallint", /out of the range of smallint/],
    ["2147483648", "integer", /out of the range of integer/],
    ["-0x10000000000000000", "bigint", /hex literal/],
    ["x'00'", "bigint", /is not an integer/],
    ["x'00'", "double precision", /is a blob/],
    ["x'00'", "text", /is a blob; a text column cannot hold it/],
    ["1.5", "text", /is a real: SQLite's text rendering of it is not reproduced/],
    ["2", "boolean", /not 0, 1, 'true' or 'false'/],
    ["'yes'", "boolean", /not 0, 1, 'true' or 'false'/],
    ["'TRUE'", "boolean", /not 0, 1/],
    ["'00ff'", "bytea", /is not a blob; a bytea column cannot hold it/],
    ["0", "timestamp", /0 is not text; a timestamp column holds ISO dates/],
    ["'2024-02-30'", "date", /not a valid ISO date/],
    ["'2024-01-02 03:04'", "date", /not a valid ISO date/],
    ["'2024-01-02 25:00:00'", "timestamp", /not a valid ISO timestamp/],
    ["'yesterday'", "timestamp", /not a valid ISO timestamp/],
    ["'2024-01-02 03:04:05+01:00'", "timestamp", /has a time zone/],
    ["'2024-01-02 03:04:05'", "timestamptz", /has no time zone/],
    ["'{bad'", "json", /not valid JSON/],
    ["1.5", "json", /not JSON text/],
    ["(datetime('now', 'localtime'))", "timestamp", /uses the 'localtime' modifier/],
    ["DATETIME('now', 'localtime')", "text", /localtime/],
    ["datetime('now', '+1 day')", "timestamp", /uses the modifier '\+1 day'/],
    ["datetime('2020-01-01')", "timestamp", /constant written as a function call/],
    ["datetime(a)", "timestamp", /expression that is not translated/],
    ["CURRENT_TIMESTAMP", "bigint", /a time rendered as text, which a bigint column does not hold/],
    ["CURRENT_TIMESTAMP", "date", /a time rendered as text, which a date column does not hold/],
    ["CURRENT_TIME", "timestamp", /a time rendered as text/],
    ["current_date", "timestamptz", /a time rendered as text/],
    ["strftime('%s','now')", "smallint", /number of seconds, which a smallint column does not hold/],
    ["strftime('%s','now')", "timestamptz", /number of seconds/],
    ["strftime('%w','now')", "text", /strftime format that to_char\(\) does not reproduce exactly/],
    ["strftime('%Y','now')", "bigint", /a time rendered as text/],
    ["strftime()", "text", /function strftime\(\) in a default is not translated/],
    ["julianday('now')", "numeric", /julian day, which only a double precision column holds exactly/],
    ["random()", "bigint", /function random\(\) in a default is not translated/],
    ["(1 + 2)", "bigint", /\(1 \+ 2\) is an expression that is not translated/],
    ["1 + 2", "bigint", /expression that is not translated/],
    ["-'1'", "bigint", /-'1' is an expression that is not translated/],
    ["(abc)", "text", /refers to a column/],
    ["'unterminated", "text", /cannot parse the default/],
    ["1e999", "double precision", /out of range/],
    ["'a\u0000b'", "text", /NUL character/],
  ])("refuses %s for %s", (text, type, reason) => {
    expect(refused(text, type)).toMatch(reason);
  });

  it("accepts the DEFAULT texts of the pgloader sample database", () => {
    expect(d("''", "text")).toBe("''");
    expect(d("'0'", "smallint")).toBe("0");
    expect(d("(strftime('%Y-%m-%d %H:%M:%f', 'now'))", "timestamp")).toBe("(date_trunc('milliseconds', CURRENT_TIMESTAMP AT TIME ZONE 'UTC'))");
    expect(d("current_date", "date")).toBe("(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')::date");
    expect(refused("(DATETIME('now', 'localtime'))", "timestamp")).toMatch(/localtime/);
    expect(refused(`'"0"'`, "bigint")).toMatch(/not a number/);
  });
});
