/**
 * Translation of SQLite expressions (CHECK constraints, index expressions,
 * partial-index WHERE clauses, generated columns, column DEFAULTs) into
 * PostgreSQL.
 *
 * Conservative by design: a construct is translated only where the Postgres
 * text provably means the same as the SQLite one; anything else is refused
 * with a one-line reason naming the construct, so the caller can report it.
 *
 * Why one file over 400 lines: it is one recursive-descent translator — the
 * parser, the node walker and the function/operator tables call each other
 * at every level, and a reader follows one expression through all three.
 * Defaults (expr-default.ts) are the part that stands alone.
 */
import { tokenize, type Token } from "../sqlite/sql-tokens.js";

/** The outcome of a translation: Postgres SQL, or the reason it was refused. */
export type Translated = { ok: true; sql: string } | { ok: false; reason: string };

/** The Postgres types a column DEFAULT can be translated for. */
export type PgTypeName =
  | "smallint"
  | "integer"
  | "bigint"
  | "double precision"
  | "numeric"
  | "text"
  | "bytea"
  | "boolean"
  | "date"
  | "timestamp"
  | "timestamptz"
  | "json";

/** What {@link translateExpr} needs to know about the table an expression belongs to. */
export interface ExprContext {
  /**
   * The quoted Postgres identifier for a source column name, or null if the
   * name is not a column of this table. SQLite matches column names
   * case-insensitively (ASCII), so should this.
   */
  column(name: string): string | null;
  /**
   * Optional: the Postgres type the column gets. When given, constructs whose
   * meaning depends on the operand type (`||`, `%`, CAST) are checked against
   * it; when absent, `||` and `%` on columns are translated and CAST of a
   * column is refused.
   */
  columnType?(name: string): PgTypeName | null;
}

/** Raised inside the translator; becomes `{ ok: false, reason }`. */
/** Shared with the DEFAULT translation (expr-default.ts). */
export class Refusal extends Error {}

/** Shared with the DEFAULT translation (expr-default.ts). */
export function refuse(reason: string): never {
  throw new Refusal(reason);
}

type Node =
  | { t: "col"; name: string; quote: string }
  | { t: "num"; text: string }
  | { t: "str"; value: string }
  | { t: "blob"; hex: string }
  | { t: "null" }
  | { t: "unary"; op: string; e: Node }
  | { t: "bin"; op: string; l: Node; r: Node }
  | { t: "is"; not: boolean; l: Node; r: Node }
  | { t: "isnull"; not: boolean; e: Node }
  | { t: "like"; not: boolean; op: string; l: Node; r: Node; esc: Node | null }
  | { t: "in"; not: boolean; e: Node; list: Node[] }
  | { t: "between"; not: boolean; e: Node; lo: Node; hi: Node }
  | { t: "case"; base: Node | null; whens: [Node, Node][]; else: Node | null }
  | { t: "cast"; e: Node; type: string }
  | { t: "collate"; e: Node; name: string }
  | { t: "fn"; name: string; args: Node[] };

/** Binding powers, following the precedence table of SQLite's parse.y. */
const BP = { or: 1, and: 2, not: 3, eq: 4, cmp: 5, bit: 7, add: 8, mul: 9, concat: 10, collate: 11 } as const;
const INFIX: Record<string, number> = {
  "=": BP.eq,
  "==": BP.eq,
  "!=": BP.eq,
  "<>": BP.eq,
  "<": BP.cmp,
  "<=": BP.cmp,
  ">": BP.cmp,
  ">=": BP.cmp,
  "&": BP.bit,
  "|": BP.bit,
  "<<": BP.bit,
  ">>": BP.bit,
  "+": BP.add,
  "-": BP.add,
  "*": BP.mul,
  "/": BP.mul,
  "%": BP.mul,
  "||": BP.concat,
  "->": BP.concat,
  "->>": BP.concat,
};
const LIKE_OPS = new Set(["like", "glob", "match", "regexp"]);

/** A Pratt parser for SQLite expressions; it builds a tree and refuses what it cannot represent. */
class Parser {
  pos = 0;
  constructor(
    readonly toks: Token[],
    readonly src: string,
  ) {}

  peek(k = 0): Token | undefined {
    return this.toks[this.pos + k];
  }
  kw(word: string, k = 0): boolean {
    const t = this.peek(k);
    return t !== undefined && t.kind === "ident" && t.text === t.value && t.text.toLowerCase() === word;
  }
  op(o: string, k = 0): boolean {
    const t = this.peek(k);
    return t !== undefined && t.kind === "op" && t.text === o;
  }
  eatKw(word: string): boolean {
    if (!this.kw(word)) return false;
    this.pos++;
    return true;
  }
  expectKw(word: string): void {
    if (!this.eatKw(word)) this.fail(`expected ${word.toUpperCase()}`);
  }
  expectOp(o: string): void {
    if (!this.op(o)) this.fail(`expected "${o}"`);
    this.pos++;
  }
  fail(msg: string): never {
    const t = this.peek();
    return refuse(`cannot parse the expression (${msg} ${t ? `near ${JSON.stringify(t.text)}` : "at the end"})`);
  }

  parse(): Node {
    const e = this.expr(0);
    if (this.pos < this.toks.length) this.fail("unexpected text");
    return e;
  }

  expr(minBp: number): Node {
    let left = this.prefix();
    for (;;) {
      const t = this.peek();
      if (!t) return left;
      if (t.kind === "op" && INFIX[t.text] !== undefined) {
        const bp = INFIX[t.text]!;
        if (bp < minBp) return left;
        this.pos++;
        left = { t: "bin", op: t.text, l: left, r: this.expr(bp + 1) };
        continue;
      }
      if (t.kind !== "ident" || t.text !== t.value) return left;
      const w = t.text.toLowerCase();
      if (w === "or" || w === "and") {
        const bp = w === "or" ? BP.or : BP.and;
        if (bp < minBp) return left;
        this.pos++;
        left = { t: "bin", op: w.toUpperCase(), l: left, r: this.expr(bp + 1) };
        continue;
      }
      if (w === "collate") {
        if (BP.collate < minBp) return left;
        this.pos++;
        const n = this.peek();
        if (!n || (n.kind !== "ident" && n.kind !== "string")) this.fail("expected a collation name");
        this.pos++;
        left = { t: "collate", e: left, name: n.value };
        continue;
      }
      if (BP.eq < minBp) return left;
      const next = this.postfixEq(left);
      if (!next) return left;
      left = next;
    }
  }

  /** The operators at SQLite's equality level other than `=`: IS, IN, LIKE, BETWEEN, ISNULL, NOT …. */
  postfixEq(left: Node): Node | null {
    const start = this.pos;
    if (this.eatKw("isnull")) return { t: "isnull", not: false, e: left };
    if (this.eatKw("notnull")) return { t: "isnull", not: true, e: left };
    if (this.eatKw("is")) {
      const not = this.eatKw("not");
      if (this.eatKw("distinct")) {
        this.expectKw("from");
        return { t: "is", not: !not, l: left, r: this.expr(BP.eq + 1) };
      }
      return { t: "is", not, l: left, r: this.expr(BP.eq + 1) };
    }
    const not = this.eatKw("not");
    if (not && this.eatKw("null")) return { t: "isnull", not: true, e: left };
    if (this.eatKw("in")) {
      if (!this.op("(")) refuse("IN with a table or table-valued function has no translation");
      this.pos++;
      if (this.kw("select") || this.kw("with")) refuse("subqueries are not translated");
      const list: Node[] = [];
      if (!this.op(")")) {
        do list.push(this.expr(0));
        while (this.op(",") && ++this.pos);
      }
      this.expectOp(")");
      return { t: "in", not, e: left, list };
    }
    if (this.eatKw("between")) {
      const lo = this.expr(BP.eq + 1);
      this.expectKw("and");
      return { t: "between", not, e: left, lo, hi: this.expr(BP.eq + 1) };
    }
    const w = this.peek()?.text.toLowerCase() ?? "";
    if (LIKE_OPS.has(w) && this.kw(w)) {
      this.pos++;
      const r = this.expr(BP.eq + 1);
      const esc = this.eatKw("escape") ? this.expr(BP.eq + 1) : null;
      return { t: "like", not, op: w, l: left, r, esc };
    }
    this.pos = start;
    return null;
  }

  prefix(): Node {
    const t = this.peek();
    if (!t) this.fail("expected an expression");
    this.pos++;
    if (t.kind === "number") return { t: "num", text: t.text.replace(/_/g, "") };
    if (t.kind === "string") return { t: "str", value: t.value };
    if (t.kind === "blob") return { t: "blob", hex: t.value.toLowerCase() };
    if (t.kind === "param") refuse(`bound parameter ${t.text} has no value here`);
    if (t.kind === "op") {
      if (t.text === "-" || t.text === "+" || t.text === "~") return { t: "unary", op: t.text, e: this.expr(BP.collate + 1) };
      if (t.text === "(") {
        if (this.kw("select") || this.kw("with")) refuse("subqueries are not translated");
        const e = this.expr(0);
        if (this.op(",")) refuse("row values are not translated");
        this.expectOp(")");
        return e;
      }
      this.pos--;
      this.fail("expected an expression");
    }
    const quoted = t.text !== t.value;
    const w = quoted ? "" : t.text.toLowerCase();
    if (w === "not") return { t: "unary", op: "NOT", e: this.expr(BP.not) };
    if (w === "null") return { t: "null" };
    if (w === "case") return this.caseExpr();
    if (w === "cast") {
      this.expectOp("(");
      const e = this.expr(0);
      this.expectKw("as");
      const from = this.pos;
      while (this.peek() && !this.op(")")) this.pos += this.op("(") ? this.skipGroup() : 1;
      if (this.pos === from) this.fail("expected a type name");
      const type = this.src.slice(this.toks[from]!.start, this.toks[this.pos - 1]!.end);
      this.expectOp(")");
      return { t: "cast", e, type };
    }
    if (w === "exists" || w === "select") refuse("subqueries are not translated");
    if (w === "raise") refuse("RAISE() is only meaningful in triggers");
    if (w === "current_timestamp" || w === "current_date" || w === "current_time") refuse(`${w.toUpperCase()} is not deterministic`);
    if (this.op("(")) return this.call(t.value);
    if (this.op(".")) refuse(`qualified column reference ${t.text}.${this.peek(1)?.text ?? ""} is not translated`);
    return { t: "col", name: t.value, quote: quoted ? t.text[0]! : "" };
  }

  /** At `(`: the number of tokens up to and including the matching `)`. */
  skipGroup(): number {
    let depth = 0;
    for (let k = 0; this.peek(k); k++) {
      if (this.op("(", k)) depth++;
      else if (this.op(")", k) && --depth === 0) return k + 1;
    }
    return this.fail("unbalanced parentheses");
  }

  caseExpr(): Node {
    const base = this.kw("when") ? null : this.expr(0);
    const whens: [Node, Node][] = [];
    while (this.eatKw("when")) {
      const cond = this.expr(0);
      this.expectKw("then");
      whens.push([cond, this.expr(0)]);
    }
    if (whens.length === 0) this.fail("expected WHEN");
    const els = this.eatKw("else") ? this.expr(0) : null;
    this.expectKw("end");
    return { t: "case", base, whens, else: els };
  }

  call(name: string): Node {
    this.expectOp("(");
    if (this.kw("distinct") || this.op("*")) refuse(`aggregate call ${name}(${this.op("*") ? "*" : "DISTINCT"} …) is not translated`);
    const args: Node[] = [];
    if (!this.op(")")) {
      do args.push(this.expr(0));
      while (this.op(",") && ++this.pos);
    }
    if (this.kw("order")) refuse(`ORDER BY inside ${name}() is not translated`);
    this.expectOp(")");
    if (this.kw("filter") || this.kw("over")) refuse(`window or aggregate call ${name}() is not translated`);
    return { t: "fn", name: name.toLowerCase(), args };
  }
}

function parseExpr(text: string): Node {
  let toks: Token[];
  try {
    toks = tokenize(text);
  } catch (e) {
    return refuse(`cannot parse the expression (${(e as Error).message})`);
  }
  return new Parser(toks, text).parse();
}

// ---------------------------------------------------------------- literals

/** Shared with the DEFAULT translation (expr-default.ts). */
export const INT64_MIN = -(2n ** 63n);
/** Shared with the DEFAULT translation (expr-default.ts). */
export const INT64_MAX = 2n ** 63n - 1n;

/** A SQLite numeric literal's value: an exact integer, or a real (SQLite's REAL, a double). */
/** Shared with the DEFAULT translation (expr-default.ts). */
export function numberValue(text: string): { int: bigint } | { real: number } {
  if (/^0x/i.test(text)) {
    const digits = text.slice(2);
    if (digits.length > 16) refuse(`hex literal ${text} does not fit in 64 bits`);
    const u = BigInt("0x" + digits);
    return { int: u > INT64_MAX ? u - 2n ** 64n : u };
  }
  if (/^\d+$/.test(text)) {
    const v = BigInt(text);
    return v <= INT64_MAX ? { int: v } : { real: Number(text) }; // SQLite reads an oversized integer as a REAL
  }
  const r = Number(text);
  if (!Number.isFinite(r)) refuse(`numeric literal ${text} is out of range`);
  return { real: r };
}

/** "a text column", "an integer column". */
/** Shared with the DEFAULT translation (expr-default.ts). */
export function aCol(type: string): string {
  return `${type === "integer" ? "an" : "a"} ${type} column`;
}

/** A Postgres string literal (standard_conforming_strings). */
/** Shared with the DEFAULT translation (expr-default.ts). */
export function pgString(s: string): string {
  if (s.includes("\u0000")) refuse("a string containing a NUL character has no Postgres equivalent");
  return `'${s.replace(/'/g, "''")}'`;
}

/** A double as a Postgres float8 literal, its shortest round-trip form. */
/** Shared with the DEFAULT translation (expr-default.ts). */
function pgFloat(r: number): string {
  return `${String(r)}::double precision`;
}

const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER = "abcdefghijklmnopqrstuvwxyz";

// ------------------------------------------------------------- translation

type Kind = "int" | "real" | "text" | "blob" | "bool" | "null" | "other" | "unknown";

const TEXT_FUNCS = new Set(["lower", "upper", "trim", "ltrim", "rtrim", "substr", "substring", "replace"]);
const REFUSED_FUNCS: Record<string, string> = {
  typeof: "Postgres values have one type per column",
  round: "SQLite rounds halves away from zero on doubles, Postgres to even",
  random: "it is not deterministic",
  randomblob: "it is not deterministic",
  min: "SQLite's scalar min() is NULL when any argument is; least() ignores NULLs",
  max: "SQLite's scalar max() is NULL when any argument is; greatest() ignores NULLs",
  printf: "its formats differ from Postgres's",
  format: "its formats differ from Postgres's",
  hex: "it hexes the UTF-8 bytes of text",
  quote: "it quotes in SQLite's syntax",
  unicode: "unicode('') is NULL, Postgres's ascii('') is 0",
  char: "it has no exact equivalent",
  sign: "it returns NULL for text that is not a number",
};
const DATE_FUNCS = new Set(["date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff"]);

class Translator {
  constructor(readonly ctx: ExprContext) {}

  kind(n: Node): Kind {
    switch (n.t) {
      case "num":
        return "int" in numberValue(n.text) ? "int" : "real";
      case "str":
        return "text";
      case "blob":
        return "blob";
      case "null":
        return "null";
      case "is":
      case "isnull":
      case "like":
      case "in":
      case "between":
        return "bool";
      case "col": {
        if (this.ctx.column(n.name) === null) return n.quote === '"' ? "text" : this.trueFalse(n) !== null ? "bool" : "unknown";
        const ty = this.ctx.columnType?.(n.name);
        if (!ty) return "unknown";
        if (ty === "smallint" || ty === "integer" || ty === "bigint") return "int";
        if (ty === "double precision" || ty === "numeric") return "real";
        return ty === "text" ? "text" : ty === "bytea" ? "blob" : ty === "boolean" ? "bool" : "other";
      }
      case "unary":
        return n.op === "NOT" ? "bool" : n.op === "~" ? "int" : this.kind(n.e);
      case "bin": {
        if (n.op === "||") return "text";
        if (!"+-*/%&|".includes(n.op) || n.op.length > 1) return "bool";
        const a = this.kind(n.l),
          b = this.kind(n.r);
        if (a === "int" && b === "int") return "int";
        return a === "real" || b === "real" ? "real" : "unknown";
      }
      case "fn":
        return TEXT_FUNCS.has(n.name) ? "text" : n.name === "length" || n.name === "instr" ? "int" : "unknown";
      case "collate":
        return this.kind(n.e);
      default:
        return "unknown";
    }
  }

  /** TRUE and FALSE are booleans only when unquoted and not the name of a column. */
  trueFalse(n: Extract<Node, { t: "col" }>): boolean | null {
    const w = n.name.toLowerCase();
    return n.quote === "" && (w === "true" || w === "false") ? w === "true" : null;
  }

  /** Emit a node; compound expressions come out parenthesized unless `top`. */
  emit(n: Node, top = false): string {
    const wrap = (s: string): string => (top ? s : `(${s})`);
    switch (n.t) {
      case "col": {
        const q = this.ctx.column(n.name);
        if (q !== null) return q;
        if (n.quote === '"') return pgString(n.name); // SQLite reads an unknown "name" as a string literal
        const b = this.trueFalse(n);
        if (b !== null) return b ? "TRUE" : "FALSE";
        if (/^(rowid|oid|_rowid_)$/i.test(n.name)) refuse(`the rowid (${n.name}) has no Postgres equivalent`);
        return refuse(`column ${JSON.stringify(n.name)} is not in this table`);
      }
      case "num": {
        const v = numberValue(n.text);
        return "int" in v ? v.int.toString() : pgFloat(v.real);
      }
      case "str":
        return pgString(n.value);
      case "blob":
        return `'\\x${n.hex}'::bytea`;
      case "null":
        return "NULL";
      case "unary": {
        if (n.op === "+") return this.emit(n.e, top); // a no-op in SQLite
        if (n.op === "-" && n.e.t === "num") {
          if (n.e.text === "9223372036854775808") return INT64_MIN.toString(); // an integer in SQLite
          const v = numberValue(n.e.text);
          if ("int" in v) return (-v.int).toString();
        }
        const e = this.emit(n.e);
        return wrap(n.op === "NOT" ? `NOT ${e}` : `${n.op}${e.startsWith("-") ? " " : ""}${e}`);
      }
      case "bin":
        return this.binary(n, wrap);
      case "is": {
        const tf = n.r.t === "col" && this.ctx.column(n.r.name) === null ? this.trueFalse(n.r) : null;
        const r = n.r.t === "null" ? "NULL" : tf !== null ? (tf ? "TRUE" : "FALSE") : null;
        if (r) return wrap(`${this.emit(n.l)} IS ${n.not ? "NOT " : ""}${r}`);
        return wrap(`${this.emit(n.l)} IS ${n.not ? "" : "NOT "}DISTINCT FROM ${this.emit(n.r)}`);
      }
      case "isnull":
        return wrap(`${this.emit(n.e)} IS ${n.not ? "NOT " : ""}NULL`);
      case "in":
        if (n.list.length === 0) return n.not ? "TRUE" : "FALSE"; // even for NULL, in SQLite
        return wrap(`${this.emit(n.e)} ${n.not ? "NOT " : ""}IN (${n.list.map((x) => this.emit(x, true)).join(", ")})`);
      case "between":
        return wrap(`${this.emit(n.e)} ${n.not ? "NOT " : ""}BETWEEN ${this.emit(n.lo)} AND ${this.emit(n.hi)}`);
      case "like":
        return wrap(this.like(n));
      case "case": {
        const parts = ["CASE"];
        if (n.base) parts.push(this.emit(n.base));
        for (const [w, th] of n.whens) parts.push(`WHEN ${this.emit(w, true)} THEN ${this.emit(th, true)}`);
        if (n.else) parts.push(`ELSE ${this.emit(n.else, true)}`);
        parts.push("END");
        return wrap(parts.join(" "));
      }
      case "cast":
        return this.cast(n.e, n.type);
      case "collate":
        if (n.name.toLowerCase() !== "binary") refuse(`COLLATE ${n.name} has no exact Postgres equivalent`);
        return wrap(`${this.emit(n.e)} COLLATE "C"`);
      case "fn":
        return this.call(n.name, n.args);
    }
  }

  binary(n: Extract<Node, { t: "bin" }>, wrap: (s: string) => string): string {
    const op = n.op === "==" ? "=" : n.op === "!=" ? "<>" : n.op;
    if (op === "<<" || op === ">>") refuse(`shift operator ${op} differs for shift counts outside 0..63`);
    if (op === "->" || op === "->>") refuse(`JSON operator ${op} is not translated`);
    if (op === "||") {
      for (const side of [n.l, n.r]) {
        const k = this.kind(side);
        if (k === "real" || k === "bool" || k === "blob" || k === "other") {
          refuse(`|| on a ${k === "other" ? "date/time or json" : k} operand: SQLite and Postgres render it as different text`);
        }
      }
    }
    if (op === "/" && [n.l, n.r].some((x) => x.t === "col" && this.ctx.column(x.name) !== null && this.ctx.columnType?.(x.name) === "numeric")) {
      refuse("/ on a numeric column: SQLite divides the integers it holds as integers, Postgres's numeric does not");
    }
    if (op === "%" && (this.kind(n.l) === "real" || this.kind(n.r) === "real")) {
      refuse("% on a real operand: SQLite truncates both operands to integers, Postgres does not");
    }
    const l = this.emit(n.l);
    let r = this.emit(n.r);
    if (op === "/" || op === "%") {
      // SQLite yields NULL on division by zero where Postgres raises an error.
      const lit = n.r.t === "num" ? numberValue(n.r.text) : null;
      const nonZero = lit !== null && ("int" in lit ? lit.int !== 0n : lit.real !== 0);
      if (!nonZero) r = `NULLIF(${this.emit(n.r, true)}, 0)`;
    }
    return wrap(`${l} ${op} ${r}`);
  }

  /** Lower-case ASCII letters only, as SQLite's LIKE and lower() do. */
  foldAscii(n: Node): string {
    if (n.t === "str") return pgString(n.value.replace(/[A-Z]/g, (c) => c.toLowerCase()));
    return `translate(${this.emit(n, true)}, '${UPPER}', '${LOWER}')`;
  }

  like(n: Extract<Node, { t: "like" }>): string {
    const not = n.not ? "NOT " : "";
    if (n.op === "like") {
      // SQLite's LIKE folds ASCII letters only and has no escape character by default.
      let esc = "ESCAPE ''";
      if (n.esc) {
        if (n.esc.t !== "str" || [...n.esc.value].length !== 1) refuse("LIKE … ESCAPE needs a one-character string literal to be translated");
        if (/[A-Za-z]/.test(n.esc.value)) refuse("LIKE … ESCAPE with a letter as the escape character is not translated");
        esc = `ESCAPE ${pgString(n.esc.value)}`;
      }
      return `${this.foldAscii(n.l)} ${not}LIKE ${this.foldAscii(n.r)} ${esc}`;
    }
    if (n.op === "glob") {
      if (n.esc) refuse("GLOB has no ESCAPE clause");
      if (n.r.t !== "str") refuse("GLOB with a pattern that is not a string literal is not translated");
      if (n.r.value.includes("[")) refuse("GLOB character classes [...] are not translated");
      const pat = n.r.value
        .replace(/[\\%_]/g, (c) => "\\" + c)
        .replace(/\*/g, "%")
        .replace(/\?/g, "_");
      return `${this.emit(n.l)} ${not}LIKE ${pgString(pat)} ESCAPE '\\'`;
    }
    return refuse(`${n.op.toUpperCase()} has no Postgres equivalent`);
  }

  cast(e: Node, type: string): string {
    const t = type.toUpperCase();
    const k = this.kind(e);
    const inner = this.emit(e, true);
    if (k === "null") return "NULL";
    // The target's affinity, by SQLite's rules.
    if (t.includes("INT")) {
      if (k === "int") return `CAST(${inner} AS bigint)`;
    } else if (t.includes("CHAR") || t.includes("CLOB") || t.includes("TEXT")) {
      if (k === "text" || k === "int") return `CAST(${inner} AS text)`;
    } else if (t.includes("REAL") || t.includes("FLOA") || t.includes("DOUB")) {
      if (k === "int" || k === "real") return `CAST(${inner} AS double precision)`;
    } else if (t.includes("BLOB") || t === "") {
      refuse(`CAST(… AS ${type || "BLOB"}) has no exact Postgres equivalent`);
    } else if (k === "int") {
      return inner; // NUMERIC affinity keeps an integer as it is
    }
    if (k === "unknown") refuse(`CAST(… AS ${type}) of a value whose type is not known`);
    return refuse(`CAST of a ${k} value AS ${type} converts differently in SQLite and Postgres`);
  }

  call(name: string, args: Node[]): string {
    const n = args.length;
    const arity = (...ok: number[]): void => {
      if (!ok.includes(n)) refuse(`function ${name}() with ${n} argument${n === 1 ? "" : "s"} is not valid SQLite`);
    };
    const a = (i: number): string => this.emit(args[i]!, true);
    const all = (): string => args.map((x) => this.emit(x, true)).join(", ");
    switch (name) {
      case "lower":
      case "upper": {
        arity(1);
        const [from, to] = name === "lower" ? [UPPER, LOWER] : [LOWER, UPPER];
        const x = args[0]!;
        if (x.t === "str")
          return pgString(name === "lower" ? x.value.replace(/[A-Z]/g, (c) => c.toLowerCase()) : x.value.replace(/[a-z]/g, (c) => c.toUpperCase()));
        return `translate(${a(0)}, '${from}', '${to}')`; // SQLite folds ASCII letters only
      }
      case "length":
        arity(1);
        return `length(${a(0)})`;
      case "abs":
        arity(1);
        return `abs(${a(0)})`;
      case "coalesce":
        if (n < 2) arity(2);
        return `coalesce(${all()})`;
      case "ifnull":
        arity(2);
        return `coalesce(${all()})`;
      case "nullif":
        arity(2);
        return `nullif(${all()})`;
      case "trim":
        arity(1, 2);
        return `btrim(${all()})`;
      case "ltrim":
      case "rtrim":
        arity(1, 2);
        return `${name}(${all()})`;
      case "instr":
        arity(2);
        return `strpos(${all()})`;
      case "replace":
        arity(3);
        return `replace(${all()})`;
      case "substr":
      case "substring": {
        arity(2, 3);
        const lit = (i: number, min: bigint): void => {
          const x = args[i]!;
          const v = x.t === "num" ? numberValue(x.text) : null;
          if (!v || !("int" in v) || v.int < min)
            refuse(`${name}() is translated only with literal positions ≥ 1 and lengths ≥ 0 (SQLite counts negative ones from the end)`);
        };
        lit(1, 1n);
        if (n === 3) lit(2, 0n);
        return `substr(${all()})`;
      }
      case "iif":
      case "if":
        arity(2, 3);
        return `(CASE WHEN ${a(0)} THEN ${a(1)}${n === 3 ? ` ELSE ${a(2)}` : ""} END)`;
      case "likely":
      case "unlikely":
        arity(1);
        return this.emit(args[0]!);
      case "likelihood":
        arity(2);
        return this.emit(args[0]!);
    }
    if (Object.hasOwn(REFUSED_FUNCS, name)) refuse(`function ${name}() is not translated: ${REFUSED_FUNCS[name]}`);
    if (DATE_FUNCS.has(name)) refuse(`date/time function ${name}() is not translated: its text formats and modifiers are SQLite's own`);
    if (name.startsWith("json")) refuse(`JSON function ${name}() is not translated`);
    return refuse(`function ${name}() has no exact Postgres equivalent`);
  }
}

/**
 * Translate a SQLite expression (a CHECK constraint, an index expression, a
 * partial-index WHERE clause or a generated column) into PostgreSQL, with
 * every column quoted through `ctx.column`. Compound subexpressions are fully
 * parenthesized, so operator precedence never differs. Returns a refusal
 * with a one-line reason for anything not provably equivalent.
 */
export function translateExpr(sqliteExpr: string, ctx: ExprContext): Translated {
  try {
    const tree = parseExpr(sqliteExpr);
    return { ok: true, sql: new Translator(ctx).emit(tree, true) };
  } catch (e) {
    if (e instanceof Refusal) return { ok: false, reason: e.message };
    throw e;
  }
}
