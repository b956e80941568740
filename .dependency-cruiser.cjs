/**
 * The layering of src/, as rules (`npm run lint` runs them):
 *
 *   cli                                  commands; the only code that ends the process
 *    └─ replication, migrate, validate   pipelines
 *        └─ sqlite, postgres, plan, convert, observe, config    engines and codecs
 *            └─ errors.ts, ident.ts      the base
 *
 *   Among the engines, in the order data flows through them:
 *   sqlite (reads) → plan (decides) → convert (encodes) → postgres (writes);
 *   observe and config use none of them.
 *
 *   db                                   the application library: apart from the daemon
 *
 * A layer imports only layers below it; no import cycles anywhere.
 */
const ENGINES = "^src/(sqlite|postgres|plan|convert|observe|config)/";
const PIPELINES = "^src/(replication|migrate|validate)/";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: "no-cycles", severity: "error", comment: "an import cycle: split the module or move what both need below them", from: {}, to: { circular: true } },
    {
      name: "no-orphans",
      severity: "error",
      comment: "a module nothing imports (entry points excepted)",
      from: { orphan: true, path: "^src/", pathNot: ["^src/index\\.ts$", "^src/cli/run-main\\.ts$", "^src/migrate/copy-worker\\.ts$", "^src/replication/snapshot-worker\\.ts$", "\\.d\\.ts$"] },
      to: {},
    },
    { name: "only-cli-above-pipelines", severity: "error", comment: "nothing but src/cli imports the command layer", from: { path: "^src/", pathNot: "^src/cli/" }, to: { path: "^src/cli/" } },
    {
      name: "engines-below-pipelines",
      severity: "error",
      comment: "engines and codecs (sqlite, postgres, plan, convert, observe, config) do not import the pipelines",
      from: { path: ENGINES },
      to: { path: PIPELINES },
    },
    { name: "sqlite-first", severity: "error", comment: "the SQLite engine does not know plans, codecs or Postgres", from: { path: "^src/sqlite/" }, to: { path: "^src/(plan|convert|postgres)/" } },
    { name: "plan-before-codecs", severity: "error", comment: "the planner decides; codecs and Postgres follow it", from: { path: "^src/plan/" }, to: { path: "^src/(convert|postgres)/" } },
    { name: "codecs-before-postgres", severity: "error", comment: "codecs are pure: no connection", from: { path: "^src/convert/" }, to: { path: "^src/postgres/" } },
    {
      name: "observe-config-apart",
      severity: "error",
      comment: "logging, metrics, crash points and configuration use no engine",
      from: { path: "^src/(observe|config)/" },
      to: { path: "^src/(sqlite|postgres|plan|convert|db)/" },
    },
    {
      name: "base-imports-nothing",
      severity: "error",
      comment: "errors.ts and ident.ts are the base: they import no other module of src/",
      from: { path: "^src/(errors|ident)\\.ts$" },
      to: { path: "^src/" },
    },
    {
      name: "db-apart-from-the-daemon",
      severity: "error",
      comment: "the application library never pulls in the daemon, the one-shot migration, validation or the commands",
      from: { path: "^src/db/" },
      to: { path: "^src/(replication|migrate|validate|cli)/" },
    },
    {
      name: "db-used-by-commands-only",
      severity: "error",
      comment:
        "the library is used by applications and the commands (the demo), not by the daemon's layers; frozen.ts is the contract both sides share (the messages the freezes raise) and imports nothing",
      from: { path: "^src/", pathNot: ["^src/(cli|db)/", "^src/index\\.ts$"] },
      to: { path: "^src/db/", pathNot: "^src/db/frozen\\.ts$" },
    },
    {
      name: "tests-not-from-dist",
      severity: "error",
      comment: "tests import sources, not a build that may be stale",
      from: { path: "^test/" },
      to: { path: "^dist/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(dist|node_modules)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".js", ".mjs", ".d.mts"] },
  },
};
