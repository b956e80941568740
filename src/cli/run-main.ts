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

// A crash outside the command's promise (a timer, an event handler) is an internal error, exit 70, like
// any other: Node's own exit status for it would be 1, the status of a validation difference, which a
// service manager must not restart.
for (const event of ["uncaughtException", "unhandledRejection"] as const) {
  process.on(event, (e: unknown) => {
    process.stderr.write(`internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    exitAfterFlush(70);
  });
}

main(process.argv.slice(2)).then(exitAfterFlush, (e) => {
  process.stderr.write(`internal error: ${(e as Error).stack ?? e}\n`);
  exitAfterFlush(70);
});
