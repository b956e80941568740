/**
 * The order of the one-shot migration's steps 5 and 7 (keys, indexes,
 * constraints and Postgres' digests) over its connections: which
 * statement a free connection runs next, so that none waits on another's
 * lock and the work that others wait for goes first.
 */
import type { MigrationPlan, TablePlan } from "../plan/plan.js";
import type { PostLoadStatement } from "../plan/model.js";

/** A table-level lock mode of PostgreSQL, of those steps 5 and 7 take. */
type LockMode = "ACCESS SHARE" | "ROW SHARE" | "SHARE UPDATE EXCLUSIVE" | "SHARE" | "SHARE ROW EXCLUSIVE" | "ACCESS EXCLUSIVE";

/** Which modes each mode conflicts with (PostgreSQL's table of conflicts, restricted to the modes above). */
const CONFLICTS: Record<LockMode, readonly LockMode[]> = {
  "ACCESS SHARE": ["ACCESS EXCLUSIVE"],
  "ROW SHARE": ["ACCESS EXCLUSIVE"],
  "SHARE UPDATE EXCLUSIVE": ["SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"],
  SHARE: ["SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"],
  "SHARE ROW EXCLUSIVE": ["SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"],
  "ACCESS EXCLUSIVE": ["ACCESS SHARE", "ROW SHARE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"],
};

/** A table any lock conflicts with: what a foreign key of a plan saved without its parent's name takes. */
const EVERY_TABLE = "\u0000every table";

/**
 * One statement of steps 5 and 7: a key or index build, the NOT VALID
 * addition of a CHECK or foreign key, its validation, or a table's digest.
 */
export interface PostLoadJob {
  step: "build" | "add" | "validate" | "digest";
  t: TablePlan;
  s: PostLoadStatement | null;
  /** The table-level locks the statement takes, by Postgres table name. */
  locks: [string, LockMode][];
  /** Handed out first: additions (instant), validations, the builds additions wait for, then the rest by size. */
  rank: number;
}

export function conflicts(a: [string, LockMode][], b: [string, LockMode][]): boolean {
  return a.some(([ta, ma]) => b.some(([tb, mb]) => (ta === tb || ta === EVERY_TABLE || tb === EVERY_TABLE) && CONFLICTS[ma].includes(mb)));
}

/** A build whose index a foreign key may reference (PostgreSQL requires a unique index on the parent's columns). */
function isKeyBuild(s: PostLoadStatement): boolean {
  return s.kind === "primary key" || s.kind === "unique" || /^CREATE UNIQUE INDEX /.test(s.sql);
}

/** Whether a key build is on the columns a foreign key references, in any order. */
function sameColumns(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/**
 * The order of steps 5 and 7 over every connection at once. Keys and
 * indexes are built as unique indexes and the tables' digests computed,
 * side by side; a CHECK is added once its table's indexes are built, a
 * foreign key once its own table's are and its parent's unique keys; each
 * is validated after. A statement starts only when it takes no lock that
 * conflicts with one a running statement holds, so no connection waits on
 * another's lock; an addition that is due holds back new statements that
 * would conflict with it (it takes a moment; then its validation runs
 * alongside the builds that were held). Priority: additions, validations,
 * the builds the additions wait for, then the largest tables' work first.
 * Nothing is handed out after a failure.
 */
export class PostLoadSchedule {
  private readonly queue: PostLoadJob[] = [];
  private readonly running = new Set<PostLoadJob>();
  /** Builds not yet finished, per table. */
  private readonly builds = new Map<string, Set<PostLoadStatement>>();
  /** Every unique-key build, per table. */
  private readonly keys = new Map<string, PostLoadStatement[]>();
  /** CHECKs and foreign keys added NOT VALID, waiting for nothing but their validation. */
  private readonly added = new Set<PostLoadStatement>();
  private waiters: (() => void)[] = [];
  private failed = false;

  constructor(plan: MigrationPlan) {
    for (const t of plan.tables)
      for (const s of t.constraints.statements)
        if (s.kind !== "check" && s.kind !== "foreign key") {
          if (!this.builds.has(t.name)) this.builds.set(t.name, new Set());
          this.builds.get(t.name)!.add(s);
          if (isKeyBuild(s)) this.keys.set(t.name, [...(this.keys.get(t.name) ?? []), s]);
        }
    // The builds additions wait for go first: all of their own table's, and the parent keys of foreign keys.
    const awaited = new Set<PostLoadStatement>();
    for (const t of plan.tables)
      for (const s of t.constraints.statements)
        if (s.kind === "check" || s.kind === "foreign key") for (const b of this.awaits({ step: "add", t, s, locks: [], rank: 0 })) awaited.add(b);
    for (const t of plan.tables) {
      for (const s of t.constraints.statements) {
        if (s.kind === "check") {
          this.queue.push({ step: "add", t, s, locks: [[t.name, "ACCESS EXCLUSIVE"]], rank: 0 });
        } else if (s.kind === "foreign key") {
          const parent = s.references ?? EVERY_TABLE;
          this.queue.push({
            step: "add",
            t,
            s,
            locks: [
              [t.name, "SHARE ROW EXCLUSIVE"],
              [parent, "SHARE ROW EXCLUSIVE"],
            ],
            rank: 0,
          });
        } else {
          this.queue.push({ step: "build", t, s, locks: [[t.name, "SHARE"]], rank: awaited.has(s) ? 2 : 3 });
        }
      }
      this.queue.push({ step: "digest", t, s: null, locks: [[t.name, "ACCESS SHARE"]], rank: 3 });
    }
    // Within a rank, the largest tables first, digests before builds of the same table (a digest reads every column).
    const order = { add: 0, validate: 1, digest: 2, build: 3 } as const;
    this.queue.sort((a, b) => a.rank - b.rank || b.t.census.rows - a.t.census.rows || order[a.step] - order[b.step]);
  }

  /** The builds an addition waits for that have not finished (none for other statements). */
  private awaits(j: PostLoadJob): PostLoadStatement[] {
    if (j.step !== "add") return [];
    const own = [...(this.builds.get(j.t.name) ?? [])];
    const s = j.s!;
    if (s.kind !== "foreign key") return own;
    // A plan saved without the parent's name waits for every index.
    if (s.references === undefined) return [...this.builds.values()].flatMap((b) => [...b]);
    return [...own, ...this.parentKeys(s).filter((k) => this.builds.get(s.references!)?.has(k))];
  }

  /** The parent's unique keys a foreign key needs: those on the referenced columns; without one in sight (a plan saved without the columns), all of them. */
  private parentKeys(s: PostLoadStatement): PostLoadStatement[] {
    const keys = this.keys.get(s.references!) ?? [];
    const on = s.referencesColumns ? keys.filter((k) => k.keyColumns && sameColumns(k.keyColumns, s.referencesColumns!)) : [];
    return on.length > 0 ? on : keys;
  }

  private ready(j: PostLoadJob): boolean {
    if (j.step === "validate") return this.added.has(j.s!);
    return this.awaits(j).length === 0;
  }

  private free(j: PostLoadJob): boolean {
    for (const r of this.running) if (conflicts(j.locks, r.locks)) return false;
    return true;
  }

  /** The next statement to run, waiting while none can start; null when all are done or one failed. */
  async next(): Promise<PostLoadJob | null> {
    for (;;) {
      // A running addition still brings its validation.
      if (this.failed || (this.queue.length === 0 && ![...this.running].some((r) => r.step === "add" && r.s!.validateSql))) return null;
      // An addition whose builds are all running or done holds back the
      // statements after it that would conflict with it: it runs the moment
      // they finish.
      const running = new Set([...this.running].map((r) => r.s));
      const held: PostLoadJob[] = [];
      const i = this.queue.findIndex((j) => {
        if (this.ready(j) && this.free(j) && !held.some((h) => conflicts(j.locks, h.locks))) return true;
        if (j.step === "add" && this.awaits(j).every((b) => running.has(b))) held.push(j);
        return false;
      });
      if (i >= 0) {
        const j = this.queue.splice(i, 1)[0]!;
        this.running.add(j);
        return j;
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** A statement finished; `ok` false when it failed and nothing more is to be handed out. */
  finished(j: PostLoadJob, ok: boolean): void {
    this.running.delete(j);
    if (!ok) this.failed = true;
    else if (j.step === "build") this.builds.get(j.t.name)!.delete(j.s!);
    else if (j.step === "add" && j.s!.validateSql) {
      this.added.add(j.s!);
      const parent = j.s!.kind === "foreign key" ? (j.s!.references ?? EVERY_TABLE) : null;
      this.queue.push({
        step: "validate",
        t: j.t,
        s: j.s,
        locks:
          parent === null
            ? [[j.t.name, "SHARE UPDATE EXCLUSIVE"]]
            : [
                [j.t.name, "SHARE UPDATE EXCLUSIVE"],
                [parent, "ROW SHARE"],
              ],
        rank: 1,
      });
      this.queue.sort((a, b) => a.rank - b.rank);
    }
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
