import type { ColumnCensus } from "../sqlite/census.js";
import { DATE_CLASS, isDateDeclared, numericTypmod } from "../sqlite/census.js";
import { affinity, type SourceColumn } from "../sqlite/schema.js";

/** The Postgres types this project creates. */
type PgKind = "bigint" | "double precision" | "numeric" | "text" | "bytea" | "boolean" | "date" | "timestamp" | "timestamptz" | "json";

/**
 * How a SQLite value becomes the Postgres value: as it is, or converted
 * (epoch seconds/milliseconds and julian days to an instant, 0/1 and
 * true/false words to a boolean).
 */
type Conversion = "none" | "epoch_s" | "epoch_ms" | "julian" | "boolean";

/** What the encoder needs to know about one column. */
export interface EncodeColumn {
  name: string;
  kind: PgKind;
  conversion: Conversion;
  /** Scale of `numeric(p,s)`; null for unconstrained numeric and other kinds. */
  scale: number | null;
  /**
   * A text column that is (part of) a key: numbers are refused, since
   * Postgres text would conflate integer 1 with a text '1' that SQLite
   * keeps as another key.
   */
  keyText?: boolean;
  /**
   * A key column whose conversion maps several spellings to one value
   * (timestamp, boolean): only the one spelling the conversion renders back
   * is taken; any other is refused (convert/key-spelling.ts).
   */
  keyExact?: boolean;
  /** Precision of `numeric(p,s)`; null or absent otherwise (plans saved before it was recorded). */
  precision?: number | null;
}

/** The type chosen for one column, and why. */
export interface TypeDecision {
  kind: PgKind;
  /** The full type as written in DDL, e.g. `numeric(10,2)`. */
  sql: string;
  conversion: Conversion;
  reason: string;
  /** Numeric scale when the type is `numeric(p,s)`, used to render values. */
  scale: number | null;
}

const MAX_SAFE = 9007199254740992n; // 2^53
const EPOCH_S_MIN = -62135596800n; // 0001-01-01
const EPOCH_S_MAX = 253402300799n; // 9999-12-31 23:59:59

function describeKinds(c: ColumnCensus): string {
  const parts: string[] = [];
  if (c.integers) parts.push(`${c.integers} integer`);
  if (c.reals) parts.push(`${c.reals} real`);
  if (c.texts) parts.push(`${c.texts} text`);
  if (c.blobs) parts.push(`${c.blobs} blob`);
  return parts.length ? parts.join(", ") : "no values";
}

/**
 * Pick the Postgres type for a column from its declared type and what it
 * holds. Every existing value must fit the chosen type exactly; when the
 * declared type cannot hold them all, a wider type is chosen and the reason
 * says so. Returns null only for a column no type can hold exactly (blobs
 * mixed with other kinds), which the planner refuses.
 */
export function chooseType(col: SourceColumn, c: ColumnCensus, isRowidAlias: boolean): TypeDecision | null {
  const declared = col.declaredType.trim();
  const held = describeKinds(c);
  const onlyNull = c.integers + c.reals + c.texts + c.blobs === 0;
  const intsSafe = c.minInt === null || (c.minInt >= -MAX_SAFE && c.maxInt! <= MAX_SAFE);
  const d = (kind: PgKind, reason: string, conversion: Conversion = "none", sqlType: string = kind, scale: number | null = null): TypeDecision => ({
    kind,
    sql: sqlType,
    conversion,
    reason,
    scale,
  });

  if (isRowidAlias) return d("bigint", "INTEGER PRIMARY KEY is SQLite's 64-bit rowid: bigint identity");

  if (c.blobs > 0) {
    if (c.blobs === c.integers + c.reals + c.texts + c.blobs) return d("bytea", `holds only blobs (${held})`);
    return null;
  }

  const aff = affinity(declared);
  const up = declared.toUpperCase();

  // Booleans: declared BOOL and every value 0/1 or a boolean word.
  if (/BOOL/.test(up) && !onlyNull && c.reals === 0 && c.zeroOne === c.integers && c.textBooleans === c.texts) {
    return d("boolean", `declared ${declared}; every value is 0/1${c.texts ? " or a boolean word" : ""}`, "boolean");
  }
  if (/BOOL/.test(up) && onlyNull) return d("boolean", `declared ${declared}; no values yet`, "boolean");

  // Dates and times.
  if (isDateDeclared(declared) && !onlyNull) {
    const k = c.dateClasses;
    if (c.integers === 0 && c.reals === 0 && (k & DATE_CLASS.other) === 0) {
      if (k === DATE_CLASS.timestamptz) return d("timestamptz", `declared ${declared}; every value is an ISO timestamp with a zone`);
      if (k === DATE_CLASS.date) return d("date", `declared ${declared}; every value is an ISO date`);
      if ((k & DATE_CLASS.timestamptz) === 0)
        return d("timestamp", `declared ${declared}; every value is an ISO date/timestamp without zone (at most microseconds)`);
      return d("text", `declared ${declared}; mixes timestamps with and without a zone, which no single Postgres type holds as written`);
    }
    if (c.texts === 0 && c.reals === 0 && c.minInt !== null) {
      if (c.minInt >= EPOCH_S_MIN && c.maxInt! <= EPOCH_S_MAX && c.minInt > -100000000000n && c.maxInt! < 100000000000n) {
        return d("timestamptz", `declared ${declared}; every value is an integer in the range of unix seconds: the same instant as timestamptz`, "epoch_s");
      }
      if (c.minInt >= 100000000000n && c.maxInt! <= EPOCH_S_MAX * 1000n) {
        return d(
          "timestamptz",
          `declared ${declared}; every value is an integer in the range of unix milliseconds: the same instant as timestamptz`,
          "epoch_ms",
        );
      }
    }
    if (c.texts === 0 && c.integers === 0 && c.reals > 0 && c.julianReals === c.reals) {
      return d("timestamptz", `declared ${declared}; every value is a real in the julian-day range: the instant SQLite's date functions read`, "julian");
    }
    if (c.texts > 0) return d("text", `declared ${declared} but holds ${held}, not all ISO dates: kept as text, exactly as written`);
  }

  if (/JSON/.test(up) && c.texts > 0 && c.texts === c.textJson && c.integers + c.reals === 0) {
    return d("json", `declared ${declared}; every value is a JSON object or array (json keeps the text exactly; jsonb would reorder keys)`);
  }

  // Numbers and text, by what the column holds.
  if (c.texts > 0) {
    if (c.integers + c.reals === 0)
      return d(
        "text",
        aff === "text" || declared === ""
          ? `declared ${declared || "without a type"}; holds text`
          : `declared ${declared} but holds only text: typed text so no row is lost`,
      );
    return d(
      "text",
      `declared ${declared || "without a type"} but holds ${held}: typed text so no row is lost (numbers are written in their exact shortest form)`,
    );
  }
  const nm = numericTypmod(declared);
  if (nm) {
    const numbers = c.integers + c.reals;
    if (c.numericFits === numbers && (c.reals === 0 || nm.precision <= 15)) {
      return d(
        "numeric",
        `declared ${declared}; every value fits numeric(${nm.precision},${nm.scale}) exactly`,
        "none",
        `numeric(${nm.precision},${nm.scale})`,
        nm.scale,
      );
    }
    if (c.reals > 0 && intsSafe)
      return d(
        "double precision",
        `declared ${declared} but holds reals that numeric(${nm.precision},${nm.scale}) would round: kept as double precision, bit for bit`,
      );
    return d("numeric", `declared ${declared} but some values exceed it: unconstrained numeric holds them all exactly`);
  }
  if (c.reals > 0) {
    if (c.integers === 0 || intsSafe) {
      return d(
        "double precision",
        c.integers === 0
          ? `declared ${declared || "without a type"}; holds reals`
          : `declared ${declared || "without a type"}; holds ${held}, every integer within ±2^53: double precision holds all exactly`,
      );
    }
    return d("numeric", `holds ${held} with integers beyond ±2^53: numeric holds both exactly`);
  }
  if (c.integers > 0) {
    if (aff === "real") return d("double precision", `declared ${declared}; holds integers that double precision holds exactly`);
    return d("bigint", `declared ${declared || "without a type"}; holds integers (${c.minInt}..${c.maxInt}): bigint holds SQLite's full 64-bit range`);
  }
  // Only NULLs: follow the declared type.
  switch (aff) {
    case "integer":
      return d("bigint", `declared ${declared}; no values yet`);
    case "real":
      return d("double precision", `declared ${declared}; no values yet`);
    case "text":
      return d("text", `declared ${declared}; no values yet`);
    case "blob":
      return declared === "" ? d("text", "no declared type and no values yet") : d("bytea", `declared ${declared}; no values yet`);
    default:
      if (nm)
        return d(
          "numeric",
          `declared ${declared}; no values yet`,
          "none",
          `numeric(${(nm as { precision: number }).precision},${(nm as { scale: number }).scale})`,
        );
      if (isDateDeclared(declared)) return d("timestamp", `declared ${declared}; no values yet`);
      return d("numeric", `declared ${declared}; no values yet`);
  }
}
