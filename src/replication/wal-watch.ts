/**
 * Wake the daemon when the application writes: a watch on the SQLite
 * file's -wal, so a change is applied at once instead of at the next poll.
 */
import chokidar, { type FSWatcher } from "chokidar";

/** Call `nudge` on every change of `<sqlite>-wal`; close the returned watcher to stop. */
export function watchWal(sqlite: string, nudge: () => void): FSWatcher {
  const watcher = chokidar.watch(`${sqlite}-wal`, { ignoreInitial: true, awaitWriteFinish: false });
  // chokidar passes on at most one change event per file every 50 ms; a
  // write landing inside that window would wait for the poll timer, so
  // each event also schedules one look shortly after the window closes.
  let followUp: NodeJS.Timeout | null = null;
  watcher.on("all", () => {
    nudge();
    if (!followUp) {
      followUp = setTimeout(() => {
        followUp = null;
        nudge();
      }, 60);
      followUp.unref();
    }
  });
  return watcher;
}
