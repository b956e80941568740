import cliProgress from "cli-progress";
import type { Logger } from "./logger.js";

/** Reports how far each table's copy has come. */
export interface Progress {
  start(table: string, total: number): void;
  add(table: string, rows: number, bytes: number): void;
  done(table: string): void;
  stop(): void;
}

/** A live bar per table with rows/s and ETA, for a terminal. */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const multi = new cliProgress.MultiBar(
    {
      stream,
      clearOnComplete: false,
      hideCursor: true,
      format: " {table} |{bar}| {percentage}% {value}/{total} rows | {speed} rows/s | ETA {eta_formatted}",
      etaBuffer: 50,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, { bar: cliProgress.SingleBar; rows: number; t0: number }>();
  return {
    start(table, total) {
      const bar = multi.create(Math.max(total, 1), 0, { table: table.padEnd(24).slice(0, 24), speed: 0 });
      bars.set(table, { bar, rows: 0, t0: Date.now() });
    },
    add(table, rows) {
      const b = bars.get(table);
      if (!b) return;
      b.rows += rows;
      const secs = Math.max((Date.now() - b.t0) / 1000, 0.001);
      b.bar.update(b.rows, { speed: Math.round(b.rows / secs) });
    },
    done(table) {
      const b = bars.get(table);
      if (b) b.bar.update(b.bar.getTotal(), { speed: Math.round(b.rows / Math.max((Date.now() - b.t0) / 1000, 0.001)) });
    },
    stop() {
      multi.stop();
    },
  };
}

/** Structured progress lines (pino), at most one per table every `everyMs`. */
export function logProgress(log: Logger, everyMs = 2000): Progress {
  const state = new Map<string, { total: number; rows: number; bytes: number; t0: number; last: number }>();
  const line = (table: string, s: { total: number; rows: number; bytes: number; t0: number }, msg: string) => {
    const secs = Math.max((Date.now() - s.t0) / 1000, 0.001);
    const rate = s.rows / secs;
    log.info(
      {
        table,
        rows: s.rows,
        total: s.total,
        rows_per_s: Math.round(rate),
        mb: +(s.bytes / 1e6).toFixed(1),
        eta_s: rate > 0 ? Math.round((s.total - s.rows) / rate) : null,
      },
      msg,
    );
  };
  return {
    start(table, total) {
      state.set(table, { total, rows: 0, bytes: 0, t0: Date.now(), last: Date.now() });
    },
    add(table, rows, bytes) {
      const s = state.get(table);
      if (!s) return;
      s.rows += rows;
      s.bytes += bytes;
      if (Date.now() - s.last >= everyMs) {
        s.last = Date.now();
        line(table, s, "copy progress");
      }
    },
    done(table) {
      const s = state.get(table);
      if (s) line(table, s, "table copied");
    },
    stop() {},
  };
}

/** A progress sink that reports nothing. */
export const noProgress: Progress = { start() {}, add() {}, done() {}, stop() {} };
