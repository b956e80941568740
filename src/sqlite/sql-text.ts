/**
 * A reader for SQLite's own DDL text (the `sql` column of `sqlite_schema`).
 *
 * The PRAGMAs describe columns, indexes and foreign keys, but not CHECK
 * constraints, generated-column expressions, column COLLATE clauses,
 * AUTOINCREMENT, or the expressions of expression and partial indexes; those
 * are read here. Expressions are returned as the exact source text between
 * their delimiters, for `plan/expr.ts` to translate.
 *
 * Why one file over 400 lines: one parser of CREATE TABLE/INDEX/TRIGGER
 * text, whose clause readers share the cursor and the error reporting; the
 * tokenizer (sql-tokens.ts) is the part that stands alone.
 */
import { tokenize, type Token } from "./sql-tokens.js";

export { tokenize } from "./sql-tokens.js";

/** One column definition of a CREATE TABLE statement. */
export interface ParsedColumnDef {
  /** The column name, unquoted. */
  name: string;
  /**
   * The type as written, e.g. `NUMERIC(10,2)` or `unsigned big int`; `""` when
   * none. A type written as one quoted token (`"double precision"`) is
   * unquoted, as SQLite itself does.
   */
  declaredType: string;
  /** The COLLATE name on the column, or null. */
  collate: string | null;
  /** Column-level CHECK expressions, exactly as in the source, without the parentheses. */
  checks: string[];
  /** `GENERATED ALWAYS AS (expr) [STORED|VIRTUAL]` or `AS (expr)`; VIRTUAL is SQLite's default. */
  generated: { expr: string; stored: boolean } | null;
  autoincrement: boolean;
  /** A column-level PRIMARY KEY (a table-level PRIMARY KEY(...) does not set this). */
  primaryKey: boolean;
  primaryKeyDesc: boolean;
  /** A column-level UNIQUE. */
  unique: boolean;
  notNull: boolean;
  /**
   * The DEFAULT clause text: a literal, a signed number (`-1`, `+1.5`), an
   * `(expr)` with its parentheses, a bare word (`CURRENT_TIMESTAMP`, `abc`), or
   * null when there is none.
   */
  defaultExpr: string | null;
}

/** A CREATE TABLE statement, as far as the migration needs it. */
export interface ParsedCreateTable {
  /** The table name, unquoted, without a schema qualifier. */
  name: string;
  columns: ParsedColumnDef[];
  /** Table-level CHECK constraints (`[CONSTRAINT name] CHECK (...)`); column-level ones are on the columns. */
  checks: { name: string | null; expr: string }[];
  withoutRowid: boolean;
  strict: boolean;
}

/** One term of an index: a plain column or an expression. */
interface ParsedIndexColumn {
  /** The term's text as written, without its COLLATE and ASC/DESC. */
  expr: string;
  /** The column name, unquoted, when the term is a plain column name; otherwise null. */
  column: string | null;
  /** The COLLATE name on the term, or null. */
  collate: string | null;
  desc: boolean;
}

/** A CREATE INDEX statement. */
export interface ParsedCreateIndex {
  /** The index name, unquoted, without a schema qualifier. */
  name: string;
  /** The table name, unquoted. */
  table: string;
  unique: boolean;
  columns: ParsedIndexColumn[];
  /** The WHERE expression of a partial index, exactly as in the source, or null. */
  where: string | null;
}

/** Words that end a column's type name and start a column constraint. */
const CONSTRAINT_WORDS = new Set(["constraint", "primary", "not", "null", "unique", "check", "default", "collate", "references", "as"]);
/** Words that start a table constraint. */
const TABLE_CONSTRAINT_WORDS = new Set(["constraint", "primary", "unique", "check", "foreign"]);
const CONFLICT_ACTIONS = new Set(["rollback", "abort", "fail", "ignore", "replace"]);

/** A position in a token list, with the helpers a recursive-descent reader needs. */
class Cursor {
  pos = 0;
  readonly toks: Token[];

  constructor(
    readonly sql: string,
    readonly what: string,
  ) {
    this.toks = tokenize(sql);
    // A trailing `;` is not part of the statement.
    while (this.toks.length && this.toks[this.toks.length - 1]!.text === ";") this.toks.pop();
  }

  peek(k = 0): Token | undefined {
    return this.toks[this.pos + k];
  }

  atEnd(): boolean {
    return this.pos >= this.toks.length;
  }

  /** True when the token `k` ahead is the unquoted keyword `word` (lower case). */
  isKw(word: string, k = 0): boolean {
    return this.kwAt(this.pos + k, word);
  }

  /** True when token `i` is the unquoted keyword `word` (lower case). */
  kwAt(i: number, word: string): boolean {
    const t = this.toks[i];
    return t !== undefined && t.kind === "ident" && t.text === t.value && t.text.toLowerCase() === word;
  }

  isOp(op: string, k = 0): boolean {
    const t = this.peek(k);
    return t !== undefined && t.kind === "op" && t.text === op;
  }

  acceptKw(...words: string[]): boolean {
    if (!words.every((w, k) => this.isKw(w, k))) return false;
    this.pos += words.length;
    return true;
  }

  expectKw(...words: string[]): void {
    if (!this.acceptKw(...words)) this.fail(`expected ${words.join(" ").toUpperCase()}`);
  }

  expectOp(op: string): void {
    if (!this.isOp(op)) this.fail(`expected "${op}"`);
    this.pos++;
  }

  /** A name: an identifier in any quoting, or a string used as a name. */
  name(what: string): string {
    const t = this.peek();
    if (!t || (t.kind !== "ident" && t.kind !== "string")) this.fail(`expected ${what}`);
    this.pos++;
    return t.value;
  }

  /** A possibly schema-qualified name; the qualifier is dropped. */
  qualifiedName(what: string): string {
    let n = this.name(what);
    if (this.isOp(".")) {
      this.pos++;
      n = this.name(what);
    }
    return n;
  }

  /** At `(`: consume the balanced group and return the index of its `)`. */
  group(): number {
    this.expectOp("(");
    let depth = 1;
    while (!this.atEnd()) {
      const t = this.toks[this.pos++]!;
      if (t.kind !== "op") continue;
      if (t.text === "(") depth++;
      else if (t.text === ")" && --depth === 0) return this.pos - 1;
    }
    return this.fail("unbalanced parentheses");
  }

  /** At `(`: consume the group and return the source text strictly inside it. */
  groupText(): string {
    const open = this.pos;
    const close = this.group();
    if (close === open + 1) this.fail("empty parentheses", open);
    return this.text(open + 1, close);
  }

  /** The source text from token `a` to token `b` (exclusive). */
  text(a: number, b: number): string {
    return this.sql.slice(this.toks[a]!.start, this.toks[b - 1]!.end);
  }

  fail(message: string, at = this.pos): never {
    const t = this.toks[at];
    const where = t ? `at offset ${t.start} near ${JSON.stringify(t.text)}` : "at the end of the text";
    throw new Error(`cannot parse ${this.what}: ${message} ${where}: ${this.sql.length > 200 ? this.sql.slice(0, 200) + "…" : this.sql}`);
  }

  /** An optional `ON CONFLICT action` clause. */
  conflictClause(): void {
    if (!this.isKw("on") || !this.isKw("conflict", 1)) return;
    this.pos += 2;
    const t = this.peek();
    if (!t || !CONFLICT_ACTIONS.has(t.text.toLowerCase())) this.fail("expected a conflict resolution (ROLLBACK, ABORT, FAIL, IGNORE, REPLACE)");
    this.pos++;
  }

  /** After REFERENCES: `table [(cols)]` and any ON DELETE/UPDATE, MATCH, [NOT] DEFERRABLE clauses. */
  foreignKeyClause(): void {
    this.name("the referenced table");
    if (this.isOp("(")) this.group();
    for (;;) {
      if (this.isKw("on") && (this.isKw("delete", 1) || this.isKw("update", 1))) {
        this.pos += 2;
        if (
          this.acceptKw("set", "null") ||
          this.acceptKw("set", "default") ||
          this.acceptKw("cascade") ||
          this.acceptKw("restrict") ||
          this.acceptKw("no", "action")
        )
          continue;
        this.fail("expected a foreign key action");
      }
      if (this.acceptKw("match")) {
        this.name("a MATCH name");
        continue;
      }
      if (this.acceptKw("deferrable") || this.acceptKw("not", "deferrable")) {
        if (this.acceptKw("initially")) {
          if (!this.acceptKw("deferred") && !this.acceptKw("immediate")) this.fail("expected DEFERRED or IMMEDIATE");
        }
        continue;
      }
      return;
    }
  }
}

/**
 * Parse a CREATE TABLE statement as SQLite accepts it: any identifier
 * quoting, TEMP, IF NOT EXISTS, schema-qualified names, column constraints in
 * any order, table constraints with or without separating commas, WITHOUT
 * ROWID and STRICT. Throws an Error naming the offset on text it cannot
 * parse, including CREATE VIRTUAL TABLE and CREATE TABLE ... AS SELECT.
 */
export function parseCreateTable(sql: string): ParsedCreateTable {
  const c: Cursor = new Cursor(sql, "CREATE TABLE statement");
  c.expectKw("create");
  if (!c.acceptKw("temp")) c.acceptKw("temporary");
  if (c.isKw("virtual")) c.fail("virtual tables have no column definitions to read");
  c.expectKw("table");
  c.acceptKw("if", "not", "exists");
  const name = c.qualifiedName("the table name");
  if (c.isKw("as")) c.fail("CREATE TABLE ... AS SELECT is not a table definition");
  c.expectOp("(");
  const columns: ParsedColumnDef[] = [];
  const checks: ParsedCreateTable["checks"] = [];
  let inConstraints = false;
  for (;;) {
    const t = c.peek();
    if (!t) c.fail("expected a column definition");
    if (inConstraints || (t.kind === "ident" && t.text === t.value && TABLE_CONSTRAINT_WORDS.has(t.text.toLowerCase()))) {
      inConstraints = true;
      tableConstraint(c, columns, checks);
      if (c.isOp(",")) c.pos++; // the comma between table constraints is optional
    } else {
      columns.push(columnDef(c));
      if (c.isOp(",")) {
        c.pos++;
        continue;
      }
    }
    if (c.isOp(")")) {
      c.pos++;
      break;
    }
    if (!inConstraints) c.fail('expected "," or ")"');
  }
  if (columns.length === 0) c.fail("a table needs at least one column");
  let withoutRowid = false;
  let strict = false;
  while (!c.atEnd()) {
    if (c.acceptKw("without", "rowid")) withoutRowid = true;
    else if (c.acceptKw("strict")) strict = true;
    else c.fail("expected WITHOUT ROWID or STRICT");
    if (!c.atEnd()) c.expectOp(",");
  }
  return { name, columns, checks, withoutRowid, strict };
}

function columnDef(c: Cursor): ParsedColumnDef {
  const col: ParsedColumnDef = {
    name: c.name("a column name"),
    declaredType: "",
    collate: null,
    checks: [],
    generated: null,
    autoincrement: false,
    primaryKey: false,
    primaryKeyDesc: false,
    unique: false,
    notNull: false,
    defaultExpr: null,
  };
  // The type: one or more names, then an optional (n) or (n, m).
  const typeStart = c.pos;
  for (;;) {
    const t = c.peek();
    if (!t || (t.kind !== "ident" && t.kind !== "string")) break;
    const unquoted = t.kind === "ident" && t.text === t.value;
    if (unquoted && CONSTRAINT_WORDS.has(t.text.toLowerCase())) break;
    if (c.isKw("generated") && c.isKw("always", 1)) break;
    c.pos++;
  }
  if (c.pos > typeStart && c.isOp("(")) c.group();
  if (c.pos > typeStart) {
    const only = c.toks[typeStart]!;
    col.declaredType = c.pos === typeStart + 1 && only.text !== only.value ? only.value : c.text(typeStart, c.pos);
  }
  // The constraints, in any order.
  while (!c.atEnd() && !c.isOp(",") && !c.isOp(")")) {
    if (c.acceptKw("constraint")) {
      c.name("a constraint name");
    } else if (c.acceptKw("primary", "key")) {
      col.primaryKey = true;
      if (c.acceptKw("desc")) col.primaryKeyDesc = true;
      else c.acceptKw("asc");
      c.conflictClause();
      if (c.acceptKw("autoincrement")) col.autoincrement = true;
    } else if (c.acceptKw("not", "null")) {
      col.notNull = true;
      c.conflictClause();
    } else if (c.acceptKw("null")) {
      c.conflictClause();
    } else if (c.acceptKw("unique")) {
      col.unique = true;
      c.conflictClause();
    } else if (c.acceptKw("check")) {
      col.checks.push(c.groupText());
    } else if (c.acceptKw("default")) {
      col.defaultExpr = defaultClause(c);
    } else if (c.acceptKw("collate")) {
      col.collate = c.name("a collation name");
    } else if (c.acceptKw("references")) {
      c.foreignKeyClause();
    } else if (c.acceptKw("generated", "always", "as") || c.acceptKw("as")) {
      const expr = c.groupText();
      let stored = false;
      if (c.acceptKw("stored")) stored = true;
      else c.acceptKw("virtual");
      col.generated = { expr, stored };
    } else {
      c.fail(`unexpected text in the definition of column ${JSON.stringify(col.name)}`);
    }
  }
  return col;
}

/** After DEFAULT: the clause's text, as SQLite's PRAGMA table_info reports it (but parentheses kept). */
function defaultClause(c: Cursor): string {
  const start = c.pos;
  if (c.isOp("(")) {
    c.group();
    return c.text(start, c.pos);
  }
  if (c.isOp("+") || c.isOp("-")) {
    c.pos++;
    const v = c.peek();
    if (!v || v.kind === "op" || v.kind === "param") c.fail("expected a value after the sign of a DEFAULT");
    c.pos++;
    return c.text(start, c.pos);
  }
  const t = c.peek();
  if (!t || t.kind === "op" || t.kind === "param") c.fail("expected a DEFAULT value");
  c.pos++;
  return t.text;
}

function tableConstraint(c: Cursor, columns: ParsedColumnDef[], checks: ParsedCreateTable["checks"]): void {
  let name: string | null = null;
  if (c.acceptKw("constraint")) name = c.name("a constraint name");
  if (c.acceptKw("primary", "key")) {
    const open = c.pos;
    const close = c.group();
    // PRIMARY KEY(x AUTOINCREMENT) is SQLite's other spelling of a column's AUTOINCREMENT.
    if (close - open === 3 && c.kwAt(close - 1, "autoincrement")) {
      const target = c.toks[open + 1]!.value.toLowerCase();
      const col = columns.find((x) => x.name.toLowerCase() === target);
      if (col) col.autoincrement = true;
    }
    c.conflictClause();
  } else if (c.acceptKw("unique")) {
    c.group();
    c.conflictClause();
  } else if (c.acceptKw("check")) {
    checks.push({ name, expr: c.groupText() });
    c.conflictClause();
  } else if (c.acceptKw("foreign", "key")) {
    c.group();
    c.expectKw("references");
    c.foreignKeyClause();
  } else {
    c.fail("expected a table constraint (PRIMARY KEY, UNIQUE, CHECK or FOREIGN KEY)");
  }
}

/**
 * Parse a CREATE INDEX statement: UNIQUE, IF NOT EXISTS, a schema-qualified
 * index name, each term's expression, COLLATE and ASC/DESC, and the WHERE of
 * a partial index. Throws an Error naming the offset on text it cannot parse.
 */
export function parseCreateIndex(sql: string): ParsedCreateIndex {
  const c: Cursor = new Cursor(sql, "CREATE INDEX statement");
  c.expectKw("create");
  const unique = c.acceptKw("unique");
  c.expectKw("index");
  c.acceptKw("if", "not", "exists");
  const name = c.qualifiedName("the index name");
  c.expectKw("on");
  const table = c.name("the table name");
  const open = c.pos;
  const close = c.group();
  const columns: ParsedIndexColumn[] = [];
  let depth = 0;
  let termStart = open + 1;
  for (let i = open + 1; i < close; i++) {
    const t = c.toks[i]!;
    if (t.kind !== "op") continue;
    if (t.text === "(") depth++;
    else if (t.text === ")") depth--;
    else if (t.text === "," && depth === 0) {
      columns.push(indexTerm(c, termStart, i));
      termStart = i + 1;
    }
  }
  columns.push(indexTerm(c, termStart, close));
  let where: string | null = null;
  if (c.acceptKw("where")) {
    if (c.atEnd()) c.fail("expected an expression after WHERE");
    where = c.text(c.pos, c.toks.length);
    c.pos = c.toks.length;
  }
  if (!c.atEnd()) c.fail("unexpected text after the index definition");
  return { name, table, unique, columns, where };
}

/** One index term, tokens [a, b): `expr [COLLATE name] [ASC|DESC]`. */
function indexTerm(c: Cursor, a: number, b: number): ParsedIndexColumn {
  if (b <= a) c.fail("empty index term", a);
  const kw = (i: number, word: string): boolean => c.kwAt(i, word);
  let end = b;
  let desc = false;
  if (end - a > 1 && (kw(end - 1, "asc") || kw(end - 1, "desc"))) {
    desc = kw(end - 1, "desc");
    end--;
  }
  let collate: string | null = null;
  if (end - a > 2 && kw(end - 2, "collate")) {
    const n = c.toks[end - 1]!;
    if (n.kind !== "ident" && n.kind !== "string") c.fail("expected a collation name", end - 1);
    collate = n.value;
    end -= 2;
  }
  const only = c.toks[a]!;
  const column = end === a + 1 && (only.kind === "ident" || only.kind === "string") ? only.value : null;
  return { expr: c.text(a, end), column, collate, desc };
}
