import { describe, expect, it } from "vitest";
import { isAllowed, isPhase, Phase, PHASES, RESTARTABLE, TRANSITIONS } from "../../src/replication/phase.js";

/** Every transition the code performs, with where: each must be in the table. */
const PERFORMED: [from: Phase, to: Phase, by: string][] = [
  [Phase.new, Phase.snapshot, "daemon: begin"],
  [Phase.snapshot, Phase.catchUp, "daemon: keys built"],
  [Phase.catchUp, Phase.streaming, "daemon: caught up"],
  [Phase.streaming, Phase.cutoverCatchUp, "cutover: requested and caught up"],
  [Phase.cutoverCatchUp, Phase.frozen, "cutover: freeze"],
  [Phase.frozen, Phase.cutOver, "cutover: commit"],
  [Phase.cutOver, Phase.done, "cutover: validated, hook run (--no-fallback)"],
  [Phase.cutOver, Phase.fallback, "cutover: validated, hook run; SQLite follows Postgres"],
  [Phase.fallback, Phase.done, "finish"],
  [Phase.fallback, Phase.rollingBack, "rollback: Postgres frozen"],
  [Phase.rollingBack, Phase.rolledBack, "rollback: drained, validated, committed"],
  [Phase.rollingBack, Phase.fallback, "rollback undone: --max-freeze, a difference found"],
  [Phase.frozen, Phase.streaming, "cutover: --max-freeze abort; unfreeze; schema change during the freeze"],
  [Phase.streaming, Phase.streaming, "cutover: --max-freeze abort before the freeze was recorded"],
  [Phase.cutoverCatchUp, Phase.streaming, "unfreeze; schema change during the cutover"],
];

describe("the phase machine", () => {
  it("names every phase once, as stored", () => {
    expect(PHASES).toEqual([
      "new",
      "snapshot",
      "catch-up",
      "streaming",
      "cutover-catch-up",
      "frozen",
      "cut-over",
      "fallback",
      "rolling-back",
      "rolled-back",
      "done",
    ]);
    expect(Object.keys(TRANSITIONS).sort()).toEqual([...PHASES].sort());
    for (const p of PHASES) expect(isPhase(p)).toBe(true);
    expect(isPhase("cutover")).toBe(false);
    expect(isPhase(null)).toBe(false);
  });

  it.each(PERFORMED)("allows %s → %s (%s)", (from, to) => {
    expect(isAllowed(from, to)).toBe(true);
  });

  it("allows nothing else", () => {
    const allowed = new Set(PERFORMED.map(([f, t]) => `${f}→${t}`));
    for (const from of PHASES) {
      for (const to of PHASES) expect(isAllowed(from, to), `${from} → ${to}`).toBe(allowed.has(`${from}→${to}`));
    }
  });

  it("refuses the transitions that would lose data or undo a committed cutover", () => {
    expect(isAllowed(Phase.cutOver, Phase.streaming)).toBe(false); // the application writes to Postgres
    expect(isAllowed(Phase.done, Phase.streaming)).toBe(false);
    expect(isAllowed(Phase.streaming, Phase.frozen)).toBe(false); // the freeze only after the cutover's catch-up
    expect(isAllowed(Phase.cutoverCatchUp, Phase.cutOver)).toBe(false); // never commit without the freeze
    expect(isAllowed(Phase.streaming, Phase.cutOver)).toBe(false);
    expect(isAllowed(Phase.snapshot, Phase.streaming)).toBe(false); // keys first
    expect(isAllowed(Phase.new, Phase.catchUp)).toBe(false);
    for (const p of PHASES) expect(isAllowed(p, Phase.new)).toBe(false); // only `init` creates a state in `new`
    expect(isAllowed(Phase.done, Phase.rollingBack)).toBe(false); // finished: SQLite no longer follows, no way back without loss
    expect(isAllowed(Phase.cutOver, Phase.rollingBack)).toBe(false); // the fallback first
    expect(isAllowed(Phase.rolledBack, Phase.fallback)).toBe(false); // the application writes to SQLite again
  });

  it("starts over only before a cutover is under way, or after it was rolled back", () => {
    expect([...RESTARTABLE].sort()).toEqual([Phase.catchUp, Phase.new, Phase.snapshot, Phase.streaming, Phase.rolledBack].sort());
  });
});
