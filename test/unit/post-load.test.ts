import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { conflicts, type PostLoadJob, PostLoadSchedule } from "../../src/migrate/post-load.js";
import type { MigrationPlan, TablePlan } from "../../src/plan/plan.js";
import type { PostLoadStatement } from "../../src/plan/model.js";

/** A plan with only what the schedule reads: table names, row counts and post-load statements. */
function planOf(tables: { name: string; rows: number; statements: PostLoadStatement[] }[]): MigrationPlan {
  return {
    tables: tables.map(
      (t) => ({ name: t.name, census: { rows: t.rows, columns: new Map() }, constraints: { statements: t.statements } }) as unknown as TablePlan,
    ),
  } as MigrationPlan;
}

const pk = (t: string, cols = ["id"]): PostLoadStatement => ({
  kind: "primary key",
  name: `${t}_pkey`,
  sql: `ALTER TABLE ${t} ADD CONSTRAINT ${t}_pkey PRIMARY KEY (${cols.join(", ")})`,
  validateSql: null,
  split: { indexSql: `CREATE UNIQUE INDEX ${t}_pkey ON ${t} (${cols.join(", ")})`, attachSql: "" },
  keyColumns: cols,
});
const index = (t: string, name: string, unique: boolean, cols: string[]): PostLoadStatement => ({
  kind: "index",
  name,
  sql: `CREATE ${unique ? "UNIQUE " : ""}INDEX ${name} ON ${t} (${cols.join(", ")})`,
  validateSql: null,
  ...(unique ? { keyColumns: cols } : {}),
});
const fk = (t: string, parent: string, cols: string[] | undefined, name = `${t}_${parent}_fkey`): PostLoadStatement => ({
  kind: "foreign key",
  name,
  sql: `ALTER TABLE ${t} ADD CONSTRAINT ${name} FOREIGN KEY … NOT VALID`,
  validateSql: `ALTER TABLE ${t} VALIDATE CONSTRAINT ${name}`,
  references: parent,
  ...(cols ? { referencesColumns: cols } : {}),
});
const check = (t: string, name: string): PostLoadStatement => ({
  kind: "check",
  name,
  sql: `ALTER TABLE ${t} ADD CONSTRAINT ${name} CHECK (…) NOT VALID`,
  validateSql: `ALTER TABLE ${t} VALIDATE CONSTRAINT ${name}`,
});

const label = (j: PostLoadJob) => `${j.step} ${j.s?.name ?? j.t.name}`;

/**
 * Drive a schedule with `connections` workers; `pick` chooses which running
 * statement finishes next. Checks, at every hand-out, that the statement's
 * locks conflict with no running statement's, and at the end that every
 * connection was told there is nothing left. Returns the order of
 * hand-outs and of finishes.
 */
async function drive(plan: MigrationPlan, connections: number, pick: (running: string[]) => number): Promise<{ started: string[]; done: string[] }> {
  const schedule = new PostLoadSchedule(plan);
  interface Conn {
    job: PostLoadJob | null | undefined;
    told?: boolean;
  }
  const ask = (c: Conn) => {
    c.job = undefined;
    void schedule.next().then((j) => {
      c.job = j;
    });
  };
  const conns: Conn[] = Array.from({ length: connections }, () => ({ job: undefined }));
  for (const c of conns) ask(c);
  const running: { job: PostLoadJob; conn: Conn }[] = [];
  const started: string[] = [];
  const done: string[] = [];
  for (;;) {
    await new Promise((r) => setImmediate(r));
    for (const c of conns) {
      const j = c.job;
      if (j === null && !c.told) {
        // "Nothing left" only when no running addition will still bring its validation.
        expect(running.filter((r) => r.job.step === "add" && r.job.s?.validateSql).map((r) => label(r.job))).toEqual([]);
        c.told = true;
      }
      if (!j || running.some((r) => r.conn === c)) continue;
      for (const o of running) expect(conflicts(j.locks, o.job.locks), `${label(j)} started while ${label(o.job)} runs`).toBe(false);
      running.push({ job: j, conn: c });
      started.push(label(j));
    }
    if (running.length === 0) {
      expect(
        conns.every((c) => c.job === null),
        `connections wait with nothing running (after ${done.join(", ")})`,
      ).toBe(true);
      return { started, done };
    }
    const { job, conn } = running.splice(pick(running.map((r) => label(r.job))) % running.length, 1)[0]!;
    done.push(label(job));
    schedule.finished(job, true);
    ask(conn);
  }
}

describe("the order of steps 5 and 7", () => {
  it("adds a foreign key once its table's builds and the referenced key are done, before the parent's other indexes, and validates it alongside them", async () => {
    const plan = planOf([
      { name: "users", rows: 1_000_000, statements: [pk("users"), index("users", "users_email_key", true, ["email"])] },
      { name: "orders", rows: 2_000_000, statements: [pk("orders"), index("orders", "orders_user_id_idx", false, ["user_id"]), fk("orders", "users", ["id"])] },
      { name: "events", rows: 2_000_000, statements: [index("events", "events_ts_idx", false, ["ts"])] },
    ]);
    // Always the oldest running statement finishes first.
    const { started } = await drive(plan, 4, () => 0);
    const at = (x: string) => started.indexOf(x);
    expect(new Set(started).size).toBe(started.length);
    expect(started).toHaveLength(3 + 2 + 1 + 3 /* digests */ + 1 /* validate */);
    // The builds the addition waits for go first, then it, then its validation; the parent's email index after the addition.
    expect(at("add orders_users_fkey")).toBeGreaterThan(Math.max(at("build users_pkey"), at("build orders_pkey"), at("build orders_user_id_idx")));
    expect(at("build users_email_key")).toBeGreaterThan(at("add orders_users_fkey"));
    expect(at("validate orders_users_fkey")).toBeGreaterThan(at("add orders_users_fkey"));
  });

  it("an addition whose builds are running holds back a build that would make it wait for a lock", async () => {
    const plan = planOf([
      { name: "users", rows: 1_000, statements: [pk("users"), index("users", "users_email_key", true, ["email"])] },
      { name: "orders", rows: 2_000, statements: [pk("orders"), fk("orders", "users", ["id"])] },
    ]);
    // The parent's key and its digest finish first, while the child's key is still being built.
    const order = ["build users_pkey", "digest users", "digest orders", "build orders_pkey"];
    const rank = (x: string) => (order.includes(x) ? order.indexOf(x) : order.length);
    const { started } = await drive(plan, 3, (running) => running.indexOf([...running].sort((a, b) => rank(a) - rank(b))[0]!));
    expect(started.indexOf("build users_email_key")).toBeGreaterThan(started.indexOf("add orders_users_fkey"));
  });

  it("a foreign key of a saved plan without the referenced columns waits for all of the parent's unique keys; without the parent's name, for every build", async () => {
    const plan = planOf([
      { name: "p", rows: 10, statements: [pk("p"), index("p", "p_code_key", true, ["code"]), index("p", "p_name_idx", false, ["name"])] },
      { name: "c", rows: 10, statements: [fk("c", "p", undefined, "c_p_fkey")] },
      { name: "d", rows: 10, statements: [{ ...fk("d", "p", undefined, "d_p_fkey"), references: undefined }] },
    ]);
    const { started, done } = await drive(plan, 2, () => 0);
    const fin = (x: string) => done.indexOf(x);
    expect(started.indexOf("add c_p_fkey")).toBeGreaterThan(-1);
    expect(done.indexOf("add c_p_fkey")).toBeGreaterThan(Math.max(fin("build p_pkey"), fin("build p_code_key")));
    expect(done.indexOf("add d_p_fkey")).toBeGreaterThan(Math.max(fin("build p_pkey"), fin("build p_code_key"), fin("build p_name_idx")));
  });

  it("never runs conflicting statements together, hands each out once, keeps every dependency, and never leaves connections waiting with nothing running (random plans)", async () => {
    const table = fc.record({
      rows: fc.integer({ min: 0, max: 5 }),
      pk: fc.boolean(),
      indexes: fc.array(fc.record({ unique: fc.boolean(), col: fc.constantFrom("a", "b", "c") }), { maxLength: 3 }),
      checks: fc.integer({ min: 0, max: 2 }),
      fks: fc.array(fc.record({ parent: fc.nat(), cols: fc.constantFrom<string[] | undefined>(["id"], ["a"], undefined), named: fc.boolean() }), {
        maxLength: 3,
      }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(table, { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.nat(), { minLength: 64, maxLength: 64 }),
        async (ts, connections, picks) => {
          const names = ts.map((_, i) => `t${i}`);
          const plan = planOf(
            ts.map((t, i) => {
              const n = names[i]!;
              const statements: PostLoadStatement[] = [];
              if (t.pk) statements.push(pk(n));
              statements.push(...t.indexes.map((x, k) => index(n, `${n}_i${k}`, x.unique, [x.col])));
              for (let k = 0; k < t.checks; k++) statements.push(check(n, `${n}_c${k}`));
              t.fks.forEach((f, k) => {
                const s = fk(n, names[f.parent % names.length]!, f.cols, `${n}_f${k}`);
                statements.push(f.named ? s : { ...s, references: undefined });
              });
              return { name: n, rows: t.rows, statements };
            }),
          );
          let step = 0;
          const { started, done } = await drive(plan, connections, () => picks[step++ % picks.length]!);
          const all = plan.tables.flatMap((t) => [
            `digest ${t.name}`,
            ...t.constraints.statements.flatMap((s) =>
              s.kind === "check" || s.kind === "foreign key" ? [`add ${s.name}`, `validate ${s.name}`] : [`build ${s.name}`],
            ),
          ]);
          expect([...started].sort()).toEqual([...all].sort());
          const fin = (x: string) => done.indexOf(x);
          const begin = (x: string) => started.indexOf(x);
          for (const t of plan.tables)
            for (const s of t.constraints.statements) {
              if (s.kind !== "check" && s.kind !== "foreign key") continue;
              expect(begin(`validate ${s.name}`)).toBeGreaterThan(-1);
              expect(fin(`add ${s.name}`)).toBeLessThan(begin(`validate ${s.name}`));
              // Every build of its own table first; a foreign key also the parent's unique keys (all builds when the parent is unnamed).
              const own = t.constraints.statements.filter((b) => b.kind !== "check" && b.kind !== "foreign key");
              const parent = s.kind === "foreign key" ? plan.tables.find((p) => p.name === s.references) : undefined;
              const theirs =
                s.kind !== "foreign key"
                  ? []
                  : s.references === undefined
                    ? plan.tables.flatMap((p) => p.constraints.statements.filter((b) => b.kind !== "check" && b.kind !== "foreign key"))
                    : parent!.constraints.statements.filter(
                        (b) =>
                          b.keyColumns !== undefined &&
                          (s.referencesColumns === undefined ||
                            b.keyColumns.join() === s.referencesColumns.join() ||
                            !parent!.constraints.statements.some((k) => k.keyColumns?.join() === s.referencesColumns!.join())),
                      );
              for (const b of [...own, ...theirs]) expect(fin(`build ${b.name}`), `${s.name} after ${b.name}`).toBeLessThan(begin(`add ${s.name}`));
            }
        },
      ),
      { numRuns: 300 },
    );
  });
});
