import { redactUrl } from "../redact.js";

/**
 * A password given on the command line (`--pg postgres://u:secret@…`) is
 * visible to every user of the host in `ps` and /proc/<pid>/cmdline. The
 * process' command line is rewritten with it masked as the first thing
 * the program does (process.title overwrites the argument memory on
 * Linux), and a warning says how to keep it off the command line. The
 * window before this runs remains: an environment file, PGPASSWORD or
 * PGPASSFILE (~/.pgpass) has none.
 */
export function maskArgv(argv: string[]): boolean {
  let masked = false;
  const shown = argv.map((a, i) => {
    const inline = /^--pg=(.*)$/.exec(a);
    const value = inline ? inline[1]! : argv[i - 1] === "--pg" ? a : null;
    if (value === null || !/^postgres(ql)?:\/\//i.test(value)) return a;
    const m = redactUrl(value);
    if (m === value) return a;
    masked = true;
    return inline ? `--pg=${m}` : m;
  });
  if (!masked) return false;
  process.title = ["sqlite2pg", ...shown].join(" ");
  process.stderr.write(
    "warning: the password in --pg is visible to other users of this host (ps) until the program starts; give it with DATABASE_URL in an environment file, PGPASSWORD, or PGPASSFILE (~/.pgpass) instead\n",
  );
  return true;
}
