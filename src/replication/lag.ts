/**
 * The daemon's lag and apply rate: the live numbers the metrics endpoint
 * serves (no Postgres round trip), and the periodic "lag" log line.
 */
import type { LiveStatus } from "../observe/live.js";
import type { Logger } from "../observe/logger.js";
import type { ChangelogReader } from "../sqlite/capture.js";
import type { ReplicationState } from "./state.js";

/** What the metrics endpoint shows: the endpoint's own type. */
export type LiveNumbers = LiveStatus;

/** The lag part of it. */
type LagNumbers = Pick<LiveStatus, "phase" | "applied_seq" | "newest_seq" | "lag_changes" | "lag_seconds" | "apply_rate" | "last_error">;

/** Measures the apply rate between reports. */
export class LagMeter {
  private mark = { at: Date.now(), changes: 0 };
  private lastRate: number | null = null;

  /**
   * The live numbers; `state` is null until this process holds the lock
   * and has read the state (a standby), and then nothing is known of the
   * lag: the numbers are null, not zero.
   */
  live(state: ReplicationState | null, changelog: ChangelogReader | null, lastFailure: string | null): LagNumbers {
    const newest = changelog?.newestSeq() ?? null;
    if (!state || newest === null) {
      return { phase: null, applied_seq: null, newest_seq: newest, lag_changes: null, lag_seconds: null, apply_rate: null, last_error: lastFailure };
    }
    const applied = state.appliedSeq;
    return {
      phase: state.phase,
      applied_seq: applied,
      newest_seq: newest,
      lag_changes: Math.max(0, newest - applied),
      lag_seconds: changelog ? +changelog.lagSeconds(applied).toFixed(3) : 0,
      apply_rate: this.lastRate,
      last_error: lastFailure,
    };
  }

  /** Log the lag; returns the apply rate since the last report (changes per second). */
  report(state: ReplicationState, changelog: ChangelogReader, log: Logger): number {
    const now = Date.now();
    const rate = ((state.changesApplied - this.mark.changes) * 1000) / Math.max(now - this.mark.at, 1);
    this.mark = { at: now, changes: state.changesApplied };
    this.lastRate = Math.round(rate);
    const newest = changelog.newestSeq();
    const lag = Math.max(0, newest - state.appliedSeq);
    log.info(
      {
        phase: state.phase,
        applied_seq: state.appliedSeq,
        newest_seq: newest,
        lag_changes: lag,
        lag_seconds: +changelog.lagSeconds(state.appliedSeq).toFixed(3),
        apply_rate: Math.round(rate),
      },
      "lag",
    );
    return rate;
  }
}
