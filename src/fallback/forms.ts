/**
 * The form a SQLite column's values take in the file, learned once from a
 * bounded sample, so the way back writes a value as the file would have:
 * the word pair of its booleans, the shape of its ISO timestamps, whether
 * its numbers were integers or reals. The type decision says what a value
 * *is*; SQLite also keeps how it was *spelled*, and PostgreSQL forgets that
 * ('yes' and 1 are both `true`; '2024-01-01T10:00:00Z' and
 * '2024-01-01 10:00:00+00:00' are one instant). Only the values the
 * application writes after the cutover need a spelling chosen; rows that
 * already hold an equal value keep theirs (inverse.ts `keepsExisting`).
 *
 * A form is plain data (JSON-serialisable), stored with the way back's
 * state so every pass writes the same spellings.
 */
import type BetterSqlite3 from "better-sqlite3";
import { quoteIdent } from "../ident.js";
import type { ColumnPlan, TablePlan } from "../plan/model.js";
import type { EncodeColumn } from "../plan/types.js";
import { affinity, rowidName, type SourceColumn, type SourceTable } from "../sqlite/schema.js";

/** SQLite's type affinity of a column: which conversions it applies to a value bound into it. */
export type Affinity = ReturnType<typeof affinity>;

/** How the file spells ISO dates and timestamps (kinds timestamp and timestamptz, no conversion). */
export interface IsoForm {
  /** Between the date and the time. */
  separator: " " | "T";
  /** Digits written for a zero fraction: 0 writes none ('10:00:00'), 3 writes '10:00:00.000'. */
  zeroDigits: number;
  /** Digits of a nonzero fraction (more when the value needs them: never cut); null: as many as the value needs. */
  digits: number | null;
  /** The zone suffix of a timestamptz, always UTC: 'Z' or '+00:00'; null for a timestamp. */
  zone: "Z" | "+00:00" | null;
  /** A timestamp at midnight goes back as the date alone ('2024-01-01'): the column held mostly dates. */
  dateOnly: boolean;
}

/** The two spellings of a boolean column that holds words, e.g. `{ true: "yes", false: "no" }`. */
interface BooleanWords {
  true: string;
  false: string;
}

/**
 * The form of one column: how a value coming back from PostgreSQL is
 * spelled in SQLite. Members beyond `affinity` are set for the kinds they
 * concern.
 */
export interface ColumnForm {
  /** The type decision this form was learned for; a form of another decision is not used. */
  kind: EncodeColumn["kind"];
  conversion: EncodeColumn["conversion"];
  /** SQLite's affinity for the column (a STRICT table's ANY column converts nothing: blob). */
  affinity: Affinity;
  /** Non-NULL values the form was learned from; 0: the default for the declared type. */
  sampled: number;
  /** Booleans: the words the file used, or null for integers 0/1. */
  words?: BooleanWords | null;
  /** ISO dates and timestamps: their shape. */
  iso?: IsoForm;
  /** double precision and numeric: integral values go back as integers (the column held integers), else as reals. */
  integers?: boolean;
  /** text: the column held numbers, so the spelling of a number goes back as that number. */
  numbers?: boolean;
}

/** One sampled value: its storage class, and its text when it is a short text. */
interface SampledValue {
  type: "integer" | "real" | "text" | "blob";
  text: string | null;
}

/** Non-NULL values read per column: half from the newest rows, half from the oldest. */
const SAMPLE = 2000;
/** Rows looked at from each end to find them: a sparse column is sampled from a bounded window, never a full scan. */
const WINDOW = 100_000;
/** Longer texts are counted but not read: no timestamp, boolean word or number is this long. */
const SHORT_TEXT = 40;

/**
 * Learn the form of every column of a table from a bounded sample of the
 * SQLite file (the newest and the oldest rows by key, a few thousand values
 * per column), keyed by the PostgreSQL column name. Cheap on any table size:
 * each read is a key-ordered scan stopped by LIMIT.
 */
export function learnForms(db: BetterSqlite3.Database, t: TablePlan): Record<string, ColumnForm> {
  const out: Record<string, ColumnForm> = {};
  for (const c of t.columns) out[c.name] = formFrom(c, columnAffinity(t.source, c.source), sampleColumn(db, t.source, c.source.name));
  return out;
}

/** A column's affinity, as SQLite applies it to a bound value. */
function columnAffinity(t: Pick<SourceTable, "strict">, c: Pick<SourceColumn, "declaredType">): Affinity {
  return affinity(c.declaredType, t.strict);
}

/** The form of a column nothing was learned for: derived from its declared type and its type decision. */
export function defaultForm(c: Pick<ColumnPlan, "kind" | "conversion" | "keyExact" | "source">, aff: Affinity = affinity(c.source.declaredType)): ColumnForm {
  return formFrom(c, aff, []);
}

/** The key terms a table's rows are ordered by (the rowid, or the primary key of a WITHOUT ROWID table). */
function orderTerms(t: SourceTable): string[] {
  return t.withoutRowid ? t.primaryKey.map(quoteIdent) : [rowidName(t)];
}

/** Up to {@link SAMPLE} non-NULL values of one column, from both ends of the table. */
function sampleColumn(db: BetterSqlite3.Database, t: SourceTable, column: string): SampledValue[] {
  const keys = orderTerms(t);
  const q = quoteIdent(column);
  const keySelect = keys.map((k, i) => `${k} AS _k${i}`).join(", ");
  const keyText = keys.map((_, i) => `quote(_k${i})`).join(" || ',' || ");
  const seen = new Set<string>();
  const out: SampledValue[] = [];
  for (const dir of ["DESC", "ASC"]) {
    // The inner LIMIT bounds the rows read when the column is mostly NULL; the outer one stops early when it is not.
    const sql = `SELECT ${keyText} AS k, typeof(_v) AS t, CASE WHEN typeof(_v) = 'text' AND length(_v) <= ${SHORT_TEXT} THEN _v END AS v
      FROM (SELECT ${keySelect}, ${q} AS _v FROM main.${quoteIdent(t.name)} ORDER BY ${keys.map((k) => `${k} ${dir}`).join(", ")} LIMIT ${WINDOW})
      WHERE _v IS NOT NULL LIMIT ${SAMPLE / 2}`;
    for (const r of db.prepare(sql).safeIntegers(true).all() as { k: string; t: SampledValue["type"]; v: string | null }[]) {
      if (seen.has(r.k)) continue; // a small table: both ends are the same rows
      seen.add(r.k);
      out.push({ type: r.t, text: r.v });
    }
  }
  return out;
}

/**
 * The form of a column from sampled values (pure: the learning itself).
 * With no values, the default for the declared type.
 */
function formFrom(c: Pick<ColumnPlan, "kind" | "conversion" | "keyExact" | "source">, aff: Affinity, sample: SampledValue[]): ColumnForm {
  const form: ColumnForm = { kind: c.kind, conversion: c.conversion, affinity: aff, sampled: sample.length };
  const count = (type: SampledValue["type"]) => sample.filter((s) => s.type === type).length;
  if (c.conversion === "boolean") {
    form.words = c.keyExact ? null : booleanWords(sample, aff);
  } else if (c.conversion === "none" && (c.kind === "timestamp" || c.kind === "timestamptz")) {
    form.iso = c.keyExact ? CANONICAL_ISO : isoForm(sample, c.kind, c.source.declaredType);
  } else if (c.conversion === "none" && c.kind === "double precision") {
    form.integers = count("integer") > 0;
  } else if (c.conversion === "none" && c.kind === "numeric") {
    form.integers = count("integer") > 0 || count("real") === 0;
  } else if (c.conversion === "none" && c.kind === "text") {
    const numbers = count("integer") + count("real");
    const spelledNumbers = sample.filter((s) => s.type === "text" && s.text !== null && NUMBER_SPELLING.test(s.text)).length;
    form.numbers = numbers > 0 && numbers >= spelledNumbers;
  }
  return form;
}

/** Texts that spell a number as the copy writes one (a text column's numbers arrive in PostgreSQL as these). */
const NUMBER_SPELLING = /^-?\d+(?:\.\d+)?(?:e[+-]\d+)?$/;

/** The one spelling a key timestamp may have (the one PostgreSQL renders back). */
const CANONICAL_ISO: IsoForm = { separator: " ", zeroDigits: 0, digits: null, zone: null, dateOnly: false };

const BOOLEAN_PAIRS: Record<string, [string, string]> = {
  true: ["true", "false"],
  false: ["true", "false"],
  t: ["t", "f"],
  f: ["t", "f"],
  yes: ["yes", "no"],
  no: ["yes", "no"],
};

type Case = "lower" | "upper" | "capital";

function caseOf(w: string): Case {
  if (w === w.toLowerCase()) return "lower";
  if (w === w.toUpperCase()) return "upper";
  if (w === w[0]!.toUpperCase() + w.slice(1).toLowerCase()) return "capital";
  return "lower";
}

function inCase(w: string, k: Case): string {
  return k === "upper" ? w.toUpperCase() : k === "capital" ? w[0]!.toUpperCase() + w.slice(1) : w;
}

/** The most frequent key of a count map (the first counted among equals). */
function majority<K>(counts: Map<K, number>): K | undefined {
  let best: K | undefined;
  let n = 0;
  for (const [k, c] of counts)
    if (c > n) {
      best = k;
      n = c;
    }
  return best;
}

function tally<K>(counts: Map<K, number>, k: K): void {
  counts.set(k, (counts.get(k) ?? 0) + 1);
}

/**
 * Integers 0/1 (null) when the file used them at least as often as words;
 * else the word pair (true/false, t/f, yes/no) and letter case used most.
 * With no values: integers, except in a column of TEXT affinity, where
 * SQLite would turn 1 into the text '1': there 'true'/'false'.
 */
function booleanWords(sample: SampledValue[], aff: Affinity): BooleanWords | null {
  const integers = sample.filter((s) => s.type === "integer").length;
  const groups = new Map<string, number>();
  for (const s of sample) {
    if (s.type !== "text" || s.text === null) continue;
    // Own keys only: `constructor` or `__proto__` in the data is no boolean word.
    const word = s.text.toLowerCase();
    const pair = Object.hasOwn(BOOLEAN_PAIRS, word) ? BOOLEAN_PAIRS[word] : undefined;
    if (pair) tally(groups, `${pair[0]}/${caseOf(s.text)}`);
  }
  const words = [...groups.values()].reduce((a, b) => a + b, 0);
  if (integers === 0 && words === 0) return aff === "text" ? { true: "true", false: "false" } : null;
  if (integers >= words) return null;
  const [first, k] = majority(groups)!.split("/") as [string, Case];
  const [t, f] = BOOLEAN_PAIRS[first]!;
  return { true: inCase(t, k), false: inCase(f, k) };
}

const ISO_SHAPE = /^\d{4}-\d\d-\d\d(?:([T ])\d\d:\d\d:\d\d(?:\.(\d+))?)?(Z|[+-]\d\d:\d\d)?$/;

/**
 * The shape of the column's ISO texts, by majority: separator, fraction
 * digits (a fixed count, or as many as needed), zone suffix ('Z', else
 * '+00:00': an instant from PostgreSQL has no offset of its own), and
 * whether midnight is written as the date alone.
 */
function isoForm(sample: SampledValue[], kind: "timestamp" | "timestamptz", declared: string): IsoForm {
  const separators = new Map<" " | "T", number>();
  const zeroLengths = new Map<number, number>();
  const nonzeroLengths = new Set<number>();
  let zulu = 0;
  let offsets = 0;
  let dates = 0;
  let times = 0;
  for (const s of sample) {
    const m = s.type === "text" && s.text !== null ? ISO_SHAPE.exec(s.text) : null;
    if (!m) continue;
    if (m[1] === undefined) {
      dates++;
      continue;
    }
    times++;
    tally(separators, m[1] as " " | "T");
    const frac = m[2] ?? "";
    if (/^0*$/.test(frac)) tally(zeroLengths, Math.min(frac.length, 6));
    else nonzeroLengths.add(Math.min(frac.length, 6));
    if (m[3] === "Z") zulu++;
    else if (m[3] !== undefined) offsets++;
  }
  const zeroMajority = majority(zeroLengths);
  let digits: number | null = nonzeroLengths.size === 1 ? [...nonzeroLengths][0]! : null;
  if (nonzeroLengths.size === 0 && zeroMajority) digits = zeroMajority; // only '.000' seen: the file pads
  // No zero fraction seen: a fixed count of 6 is most likely Python's isoformat(), which omits a zero fraction; others pad it.
  const zeroDigits = zeroMajority ?? (digits === 6 ? 0 : (digits ?? 0));
  return {
    separator: (separators.get("T") ?? 0) > (separators.get(" ") ?? 0) ? "T" : " ",
    zeroDigits,
    digits,
    zone: kind === "timestamptz" ? (zulu > offsets ? "Z" : "+00:00") : null,
    dateOnly: kind === "timestamp" && (dates + times === 0 ? /date/i.test(declared) && !/time/i.test(declared) : dates > times),
  };
}
