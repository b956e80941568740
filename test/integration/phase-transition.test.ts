import { afterEach, describe, expect, it } from "vitest";
import { cleanup, freshDatabase } from "../helpers/db.js";
import { ensureStateSchema, loadState } from "../../src/replication/state.js";
import { createState, dropState, NOW, Phase, PhaseRaceError, transition } from "../../src/replication/phase.js";
import { isRetryableError, Sqlite2pgError } from "../../src/errors.js";

afterEach(cleanup);

async function stateIn(phase: Phase) {
  const { client } = await freshDatabase();
  await ensureStateSchema(client);
  await createState(client, { sourceId: "s1", sqlitePath: "/x.db", targetSchema: "public", preserveCase: false });
  if (phase !== Phase.new) await client.query("UPDATE sqlite2pg.state SET phase = $1", [phase]); // a state as an older run left it
  return client;
}

describe("transition: the one writer of the phase", () => {
  it("moves the phase from the one it leaves, with the other columns in the same statement", async () => {
    const c = await stateIn(Phase.frozen);
    expect(await transition(c, "s1", Phase.frozen, Phase.cutOver, { set: { cutover_at: NOW, last_error: "x" } })).toBe(true);
    const s = (await loadState(c, "s1"))!;
    expect(s.phase).toBe(Phase.cutOver);
    expect(s.cutoverAt).toBeInstanceOf(Date);
    expect(s.lastError).toBe("x");
  });

  it("a lost race changes nothing and is a typed, retryable error naming both phases", async () => {
    const c = await stateIn(Phase.streaming); // unfreeze moved it back meanwhile
    const e = await transition(c, "s1", Phase.frozen, Phase.cutOver).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PhaseRaceError);
    expect(e).toBeInstanceOf(Sqlite2pgError);
    expect((e as PhaseRaceError).retryable).toBe(true);
    expect(isRetryableError(e)).toBe(true);
    expect((e as PhaseRaceError).code).toBe("PHASE_MOVED");
    expect((e as PhaseRaceError).message).toMatch(/expected frozen, found streaming.*cut-over/);
    expect((await loadState(c, "s1"))!.phase).toBe(Phase.streaming);
    // optional: the caller holds the row and accepts that nothing moves
    expect(await transition(c, "s1", [Phase.cutoverCatchUp, Phase.frozen], Phase.streaming, { optional: true })).toBe(false);
  });

  it("refuses a transition the table does not allow before touching Postgres", async () => {
    const c = await stateIn(Phase.done);
    const e = await transition(c, "s1", Phase.done, Phase.streaming).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Sqlite2pgError);
    expect((e as Sqlite2pgError).code).toBe("ILLEGAL_PHASE_CHANGE");
    expect((await loadState(c, "s1"))!.phase).toBe(Phase.done);
  });

  it("drops a state to start over only from a phase that may restart", async () => {
    const c = await stateIn(Phase.frozen);
    await expect(dropState(c, "s1")).rejects.toBeInstanceOf(PhaseRaceError);
    expect((await loadState(c, "s1"))!.phase).toBe(Phase.frozen);
    await transition(c, "s1", Phase.frozen, Phase.streaming);
    expect(await dropState(c, "s1")).toBe(true);
    expect(await loadState(c, "s1")).toBeNull();
    expect(await dropState(c, "s1")).toBe(false);
  });
});
