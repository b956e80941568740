/**
 * Translation of SQLite column DEFAULTs into PostgreSQL, for the column's
 * Postgres type: literals converted as SQLite's affinity stores them and
 * range-checked, and "now" in its SQLite spellings as the same UTC text or
 * instant. Anything else is refused with a reason.
 */
import { tokenize, type Token } from "../sqlite/sql-tokens.js";
import { aCol, INT64_MAX, INT64_MIN, numberValue, pgString, Refusal, refuse, type PgTypeName, type Translated } from "./expr.js";

/** A DEFAULT's value as SQLite sees it before applying the column's affinity. */
type DefaultValue =
  | { k: "null" }
  | { k: "int"; v: bigint }
  | { k: "real"; v: number; text: string }
  | { k: "text"; v: string }
  | { k: "blob"; hex: string }
  | { k: "bool"; v: boolean }
  | { k: "now"; fmt: string }; // the time of the insert, rendered by a strftime format; "%J" = julian day

const INT_RANGE: Record<string, [bigint, bigint]> = {
  smallint: [-32768n, 32767n],
  integer: [-2147483648n, 2147483647n],
  bigint: [INT64_MIN, INT64_MAX],
};

/** SQLite's numeric affinity applied to text: the integer or real it reads, or null when the text stays text. */
function numericAffinity(s: string): { int: bigint } | { real: number } | null {
  const t = s.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, "");
  if (/^[+-]?\d+$/.test(t)) {
    const v = BigInt(t);
    if (v >= INT64_MIN && v <= INT64_MAX) return { int: v };
    return { real: Number(t) };
  }
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) {
    const r = Number(t);
    return Number.isFinite(r) ? { real: r } : null;
  }
  return null;
}

/** A real that SQLite's INTEGER/NUMERIC affinity stores as an integer (exact and in range), or null. */
function integralReal(r: number): bigint | null {
  return Number.isInteger(r) && r >= -(2 ** 63) && r < 2 ** 63 ? BigInt(r) : null;
}

/** Read the DEFAULT text into a value, refusing expressions. */
function readDefault(text: string): DefaultValue {
  let toks: Token[];
  try {
    toks = tokenize(text);
  } catch (e) {
    return refuse(`cannot parse the default (${(e as Error).message})`);
  }
  let inParens = false;
  while (toks.length >= 2 && toks[0]!.text === "(" && toks[toks.length - 1]!.text === ")") {
    let depth = 0;
    const closesAtEnd = toks.every((t, i) => {
      if (t.kind === "op" && t.text === "(") depth++;
      else if (t.kind === "op" && t.text === ")") depth--;
      return depth > 0 || i === toks.length - 1;
    });
    if (!closesAtEnd) break;
    toks = toks.slice(1, -1);
    inParens = true;
  }
  const [a, b] = toks;
  if (toks.length === 1 && a) {
    if (a.kind === "number") {
      const v = numberValue(a.text.replace(/_/g, ""));
      return "int" in v ? { k: "int", v: v.int } : { k: "real", v: v.real, text: a.text };
    }
    if (a.kind === "string") return { k: "text", v: a.value };
    if (a.kind === "blob") return { k: "blob", hex: a.value.toLowerCase() };
    if (a.kind === "ident") {
      const w = a.text === a.value ? a.text.toLowerCase() : "";
      if (w === "null") return { k: "null" };
      if (w === "true" || w === "false") return { k: "bool", v: w === "true" };
      if (w === "current_timestamp") return { k: "now", fmt: "%Y-%m-%d %H:%M:%S" };
      if (w === "current_date") return { k: "now", fmt: "%Y-%m-%d" };
      if (w === "current_time") return { k: "now", fmt: "%H:%M:%S" };
      // SQLite stores a bare or quoted word after DEFAULT as a string; in parentheses only "x" is one.
      if (!inParens || a.text.startsWith('"')) return { k: "text", v: a.value };
      return refuse(`default (${a.text}) refers to a column`);
    }
  }
  if (toks.length === 2 && a && b && a.kind === "op" && (a.text === "-" || a.text === "+") && b.kind === "number") {
    const text = b.text.replace(/_/g, "");
    if (a.text === "-" && text === "9223372036854775808") return { k: "int", v: INT64_MIN };
    const v = numberValue(text);
    const neg = a.text === "-";
    return "int" in v ? { k: "int", v: neg ? -v.int : v.int } : { k: "real", v: neg ? -v.real : v.real, text: a.text + text };
  }
  if (a?.kind === "ident" && toks[1]?.text === "(" && toks[toks.length - 1]!.text === ")") return timeCall(a.value.toLowerCase(), toks.slice(2, -1), text);
  return refuse(`default ${text} is an expression that is not translated`);
}

/** `datetime('now')`, `strftime('%s','now')`, `julianday('now')` and friends: a {@link DefaultValue} "now". */
function timeCall(name: string, argToks: Token[], text: string): DefaultValue {
  const args: string[] = [];
  for (let i = 0; i < argToks.length; i += 2) {
    const t = argToks[i]!;
    if (t.kind !== "string" || (i + 1 < argToks.length && argToks[i + 1]!.text !== ",")) {
      return refuse(`default ${text} is an expression that is not translated`);
    }
    args.push(t.value);
  }
  const FORMATS: Record<string, string> = { datetime: "%Y-%m-%d %H:%M:%S", date: "%Y-%m-%d", time: "%H:%M:%S", julianday: "%J", unixepoch: "%s" };
  // Own keys only: a function named like an object's property (`constructor`) is no date function.
  const fmt = name === "strftime" ? args.shift() : Object.hasOwn(FORMATS, name) ? FORMATS[name] : undefined;
  if (fmt === undefined) return refuse(`function ${name}() in a default is not translated`);
  const [time = "now", ...modifiers] = args;
  if (time.toLowerCase() !== "now") return refuse(`default ${text} is a constant written as a function call; it is not translated`);
  for (const m of modifiers) {
    if (m.trim().toLowerCase() === "localtime") return refuse(`default ${text} uses the 'localtime' modifier: it depends on the server's time zone`);
    return refuse(`default ${text} uses the modifier '${m}', which is not translated`);
  }
  return { k: "now", fmt };
}

const NOW_UTC = "CURRENT_TIMESTAMP AT TIME ZONE 'UTC'";
const EPOCH_S = "(floor(extract(epoch from CURRENT_TIMESTAMP))::bigint)";

/** A strftime format as a to_char format, or null when a specifier has no exact to_char counterpart. */
function toCharFormat(fmt: string): string | null {
  const MAP: Record<string, string> = { Y: "YYYY", m: "MM", d: "DD", H: "HH24", M: "MI", S: "SS", f: "SS.MS", j: "DDD" };
  let out = "";
  let literal = "";
  const flush = (): void => {
    if (literal) out += /^[-:/., ]*$/.test(literal) ? literal : `"${literal.replace(/["\\]/g, (c) => "\\" + c)}"`;
    literal = "";
  };
  for (let i = 0; i < fmt.length; i++) {
    if (fmt[i] !== "%") {
      literal += fmt[i];
      continue;
    }
    const spec = fmt[++i];
    if (spec === "%") {
      literal += "%";
      continue;
    }
    const pg = spec === undefined || !Object.hasOwn(MAP, spec) ? undefined : MAP[spec];
    if (!pg) return null;
    flush();
    out += pg;
  }
  flush();
  return out;
}

/** The Postgres default for "the time of the insert, as `fmt` renders it" in a column of type `type`. */
function nowDefault(fmt: string, type: PgTypeName, text: string): string {
  const no: (why: string) => never = (why) => refuse(`default ${text} ${why}`);
  if (fmt === "%J") {
    if (type !== "double precision") no(`is a julian day, which only a double precision column holds exactly`);
    return "((floor(extract(epoch from CURRENT_TIMESTAMP) * 1000) + 210866760000000)::double precision / 86400000.0)";
  }
  if (fmt === "%s") {
    if (type === "integer" || type === "bigint" || type === "double precision" || type === "numeric") return EPOCH_S;
    if (type === "text") return `(${EPOCH_S}::text)`;
    return no(`is a number of seconds, which ${aCol(type)} does not hold`);
  }
  const date = fmt === "%Y-%m-%d";
  const seconds = fmt === "%Y-%m-%d %H:%M:%S" || fmt === "%Y-%m-%dT%H:%M:%S";
  const millis = fmt === "%Y-%m-%d %H:%M:%f" || fmt === "%Y-%m-%dT%H:%M:%f";
  switch (type) {
    case "text": {
      const f = toCharFormat(fmt);
      if (f === null) return no(`uses a strftime format that to_char() does not reproduce exactly`);
      return `to_char(${NOW_UTC}, ${pgString(f)})`;
    }
    case "timestamp":
      if (seconds) return `(date_trunc('second', ${NOW_UTC}))`;
      if (millis) return `(date_trunc('milliseconds', ${NOW_UTC}))`;
      if (date) return `((${NOW_UTC})::date::timestamp)`;
      break;
    case "timestamptz":
      if (seconds) return "date_trunc('second', CURRENT_TIMESTAMP)";
      if (millis) return "date_trunc('milliseconds', CURRENT_TIMESTAMP)";
      break;
    case "date":
      if (date) return `(${NOW_UTC})::date`;
      break;
    default:
  }
  return no(`is a time rendered as text, which ${aCol(type)} does not hold`);
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const ISO_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?)?$/;
const ZONE = /(?:Z|[+-]\d{2}(?::?\d{2})?)$/;

function validDate(m: RegExpExecArray): boolean {
  const [y, mo, d, h = "0", mi = "0", s = "0"] = m.slice(1).map((x) => x ?? undefined) as string[];
  const dt = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  return (
    dt.getUTCFullYear() === Number(y) &&
    dt.getUTCMonth() === Number(mo) - 1 &&
    dt.getUTCDate() === Number(d) &&
    Number(h) < 24 &&
    Number(mi) < 60 &&
    Number(s) < 60 &&
    Number(y) > 0
  );
}

/** The value of a literal default in a column of type `type`, after SQLite's affinity. */
function literalDefault(v: Exclude<DefaultValue, { k: "now" }>, type: PgTypeName, text: string): string {
  const no: (why: string) => never = (why) => refuse(`default ${text} ${why}`);
  if (v.k === "null") return "NULL";
  switch (type) {
    case "smallint":
    case "integer":
    case "bigint": {
      let n: bigint | null = null;
      if (v.k === "int") n = v.v;
      else if (v.k === "bool") n = v.v ? 1n : 0n;
      else if (v.k === "real") n = integralReal(v.v);
      else if (v.k === "text") {
        const a = numericAffinity(v.v);
        n = a === null ? null : "int" in a ? a.int : integralReal(a.real);
        if (a === null) no(`is text that is not a number; ${aCol(type)} cannot hold it`);
      }
      if (n === null) return no(`is not an integer; ${aCol(type)} cannot hold it`);
      const [lo, hi] = INT_RANGE[type]!;
      if (n < lo || n > hi) no(`is out of the range of ${type}`);
      return n.toString();
    }
    case "double precision":
    case "numeric": {
      if (v.k === "int") return v.v.toString();
      if (v.k === "bool") return v.v ? "1" : "0";
      if (v.k === "real") return String(v.v);
      if (v.k === "text") {
        const a = numericAffinity(v.v);
        if (a === null) no(`is text that is not a number; ${aCol(type)} cannot hold it`);
        return "int" in a ? a.int.toString() : String(a.real);
      }
      return no(`is a blob; ${aCol(type)} cannot hold it`);
    }
    case "text":
      if (v.k === "text") return pgString(v.v);
      if (v.k === "int") return pgString(v.v.toString());
      if (v.k === "bool") return v.v ? "'1'" : "'0'";
      if (v.k === "real") no("is a real: SQLite's text rendering of it is not reproduced");
      return no("is a blob; a text column cannot hold it");
    case "boolean": {
      if (v.k === "bool") return v.v ? "true" : "false";
      if (v.k === "int" && (v.v === 0n || v.v === 1n)) return v.v === 1n ? "true" : "false";
      if (v.k === "text" && ["0", "1", "true", "false"].includes(v.v)) return v.v === "1" || v.v === "true" ? "true" : "false";
      return no("is not 0, 1, 'true' or 'false'; a boolean column cannot hold it");
    }
    case "bytea":
      if (v.k === "blob") return `'\\x${v.hex}'::bytea`;
      return no("is not a blob; a bytea column cannot hold it");
    case "date":
    case "timestamp":
    case "timestamptz": {
      if (v.k !== "text") return no(`is not text; ${aCol(type)} holds ISO dates`);
      const s = v.v;
      const zone = ZONE.exec(s);
      const local = zone && type !== "date" && /\d{2}:\d{2}/.test(s) ? s.slice(0, zone.index) : s;
      const m = (type === "date" ? ISO_DATE : ISO_TIMESTAMP).exec(local);
      if (!m || !validDate(m)) return no(`is not a valid ISO ${type === "date" ? "date" : "timestamp"}`);
      if (type === "timestamp" && local !== s) no("has a time zone; a timestamp column holds times without one");
      if (type === "timestamptz" && local === s) no("has no time zone; a timestamptz column needs one");
      return pgString(s);
    }
    case "json": {
      const s = v.k === "text" ? v.v : v.k === "int" ? v.v.toString() : null;
      if (s === null) return no("is not JSON text; a json column cannot hold it");
      try {
        JSON.parse(s);
      } catch {
        return no("is not valid JSON");
      }
      return pgString(s);
    }
  }
}

/**
 * Translate a column DEFAULT (the text from ParsedColumnDef.defaultExpr or
 * PRAGMA table_info's dflt_value) for a column whose Postgres type is `type`.
 * The Postgres default yields the value SQLite would have stored after
 * applying the column's affinity; `CURRENT_TIMESTAMP` and the date functions
 * on 'now' become the same UTC time rendered or typed for the column.
 * Expressions, 'localtime' and values the type cannot hold are refused.
 */
export function translateDefault(sqliteDefault: string, type: PgTypeName): Translated {
  try {
    const text = sqliteDefault.trim();
    const v = readDefault(text);
    return { ok: true, sql: v.k === "now" ? nowDefault(v.fmt, type, text) : literalDefault(v, type, text) };
  } catch (e) {
    if (e instanceof Refusal) return { ok: false, reason: e.message };
    throw e;
  }
}
