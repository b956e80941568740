/**
 * Change capture in PostgreSQL (the way back after the cutover): key-only
 * triggers record every write, and a consume-and-delete reader never skips a
 * change, whatever order the writing transactions commit in.
 */
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import pg from "pg";
import { cleanup, freshDatabase } from "../helpers/db.js";
import { ackPgChanges, installPgCapture, type PgCaptureTable, pgCaptureFunctionName, readPgChanges, uninstallPgCapture } from "../../src/postgres/capture.js";

afterEach(cleanup);

const clients: pg.Client[] = [];
afterEach(async () => {
  while (clients.length)
    await clients
      .pop()!
      .end()
      .catch(() => undefined);
});

async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  clients.push(c);
  return c;
}

const WEIRD = 'we"ird tbl';
const TABLES: PgCaptureTable[] = [
  { name: WEIRD, key: ['k"1', "k 2"] },
  { name: "big", key: ["id"] },
  { name: "words", key: ["w"] },
  { name: "days", key: ["d"] },
];

async function schemaWithTables(c: pg.Client): Promise<void> {
  await c.query(`
    CREATE SCHEMA app;
    CREATE TABLE app."we""ird tbl" ("k""1" integer, "k 2" text, v text, PRIMARY KEY ("k""1", "k 2"));
    CREATE TABLE app.big (id bigint PRIMARY KEY, v text);
    CREATE TABLE app.words (w text PRIMARY KEY, n integer);
    CREATE TABLE app.days (d date PRIMARY KEY, n integer);
  `);
}

/** Everything capture may have left in the database: objects named _sqlite2pg_*, and the change table. */
async function leftovers(c: pg.Client): Promise<{ triggers: string[]; functions: string[]; table: boolean }> {
  const t = await c.query<{ tgname: string }>("SELECT tgname FROM pg_trigger WHERE tgname LIKE '\\_sqlite2pg\\_%' ORDER BY 1");
  const f = await c.query<{ proname: string }>("SELECT proname FROM pg_proc WHERE proname LIKE '\\_sqlite2pg\\_%' ORDER BY 1");
  const r = await c.query<{ e: boolean }>("SELECT to_regclass('sqlite2pg.pg_changes') IS NOT NULL AS e");
  return { triggers: t.rows.map((x) => x.tgname), functions: f.rows.map((x) => x.proname), table: r.rows[0]!.e };
}

const summary = (cs: Awaited<ReturnType<typeof readPgChanges>>) => cs.map((x) => [x.table, x.op, x.key]);

describe("PostgreSQL change capture", () => {
  it("records insert, update, key change, delete and TRUNCATE with the right op and key, for any key type and quoted names", async () => {
    const { client: c } = await freshDatabase();
    await schemaWithTables(c);
    await c.query("BEGIN");
    await installPgCapture(c, "app", TABLES);
    await c.query("COMMIT");

    await c.query(`INSERT INTO app."we""ird tbl" VALUES (1, 'a''b "c"', 'x'), (2, 'z', 'y')`);
    await c.query(`UPDATE app."we""ird tbl" SET v = 'x2' WHERE "k""1" = 1`);
    await c.query(`UPDATE app."we""ird tbl" SET "k 2" = 'moved' WHERE "k""1" = 2`);
    await c.query(`DELETE FROM app."we""ird tbl" WHERE "k""1" = 1`);
    await c.query("INSERT INTO app.big VALUES ($1, 'min'), ($2, 'max')", ["-9223372036854775808", "9223372036854775807"]);
    await c.query("UPDATE app.big SET id = 9007199254740993 WHERE id = -9223372036854775808");
    await c.query("INSERT INTO app.words VALUES ('ünïcode ✓', 1)");
    await c.query("UPDATE app.words SET n = 2");
    // The session's date style changes neither the recorded key nor the time read back.
    await c.query("SET DateStyle = 'SQL, DMY'");
    await c.query("INSERT INTO app.days VALUES ('2024-02-29', 1)");
    await c.query("TRUNCATE app.words, app.days");

    const cs = await readPgChanges(c, "app", 100);
    expect(summary(cs)).toEqual([
      [WEIRD, "I", ["1", 'a\'b "c"']],
      [WEIRD, "I", ["2", "z"]],
      [WEIRD, "U", ["1", 'a\'b "c"']],
      [WEIRD, "D", ["2", "z"]],
      [WEIRD, "I", ["2", "moved"]],
      [WEIRD, "U", ["2", "moved"]], // the statement's record of every updated row; the apply merges it with the insert
      [WEIRD, "D", ["1", 'a\'b "c"']],
      ["big", "I", ["-9223372036854775808"]],
      ["big", "I", ["9223372036854775807"]],
      ["big", "D", ["-9223372036854775808"]],
      ["big", "I", ["9007199254740993"]],
      ["big", "U", ["9007199254740993"]],
      ["words", "I", ["ünïcode ✓"]],
      ["words", "U", ["ünïcode ✓"]],
      ["days", "I", ["2024-02-29"]],
      ["words", "T", null],
      ["days", "T", null],
    ]);
    expect(cs.every((x) => x.schema === "app" && /^\d+$/.test(x.txid) && x.at instanceof Date && Math.abs(x.at.getTime() - Date.now()) < 3_600_000)).toBe(true);
    // Ids increase; the key change's two rows share one transaction.
    const ids = cs.map((x) => BigInt(x.id));
    expect(ids).toEqual([...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(cs[3]!.txid).toBe(cs[4]!.txid);

    // The recorded key finds the row again, given back as parameters.
    const row = await c.query(`SELECT v FROM app."we""ird tbl" WHERE ("k""1", "k 2") = ($1, $2)`, cs[4]!.key!);
    expect(row.rows).toEqual([{ v: "y" }]);
    const big = await c.query("SELECT v FROM app.big WHERE id = $1", [cs[10]!.key![0]]);
    expect(big.rows).toEqual([{ v: "min" }]);

    expect(
      await ackPgChanges(
        c,
        cs.map((x) => x.id),
      ),
    ).toBe(cs.length);
    expect(await readPgChanges(c, "app", 100)).toEqual([]);
    expect(await ackPgChanges(c, [])).toBe(0);
  });

  it("records nothing for a write whose transaction rolls back", async () => {
    const { client: c } = await freshDatabase();
    await schemaWithTables(c);
    await installPgCapture(c, "app", TABLES);
    await c.query("BEGIN");
    await c.query("INSERT INTO app.big VALUES (1, 'a')");
    await c.query("TRUNCATE app.words");
    await c.query("ROLLBACK");
    await c.query("INSERT INTO app.big VALUES (2, 'b')");
    expect(summary(await readPgChanges(c, "app", 100))).toEqual([["big", "I", ["2"]]]);
  });

  it("install in a transaction that rolls back leaves nothing; install is idempotent; uninstall leaves nothing", async () => {
    const { client: c } = await freshDatabase();
    await schemaWithTables(c);
    await c.query("BEGIN");
    await installPgCapture(c, "app", TABLES);
    expect((await leftovers(c)).table).toBe(true);
    await c.query("ROLLBACK");
    expect(await leftovers(c)).toEqual({ triggers: [], functions: [], table: false });
    await c.query("INSERT INTO app.big VALUES (1, 'a')");

    await installPgCapture(c, "app", TABLES);
    await c.query("INSERT INTO app.big VALUES (2, 'b')");
    await installPgCapture(c, "app", TABLES); // again: replaces, keeps pending changes, one trigger each
    await c.query("INSERT INTO app.big VALUES (3, 'c')");
    expect(summary(await readPgChanges(c, "app", 100))).toEqual([
      ["big", "I", ["2"]],
      ["big", "I", ["3"]],
    ]);
    const l = await leftovers(c);
    expect(l.triggers).toEqual(
      ["_sqlite2pg_capture", "_sqlite2pg_capture_del", "_sqlite2pg_capture_ins", "_sqlite2pg_capture_truncate", "_sqlite2pg_capture_upd"].flatMap((n) =>
        Array(4).fill(n),
      ),
    );
    expect(l.functions.sort()).toEqual([...TABLES.map((t) => pgCaptureFunctionName(t.name)), "_sqlite2pg_capture_truncate"].sort());

    await c.query("BEGIN");
    await uninstallPgCapture(c, "app", TABLES);
    await c.query("COMMIT");
    expect(await leftovers(c)).toEqual({ triggers: [], functions: [], table: false });
    await c.query("INSERT INTO app.big VALUES (4, 'd')"); // writes still work, unrecorded
    await uninstallPgCapture(c, "app", TABLES); // idempotent
    expect(await leftovers(c)).toEqual({ triggers: [], functions: [], table: false });
  });

  it("two schemas share the change table: each reads its own changes; uninstalling one keeps the other's capture", async () => {
    const { client: c } = await freshDatabase();
    await c.query("CREATE SCHEMA one; CREATE SCHEMA two; CREATE TABLE one.t (id int PRIMARY KEY); CREATE TABLE two.t (id int PRIMARY KEY)");
    const t = [{ name: "t", key: ["id"] }];
    await installPgCapture(c, "one", t);
    await installPgCapture(c, "two", t);
    await c.query("INSERT INTO one.t VALUES (1); INSERT INTO two.t VALUES (2)");
    expect(summary(await readPgChanges(c, "one", 10))).toEqual([["t", "I", ["1"]]]);
    expect(summary(await readPgChanges(c, "two", 10))).toEqual([["t", "I", ["2"]]]);

    await uninstallPgCapture(c, "one", t);
    expect(await readPgChanges(c, "one", 10)).toEqual([]);
    await c.query("INSERT INTO one.t VALUES (3); INSERT INTO two.t VALUES (4)");
    expect(await readPgChanges(c, "one", 10)).toEqual([]);
    expect(summary(await readPgChanges(c, "two", 10))).toEqual([
      ["t", "I", ["2"]],
      ["t", "I", ["4"]],
    ]);
    await uninstallPgCapture(c, "two", t);
    expect(await leftovers(c)).toEqual({ triggers: [], functions: [], table: false });
  });

  it("a table name too long for a readable function name gets a shortened, distinct one", async () => {
    const { client: c } = await freshDatabase();
    const a = `${"t".repeat(60)}_a`;
    const b = `${"t".repeat(60)}_b`;
    expect(pgCaptureFunctionName(a)).not.toBe(pgCaptureFunctionName(b));
    expect(Buffer.byteLength(pgCaptureFunctionName(a))).toBeLessThanOrEqual(63);
    await c.query(`CREATE SCHEMA app; CREATE TABLE app."${a}" (id int PRIMARY KEY); CREATE TABLE app."${b}" (id int PRIMARY KEY)`);
    const tables = [a, b].map((name) => ({ name, key: ["id"] }));
    await installPgCapture(c, "app", tables);
    await c.query(`INSERT INTO app."${a}" VALUES (1)`);
    await c.query(`INSERT INTO app."${b}" VALUES (2)`);
    expect(summary(await readPgChanges(c, "app", 10))).toEqual([
      [a, "I", ["1"]],
      [b, "I", ["2"]],
    ]);
    await uninstallPgCapture(c, "app", tables);
    expect(await leftovers(c)).toEqual({ triggers: [], functions: [], table: false });
  });

  it("an application role with no privilege on the sqlite2pg schema can still write", async () => {
    const { client: c, url, name } = await freshDatabase();
    await schemaWithTables(c);
    await installPgCapture(c, "app", TABLES);
    const role = `app_${name}`;
    // A password, so the role logs in on a server that asks for one (the embedded server does).
    const password = randomBytes(12).toString("hex");
    await c.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    try {
      await c.query(`GRANT USAGE ON SCHEMA app TO ${role}; GRANT INSERT ON app.big TO ${role}`);
      const u = new URL(url);
      u.username = role;
      u.password = password;
      const app = await connect(u.toString());
      await expect(app.query("SELECT count(*) FROM sqlite2pg.pg_changes")).rejects.toThrow(/permission denied/);
      await app.query("SET search_path = app, public, pg_catalog");
      await app.query("INSERT INTO app.big VALUES (1, 'a')");
      await app.end();
      expect(summary(await readPgChanges(c, "app", 10))).toEqual([["big", "I", ["1"]]]);
    } finally {
      await c.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });

  it("a change whose transaction commits after a newer one's is read later, not skipped", async () => {
    const { client: c, url } = await freshDatabase();
    await schemaWithTables(c);
    await installPgCapture(c, "app", TABLES);
    const a = await connect(url);
    const b = await connect(url);

    await a.query("BEGIN");
    await a.query("INSERT INTO app.big VALUES (1, 'A')"); // takes the lower id, stays open
    await b.query("BEGIN");
    await b.query("INSERT INTO app.big VALUES (2, 'B')");
    await b.query("COMMIT");

    const first = await readPgChanges(c, "app", 100);
    expect(summary(first)).toEqual([["big", "I", ["2"]]]);
    await ackPgChanges(
      c,
      first.map((x) => x.id),
    );

    await a.query("COMMIT");
    const second = await readPgChanges(c, "app", 100);
    expect(summary(second)).toEqual([["big", "I", ["1"]]]);
    expect(BigInt(second[0]!.id)).toBeLessThan(BigInt(first[0]!.id)); // the lower id, read after the higher one
    await ackPgChanges(
      c,
      second.map((x) => x.id),
    );
    expect(await readPgChanges(c, "app", 100)).toEqual([]);
  });

  it("many concurrent writers committing in random order and a concurrent consumer: every committed key consumed exactly once", async () => {
    const { client: c, url } = await freshDatabase();
    await schemaWithTables(c);
    await installPgCapture(c, "app", TABLES);
    const WRITERS = 8;
    const PER_WRITER = 200;
    const committed = new Set<string>();
    const writers = await Promise.all(Array.from({ length: WRITERS }, () => connect(url)));
    const pause = () => new Promise<void>((r) => setTimeout(r, Math.floor(Math.random() * 3)));

    let writing = true;
    const work = Promise.all(
      writers.map(async (w, wi) => {
        for (let i = 0; i < PER_WRITER; i++) {
          const key = String(wi * 1_000_000 + i);
          await w.query("BEGIN");
          await w.query("INSERT INTO app.big VALUES ($1, 'v')", [key]);
          await pause(); // transactions stay open across each other's commits
          if (i % 10 === 9) {
            await w.query("ROLLBACK"); // a rolled-back write must not be consumed
          } else {
            await w.query("COMMIT");
            committed.add(key);
          }
        }
      }),
    ).finally(() => {
      writing = false;
    });

    const consumed: string[] = [];
    let outOfOrder = 0;
    let highest = -1n;
    const consume = async () => {
      for (;;) {
        const done = !writing; // read after the writers finished: then an empty read means drained
        const cs = await readPgChanges(c, "app", 50);
        for (const x of cs) {
          expect(x.op).toBe("I");
          consumed.push(x.key![0]!);
          if (BigInt(x.id) < highest) outOfOrder++;
          else highest = BigInt(x.id);
        }
        await ackPgChanges(
          c,
          cs.map((x) => x.id),
        );
        if (cs.length === 0) {
          if (done) return;
          await new Promise((r) => setTimeout(r, 1));
        }
      }
    };
    await Promise.all([work, consume()]);

    expect(consumed.length).toBe(WRITERS * PER_WRITER * 0.9);
    expect(new Set(consumed).size).toBe(consumed.length);
    expect(new Set(consumed)).toEqual(committed);
    expect((await c.query("SELECT count(*)::int AS n FROM sqlite2pg.pg_changes")).rows[0].n).toBe(0);
    // Informational: how many changes a high-water mark would have skipped.
    process.stderr.write(`pg-capture: ${outOfOrder} of ${consumed.length} changes were read after a higher id\n`);
  });
});
