import { main } from "./main.js";

/**
 * Exit with the command's code once stdout and stderr are flushed: the
 * command has finished, and a handle left open (a socket, a timer) must not
 * keep the process running or decide its status.
 */
function exitAfterFlush(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write("", done);
  process.stderr.write("", done);
}

main(process.argv.slice(2)).then(exitAfterFlush, (e) => {
  process.stderr.write(`internal error: ${(e as Error).stack ?? e}\n`);
  exitAfterFlush(70);
});
