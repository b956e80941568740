/**
 * A tokenizer for SQLite's SQL dialect, following the rules of SQLite's own
 * `tokenize.c`: the quoting forms it accepts, its comments and its numbers.
 * The DDL reader (`sql-text.ts`) and the expression translator
 * (`plan/expr.ts`) both work on its output.
 */

/** One token of SQL text. Keywords come out as `ident`; compare them case-insensitively. */
export interface Token {
  kind: "ident" | "string" | "number" | "blob" | "op" | "param";
  /** The raw source text of the token. */
  text: string;
  /**
   * The meaning of the token: identifiers unquoted (`"a""b"` → `a"b`, `[x]` → `x`,
   * `` `x` `` → `x`), strings unquoted (`'it''s'` → `it's`), blobs as their hex
   * digits (`x'00ff'` → `00ff`); for other kinds the same as `text`.
   */
  value: string;
  /** Offset of the first character in the source string. */
  start: number;
  /** Offset just past the last character. */
  end: number;
}

/** Operators, longest first so that `->>` wins over `->` and `-`. */
const OPERATORS = ["->>", "||", "<=", ">=", "<>", "!=", "==", "<<", ">>", "->", "(", ")", ",", ";", "+", "-", "*", "/", "%", "<", ">", "=", "&", "|", "~", "."];

function isSpace(c: string): boolean {
  return c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f" || c === "\v";
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

function isHexDigit(c: string | undefined): boolean {
  return c !== undefined && /^[0-9a-fA-F]$/.test(c);
}

/** An identifier character in SQLite: ASCII letters, digits, `_`, `$` and every non-ASCII character. */
function isIdChar(c: string | undefined): boolean {
  if (c === undefined) return false;
  return /^[A-Za-z0-9_$]$/.test(c) || c.charCodeAt(0) >= 0x80;
}

function isIdStart(c: string | undefined): boolean {
  return c !== undefined && (/^[A-Za-z_]$/.test(c) || c.charCodeAt(0) >= 0x80);
}

/**
 * Split SQL text into tokens. Whitespace, `--` comments and `/* *\/` comments
 * are skipped (an unterminated block comment runs to the end, as in SQLite).
 * Throws an Error naming the offset on an unterminated string or quoted
 * identifier and on a character SQLite would not accept.
 */
export function tokenize(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = sql.length;
  const push = (kind: Token["kind"], start: number, end: number, value?: string): void => {
    const text = sql.slice(start, end);
    out.push({ kind, text, value: value ?? text, start, end });
  };
  /** Read a quoted run from `start` (the opening char) to `close`; a doubled `close` is an escaped one unless `noEscape`. */
  const quoted = (start: number, close: string, what: string, noEscape = false): { end: number; value: string } => {
    let j = start + 1;
    let value = "";
    for (;;) {
      const k = sql.indexOf(close, j);
      if (k < 0) throw new Error(`unterminated ${what} starting at offset ${start}: ${sql.slice(start, start + 40)}`);
      value += sql.slice(j, k);
      if (!noEscape && sql[k + 1] === close) {
        value += close;
        j = k + 2;
        continue;
      }
      return { end: k + 1, value };
    }
  };

  while (i < n) {
    const c = sql[i]!;
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (c === "-" && sql[i + 1] === "-") {
      const k = sql.indexOf("\n", i);
      i = k < 0 ? n : k + 1;
      continue;
    }
    if (c === "/" && sql[i + 1] === "*") {
      const k = sql.indexOf("*/", i + 2);
      i = k < 0 ? n : k + 2;
      continue;
    }
    if (c === "'") {
      const q = quoted(i, "'", "string");
      push("string", i, q.end, q.value);
      i = q.end;
      continue;
    }
    if (c === '"' || c === "`") {
      const q = quoted(i, c, "quoted identifier");
      push("ident", i, q.end, q.value);
      i = q.end;
      continue;
    }
    if (c === "[") {
      const q = quoted(i, "]", "bracketed identifier", true);
      push("ident", i, q.end, q.value);
      i = q.end;
      continue;
    }
    if ((c === "x" || c === "X") && sql[i + 1] === "'") {
      const q = quoted(i + 1, "'", "blob literal", true);
      if (!/^[0-9a-fA-F]*$/.test(q.value) || q.value.length % 2 !== 0) {
        throw new Error(`malformed blob literal at offset ${i}: ${sql.slice(i, q.end)}`);
      }
      push("blob", i, q.end, q.value);
      i = q.end;
      continue;
    }
    if (isDigit(c) || (c === "." && isDigit(sql[i + 1]))) {
      const end = readNumber(sql, i);
      if (isIdChar(sql[end])) throw new Error(`malformed number at offset ${i}: ${sql.slice(i, end + 1)}`);
      push("number", i, end);
      i = end;
      continue;
    }
    if (isIdStart(c)) {
      let j = i + 1;
      while (isIdChar(sql[j])) j++;
      push("ident", i, j);
      i = j;
      continue;
    }
    if (c === "?") {
      let j = i + 1;
      while (isDigit(sql[j])) j++;
      push("param", i, j);
      i = j;
      continue;
    }
    if (c === ":" || c === "@" || c === "$" || c === "#") {
      let j = i + 1;
      while (isIdChar(sql[j]) || (sql[j] === ":" && sql[j + 1] === ":")) j += sql[j] === ":" ? 2 : 1;
      if (j === i + 1) throw new Error(`unexpected character ${JSON.stringify(c)} at offset ${i}`);
      push("param", i, j);
      i = j;
      continue;
    }
    const op = OPERATORS.find((o) => sql.startsWith(o, i));
    if (op) {
      push("op", i, i + op.length);
      i += op.length;
      continue;
    }
    throw new Error(`unexpected character ${JSON.stringify(c)} at offset ${i}`);
  }
  return out;
}

/**
 * Return the offset just past the number that starts at `i`: decimal with
 * optional fraction and exponent, or hexadecimal `0x…`; SQLite's `_` digit
 * separators are accepted between digits.
 */
function readNumber(sql: string, i: number): number {
  let j = i;
  if (sql[j] === "0" && (sql[j + 1] === "x" || sql[j + 1] === "X") && isHexDigit(sql[j + 2])) {
    j += 2;
    while (isHexDigit(sql[j]) || (sql[j] === "_" && isHexDigit(sql[j + 1]))) j++;
    return j;
  }
  const digits = (): void => {
    while (isDigit(sql[j]) || (sql[j] === "_" && isDigit(sql[j + 1]) && isDigit(sql[j - 1]))) j++;
  };
  digits();
  if (sql[j] === ".") {
    j++;
    digits();
  }
  if ((sql[j] === "e" || sql[j] === "E") && (isDigit(sql[j + 1]) || ((sql[j + 1] === "+" || sql[j + 1] === "-") && isDigit(sql[j + 2])))) {
    j += 2;
    digits();
  }
  return j;
}
