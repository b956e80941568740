/**
 * The command line: argv → command → exit code. Errors are printed once,
 * here, as one paragraph (with the stack under --verbose), and their
 * category decides the exit status (see EXIT_CODES).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { settingChoices } from "../config/config.js";
import { describeError, exitCodeFor, EXIT_CODES } from "../errors.js";
import { planCommand } from "./plan.js";
import { migrateCommand } from "./migrate.js";
import { sampleCommand } from "./sample.js";
import { initCommand } from "./init.js";
import { runCommand } from "./run.js";
import { statusCommand } from "./status.js";
import { uninstallCommand } from "./uninstall.js";
import { cutoverCommand, unfreezeCommand } from "./cutover.js";
import { validateCommand } from "./validate.js";
import { finishCommand, rollbackCommand } from "./fallback.js";
import { demoCommand } from "./demo.js";
import { configCommand } from "./config.js";
import { maskArgv } from "./argv.js";

/** A whole number in [min, max], or a usage error (exit 2) naming the option. */
function integer(min: number, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max === Number.MAX_SAFE_INTEGER ? "∞" : max}.`);
    return n;
  };
}

/** A number of seconds above 0 (or from 0 with `zero`; fractions allowed), or a usage error. */
function seconds(max = 86400 * 365, zero = false): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n) || n < 0 || (n === 0 && !zero) || n > max)
      throw new InvalidArgumentError(`expected a number of seconds ${zero ? "from 0" : "above 0"} (at most ${max}).`);
    return n;
  };
}

/** Options every command that reads SQLite and Postgres accepts. */
function common(cmd: Command): Command {
  return cmd
    .option("--sqlite <path>", "SQLite database file")
    .option("--pg <url>", "PostgreSQL connection string (default: DATABASE_URL, then libpq's PG* variables)")
    .option("--schema <name>", "target schema in PostgreSQL (default: public)")
    .option("--config <file>", "JSON config file; flags override it, environment in between")
    .option("--preserve-case", "keep identifiers' case instead of folding them to lower case")
    .option("--verbose", "debug logs and stack traces");
}

/**
 * The daemon's settings (also accepted by `config`, which shows what `run`
 * would use). Their values are checked by the settings table
 * (src/config/config.ts), the same way as from the environment or the
 * config file: the errors name the flag.
 */
function runOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option("--poll-ms <ms>", "fallback poll interval when no WAL change is seen (default 1000)"))
    .addOption(new Option("--batch-size <n>", "changes applied per Postgres transaction (default 10000)"))
    .addOption(new Option("--chunk-rows <n>", "rows per snapshot chunk, each its own transaction (default 20000)"))
    .addOption(new Option("--batch-mb <n>", "a batch also ends once its rows pass this many MiB (default 32; always at least one change)"))
    .addOption(
      new Option(
        "--batch-delay-ms <ms>",
        "while changes keep coming, wait this long after a batch commits before reading the next, so they gather into fewer, larger transactions (default 25; 0: at once)",
      ),
    )
    .addOption(new Option("--chunk-mb <n>", "a snapshot chunk also ends once its rows pass this many MiB (default 32; always at least one row)"))
    .option("--fix-text", "strip NUL bytes and replace invalid UTF-8 instead of stopping on them; every changed value is logged")
    .addOption(
      new Option("--prune-interval <s>", "seconds between prunes of applied changes from the changelog (default 60; each prune is a short write to the file)"),
    )
    .addOption(
      new Option(
        "--checkpoint-frames <n>",
        "WAL frames waiting at which the daemon checkpoints the SQLite file itself, so the application's commits do not (default 500; 0 leaves it to the application)",
      ),
    )
    .option(
      "--on-cutover <cmd>",
      "shell command run after the cutover, with the result in SQLITE2PG_RESULT (JSON), SQLITE2PG_VALIDATION, SQLITE2PG_FREEZE_MS, SQLITE2PG_MARKER",
    )
    .addOption(
      new Option(
        "--validate <mode>",
        "validation at cutover: full (default: checksums of every row, computed after the Postgres commit, so the freeze does not grow) or counts",
      ).choices(settingChoices("validate")),
    )
    .addOption(
      new Option(
        "--max-freeze <s>",
        "longest SQLite stays frozen in a cutover attempt before it is undone and tried again later (default 5; env SQLITE2PG_MAX_FREEZE)",
      ),
    )
    .option("--cutover", "cut over as soon as caught up (as if SIGUSR2 arrived at start)")
    .option("--fallback", "after the cutover, keep applying PostgreSQL's writes to SQLite until `finish` or `rollback` (the default)")
    .option("--no-fallback", "exit at the cutover: SQLite stays frozen as it was, with no way back")
    .option("--on-rollback <cmd>", "shell command run after a rollback, with the result in SQLITE2PG_RESULT (JSON)")
    .option("--listen <[host:]port>", "serve /metrics (Prometheus), /healthz and /status on this address (host defaults to 127.0.0.1)")
    .addOption(new Option("--max-lag <s>", "/healthz fails above this lag in seconds (default 10)"))
    .addOption(new Option("--log-level <level>", "log level (default info; debug with --verbose); SIGHUP applies a change").choices(settingChoices("logLevel")))
    .addOption(
      new Option("--stall-timeout <s>", "/healthz fails, and the systemd watchdog is no longer fed, after this many seconds without progress (default 300)"),
    );
}

/** Said under the options of `run` and `config`. */
const SPELLINGS = `
Every option is also an environment variable and a config-file key: --batch-size is
SQLITE2PG_BATCH_SIZE and "batchSize" (--pg: also DATABASE_URL). Flags win over the
environment, the environment over the file. \`sqlite2pg config --print\` shows the result.
SIGHUP re-reads the configuration.`;

/** Build the program; exported so tests can drive it without a child process. */
function buildProgram(): Command {
  const program = new Command("sqlite2pg")
    .description("Move a live SQLite database into PostgreSQL exactly.")
    .version("0.1.0")
    .exitOverride()
    // One paragraph: the error and where the options are, not the whole help.
    .showHelpAfterError("(run `sqlite2pg help <command>` for its options)");

  common(program.command("plan"))
    .description("print the Postgres DDL and every decision with its reason; writes nothing")
    .option("--json", "machine-readable output")
    .option("--no-scan", "skip reading every text value for NUL bytes and invalid UTF-8")
    .action(async (o) => planCommand(o));

  common(program.command("migrate"))
    .description("copy every row into PostgreSQL with COPY, build keys and indexes, and validate; exit 0 only if exact")
    .option("--jobs <n>", "tables and rowid ranges copied in parallel (default: 2)")
    .option("--drop-existing", "drop the target schema and everything in it first")
    .option("--fix-text", "strip NUL bytes and replace invalid UTF-8 instead of refusing them; every changed value is listed")
    .option("--json", "print the result as JSON")
    .option("--no-progress", "no progress bars, even on a terminal")
    .action(async (o) => migrateCommand(o));

  common(program.command("init"))
    .description("install change capture in the SQLite file (changelog + triggers) and the state table in PostgreSQL; idempotent")
    .option("--wal", "switch the SQLite file to WAL mode if it is not (replication needs it)")
    .option(
      "--drop-existing",
      "drop a non-empty target schema first; for a source that already replicates: start over (its state and the target schema are dropped)",
    )
    .option("--json", "machine-readable output")
    .action(async (o) => initCommand(o));

  runOptions(common(program.command("run")))
    .description("the daemon: snapshot, catch-up, then stream every change into PostgreSQL until SIGTERM/SIGINT")
    .addHelpText("after", SPELLINGS)
    .action(async (o) => runCommand(o));

  runOptions(common(program.command("config")))
    .description(
      "print the effective configuration of `run` (flags over SQLITE2PG_* environment over the config file), secrets masked, each value with its origin",
    )
    .option("--print", "print it (the default)")
    .addHelpText("after", SPELLINGS)
    .option("--json", "machine-readable output")
    .action(async (o) => configCommand(o));

  common(program.command("cutover"))
    .description("ask the daemon to cut over: recorded in Postgres and NOTIFYed to the active daemon, wherever it runs (no process is signalled)")
    .option("--wait", "wait until the cutover is done and print its result")
    .addOption(new Option("--timeout <s>", "with --wait: give up after this many seconds (default 600; exit 6)").argParser(seconds()))
    .action(async (o) => cutoverCommand(o));

  common(program.command("rollback"))
    .description(
      "after the cutover: freeze PostgreSQL, drain its last writes into SQLite, validate, and give SQLite back to the application (or SIGUSR1 to the daemon); carried out here when no daemon runs",
    )
    .option("--wait", "with a running daemon: wait until the rollback is done and print its result")
    .addOption(new Option("--timeout <s>", "with --wait: give up after this many seconds (default 600; exit 6)").argParser(seconds()))
    .addOption(new Option("--validate <mode>", "counts (default) or full: checksums of every row, inside the freeze").choices(settingChoices("validate")))
    .option("--on-rollback <cmd>", "shell command run after the rollback")
    .addOption(new Option("--max-freeze <s>", "longest PostgreSQL stays frozen before the attempt is undone and tried again (default 5)"))
    .action(async (o) => rollbackCommand(o));

  common(program.command("finish"))
    .description("end the fallback after the cutover: the capture leaves PostgreSQL, SQLite stays frozen as the last copy, the daemon exits 0")
    .option("--wait", "with a running daemon: wait until it is finished")
    .addOption(new Option("--timeout <s>", "with --wait: give up after this many seconds (default 600; exit 6)").argParser(seconds()))
    .action(async (o) => finishCommand(o));

  common(program.command("validate"))
    .description(
      "compare SQLite and PostgreSQL at any time: row counts; with --full, checksums of every row and the keys of rows that differ; exit 1 on a difference",
    )
    .option("--full", "order-independent checksums of every row, and the keys of the rows that differ")
    .option("--json", "machine-readable output")
    .action(async (o) => validateCommand(o));

  common(program.command("unfreeze"))
    .description(
      "abort a cutover Postgres has not committed and withdraw any pending request: SQLite takes writes again, replication goes on (waits at most 10 s for the state row; exit 6 if it cannot get it)",
    )
    .action(async (o) => unfreezeCommand(o));

  common(program.command("status"))
    .description("phase, snapshot progress, newest and applied change, lag, apply rate, last error; works with or without the daemon")
    .option("--json", "machine-readable output")
    .action(async (o) => statusCommand(o));

  program
    .command("uninstall")
    .description("remove the triggers and the changelog from the SQLite file: the application's database is as it was")
    .option("--sqlite <path>", "SQLite database file")
    .option("--config <file>", "JSON config file")
    .option("--force", "also when the file is frozen after a cutover (SQLite becomes writable again)")
    .action(async (o) => uninstallCommand(o));

  program
    .command("demo")
    .description(
      "the whole story on a machine with no PostgreSQL: a live sample application, an embedded PostgreSQL, init → snapshot → streaming → cutover → validate",
    )
    .option("--dir <path>", "where to keep the sample database and the embedded server's data", ".sqlite2pg-demo")
    .option("--rows <n>", "orders in the sample database", integer(1, 100_000_000), 20000)
    .option("--seconds <n>", "seconds of streaming before the cutover", seconds(3600), 3)
    .action(async (o) => demoCommand(o));

  program
    .command("sample")
    .description("generate a sample database and migrate it into an embedded PostgreSQL: the whole job on a fresh machine")
    .option("--dir <path>", "where to keep the sample database and the embedded server's data", ".sqlite2pg-sample")
    .option("--rows <n>", "orders in the sample database", integer(1, 100_000_000), 20000)
    .action(async (o) => sampleCommand(o));

  return program;
}

/** Run the CLI and return the exit code. */
export async function main(argv: string[]): Promise<number> {
  maskArgv(argv);
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") return 0;
      return EXIT_CODES.usage;
    }
    process.stderr.write(describeError(e) + "\n");
    if (argv.includes("--verbose") && e instanceof Error) process.stderr.write((e.stack ?? "") + "\n");
    return exitCodeFor(e);
  }
}
