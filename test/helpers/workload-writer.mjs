/**
 * The application, as a child process: runs the seeded workload
 * (workload.mjs) against a SQLite file until told to stop.
 *
 *   node test/helpers/workload-writer.mjs <sqlite> <seed> [paceMs]
 *
 * Started with `fork` (an IPC channel). Messages in: {cmd: "pause"},
 * {cmd: "resume"}, {cmd: "stop"}. Messages out: {ev: "ready"},
 * {ev: "paused", next}, {ev: "resumed"}, {ev: "stopped", stats},
 * {ev: "error", message}. Pause and stop take effect between transactions,
 * so after "paused" no write of the workload is in flight.
 *
 * Transactions wait for SQLite's write lock (busy_timeout 20 s, longer than
 * any lock the tests hold) and are retried whole on SQLITE_BUSY.
 */
import Database from "better-sqlite3";
import { setTimeout as sleep } from "node:timers/promises";
import { Workload } from "./workload.mjs";

const [path, seedArg, paceArg] = process.argv.slice(2);
const seed = Number(seedArg);
const pace = Number(paceArg ?? 3);

const db = new Database(path);
db.pragma("busy_timeout = 20000");
db.pragma("foreign_keys = OFF");
const work = new Workload(db, seed);

let paused = false;
let stopping = false;
let wake = null;
process.on("message", (m) => {
  if (m.cmd === "pause") paused = true;
  else if (m.cmd === "resume") {
    paused = false;
    process.send({ ev: "resumed" });
  } else if (m.cmd === "stop") stopping = true;
  wake?.();
});
process.on("disconnect", () => {
  stopping = true;
  wake?.();
});

const stats = { txs: 0, committed: 0, rolledBack: 0, busyRetries: 0, statements: 0, kinds: {} };
let i = 0;
process.send({ ev: "ready" });
try {
  while (!stopping) {
    if (paused) {
      process.send({ ev: "paused", next: i });
      while (paused && !stopping)
        await new Promise((res) => {
          wake = res;
        });
      wake = null;
      continue;
    }
    let res;
    for (;;) {
      try {
        res = work.runTx(i);
        break;
      } catch (e) {
        if (e && typeof e.code === "string" && e.code.startsWith("SQLITE_BUSY")) {
          stats.busyRetries++;
          await sleep(5);
          continue;
        }
        throw e;
      }
    }
    stats.txs++;
    if (res.committed) stats.committed++;
    else stats.rolledBack++;
    for (const k of res.kinds) {
      stats.statements++;
      stats.kinds[k] = (stats.kinds[k] ?? 0) + 1;
    }
    i++;
    // A pace with jitter: bursts of back-to-back transactions and pauses.
    const p = (i * 2654435761) % 7;
    if (p < 2) await new Promise((res) => setImmediate(res));
    else await sleep((pace * (p - 1)) / 3);
  }
  db.close();
  process.send({ ev: "stopped", stats: { ...stats, next: i } }, () => process.exit(0));
} catch (e) {
  process.send({ ev: "error", message: e?.stack ? e.stack : String(e) }, () => process.exit(1));
}
