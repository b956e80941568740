import Database from "better-sqlite3";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { quoteIdent } from "../../src/ident.js";
import { parseCreateIndex, parseCreateTable, tokenize, type ParsedColumnDef } from "../../src/sqlite/sql-text.js";

const col = (t: ReturnType<typeof parseCreateTable>, name: string): ParsedColumnDef => {
  const c = t.columns.find((x) => x.name === name);
  if (!c) throw new Error(`no column ${name} in ${t.columns.map((x) => x.name).join(", ")}`);
  return c;
};

describe("tokenize", () => {
  const kinds = (sql: string): string[] => tokenize(sql).map((t) => `${t.kind}:${t.value}`);

  it("reads every quoting form of an identifier", () => {
    expect(kinds(`"a""b" [x y] \`c\`\`d\` plain_1$ 'it''s'`)).toEqual(['ident:a"b', "ident:x y", "ident:c`d", "ident:plain_1$", "string:it's"]);
  });

  it("keeps the raw text and offsets of each token", () => {
    const [t] = tokenize(`  "a""b"  `);
    expect(t).toEqual({ kind: "ident", text: '"a""b"', value: 'a"b', start: 2, end: 8 });
  });

  it("skips line and block comments, including an unterminated block comment at the end", () => {
    expect(kinds("a -- b ( c\n d /* e ) ' */ f /* g")).toEqual(["ident:a", "ident:d", "ident:f"]);
    expect(kinds("a--b")).toEqual(["ident:a"]);
    expect(kinds("a/**/b")).toEqual(["ident:a", "ident:b"]);
  });

  it("reads numbers, hex numbers, blobs and parameters", () => {
    expect(kinds("1 1.5 .5 1. 1e10 2.5E-3 0x1F 1_000 x'00fF' X'' ? ?3 :n @m $v")).toEqual([
      "number:1",
      "number:1.5",
      "number:.5",
      "number:1.",
      "number:1e10",
      "number:2.5E-3",
      "number:0x1F",
      "number:1_000",
      "blob:00fF",
      "blob:",
      "param:?",
      "param:?3",
      "param::n",
      "param:@m",
      "param:$v",
    ]);
  });

  it("reads operators longest first", () => {
    expect(kinds("a->>'x' || b <> c != d == e <= f >= g << h >> i -> j")).toEqual([
      "ident:a",
      "op:->>",
      "string:x",
      "op:||",
      "ident:b",
      "op:<>",
      "ident:c",
      "op:!=",
      "ident:d",
      "op:==",
      "ident:e",
      "op:<=",
      "ident:f",
      "op:>=",
      "ident:g",
      "op:<<",
      "ident:h",
      "op:>>",
      "ident:i",
      "op:->",
      "ident:j",
    ]);
  });

  it("reads non-ASCII identifiers bare and quoted", () => {
    expect(kinds(`größe "名前" émoji😀x`)).toEqual(["ident:größe", "ident:名前", "ident:émoji😀x"]);
  });

  it("an x followed by something other than a quote is an identifier", () => {
    expect(kinds("x xy x1")).toEqual(["ident:x", "ident:xy", "ident:x1"]);
  });

  it("throws on unterminated strings and identifiers, bad blobs and stray characters", () => {
    expect(() => tokenize("'abc")).toThrow(/unterminated string/);
    expect(() => tokenize('"abc')).toThrow(/unterminated quoted identifier/);
    expect(() => tokenize("[abc")).toThrow(/unterminated bracketed identifier/);
    expect(() => tokenize("x'0'")).toThrow(/malformed blob/);
    expect(() => tokenize("x'zz'")).toThrow(/malformed blob/);
    expect(() => tokenize("a ! b")).toThrow(/unexpected character "!"/);
    expect(() => tokenize("12abc")).toThrow(/malformed number/);
  });
});

describe("parseCreateTable on real-world DDL", () => {
  it("reads Chinook's bracket-quoted tables with table-level keys", () => {
    const t = parseCreateTable(`CREATE TABLE [PlaylistTrack]
(
    [PlaylistId] INTEGER  NOT NULL,
    [TrackId] INTEGER  NOT NULL,
    CONSTRAINT [PK_PlaylistTrack] PRIMARY KEY  ([PlaylistId], [TrackId]),
    FOREIGN KEY ([PlaylistId]) REFERENCES [Playlist] ([PlaylistId]) 
		ON DELETE NO ACTION ON UPDATE NO ACTION,
    FOREIGN KEY ([TrackId]) REFERENCES [Track] ([TrackId]) 
		ON DELETE NO ACTION ON UPDATE NO ACTION
)`);
    expect(t.name).toBe("PlaylistTrack");
    expect(t.columns.map((c) => [c.name, c.declaredType, c.notNull, c.primaryKey])).toEqual([
      ["PlaylistId", "INTEGER", true, false],
      ["TrackId", "INTEGER", true, false],
    ]);
    expect(t.checks).toEqual([]);
  });

  it("reads Chinook's AUTOINCREMENT keys and NUMERIC(10,2)", () => {
    const t = parseCreateTable(`CREATE TABLE [InvoiceLine]
(
    [InvoiceLineId] INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    [InvoiceId] INTEGER  NOT NULL,
    [UnitPrice] NUMERIC(10,2)  NOT NULL,
    [Title] NVARCHAR(160)  NOT NULL,
    FOREIGN KEY ([InvoiceId]) REFERENCES [Invoice] ([InvoiceId]) 
		ON DELETE NO ACTION ON UPDATE NO ACTION
)`);
    expect(col(t, "InvoiceLineId")).toMatchObject({ primaryKey: true, autoincrement: true, notNull: true, declaredType: "INTEGER" });
    expect(col(t, "UnitPrice").declaredType).toBe("NUMERIC(10,2)");
    expect(col(t, "Title").declaredType).toBe("NVARCHAR(160)");
  });

  it("reads pgloader's odd type spellings", () => {
    const u = parseCreateTable("CREATE TABLE unsigned(id integer not null, action_flag smallint unsigned not null, s short integer)");
    expect(u.columns.map((c) => c.declaredType)).toEqual(["integer", "smallint unsigned", "short integer"]);
    expect(col(u, "action_flag").notNull).toBe(true);
    const n = parseCreateTable("CREATE TABLE typenames(id integer primary key autoincrement, is_public integer default '\"0\"', name text nocase)");
    expect(col(n, "is_public").defaultExpr).toBe(`'"0"'`);
    expect(col(n, "name")).toMatchObject({ declaredType: "text nocase", collate: null });
    const a = parseCreateTable("CREATE TABLE autoinc(id integer auto_increment primary key, ticket text)");
    expect(col(a, "id")).toMatchObject({ declaredType: "integer auto_increment", primaryKey: true, autoincrement: false });
    expect(parseCreateTable("CREATE TABLE t548(foo numeric(20, 6), bar numeric(12,4))").columns.map((c) => c.declaredType)).toEqual([
      "numeric(20, 6)",
      "numeric(12,4)",
    ]);
    expect(parseCreateTable(`CREATE TABLE double(x "double precision", y real)`).columns[0]!.declaredType).toBe("double precision");
    expect(parseCreateTable("CREATE TABLE long(name char(70), amount double)").columns.map((c) => c.declaredType)).toEqual(["char(70)", "double"]);
    expect(parseCreateTable("CREATE TABLE intege(id intege default NULL)").columns[0]).toMatchObject({ declaredType: "intege", defaultExpr: "NULL" });
  });

  it("reads pgloader's defaults", () => {
    expect(col(parseCreateTable(`CREATE TABLE def(id integer primary key autoincrement, f1 text default "", f2 text)`), "f1").defaultExpr).toBe('""');
    expect(col(parseCreateTable("CREATE TABLE stamps(StartTime DATETIME DEFAULT 0, EndTime DATETIME DEFAULT 0)"), "EndTime").defaultExpr).toBe("0");
    expect(col(parseCreateTable("CREATE TABLE ints(id integer primary key, a tinyint default '0', b smallint)"), "a").defaultExpr).toBe("'0'");
    expect(col(parseCreateTable("CREATE TABLE currentdate (id integer primary key, my_value datetime default current_date)"), "my_value").defaultExpr).toBe(
      "current_date",
    );
    expect(parseCreateTable("CREATE TABLE appointments (time TIMESTAMP DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')))").columns[0]).toMatchObject({
      name: "time",
      declaredType: "TIMESTAMP",
      defaultExpr: "(strftime('%Y-%m-%d %H:%M:%f', 'now'))",
    });
    expect(parseCreateTable("CREATE TABLE datetime_default(i integer, foo datetime default(DATETIME('now', 'localtime')))").columns[1]!.defaultExpr).toBe(
      "(DATETIME('now', 'localtime'))",
    );
  });

  it("reads reserved words as table and column names", () => {
    expect(parseCreateTable(`CREATE TABLE "references"(id integer)`).name).toBe("references");
    expect(parseCreateTable("CREATE TABLE user(id integer primary key autoincrement, name text)").name).toBe("user");
    expect(parseCreateTable("CREATE TABLE character(id integer primary key, f1 character(20))").columns[1]!.declaredType).toBe("character(20)");
    expect(parseCreateTable("CREATE TABLE sqlite_sequence(name,seq)").columns.map((c) => [c.name, c.declaredType])).toEqual([
      ["name", ""],
      ["seq", ""],
    ]);
  });

  it("reads web2py's column REFERENCES with ON DELETE CASCADE", () => {
    const t = parseCreateTable(`CREATE TABLE auth_membership(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER REFERENCES auth_user (id) ON DELETE CASCADE,
    group_id INTEGER REFERENCES auth_group (id) ON DELETE CASCADE
)`);
    expect(t.columns.map((c) => [c.name, c.declaredType])).toEqual([
      ["id", "INTEGER"],
      ["user_id", "INTEGER"],
      ["group_id", "INTEGER"],
    ]);
    expect(col(t, "id").autoincrement).toBe(true);
  });
});

describe("parseCreateTable on hard cases", () => {
  it("accepts TEMP, IF NOT EXISTS, schema-qualified and quoted names", () => {
    expect(parseCreateTable("CREATE TEMP TABLE IF NOT EXISTS temp.t (a)").name).toBe("t");
    expect(parseCreateTable("create temporary table main.[x y](a)").name).toBe("x y");
    expect(parseCreateTable(`CREATE TABLE "main"."a""b"(a)`).name).toBe('a"b');
    expect(parseCreateTable("CREATE TABLE `q`(a)").name).toBe("q");
    expect(parseCreateTable("CREATE TABLE 'single'(a);").name).toBe("single");
  });

  it("reads column constraints in any order, with names and conflict clauses", () => {
    const t = parseCreateTable(
      "create table x(b integer constraint c1 not null on conflict replace constraint c2 check (b > 0) collate nocase primary key desc on conflict ignore autoincrement unique on conflict fail default 7)",
    );
    expect(t.columns[0]).toEqual({
      name: "b",
      declaredType: "integer",
      collate: "nocase",
      checks: ["b > 0"],
      generated: null,
      autoincrement: true,
      primaryKey: true,
      primaryKeyDesc: true,
      unique: true,
      notNull: true,
      defaultExpr: "7",
    });
  });

  it("reads signed and parenthesized defaults and bare words", () => {
    const t = parseCreateTable(
      "create table d(a default abc, b default \"\", c default true, d default - 1, e default +0x10, f default (1 + (2)), g default current_timestamp, h default -1.5e3, i default x'00ff', j default 'a''b', k default null)",
    );
    expect(t.columns.map((c) => c.defaultExpr)).toEqual([
      "abc",
      '""',
      "true",
      "- 1",
      "+0x10",
      "(1 + (2))",
      "current_timestamp",
      "-1.5e3",
      "x'00ff'",
      "'a''b'",
      "null",
    ]);
    expect(parseCreateTable("create table e(a default -'1', b)").columns[0]!.defaultExpr).toBe("-'1'");
    expect(() => parseCreateTable("create table e(a default - , b)")).toThrow(/expected a value after the sign of a DEFAULT/);
  });

  it("reads generated columns, stored and virtual, with and without GENERATED ALWAYS", () => {
    const t = parseCreateTable(
      "create table g(x int, y int generated always as (x+1) virtual, z as (x*2) stored, w text GENERATED ALWAYS AS (lower('A' || (x))) NOT NULL, v as (x))",
    );
    expect(t.columns.map((c) => c.generated)).toEqual([
      null,
      { expr: "x+1", stored: false },
      { expr: "x*2", stored: true },
      { expr: "lower('A' || (x))", stored: false },
      { expr: "x", stored: false },
    ]);
    expect(col(t, "w")).toMatchObject({ declaredType: "text", notNull: true });
    expect(col(t, "z").declaredType).toBe("");
  });

  it("keeps strings with parentheses, commas and quotes inside CHECK expressions", () => {
    const t = parseCreateTable(`create table c(a text check (a <> ')'',(' and a not like '%,%'), b check(b in ('x)', "y,"))) `);
    expect(col(t, "a").checks).toEqual([`a <> ')'',(' and a not like '%,%'`]);
    expect(col(t, "b").checks).toEqual([`b in ('x)', "y,")`]);
  });

  it("reads table-level CHECKs with and without names, and separated without commas", () => {
    const t = parseCreateTable(
      "create table a4(a int, b int, check(a>0) constraint k check (b > (a - 1)) unique(a) constraint [pk] primary key (a, b) on conflict abort, check ( a <> b ))",
    );
    expect(t.checks).toEqual([
      { name: null, expr: "a>0" },
      { name: "k", expr: "b > (a - 1)" },
      { name: null, expr: "a <> b" },
    ]);
    expect(t.columns.map((c) => c.primaryKey)).toEqual([false, false]);
  });

  it("reads foreign keys with every clause", () => {
    const t =
      parseCreateTable(`create table "references"("references", "from" text references "references" ("references") on delete cascade on update set null match simple deferrable initially deferred not null,
      x int references p not deferrable initially immediate unique, y references q(a) on delete set default on update restrict,
      foreign key (x, y) references p (a, b) on update no action not deferrable, foreign key(x) references "p q")`);
    expect(t.columns.map((c) => c.name)).toEqual(["references", "from", "x", "y"]);
    expect(col(t, "from")).toMatchObject({ notNull: true, declaredType: "text" });
    expect(col(t, "x")).toMatchObject({ unique: true, declaredType: "int" });
  });

  it("reads PRIMARY KEY(x AUTOINCREMENT)", () => {
    const t = parseCreateTable("create table a1(id integer, primary key(id autoincrement))");
    expect(col(t, "id")).toMatchObject({ autoincrement: true, primaryKey: false });
  });

  it("reads multi-word types, types with arguments and types written as strings", () => {
    const t = parseCreateTable(
      "create table t(a unsigned big int, b double precision, c varying character(255), d INT(11), e tinyint(1), f nvarchar(100), g int(+1, -2), h 'int', i numeric( 10 , 2 ), j long varchar not null, k)",
    );
    expect(t.columns.map((c) => c.declaredType)).toEqual([
      "unsigned big int",
      "double precision",
      "varying character(255)",
      "INT(11)",
      "tinyint(1)",
      "nvarchar(100)",
      "int(+1, -2)",
      "int",
      "numeric( 10 , 2 )",
      "long varchar",
      "",
    ]);
  });

  it("reads keywords that SQLite accepts as bare names", () => {
    const t = parseCreateTable(
      `create table "a""5" (\`order\` int, [group] text, "select" int, key int, action int, replace int, temp int, "from", "primary" text, "check", "constraint" int, user)`,
    );
    expect(t.name).toBe('a"5');
    expect(t.columns.map((c) => c.name)).toEqual([
      "order",
      "group",
      "select",
      "key",
      "action",
      "replace",
      "temp",
      "from",
      "primary",
      "check",
      "constraint",
      "user",
    ]);
    expect(t.columns.map((c) => c.declaredType)).toEqual(["int", "text", "int", "int", "int", "int", "int", "", "text", "", "int", ""]);
  });

  it("reads comments anywhere", () => {
    const t = parseCreateTable(`/* head */ CREATE /* a */ TABLE -- b
      t /* c */ ( -- d ( , )
      a /* e */ int /* f */ not /* g */ null, -- h , )
      b text default ( lower( /* i ) */ 'A') ) -- j
      , check ( a > 0 /* k */ ) ) -- end`);
    expect(t.columns.map((c) => [c.name, c.declaredType, c.notNull])).toEqual([
      ["a", "int", true],
      ["b", "text", false],
    ]);
    expect(col(t, "b").defaultExpr).toBe("( lower( /* i ) */ 'A') )");
    // Comments between the last token and the ")" are not part of the expression.
    expect(t.checks).toEqual([{ name: null, expr: "a > 0" }]);
  });

  it("reads unicode and quote-laden names", () => {
    const t = parseCreateTable(`CREATE TABLE "ü名" ("größe" real check ("größe" >= 0), [a "b"] text, \`c"d\` int, "e""f" int, 名前 text, 'g''h' int)`);
    expect(t.name).toBe("ü名");
    expect(t.columns.map((c) => c.name)).toEqual(["größe", 'a "b"', 'c"d', 'e"f', "名前", "g'h"]);
    expect(col(t, "größe").checks).toEqual([`"größe" >= 0`]);
  });

  it("reads WITHOUT ROWID and STRICT in either order", () => {
    expect(parseCreateTable("create table y(a integer primary key, b int) without rowid")).toMatchObject({ withoutRowid: true, strict: false });
    expect(parseCreateTable("create table z(a integer primary key, b int) strict, without rowid")).toMatchObject({ withoutRowid: true, strict: true });
    expect(parseCreateTable("create table z(a int) WITHOUT ROWID, STRICT;")).toMatchObject({ withoutRowid: true, strict: true });
    expect(parseCreateTable("create table z(a int)")).toMatchObject({ withoutRowid: false, strict: false });
  });

  it("throws a clear error on what it cannot parse", () => {
    expect(() => parseCreateTable("CREATE VIRTUAL TABLE f USING fts5(a, b)")).toThrow(/virtual tables/);
    expect(() => parseCreateTable("CREATE TABLE t AS SELECT 1")).toThrow(/AS SELECT/);
    expect(() => parseCreateTable("CREATE TABLE t(a int")).toThrow(/cannot parse CREATE TABLE statement/);
    expect(() => parseCreateTable("CREATE TABLE t(a int check (a > (0)")).toThrow(/unbalanced parentheses/);
    expect(() => parseCreateTable("CREATE TABLE t(a int check (a > 0)")).toThrow(/expected "," or "\)" at the end of the text/);
    expect(() => parseCreateTable("CREATE TABLE t(a int check ())")).toThrow(/empty parentheses/);
    expect(() => parseCreateTable("CREATE TABLE t(a int default)")).toThrow(/expected a DEFAULT value/);
    expect(() => parseCreateTable("CREATE TABLE t(a int primary key on conflict maybe)")).toThrow(/conflict resolution/);
    expect(() => parseCreateTable("CREATE TABLE t(a int references p on delete explode)")).toThrow(/foreign key action/);
    expect(() => parseCreateTable("CREATE TABLE t()")).toThrow(/expected a column name/);
    expect(() => parseCreateTable("CREATE TABLE t(a int) banana")).toThrow(/WITHOUT ROWID or STRICT/);
    expect(() => parseCreateTable("CREATE TABLE t(a int frobnicate(1) x)")).toThrow(/definition of column "a"/);
    expect(() => parseCreateTable("CREATE INDEX i ON t(a)")).toThrow(/expected TABLE/);
    expect(() => parseCreateTable("")).toThrow(/expected CREATE at the end of the text/);
    expect(() => parseCreateTable("CREATE TABLE t(a 'unterminated)")).toThrow(/unterminated string/);
  });
});

describe("parseCreateIndex", () => {
  it("reads Chinook's bracket-quoted indexes", () => {
    expect(parseCreateIndex("CREATE INDEX [IFK_AlbumArtistId] ON [Album] ([ArtistId])")).toEqual({
      name: "IFK_AlbumArtistId",
      table: "Album",
      unique: false,
      columns: [{ expr: "[ArtistId]", column: "ArtistId", collate: null, desc: false }],
      where: null,
    });
  });

  it("reads UNIQUE, IF NOT EXISTS, qualified names, COLLATE, DESC and WHERE", () => {
    expect(parseCreateIndex(`create unique index if not exists main.ix on d('a' collate nocase desc, "b" ASC, c) where c > 0 and "b" <> 'x;y';`)).toEqual({
      name: "ix",
      table: "d",
      unique: true,
      columns: [
        { expr: "'a'", column: "a", collate: "nocase", desc: true },
        { expr: '"b"', column: "b", collate: null, desc: false },
        { expr: "c", column: "c", collate: null, desc: false },
      ],
      where: `c > 0 and "b" <> 'x;y'`,
    });
  });

  it("reads expression terms with nested parentheses and commas", () => {
    const ix = parseCreateIndex("CREATE INDEX e ON t (lower(a), substr(b, 1, (2 + 3)) COLLATE \"NOCASE\" DESC, (a || ',') , a + b)");
    expect(ix.columns).toEqual([
      { expr: "lower(a)", column: null, collate: null, desc: false },
      { expr: "substr(b, 1, (2 + 3))", column: null, collate: "NOCASE", desc: true },
      { expr: "(a || ',')", column: null, collate: null, desc: false },
      { expr: "a + b", column: null, collate: null, desc: false },
    ]);
  });

  it("reads comments and unicode names", () => {
    const ix = parseCreateIndex(`CREATE /*x*/ INDEX "索引" -- y
      ON "ü名" ( "größe" /* z */ DESC ) WHERE /* w */ "größe" IS NOT NULL -- end`);
    expect(ix).toMatchObject({ name: "索引", table: "ü名", where: `"größe" IS NOT NULL` });
    expect(ix.columns).toEqual([{ expr: `"größe"`, column: "größe", collate: null, desc: true }]);
  });

  it("throws a clear error on what it cannot parse", () => {
    expect(() => parseCreateIndex("CREATE INDEX i ON t")).toThrow(/cannot parse CREATE INDEX statement: expected "\("/);
    expect(() => parseCreateIndex("CREATE INDEX i ON t(a,)")).toThrow(/empty index term/);
    expect(() => parseCreateIndex("CREATE INDEX i ON t(a) WHERE")).toThrow(/expected an expression after WHERE/);
    expect(() => parseCreateIndex("CREATE INDEX i ON t(a) extra")).toThrow(/unexpected text after the index definition/);
    expect(() => parseCreateIndex("CREATE TABLE t(a)")).toThrow(/expected INDEX/);
  });
});

/** Statements SQLite accepts; each is created for real and its stored text compared with the PRAGMAs. */
const LIVE_FIXTURES = [
  `CREATE TABLE [Album]
(
    [AlbumId] INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    [Title] NVARCHAR(160)  NOT NULL,
    [ArtistId] INTEGER  NOT NULL,
    FOREIGN KEY ([ArtistId]) REFERENCES [Artist] ([ArtistId]) 
		ON DELETE NO ACTION ON UPDATE NO ACTION
)`,
  "CREATE TABLE unsigned(id integer not null, action_flag smallint unsigned not null, s short integer)",
  `CREATE TABLE def(id integer primary key autoincrement, f1 text default "", f2 text)`,
  `CREATE TABLE typenames(id integer primary key autoincrement, is_public integer default '"0"', name text nocase)`,
  "CREATE TABLE appointments (time TIMESTAMP DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')))",
  "CREATE TABLE t548(foo numeric(20, 6), bar numeric(12,4))",
  `CREATE TABLE "references"(id integer, "references" text references "references"("references") on delete cascade deferrable initially deferred not null)`,
  "CREATE TABLE IF NOT EXISTS main.g(x int, y int generated always as (x+1) virtual, z as (x*2) stored, w text GENERATED ALWAYS AS (lower('A' || x)) NOT NULL, v int default -0x10)",
  `CREATE TABLE "ü名" ("größe" real check ("größe" >= 0) default +1.5, [a b] text collate nocase default 'it''s', \`c"d\` int, "e""f" int unique, 名前 text check (名前 <> ')'',(' ))`,
  `CREATE TABLE /* c */ k ( -- x ( ,
    "order" int /* y */ not null, key int, action int, "select" text, user default abc, "from" default (1 + 2),
    check (key > 0) constraint named check ("order" <> key) unique (action, "select") primary key ("order" desc)
  ) without rowid`,
  "CREATE TABLE s(a INTEGER PRIMARY KEY, b TEXT NOT NULL, c ANY, d REAL DEFAULT 0.5) STRICT",
  "CREATE TABLE ai(id integer, v, primary key(id autoincrement))",
];

describe("parseCreateTable agrees with SQLite's PRAGMAs", () => {
  it.each(LIVE_FIXTURES)("%s", (ddl) => {
    const db = new Database(":memory:");
    try {
      db.exec(ddl);
      const rows = db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name <> 'sqlite_sequence'").all() as {
        name: string;
        sql: string;
      }[];
      expect(rows).toHaveLength(1);
      const { name, sql } = rows[0]!;
      for (const text of [ddl, sql]) {
        const parsed = parseCreateTable(text);
        expect(parsed.name).toBe(name);
        const xinfo = db.pragma(`table_xinfo(${JSON.stringify(name)})`) as {
          name: string;
          type: string;
          notnull: number;
          dflt_value: string | null;
          pk: number;
          hidden: number;
        }[];
        expect(parsed.columns.map((c) => c.name)).toEqual(xinfo.map((x) => x.name));
        parsed.columns.forEach((c, i) => {
          const x = xinfo[i]!;
          expect(c.generated === null ? 0 : c.generated.stored ? 3 : 2).toBe(x.hidden);
          expect(c.declaredType.toLowerCase()).toBe(x.type.toLowerCase());
          // PRAGMA table_info drops the parentheses around a DEFAULT (expr).
          const d = c.defaultExpr?.startsWith("(") ? c.defaultExpr.slice(1, -1).trim() : c.defaultExpr;
          expect(d).toBe(x.dflt_value);
          if (c.notNull) expect(x.notnull).toBe(1);
          if (c.primaryKey) expect(x.pk).toBeGreaterThan(0);
        });
        const list = db.pragma(`table_list(${JSON.stringify(name)})`) as { wr: number; strict: number }[];
        expect(parsed.withoutRowid).toBe(list[0]!.wr === 1);
        expect(parsed.strict).toBe(list[0]!.strict === 1);
      }
    } finally {
      db.close();
    }
  });

  it("parses the index text SQLite stores, and agrees with PRAGMA index_xinfo", () => {
    const db = new Database(":memory:");
    try {
      db.exec(`CREATE TABLE t(a text, "b c" int, d);
        CREATE UNIQUE INDEX IF NOT EXISTS main.i1 ON t(a COLLATE NOCASE DESC, "b c") WHERE d IS NOT NULL;
        CREATE INDEX [i 2] ON t(lower(a), d + 1 DESC, 'd');`);
      const rows = db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'index' ORDER BY name").all() as { name: string; sql: string }[];
      for (const r of rows) {
        const ix = parseCreateIndex(r.sql);
        expect(ix.name).toBe(r.name);
        expect(ix.table).toBe("t");
        const info = (db.pragma(`index_xinfo(${JSON.stringify(r.name)})`) as { name: string | null; desc: number; coll: string; key: number }[]).filter(
          (x) => x.key === 1,
        );
        expect(ix.columns.map((c) => c.column)).toEqual(info.map((x) => x.name));
        expect(ix.columns.map((c) => c.desc)).toEqual(info.map((x) => x.desc === 1));
        expect(ix.columns.map((c) => (c.collate ?? "BINARY").toUpperCase())).toEqual(info.map((x) => x.coll.toUpperCase()));
      }
      expect(parseCreateIndex(rows.find((r) => r.name === "i1")!.sql).where).toBe("d IS NOT NULL");
    } finally {
      db.close();
    }
  });
});

describe("names of any text survive quoting and parsing", () => {
  it("parseCreateTable returns the names quoteIdent wrote, and SQLite agrees", () => {
    const name = fc.string({ minLength: 1, maxLength: 12, unit: "grapheme" }).filter((s) => !s.includes("\u0000"));
    fc.assert(
      fc.property(name, fc.uniqueArray(name, { minLength: 1, maxLength: 4, comparator: (a, b) => a.toLowerCase() === b.toLowerCase() }), (t, cols) => {
        const ddl = `CREATE TABLE ${quoteIdent(t)} (${cols.map((c, i) => `${quoteIdent(c)} ${i % 2 ? "text" : ""} /* ${i} */`).join(", ")})`;
        const parsed = parseCreateTable(ddl);
        expect(parsed.name).toBe(t);
        expect(parsed.columns.map((c) => c.name)).toEqual(cols);
        const db = new Database(":memory:");
        try {
          db.exec(ddl);
          const stored = (db.prepare("SELECT sql FROM sqlite_schema").get() as { sql: string }).sql;
          expect(parseCreateTable(stored).columns.map((c) => c.name)).toEqual(
            (db.pragma(`table_xinfo(${quoteIdent(t)})`) as { name: string }[]).map((x) => x.name),
          );
        } finally {
          db.close();
        }
      }),
      { numRuns: 200 },
    );
  });
});
