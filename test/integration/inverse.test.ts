/**
 * The way back of values: random SQLite values of every kind and conversion
 * are stored in a SQLite file under their declared type, planned, copied to
 * a real PostgreSQL by COPY with the forward encoder, read back as the
 * daemon reads them (text under fixed settings, and the canonical text),
 * turned back by `inverseValue` with the forms learned from that file, and
 * stored in a SQLite table of the same declared type. What SQLite then holds
 * is the original value — same storage class, same bits, same spelling — or,
 * for a value spelled in one of several ways the file used less often,
 * `keepsExisting` is true for the original. Then the refusals, each with
 * its message.
 */
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import Database from "better-sqlite3";
import fc from "fast-check";
import { from as copyFrom } from "pg-copy-streams";
import { afterEach, describe, expect, it } from "vitest";
import { canonicalSql, canonicalWriter } from "../../src/convert/canonical.js";
import { encodeValue } from "../../src/convert/copy-encode.js";
import { type ColumnForm, learnForms } from "../../src/fallback/forms.js";
import { InverseRefused, inverseValue, keepsExisting } from "../../src/fallback/inverse.js";
import { quoteIdent } from "../../src/ident.js";
import { buildPlan, type ColumnPlan } from "../../src/plan/plan.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { cleanup, freshDatabase, tempDir } from "../helpers/db.js";

afterEach(cleanup);

const NUM_RUNS = 100;
/** The session the daemon reads PostgreSQL under. */
const SETTINGS = "SET DateStyle='ISO, YMD'; SET TimeZone='UTC'; SET extra_float_digits=1; SET bytea_output='hex'; SET IntervalStyle='postgres'";

/** One value's way there and back. */
interface Trip {
  orig: unknown;
  text: string | Buffer | null;
  canonical: string | null;
  /** What SQLite holds after the inverse value was bound into a column of the same declared type. */
  stored: unknown;
}

/** A SQLite file and a PostgreSQL database for one test, reused by every run of its property. */
async function setup() {
  const db = new Database(join(tempDir(), "inverse.db"));
  const { client } = await freshDatabase();
  await client.query(SETTINGS);
  return { db, client, pgType: { current: null as string | null } };
}
type Env = Awaited<ReturnType<typeof setup>>;

/** Store `raws` in column x of a fresh table of the declared type; plan it; learn its forms. */
function sqliteSide(env: Env, declared: string, raws: unknown[]) {
  const { db } = env;
  db.exec(`DROP TABLE IF EXISTS back; DROP TABLE IF EXISTS t; CREATE TABLE t (id INTEGER PRIMARY KEY, x ${declared})`);
  const ins = db.prepare("INSERT INTO t (id, x) VALUES (?, ?)");
  for (const [i, v] of raws.entries()) ins.run(i + 1, v);
  const origs = db.prepare("SELECT x FROM t ORDER BY id").pluck().safeIntegers(true).all();
  const plan = buildPlan(db, readSchema(db), { schema: "public", preserveCase: false }).tables.find((t) => t.source.name === "t")!;
  const col = plan.columns.find((c) => c.name === "x")!;
  return { origs, col, form: learnForms(db, plan).x! };
}

/** COPY the originals into PostgreSQL with the forward encoder and read them back as the daemon does. */
async function pgSide(env: Env, col: ColumnPlan, origs: unknown[]): Promise<{ text: string | Buffer | null; canonical: string | null }[]> {
  const { client } = env;
  if (env.pgType.current !== col.type.sql) {
    await client.query(`DROP TABLE IF EXISTS v; CREATE TABLE v (i int, x ${col.type.sql})`);
    env.pgType.current = col.type.sql;
  } else await client.query("DELETE FROM v");
  const data = origs.map((v, i) => `${i}\t${encodeValue(v, col, 1)}\n`).join("");
  await pipeline(Readable.from([data]), client.query(copyFrom("COPY v (i, x) FROM STDIN")));
  const x = quoteIdent("x");
  const r = await client.query(`SELECT ${col.kind === "bytea" ? x : `${x}::text`} AS text, ${canonicalSql(x, col)} AS canonical FROM v ORDER BY i`);
  return r.rows;
}

/** The whole trip of `raws` through a column declared `declared`. */
async function trip(env: Env, declared: string, raws: unknown[]): Promise<{ col: ColumnPlan; form: ColumnForm; trips: Trip[] }> {
  const { origs, col, form } = sqliteSide(env, declared, raws);
  const read = await pgSide(env, col, origs);
  env.db.exec(`CREATE TABLE back (id INTEGER PRIMARY KEY, x ${declared})`);
  const ins = env.db.prepare("INSERT INTO back (id, x) VALUES (?, ?)");
  for (const [i, r] of read.entries()) ins.run(i + 1, inverseValue(col, form, r.text, r.canonical));
  const stored = env.db.prepare("SELECT x FROM back ORDER BY id").pluck().safeIntegers(true).all();
  return { col, form, trips: origs.map((orig, i) => ({ orig, ...read[i]!, stored: stored[i] })) };
}

/** Same storage class and same bits (or text, or bytes). */
function identical(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return typeof a === typeof b && Object.is(a, b);
}

const show = (v: unknown) =>
  typeof v === "bigint" ? `${v}n` : typeof v === "number" && Object.is(v, -0) ? "-0" : Buffer.isBuffer(v) ? `x'${v.toString("hex")}'` : JSON.stringify(v);

/**
 * Every value: what SQLite stored has PostgreSQL's canonical text, and the
 * original keeps its place (keepsExisting). Those `exact` names: stored
 * identically to the original.
 */
function check(col: ColumnPlan, trips: Trip[], exact: (orig: unknown, i: number) => boolean): void {
  const w = canonicalWriter(col);
  for (const [i, t] of trips.entries()) {
    const what = `value ${i} ${show(t.orig)} → ${show(t.text)} → ${show(t.stored)}`;
    expect(w(t.stored), what).toBe(t.canonical);
    expect(keepsExisting(col, t.orig, t.canonical), what).toBe(true);
    if (exact(t.orig, i)) expect(identical(t.stored, t.orig), what).toBe(true);
  }
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const pad = (n: number, w: number) => String(n).padStart(w, "0");
const list = <T>(a: fc.Arbitrary<T>) => fc.array(a, { minLength: 1, maxLength: 10 });

/** A property over arrays of raw values, all of which must come back identical. */
async function allExact(declared: string, kind: string, conversion: string, raws: fc.Arbitrary<unknown[]>): Promise<void> {
  const env = await setup();
  await fc.assert(
    fc.asyncProperty(raws, async (values) => {
      const { col, trips } = await trip(env, declared, values);
      expect([col.kind, col.conversion]).toEqual([kind, conversion]);
      check(col, trips, () => true);
    }),
    { numRuns: NUM_RUNS },
  );
}

describe("values come back exactly", () => {
  it("bigint, int64 extremes included", () =>
    allExact("INTEGER", "bigint", "none", list(fc.oneof(fc.bigInt({ min: INT64_MIN, max: INT64_MAX }), fc.constantFrom(INT64_MIN, INT64_MAX, 0n, -1n)))));

  it("double precision bit for bit in a REAL column, ±Infinity included", () => allExact("REAL", "double precision", "none", list(fc.double({ noNaN: true }))));

  it("double precision in an untyped column, -0 included, integers as integers", async () => {
    const env = await setup();
    const value = fc.oneof(fc.double({ noNaN: true }), fc.bigInt({ min: -(2n ** 53n), max: 2n ** 53n }), fc.constantFrom(-0, 0.5, 3));
    await fc.assert(
      fc.asyncProperty(fc.tuple(fc.double({ noNaN: true }), fc.array(value, { maxLength: 9 })), async ([first, rest]) => {
        const { col, form, trips } = await trip(env, "", [first, ...rest]);
        expect(col.kind).toBe("double precision");
        expect(form.integers).toBe(rest.some((v) => typeof v === "bigint"));
        // An integral real within ±2^53 goes back as an integer when the column held integers: only keepsExisting holds for it.
        const becomesInteger = (o: unknown) =>
          form.integers === true && typeof o === "number" && Number.isInteger(o) && !Object.is(o, -0) && Math.abs(o) <= 2 ** 53;
        check(col, trips, (o) => !becomesInteger(o));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("numeric(10,2)", () =>
    allExact(
      "NUMERIC(10,2)",
      "numeric",
      "none",
      list(
        fc.oneof(
          fc.bigInt({ min: -9999999999n, max: 9999999999n }).map((c) => Number(c) / 100),
          fc.bigInt({ min: -99999999n, max: 99999999n }),
        ),
      )
        .map((a) => a.filter((x) => typeof x === "bigint" || Number(x.toFixed(2)) === x))
        .filter((a) => a.length > 0),
    ));

  it("unconstrained numeric: integers beyond 2^53 and reals", async () => {
    const env = await setup();
    const value = fc.oneof(fc.double({ noNaN: true }), fc.bigInt({ min: INT64_MIN, max: INT64_MAX }), fc.constantFrom(1e20, 12345.678, -0));
    await fc.assert(
      fc.asyncProperty(fc.array(value, { maxLength: 8 }), async (rest) => {
        const { col, trips } = await trip(env, "", [2n ** 60n, 0.5, ...rest]);
        expect(col.kind).toBe("numeric");
        // The column held integers: an integral real that fits 64 bits goes back as an integer.
        check(col, trips, (o) => !(typeof o === "number" && Number.isInteger(o) && o >= -(2 ** 63) && o < 2 ** 63));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("text, all of Unicode but NUL", () =>
    allExact("TEXT", "text", "none", list(fc.string({ unit: "binary", maxLength: 20 }).filter((s) => !s.includes("\u0000")))));

  it("text in a column of NUMERIC affinity, where SQLite made numbers of some", async () => {
    const env = await setup();
    const chars = fc.constantFrom(..."0123456789 .-+eEx");
    const value = fc.oneof(fc.string({ unit: chars, maxLength: 8 }), fc.string({ maxLength: 6 }));
    await fc.assert(
      fc.asyncProperty(list(value), async (texts) => {
        const { col, trips } = await trip(env, "STRING", ["word", ...texts]);
        expect(col.kind).toBe("text");
        // '1e999' is stored as the real Infinity, which reaches PostgreSQL as the text 'Infinity' and stays text on the way back.
        check(col, trips, (o) => !(typeof o === "number" && !Number.isFinite(o)));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("text mixed with numbers in an untyped column", async () => {
    const env = await setup();
    const value = fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.bigInt({ min: INT64_MIN, max: INT64_MAX }),
      fc.double({ noNaN: true }),
      fc.constantFrom("5", "-0", "1.5"),
    );
    await fc.assert(
      fc.asyncProperty(list(value), async (values) => {
        const { col, form, trips } = await trip(env, "", ["word", ...values]);
        expect(col.kind).toBe("text");
        const numbers = form.numbers === true;
        // The number and the text spelling it are one PostgreSQL value: the column's majority decides which comes back.
        check(col, trips, (o) => (typeof o === "string" ? !numbers || !/\d/.test(o) : numbers && typeof o === "bigint"));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("json text exactly", () => {
    const doc = fc.oneof(fc.array(fc.jsonValue({ maxDepth: 2, stringUnit: "binary" })), fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 })));
    const text = fc
      .tuple(doc, fc.constantFrom(undefined, 1, "\t"))
      .map(([d, space]) => JSON.stringify(d, null, space))
      .filter((s) => !/\\ud[89a-f][0-9a-f]{2}/i.test(s)); // PostgreSQL's json refuses an escaped lone surrogate
    return allExact("JSON", "json", "none", list(text));
  });

  it("blobs", () => allExact("BLOB", "bytea", "none", list(fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)))));

  it("dates", () => allExact("DATE", "date", "none", list(dateArb.map(isoDate))));

  it("unix seconds", () => allExact("DATETIME", "timestamptz", "epoch_s", list(fc.bigInt({ min: -62135596800n, max: 99999999999n }))));

  it("unix milliseconds", () => allExact("DATETIME", "timestamptz", "epoch_ms", list(fc.bigInt({ min: 100000000000n, max: 253402300799000n }))));

  it("julian days", () =>
    allExact(
      "DATETIME",
      "timestamptz",
      "julian",
      list(fc.integer({ min: -62135596800000, max: 253402300799999 }).map((ms) => (ms + 210866760000000) / 86400000))
        .map((a) => a.filter((jd) => !Number.isInteger(jd)))
        .filter((a) => a.length > 0),
    ));

  it("timestamps in a key column, in the one spelling PostgreSQL renders back", async () => {
    const env = await setup();
    const canonical = fc.tuple(dateArb, fc.integer({ min: 0, max: 999999 })).map(([d, us]) => {
      const frac = pad(us, 6).replace(/0+$/, "");
      return `${isoDate(d)} ${pad(d.h, 2)}:${pad(d.mi, 2)}:${pad(d.s, 2)}${frac ? `.${frac}` : ""}`;
    });
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(canonical, { minLength: 1, maxLength: 10 }), async (values) => {
        const { col, trips } = await trip(env, "DATETIME UNIQUE", values);
        expect([col.kind, col.keyExact]).toEqual(["timestamp", true]);
        check(col, trips, () => true);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

const dateArb = fc.record({
  y: fc.integer({ min: 1, max: 9999 }),
  mo: fc.integer({ min: 1, max: 12 }),
  d: fc.integer({ min: 1, max: 28 }),
  h: fc.integer({ min: 0, max: 23 }),
  mi: fc.integer({ min: 0, max: 59 }),
  s: fc.integer({ min: 0, max: 59 }),
});
type DateParts = typeof dateArb extends fc.Arbitrary<infer T> ? T : never;
const isoDate = (d: DateParts) => `${pad(d.y, 4)}-${pad(d.mo, 2)}-${pad(d.d, 2)}`;

/** How a file writes fractions of a second: none, a fixed count, Python's isoformat (6 digits, none when zero), or as few as needed. */
type FractionStyle = { kind: "none" } | { kind: "fixed"; n: number } | { kind: "python" } | { kind: "trimmed" };

const fractionStyle: fc.Arbitrary<FractionStyle> = fc.oneof(
  fc.constant({ kind: "none" as const }),
  fc.integer({ min: 1, max: 6 }).map((n) => ({ kind: "fixed" as const, n })),
  fc.constant({ kind: "python" as const }),
  fc.constant({ kind: "trimmed" as const }),
);

/** Microseconds a style can write exactly, zero often. */
function microsFor(style: FractionStyle): fc.Arbitrary<number> {
  if (style.kind === "none") return fc.constant(0);
  const step = style.kind === "fixed" ? 10 ** (6 - style.n) : 1;
  return fc.oneof(
    fc.constant(0),
    fc.integer({ min: 0, max: 10 ** 6 / step - 1 }).map((k) => k * step),
  );
}

function fraction(style: FractionStyle, us: number): string {
  const six = pad(us, 6);
  if (style.kind === "fixed") return `.${six.slice(0, style.n)}`;
  if (us === 0) return "";
  return style.kind === "python" ? `.${six}` : `.${six.replace(/0+$/, "")}`;
}

/** One timestamp of a file's style: a date, a time (midnight often) and a fraction. */
const timestampArb = (style: FractionStyle, years = { min: 1, max: 9999 }) =>
  fc.tuple(dateArb, fc.integer(years), microsFor(style), fc.boolean()).map(([d, y, us, midnight]) => {
    const t = midnight ? { h: 0, mi: 0, s: 0, us: 0 } : { h: d.h, mi: d.mi, s: d.s, us };
    return {
      date: isoDate({ ...d, y }),
      time: `${pad(t.h, 2)}:${pad(t.mi, 2)}:${pad(t.s, 2)}${fraction(style, t.us)}`,
      midnight: t.h + t.mi + t.s + t.us === 0,
    };
  });

describe("values come back in the file's form", () => {
  it("booleans: 0/1 or the word pair and case the file used most", async () => {
    const env = await setup();
    const styles = ["int", ...["true/false", "t/f", "yes/no"].flatMap((p) => ["lower", "upper", "capital"].map((k) => `${p}:${k}`))];
    const spell = (style: string, b: boolean): unknown => {
      if (style === "int") return b ? 1 : 0;
      const [pair, k] = style.split(":") as [string, string];
      const w = pair.split("/")[b ? 0 : 1]!;
      return k === "upper" ? w.toUpperCase() : k === "capital" ? w[0]!.toUpperCase() + w.slice(1) : w;
    };
    const run = fc
      .constantFrom(...styles)
      .chain((main) =>
        fc.tuple(
          fc.constant(main),
          fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
          fc.array(fc.tuple(fc.constantFrom(...styles.filter((s) => s !== main)), fc.boolean()), { maxLength: 4 }),
        ),
      );
    await fc.assert(
      fc.asyncProperty(run, async ([main, bools, odd]) => {
        const oddKept = odd.slice(0, bools.length - 1); // fewer than the file's own form, so it stays the majority
        const raws = [...bools.map((b) => spell(main, b)), ...oddKept.map(([s, b]) => spell(s, b))];
        const { col, trips } = await trip(env, "BOOLEAN", raws);
        expect(col.conversion).toBe("boolean");
        check(col, trips, (_o, i) => i < bools.length);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("timestamps: separator, fraction digits, dates alone", async () => {
    const env = await setup();
    const run = fc.tuple(fractionStyle, fc.constantFrom(" ", "T")).chain(([style, sep]) =>
      fc.tuple(
        fc.constant(sep),
        fc.array(timestampArb(style), { minLength: 1, maxLength: 8 }),
        fc.array(timestampArb(style), { maxLength: 3 }), // spelled with the other separator
        fc.array(dateArb.map(isoDate), { maxLength: 10 }),
      ),
    );
    await fc.assert(
      fc.asyncProperty(run, async ([sep, main, other, dates]) => {
        const others = other.slice(0, main.length - 1);
        const otherSep = sep === " " ? "T" : " ";
        const raws = [...main.map((t) => `${t.date}${sep}${t.time}`), ...others.map((t) => `${t.date}${otherSep}${t.time}`), ...dates];
        const { col, form, trips } = await trip(env, "DATETIME", raws);
        expect(col.kind).toBe("timestamp");
        const dateOnly = dates.length > main.length + others.length;
        expect(form.iso!.dateOnly).toBe(dateOnly);
        const all = [...main, ...others];
        check(col, trips, (_o, i) => (i < main.length ? !(dateOnly && all[i]!.midnight) : i >= all.length && dateOnly));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("timestamps with a zone: 'Z' or '+00:00' as the file used most; other offsets keep their rows", async () => {
    const env = await setup();
    const run = fc.tuple(fractionStyle, fc.constantFrom(" ", "T"), fc.constantFrom("Z", "+00:00")).chain(([style, sep, zone]) =>
      fc.tuple(
        fc.constant(sep),
        fc.constant(zone),
        fc.array(timestampArb(style), { minLength: 1, maxLength: 8 }),
        // Other spellings of an instant; years kept inside 0002–9998 so an offset never moves one out of 0001–9999.
        fc.array(fc.tuple(timestampArb(style, { min: 2, max: 9998 }), fc.constantFrom("Z", "+00:00", "+02:00", "-05:30", "+14:00")), { maxLength: 3 }),
      ),
    );
    await fc.assert(
      fc.asyncProperty(run, async ([sep, zone, main, odd]) => {
        const others = odd.filter(([, z]) => z !== zone).slice(0, main.length - 1);
        const raws = [...main.map((t) => `${t.date}${sep}${t.time}${zone}`), ...others.map(([t, z]) => `${t.date}${sep}${t.time}${z}`)];
        const { col, form, trips } = await trip(env, "TIMESTAMP", raws);
        expect(col.kind).toBe("timestamptz");
        expect(form.iso!.zone).toBe(zone);
        check(col, trips, (_o, i) => i < main.length);
      }),
      { numRuns: NUM_RUNS },
    );
  });
});

describe("refusals and special cases", () => {
  /** A planned file whose columns have the kinds under test, and a reader of PostgreSQL values cast to a column's type. */
  async function columns() {
    const env = await setup();
    env.db.exec(`CREATE TABLE r (id INTEGER PRIMARY KEY, s DATETIME, ms DATETIME, j DATETIME, ts DATETIME, tz TIMESTAMP, d DATE, f REAL, n NUMERIC, u, st STRING, js JSON, k STRING UNIQUE, b BOOLEAN, t3 DATETIME);
      INSERT INTO r VALUES (1, 1700000000, 1700000000000, 2460000.25, '2024-01-01 10:00:00', '2024-01-01T10:00:00Z', '2024-01-01', 1.5, 0.5, 9223372036854775807, 'a', '{}', 'k', 'yes', '2024-01-01 10:00:00.120'),
                           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.5, NULL, NULL, NULL, 'no', '2024-01-01 10:00:00.000');`);
    const plan = buildPlan(env.db, readSchema(env.db), { schema: "public", preserveCase: false }).tables[0]!;
    const forms = learnForms(env.db, plan);
    const col = (name: string) => plan.columns.find((c) => c.name === name)!;
    const read = async (name: string, literal: string) => {
      const c = col(name);
      const cast = `$1::${c.type.sql}`;
      const r = await env.client.query(`SELECT (${cast})::text AS text, ${canonicalSql(cast, c)} AS canonical`, [literal]);
      return { c, form: forms[name], text: r.rows[0].text as string, canonical: r.rows[0].canonical as string };
    };
    const refused = async (name: string, literal: string): Promise<InverseRefused> => {
      const { c, form, text, canonical } = await read(name, literal);
      try {
        inverseValue(c, form, text, canonical);
      } catch (e) {
        expect(e).toBeInstanceOf(InverseRefused);
        expect((e as InverseRefused).column).toBe(name);
        expect((e as InverseRefused).message).toBe(`column ${name}: ${(e as InverseRefused).reason}`);
        return e as InverseRefused;
      }
      throw new Error(`${name} ${literal} was not refused`);
    };
    const back = async (name: string, literal: string) => {
      const { c, form, text, canonical } = await read(name, literal);
      return inverseValue(c, form, text, canonical);
    };
    return { col, forms, read, refused, back };
  }

  it("the kinds under test are planned as expected", async () => {
    const { col } = await columns();
    const k = (n: string) => `${col(n).kind}/${col(n).conversion}`;
    expect(["s", "ms", "j", "ts", "tz", "d", "f", "n", "u", "st", "js", "k", "b"].map(k)).toEqual([
      "timestamptz/epoch_s",
      "timestamptz/epoch_ms",
      "timestamptz/julian",
      "timestamp/none",
      "timestamptz/none",
      "date/none",
      "double precision/none",
      "double precision/none",
      "numeric/none",
      "text/none",
      "json/none",
      "text/none",
      "boolean/boolean",
    ]);
    expect(col("k").keyText).toBe(true);
  });

  it("instants finer than the column holds", async () => {
    const { refused } = await columns();
    expect((await refused("s", "2024-01-01 10:00:00.5+00")).reason).toBe("unix seconds cannot hold 2024-01-01 10:00:00.5+00: the column holds whole seconds");
    expect((await refused("ms", "2024-01-01 10:00:00.0005+00")).reason).toBe(
      "unix milliseconds cannot hold 2024-01-01 10:00:00.0005+00: the column holds whole milliseconds",
    );
    expect((await refused("j", "2024-01-01 10:00:00.0005+00")).reason).toBe(
      "julian days cannot hold 2024-01-01 10:00:00.0005+00: the column holds whole milliseconds",
    );
  });

  it("years outside 0001–9999, BC and infinity", async () => {
    const { refused } = await columns();
    expect((await refused("s", "10000-01-01 00:00:00+00")).reason).toBe("unix seconds cannot hold 10000-01-01 00:00:00+00: it is outside the years 0001–9999");
    expect((await refused("ms", "0044-03-15 12:00:00+00 BC")).reason).toBe(
      "unix milliseconds cannot hold 0044-03-15 12:00:00+00 BC: it is outside the years 0001–9999",
    );
    expect((await refused("j", "infinity")).reason).toBe("julian days cannot hold infinity: it is no point in time SQLite's date functions know");
    expect((await refused("d", "0044-03-15 BC")).reason).toBe("the column's ISO dates cannot hold 0044-03-15 BC: it is outside the years 0001–9999");
    expect((await refused("d", "10000-01-01")).reason).toBe("the column's ISO dates cannot hold 10000-01-01: it is outside the years 0001–9999");
    expect((await refused("ts", "-infinity")).reason).toBe(
      "the column's ISO timestamps cannot hold -infinity: it is no point in time SQLite's date functions know",
    );
    expect((await refused("tz", "0001-01-01 00:00:00+01")).reason).toBe(
      "the column's ISO timestamps with a zone cannot hold 0001-12-31 23:00:00+00 BC: it is outside the years 0001–9999",
    );
  });

  it("numbers SQLite cannot hold exactly", async () => {
    const { refused } = await columns();
    expect((await refused("f", "NaN")).reason).toBe("SQLite cannot hold NaN: it stores NaN as NULL");
    expect((await refused("u", "NaN")).reason).toBe("SQLite cannot hold NaN: it stores NaN as NULL");
    expect((await refused("u", "0.1000000000000000055511151231257827")).reason).toBe(
      "numeric 0.1000000000000000055511151231257827 has no exact value in SQLite: it is not an integer, and no double's shortest decimal is that number",
    );
    expect((await refused("u", "12345678901234567890.5")).reason).toBe(
      "numeric 12345678901234567890.5 has no exact value in SQLite: it is not an integer, and no double's shortest decimal is that number",
    );
    expect((await refused("u", "18446744073709551616")).reason).toBe(
      "numeric 18446744073709551616 has no exact value in SQLite: it is an integer beyond 64 bits, and no double's shortest decimal is that number",
    );
    // -0 survives only where SQLite applies no affinity.
    expect((await refused("f", "-0")).reason).toBe(
      "SQLite would store the real -0 as the real 0 in this column (declared REAL: real affinity), which is another value",
    );
    expect((await refused("n", "-0")).reason).toBe(
      "SQLite would store the real -0 as the integer 0 in this column (declared NUMERIC: numeric affinity), which is another value",
    );
  });

  it("texts SQLite's affinity would turn into numbers", async () => {
    const { refused, back } = await columns();
    expect((await refused("st", "1.0")).reason).toBe(
      "SQLite would store the text '1.0' as the integer 1 in this column (declared STRING: numeric affinity), which is another value",
    );
    expect((await refused("st", " 7")).reason).toBe(
      "SQLite would store the text ' 7' as the integer 7 in this column (declared STRING: numeric affinity), which is another value",
    );
    expect(await back("st", "7")).toBe("7"); // stored as the integer 7: what the file would hold, the same PostgreSQL value
    expect((await refused("js", "5")).reason).toBe(
      "SQLite would store the text '5' as the integer 5 in this column (declared JSON: numeric affinity), which the column does not take: an integer in a json column",
    );
    expect((await refused("k", "5")).reason).toBe(
      "SQLite would store the text '5' as the integer 5 in this column (declared STRING: numeric affinity), which the column does not take: an integer in a key column of text, where SQLite keeps it apart from the text spelling the same digits but Postgres would not",
    );
  });

  it("values that go back, in the file's form or its own", async () => {
    const { back, read, col } = await columns();
    expect(await back("s", "2024-01-01 10:00:00+00")).toBe(1704103200n);
    expect(await back("ms", "2024-01-01 10:00:00.123+00")).toBe(1704103200123n);
    expect(await back("j", "2024-01-01 10:00:00.123+00")).toBe((1704103200123 + 210866760000000) / 86400000);
    expect(await back("tz", "2024-01-01 10:00:00.5+00")).toBe("2024-01-01T10:00:00.5Z");
    expect(await back("b", "true")).toBe("yes");
    // A file writing 3 digits gets 3, or as many more as the value needs: never cut.
    expect(await back("t3", "2024-01-01 10:00:00")).toBe("2024-01-01 10:00:00.000");
    expect(await back("t3", "2024-01-01 10:00:00.5")).toBe("2024-01-01 10:00:00.500");
    expect(await back("t3", "2024-01-01 10:00:00.123456")).toBe("2024-01-01 10:00:00.123456");
    expect(await back("u", "100000000000000000000")).toBe(1e20);
    expect(await back("u", "-9223372036854775808")).toBe(-(2n ** 63n));
    expect(await back("u", "Infinity")).toBe(Infinity);
    const t = await read("tz", "2024-01-01 12:00:00+02");
    expect(keepsExisting(col("tz"), "2024-01-01T10:00:00+00:00", t.canonical)).toBe(true);
    expect(keepsExisting(col("tz"), "2024-01-01T12:00:00+02:00", t.canonical)).toBe(true);
    expect(keepsExisting(col("tz"), "2024-01-01T12:00:00Z", t.canonical)).toBe(false);
    const y = await read("b", "true");
    expect(keepsExisting(col("b"), "yes", y.canonical)).toBe(true);
    expect(keepsExisting(col("b"), 1n, y.canonical)).toBe(true);
    expect(keepsExisting(col("b"), "no", y.canonical)).toBe(false);
    expect(keepsExisting(col("b"), null, null)).toBe(true);
    expect(keepsExisting(col("b"), "yes", null)).toBe(false);
    expect(inverseValue(col("b"), undefined, null, null)).toBeNull();
    // Without a learned form: the default of the declared type.
    expect(inverseValue(col("ts"), undefined, "2024-01-01 10:00:00.25", "1704103200.25")).toBe("2024-01-01 10:00:00.25");
  });
});
