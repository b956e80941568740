/**
 * One placeholder style, `?`, on every backend: a tokenizer that finds the
 * `?` that are parameters and (for PostgreSQL) rewrites them to `$1, $2, …`.
 *
 * A `?` is a parameter only outside string literals, quoted identifiers,
 * comments and (PostgreSQL) dollar-quoted bodies. The rules per dialect:
 *
 * - PostgreSQL: `'…'` with `''` (backslash is literal: standard_conforming_strings
 *   = on, the server default since 9.1; the tokenizer can read the old
 *   setting too), `E'…'` with backslash escapes, `"…"` identifiers,
 *   `$$…$$` and `$tag$…$tag$` bodies, `--` comments and nested `/* … *\/`
 *   comments. PostgreSQL's own `?` operators (`?`, `?|`, `?&` on jsonb) are
 *   written `??`: `??` outside literals and comments is sent as one `?`, so
 *   `doc ??| ?` becomes `doc ?| $1`.
 * - MySQL: `'…'` and `"…"` strings with backslash escapes and doubled quotes,
 *   `` `…` `` identifiers, `-- ` comments (a space or control character after
 *   the dashes, as MySQL requires), `#` comments and `/* … *\/` comments.
 * - SQLite: `'…'` strings, `"…"`, `` `…` `` and `[…]` identifiers, `--` and
 *   `/* … *\/` comments.
 *
 * Other parameter spellings (`$1`, `?1`, SQLite's `:name`, `@name`, `$name`)
 * are refused, as is `??` where the dialect has no `?` operator: one style
 * everywhere, so the same text runs on all three.
 */
import { DatabaseUsageError, type Dialect } from "./errors.js";

/** A statement ready for its driver: the text to send, how many parameters it takes, and its leading verb. */
export interface TranslatedSql {
  /** The text to send: `?` rewritten to `$n` for PostgreSQL, unchanged otherwise. */
  readonly text: string;
  /** The number of `?` parameters. */
  readonly params: number;
  /**
   * The statement's verb in lower case (`select`, `insert`, `update`, …);
   * for `WITH …` the verb of the main statement after the common table
   * expressions. `""` when there is none.
   */
  readonly verb: string;
}

/** Options of {@link translatePlaceholders}. */
export interface TranslateOptions {
  /**
   * PostgreSQL only: whether `'…'` strings treat backslash as an ordinary
   * character (the server's `standard_conforming_strings`). Default true.
   */
  standardConformingStrings?: boolean;
}

const VERBS = new Set(["select", "insert", "update", "delete", "replace", "merge", "values", "table"]);

function isIdentChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) || // a-z
    (c >= 65 && c <= 90) || // A-Z
    (c >= 48 && c <= 57) || // 0-9
    c === 95 || // _
    c === 36 || // $
    c >= 128
  );
}

function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** Offset just past a quoted run opened at `start` by `quote`; `backslash`: a backslash escapes the next character. Unterminated: the end of the text. */
function skipQuoted(sql: string, start: number, quote: number, backslash: boolean): number {
  const n = sql.length;
  let i = start + 1;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (backslash && c === 92) {
      i += 2;
      continue;
    }
    if (c === quote) {
      if (sql.charCodeAt(i + 1) === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return n;
}

/** Offset just past a `/* … *\/` comment at `start`; nested comments when `nested` (PostgreSQL). */
function skipBlockComment(sql: string, start: number, nested: boolean): number {
  const n = sql.length;
  let depth = 1;
  let i = start + 2;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === 42 && sql.charCodeAt(i + 1) === 47) {
      i += 2;
      if (--depth === 0) return i;
      continue;
    }
    if (nested && c === 47 && sql.charCodeAt(i + 1) === 42) {
      depth++;
      i += 2;
      continue;
    }
    i++;
  }
  return n;
}

function skipLine(sql: string, start: number): number {
  const k = sql.indexOf("\n", start);
  return k < 0 ? sql.length : k + 1;
}

/** At a `$` in PostgreSQL text: the dollar-quote tag (`$$` or `$name$`) starting here, or null. */
function dollarTag(sql: string, i: number): string | null {
  let j = i + 1;
  if (sql.charCodeAt(j) === 36) return "$$";
  if (!isIdentStart(sql.charCodeAt(j))) return null;
  while (j < sql.length) {
    const c = sql.charCodeAt(j);
    if (c === 36) return sql.slice(i, j + 1);
    if (!isIdentChar(c)) return null;
    j++;
  }
  return null;
}

function excerpt(sql: string): string {
  const one = sql.replace(/\s+/g, " ").trim();
  return one.length > 120 ? one.slice(0, 120) + "…" : one;
}

/**
 * Find the `?` parameters of `sql` by the rules of `dialect` and return the
 * text to send (PostgreSQL: `$1 … $n`; `??` → `?`), the parameter count and
 * the statement's verb. Throws a {@link DatabaseUsageError} on another
 * parameter spelling or on `??` outside PostgreSQL.
 */
export function translatePlaceholders(sql: string, dialect: Dialect, opts: TranslateOptions = {}): TranslatedSql {
  const pg = dialect === "postgres";
  const mysql = dialect === "mysql";
  const sqlite = dialect === "sqlite";
  const scs = opts.standardConformingStrings ?? true;
  const n = sql.length;
  let out = "";
  let copied = 0; // sql[copied, i) is still to be copied to `out` (PostgreSQL only)
  let params = 0;
  let verb = "";
  let inWith = false;
  let depth = 0;
  const refuse = (at: number, what: string): never => {
    throw new DatabaseUsageError(dialect, `${what} at offset ${at} of: ${excerpt(sql)}`);
  };
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    // Comments.
    if (c === 45 && sql.charCodeAt(i + 1) === 45) {
      // MySQL: `--` starts a comment only before whitespace or a control character (or at the end).
      if (!mysql || i + 2 >= n || sql.charCodeAt(i + 2) <= 32) {
        i = skipLine(sql, i);
        continue;
      }
      i += 2;
      continue;
    }
    if (c === 35 && mysql) {
      i = skipLine(sql, i);
      continue;
    }
    if (c === 47 && sql.charCodeAt(i + 1) === 42) {
      i = skipBlockComment(sql, i, pg);
      continue;
    }
    // Strings and quoted identifiers.
    if (c === 39) {
      i = skipQuoted(sql, i, 39, mysql || (pg && !scs));
      continue;
    }
    if (c === 34) {
      i = skipQuoted(sql, i, 34, mysql);
      continue;
    }
    if (c === 96 && (mysql || sqlite)) {
      i = skipQuoted(sql, i, 96, false);
      continue;
    }
    if (c === 91 && sqlite) {
      const k = sql.indexOf("]", i + 1);
      i = k < 0 ? n : k + 1;
      continue;
    }
    // Words: keywords, identifiers, numbers; `E'…'` strings in PostgreSQL.
    if (isIdentChar(c) && c !== 36) {
      let j = i + 1;
      while (j < n && isIdentChar(sql.charCodeAt(j))) j++;
      if (pg && j === i + 1 && (c === 69 || c === 101) && sql.charCodeAt(j) === 39) {
        i = skipQuoted(sql, j, 39, true);
        continue;
      }
      if ((verb === "" || (inWith && depth === 0)) && isIdentStart(c)) {
        const word = sql.slice(i, j).toLowerCase();
        if (verb === "") {
          verb = word;
          inWith = word === "with";
        } else if (VERBS.has(word)) {
          verb = word;
          inWith = false;
        }
      }
      i = j;
      continue;
    }
    if (c === 40) {
      depth++;
      i++;
      continue;
    }
    if (c === 41) {
      depth--;
      i++;
      continue;
    }
    if (c === 36) {
      if (pg) {
        if (isDigit(sql.charCodeAt(i + 1))) refuse(i, "a $n parameter: write parameters as ?");
        const tag = dollarTag(sql, i);
        if (tag) {
          const k = sql.indexOf(tag, i + tag.length);
          i = k < 0 ? n : k + tag.length;
          continue;
        }
      } else if (sqlite && isIdentChar(sql.charCodeAt(i + 1))) {
        refuse(i, "a $name parameter: write parameters as ?");
      }
      i++;
      continue;
    }
    if (sqlite && (c === 58 || c === 64) && isIdentChar(sql.charCodeAt(i + 1))) {
      refuse(i, `a ${String.fromCharCode(c)}name parameter: write parameters as ?`);
    }
    if (c === 63) {
      const next = sql.charCodeAt(i + 1);
      if (next === 63) {
        if (!pg) refuse(i, `"??" (PostgreSQL's spelling of its own ? operator) in ${dialect} text, which has no ? operator`);
        out += sql.slice(copied, i + 1);
        i += 2;
        copied = i;
        continue;
      }
      if (isDigit(next)) refuse(i, "a numbered ?n parameter: write parameters as ?");
      params++;
      if (pg) {
        out += sql.slice(copied, i) + "$" + params;
        copied = i + 1;
      }
      i++;
      continue;
    }
    i++;
  }
  const text = pg ? out + sql.slice(copied) : sql;
  return { text, params, verb: inWith ? "with" : verb };
}

/** A bounded cache of translations per dialect: applications send the same texts again and again. */
const CACHE_SIZE = 1000;
const caches: Record<Dialect, Map<string, TranslatedSql>> = { sqlite: new Map(), postgres: new Map(), mysql: new Map() };

/** {@link translatePlaceholders} with the adapter defaults, cached. */
export function translateCached(sql: string, dialect: Dialect): TranslatedSql {
  const cache = caches[dialect];
  let t = cache.get(sql);
  if (t === undefined) {
    t = translatePlaceholders(sql, dialect);
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
    cache.set(sql, t);
  }
  return t;
}
