/**
 * The forms the way back learns from a SQLite file: the word pair of its
 * booleans, the shape of its ISO timestamps, integers or reals, the
 * affinity — from small real files, planned by the real planner.
 */
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { type ColumnForm, defaultForm, learnForms } from "../../src/fallback/forms.js";
import { buildPlan, type TablePlan } from "../../src/plan/plan.js";
import { readSchema } from "../../src/sqlite/schema.js";
import { cleanup, sqliteFrom, tempDir } from "../helpers/db.js";

afterEach(cleanup);

/** A file made by `sql`, its first table planned, and the forms learned from it. */
function learn(sql: string, table = "t"): { forms: Record<string, ColumnForm>; plan: TablePlan } {
  const db = new Database(sqliteFrom(tempDir(), sql));
  try {
    const plan = buildPlan(db, readSchema(db), { schema: "public", preserveCase: false }).tables.find((t) => t.source.name === table)!;
    return { forms: learnForms(db, plan), plan };
  } finally {
    db.close();
  }
}

describe("booleans", () => {
  it("learn the word pair and the case the file used most", () => {
    const { forms, plan } = learn(`CREATE TABLE t (id INTEGER PRIMARY KEY, a BOOLEAN, b BOOLEAN, c BOOLEAN, d BOOLEAN, e BOOLEAN);
      INSERT INTO t (a, b, c, d, e) VALUES ('yes','True','T',1,'TRUE'), ('no','False','F',0,'FALSE'), ('yes','true','t',1,'True'), (1,'False','F','no','FALSE');`);
    expect(plan.columns.map((c) => c.conversion)).toEqual(["none", "boolean", "boolean", "boolean", "boolean", "boolean"]);
    expect(forms.a!.words).toEqual({ true: "yes", false: "no" });
    expect(forms.b!.words).toEqual({ true: "True", false: "False" });
    expect(forms.c!.words).toEqual({ true: "T", false: "F" });
    expect(forms.d!.words).toBeNull(); // integers 0/1 outnumber the words
    expect(forms.e!.words).toEqual({ true: "TRUE", false: "FALSE" });
    expect(forms.a!.affinity).toBe("numeric");
  });

  it("count only boolean words: a name every object has, written after the plan, is none", () => {
    const db = new Database(sqliteFrom(tempDir(), "CREATE TABLE t (id INTEGER PRIMARY KEY, a BOOLEAN); INSERT INTO t (a) VALUES ('yes'), ('no');"));
    try {
      const plan = buildPlan(db, readSchema(db), { schema: "public", preserveCase: false }).tables[0]!;
      expect(plan.columns[1]!.conversion).toBe("boolean");
      // Written after the plan, outnumbering the words the column was planned for.
      for (const w of ["constructor", "__proto__", "constructor", "__proto__", "toString"]) db.prepare("INSERT INTO t (a) VALUES (?)").run(w);
      expect(learnForms(db, plan).a!.words).toEqual({ true: "yes", false: "no" });
    } finally {
      db.close();
    }
  });

  it("default to 0/1, or to words where SQLite would turn 1 into text, and keys take 0/1 only", () => {
    const { forms } = learn("CREATE TABLE t (id INTEGER PRIMARY KEY, a BOOLEAN, b BOOLTEXT);");
    expect(forms.a).toEqual({ kind: "boolean", conversion: "boolean", affinity: "numeric", sampled: 0, words: null });
    expect(forms.b!.affinity).toBe("text");
    expect(forms.b!.words).toEqual({ true: "true", false: "false" });
    const k = learn("CREATE TABLE k (f BOOLEAN PRIMARY KEY, x); INSERT INTO k VALUES (0, 'a'), (1, 'b');", "k");
    expect(k.plan.columns[0]!.keyExact).toBe(true);
    expect(k.forms.f!.words).toBeNull();
  });
});

describe("ISO timestamps", () => {
  it("learn separator, fixed fraction digits (also for a zero fraction) and the zone", () => {
    const { forms, plan } = learn(`CREATE TABLE t (id INTEGER PRIMARY KEY, js TIMESTAMP, py DATETIME, trimmed DATETIME, off TIMESTAMP);
      INSERT INTO t (js, py, trimmed, off) VALUES
        ('2024-01-01T10:00:00.000Z', '2024-01-01 10:00:00', '2024-01-01 10:00:00.5', '2024-01-01T10:00:00+02:00'),
        ('2024-01-02T10:00:00.120Z', '2024-01-01 10:00:00.123456', '2024-01-01 10:00:00.25', '2024-01-01T10:00:00-05:00'),
        ('2024-01-03T10:00:00.999Z', '2024-01-01 10:00:00.000100', '2024-01-01 10:00:00', '2024-01-01T10:00:00Z');`);
    expect(plan.columns.slice(1).map((c) => c.kind)).toEqual(["timestamptz", "timestamp", "timestamp", "timestamptz"]);
    expect(forms.js!.iso).toEqual({ separator: "T", zeroDigits: 3, digits: 3, zone: "Z", dateOnly: false });
    expect(forms.py!.iso).toEqual({ separator: " ", zeroDigits: 0, digits: 6, zone: null, dateOnly: false });
    expect(forms.trimmed!.iso).toEqual({ separator: " ", zeroDigits: 0, digits: null, zone: null, dateOnly: false });
    expect(forms.off!.iso).toEqual({ separator: "T", zeroDigits: 0, digits: null, zone: "+00:00", dateOnly: false });
  });

  it("learn dates mixed into a timestamp column, and default by the declared type", () => {
    const { forms } = learn(`CREATE TABLE t (id INTEGER PRIMARY KEY, mostly_dates DATETIME, mostly_times DATETIME, d DATE, dt DATETIME);
      INSERT INTO t (mostly_dates, mostly_times) VALUES ('2024-01-01', '2024-01-01'), ('2024-01-02', '2024-01-01T08:00:00'), ('2024-01-03 10:00:00', '2024-01-01T09:00:00');`);
    expect(forms.mostly_dates!.iso!.dateOnly).toBe(true);
    expect(forms.mostly_times!.iso).toEqual({ separator: "T", zeroDigits: 0, digits: null, zone: null, dateOnly: false });
    // Empty: DATE is planned as timestamp; what the application writes there is most likely a date.
    expect(forms.d!.kind).toBe("timestamp");
    expect(forms.d!.iso!.dateOnly).toBe(true);
    expect(forms.dt!.iso).toEqual({ separator: " ", zeroDigits: 0, digits: null, zone: null, dateOnly: false });
  });

  it("a key timestamp takes the one spelling PostgreSQL renders back", () => {
    const { forms, plan } = learn("CREATE TABLE t (at DATETIME PRIMARY KEY, x); INSERT INTO t VALUES ('2024-01-01 10:00:00.5', 1);");
    expect(plan.columns[0]!.keyExact).toBe(true);
    expect(forms.at!.iso).toEqual({ separator: " ", zeroDigits: 0, digits: null, zone: null, dateOnly: false });
  });
});

describe("numbers", () => {
  it("learn whether a column held integers besides reals, and its affinity", () => {
    const { forms, plan } = learn(`CREATE TABLE t (id INTEGER PRIMARY KEY, r REAL, mixed, n NUMERIC(10,2), big, txt, codes);
      INSERT INTO t (r, mixed, n, big, txt, codes) VALUES
        (1.5, 1.5, 1.25, 9223372036854775807, 'a', '001'), (2, 3, 2.5, 0.5, 7, '002'), (-0.0, 2.5, 3.75, 1, 'b', 3);`);
    const kinds = Object.fromEntries(plan.columns.map((c) => [c.name, c.kind]));
    expect(kinds).toMatchObject({ r: "double precision", mixed: "double precision", n: "numeric", big: "numeric", txt: "text", codes: "text" });
    expect(forms.r).toMatchObject({ affinity: "real", integers: false });
    expect(forms.mixed).toMatchObject({ affinity: "blob", integers: true });
    expect(forms.n).toMatchObject({ affinity: "numeric", integers: false });
    expect(forms.big).toMatchObject({ affinity: "blob", integers: true });
    expect(forms.txt).toMatchObject({ affinity: "blob", numbers: true });
    expect(forms.codes).toMatchObject({ affinity: "blob", numbers: false }); // texts spelling numbers outnumber the numbers
  });

  it("a STRICT table's ANY column converts nothing", () => {
    const { forms } = learn("CREATE TABLE t (id INTEGER PRIMARY KEY, a ANY, i INTEGER) STRICT;");
    expect(forms.a!.affinity).toBe("blob");
    expect(forms.i!.affinity).toBe("integer");
    const plain = learn("CREATE TABLE u (a ANY, b INT); INSERT INTO u VALUES (1, 2);", "u");
    expect(plain.forms.a!.affinity).toBe("numeric");
  });
});

describe("sampling", () => {
  it("reads both ends of a table and at most 2000 values", () => {
    const { forms } = learn(`CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
      INSERT INTO t (at) SELECT CASE WHEN i <= 3000 THEN '2024-01-01T10:00:00' ELSE '2024-01-01 10:00:00' END FROM n;`);
    expect(forms.at!.sampled).toBe(2000);
    expect(forms.at!.iso!.separator).toBe(" "); // 1000 from each end: a tie, and the space wins ties
  });

  it("looks at a bounded window of rows, so a sparse column costs no full scan", () => {
    const { forms } = learn(`CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
      INSERT INTO t (at) SELECT CASE WHEN i IN (150000, 150001) THEN '2024-01-01T10:00:00' END FROM n;
      INSERT INTO t (at) VALUES ('2024-01-01T11:00:00');`);
    expect(forms.at!.sampled).toBe(1); // the two in the middle are beyond both windows
  });

  it("samples WITHOUT ROWID tables by their key, and forms survive JSON", () => {
    const { forms } = learn(`CREATE TABLE t (a TEXT, b INT, ok BOOLEAN, PRIMARY KEY (a, b)) WITHOUT ROWID;
      INSERT INTO t VALUES ('x', 1, 'Yes'), ('x', 2, 'No'), ('y', 1, 'Yes');`);
    expect(forms.ok!.words).toEqual({ true: "Yes", false: "No" });
    expect(forms.ok!.sampled).toBe(3);
    expect(JSON.parse(JSON.stringify(forms))).toEqual(forms);
  });

  it("derives a default form from a plan alone", () => {
    const { plan } = learn("CREATE TABLE t (id INTEGER PRIMARY KEY, at TIMESTAMP, n NUMERIC, x);");
    expect(defaultForm(plan.columns[1]!)).toMatchObject({ sampled: 0, iso: { separator: " ", zeroDigits: 0, digits: null, dateOnly: false } });
    expect(defaultForm(plan.columns[2]!)).toMatchObject({ affinity: "numeric", integers: true });
    expect(defaultForm(plan.columns[3]!)).toMatchObject({ kind: "text", affinity: "blob", numbers: false });
  });
});
