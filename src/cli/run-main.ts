import { main } from "./main.js";

// Let pending output flush; the exit code says whether the result is exact.
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`internal error: ${(e as Error).stack ?? e}\n`);
    process.exitCode = 70;
  },
);
