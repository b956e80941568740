/**
 * The one phase machine of a replicated source. The phase lives in
 * `sqlite2pg.state.phase`; this module is the only code that writes it.
 *
 *   new               `init` ran: capture is installed, nothing copied yet
 *   snapshot          the plan is stored and the tables exist; rows are copied
 *                     in chunks, each committed with its table's progress
 *   catch-up          every table copied, keys and indexes built; the changes
 *                     made since the snapshot began are being applied
 *   streaming         caught up once; each change is applied as it comes
 *   cutover-catch-up  the cutover is asked for and the daemon is caught up:
 *                     the last changes are applied before the freeze
 *   frozen            SQLite refuses writes (freeze triggers); draining up to
 *                     the sentinel change
 *   cut-over          committed in Postgres: the application writes there now;
 *                     SQLite stays frozen (the application's connections)
 *   fallback          validated, marker written, hook run; every write the
 *                     application makes in Postgres is applied to SQLite too,
 *                     so it stays a usable way back (`finish` ends it)
 *   rolling-back      the way back is under way: the replicated tables in
 *                     Postgres refuse writes; the last changes are drained
 *                     into SQLite and checked
 *   rolled-back       SQLite takes the application's writes again; Postgres
 *                     stays frozen as a stale copy
 *   done              the migration is over: no capture in Postgres, SQLite
 *                     frozen as the last copy
 *
 * Every change of phase is one of {@link TRANSITIONS}, performed by
 * {@link transition} as an UPDATE conditional on the phase it leaves: a
 * writer that lost a race (another daemon, `unfreeze`, an aborted cutover
 * moved the phase meanwhile) changes nothing and gets a
 * {@link PhaseRaceError}, which is retryable. The row is born in `new` by
 * {@link createState} and dropped to start over by {@link dropState}, only
 * from the phases {@link RESTARTABLE} lists.
 */
import type pg from "pg";
import { Sqlite2pgError } from "../errors.js";
import { quoteIdent } from "../ident.js";

/** The phases, as stored in `sqlite2pg.state.phase`. */
export const Phase = {
  new: "new",
  snapshot: "snapshot",
  catchUp: "catch-up",
  streaming: "streaming",
  /** Cutover asked for and caught up: catching up the last changes before the freeze. */
  cutoverCatchUp: "cutover-catch-up",
  /** SQLite refuses writes; draining up to the sentinel. */
  frozen: "frozen",
  /** Committed in Postgres: the application writes there now. SQLite stays frozen. */
  cutOver: "cut-over",
  /** Validated, marker written, hook run: SQLite follows Postgres until `finish` or `rollback`. */
  fallback: "fallback",
  /** The way back: Postgres refuses writes; draining its last changes into SQLite. */
  rollingBack: "rolling-back",
  /** SQLite holds the data again; Postgres is frozen. */
  rolledBack: "rolled-back",
  /** The migration is over (validated, hook run, and the fallback finished or never kept). */
  done: "done",
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

/** Every phase, in order. */
export const PHASES: readonly Phase[] = Object.values(Phase);

/**
 * The allowed transitions: for each phase, the phases it may be entered
 * from. The one table; {@link transition} refuses anything else.
 *
 *   new → snapshot → catch-up → streaming     the daemon's begin, snapshot, caught up
 *   streaming → cutover-catch-up → frozen     the cutover, asked for and caught up
 *   frozen → cut-over → done                  the cutover's commit, then validation and hook (--no-fallback)
 *   cut-over → fallback → done                SQLite follows Postgres until `finish`
 *   fallback → rolling-back → rolled-back     `rollback`: Postgres frozen, drained into SQLite, SQLite takes writes
 *   rolling-back → fallback                   the rollback undone (--max-freeze, a difference found): Postgres takes writes again
 *   cutover-catch-up, frozen → streaming      the cutover undone: `unfreeze`, --max-freeze, a schema change
 *   streaming → streaming                     --max-freeze reached before the freeze was recorded: clears it
 */
export const TRANSITIONS: Readonly<Record<Phase, readonly Phase[]>> = {
  [Phase.new]: [],
  [Phase.snapshot]: [Phase.new],
  [Phase.catchUp]: [Phase.snapshot],
  [Phase.streaming]: [Phase.catchUp, Phase.cutoverCatchUp, Phase.frozen, Phase.streaming],
  [Phase.cutoverCatchUp]: [Phase.streaming],
  [Phase.frozen]: [Phase.cutoverCatchUp],
  [Phase.cutOver]: [Phase.frozen],
  [Phase.fallback]: [Phase.cutOver, Phase.rollingBack],
  [Phase.rollingBack]: [Phase.fallback],
  [Phase.rolledBack]: [Phase.rollingBack],
  [Phase.done]: [Phase.cutOver, Phase.fallback],
};

/**
 * The phases from which `init --drop-existing` may drop the state and start
 * over: not while a cutover is under way, and never once it committed (the
 * application writes to Postgres then) — unless it was rolled back (the
 * application writes to SQLite again: a later attempt starts afresh).
 */
export const RESTARTABLE: readonly Phase[] = [Phase.new, Phase.snapshot, Phase.catchUp, Phase.streaming, Phase.rolledBack];

/** Whether `to` may be entered from `from`. */
export function isAllowed(from: Phase, to: Phase): boolean {
  return TRANSITIONS[to].includes(from);
}

/** Whether a stored value is a phase this version knows. */
export function isPhase(v: unknown): v is Phase {
  return typeof v === "string" && (PHASES as readonly string[]).includes(v);
}

/**
 * A phase change that did not land because the phase had moved (another
 * daemon, `unfreeze`, an aborted cutover). Nothing was changed: re-read the
 * state and try again.
 */
export class PhaseRaceError extends Sqlite2pgError {
  readonly from: readonly Phase[];
  readonly to: Phase;
  readonly found: string | null;

  constructor(sourceId: string, from: readonly Phase[], to: Phase, found: string | null) {
    super(
      "target",
      "PHASE_MOVED",
      `the phase of source ${sourceId} moved (expected ${from.join(" or ")}, found ${found ?? "no state"}); not changing it to ${to}`,
      {
        context: { source_id: sourceId, expected: from.join(","), found, to },
        hint: "another daemon or `sqlite2pg unfreeze` changed the state meanwhile; the daemon re-reads it and goes on",
        retryable: true,
      },
    );
    this.from = from;
    this.to = to;
    this.found = found;
  }
}

/** A column set as SQL `now()` (the server's clock) by {@link transition}. */
export const NOW: unique symbol = Symbol("now()");

/** Other columns a transition writes in the same statement. */
type StateColumns = Record<string, unknown>;

/** Options of {@link transition}. */
export interface TransitionOptions {
  /** Other columns written in the same UPDATE (values are parameters; {@link NOW} is `now()`). */
  set?: StateColumns;
  /** When the phase is not one of `from`: return false instead of throwing (the caller holds the row and checked). */
  optional?: boolean;
}

/**
 * Move the phase of `sourceId` from one of `from` to `to`, in Postgres, in
 * one statement conditional on the phase it leaves:
 * `UPDATE … SET phase = $to WHERE source_id = $1 AND phase = ANY($from)`.
 * Runs inside the caller's transaction when there is one. Throws an
 * internal error for a transition {@link TRANSITIONS} does not allow (a
 * bug), and {@link PhaseRaceError} when the phase was not one of `from`
 * (unless `optional`). Returns whether the phase changed.
 */
export async function transition(
  c: pg.ClientBase,
  sourceId: string,
  from: Phase | readonly Phase[],
  to: Phase,
  opts: TransitionOptions = {},
): Promise<boolean> {
  const froms = typeof from === "string" ? [from] : from;
  const illegal = froms.filter((f) => !isAllowed(f, to));
  if (illegal.length || !froms.length) {
    throw new Sqlite2pgError("internal", "ILLEGAL_PHASE_CHANGE", `illegal phase change ${illegal.join(", ") || "(none)"} → ${to}`, {
      context: { source_id: sourceId, to },
    });
  }
  const params: unknown[] = [sourceId, to, froms];
  const sets = ["phase = $2", "updated_at = now()"];
  for (const [col, v] of Object.entries(opts.set ?? {})) {
    if (v === NOW) sets.push(`${quoteIdent(col)} = now()`);
    else {
      params.push(v);
      sets.push(`${quoteIdent(col)} = $${params.length}`);
    }
  }
  const r = await c.query(`UPDATE sqlite2pg.state SET ${sets.join(", ")} WHERE source_id = $1 AND phase = ANY($3::text[])`, params);
  if (r.rowCount === 1) return true;
  if (opts.optional) return false;
  const now = await c.query<{ phase: string }>("SELECT phase FROM sqlite2pg.state WHERE source_id = $1", [sourceId]);
  throw new PhaseRaceError(sourceId, froms, to, now.rows[0]?.phase ?? null);
}

/** The state row of a new source, born in phase `new` (`init`). */
export interface NewState {
  sourceId: string;
  sqlitePath: string;
  targetSchema: string;
  preserveCase: boolean;
}

/** Create the state row of a source in phase `new`; `ifAbsent` keeps a row that exists (the demo). */
export async function createState(c: pg.ClientBase, s: NewState, opts: { ifAbsent?: boolean } = {}): Promise<void> {
  await c.query(
    `INSERT INTO sqlite2pg.state (source_id, sqlite_path, target_schema, preserve_case, phase) VALUES ($1, $2, $3, $4, $5)${opts.ifAbsent ? " ON CONFLICT DO NOTHING" : ""}`,
    [s.sourceId, s.sqlitePath, s.targetSchema, s.preserveCase, Phase.new],
  );
}

/**
 * Drop the state row (and its snapshot progress) to start over, only while
 * its phase is one of `from` (a subset of {@link RESTARTABLE}). Returns
 * whether a row was dropped; throws {@link PhaseRaceError} when the row
 * exists in another phase.
 */
export async function dropState(c: pg.ClientBase, sourceId: string, from: readonly Phase[] = RESTARTABLE): Promise<boolean> {
  const bad = from.filter((f) => !RESTARTABLE.includes(f));
  if (bad.length)
    throw new Sqlite2pgError("internal", "ILLEGAL_PHASE_CHANGE", `a state in phase ${bad.join(", ")} is never dropped`, { context: { source_id: sourceId } });
  const r = await c.query("DELETE FROM sqlite2pg.state WHERE source_id = $1 AND phase = ANY($2::text[])", [sourceId, from]);
  if (r.rowCount === 1) return true;
  const now = await c.query<{ phase: string }>("SELECT phase FROM sqlite2pg.state WHERE source_id = $1", [sourceId]);
  if (!now.rowCount) return false;
  throw new PhaseRaceError(sourceId, from, Phase.new, now.rows[0]!.phase);
}
