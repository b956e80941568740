import { readFileSync, statSync } from "node:fs";
import { usageError } from "../errors.js";
import { redactUrl } from "../redact.js";
import { parseListen } from "./listen.js";

/**
 * Every setting, once: its config-file key, its flag, its environment
 * variable, its type and bounds, its default, whether it is secret (masked
 * wherever it is shown) and whether SIGHUP can change it in a running
 * daemon. Flags, `SQLITE2PG_*` variables and config-file keys are three
 * spellings of the same table, checked by the same code, so a setting
 * cannot be available in one and missing (or differently checked) in
 * another.
 */
type Kind =
  | { type: "string" }
  | { type: "path" }
  | { type: "bool" }
  | { type: "int"; min: number; max: number }
  | { type: "number"; min: number; max: number; zero?: boolean; unit: "seconds" | "MiB" }
  | { type: "enum"; choices: readonly string[] }
  | { type: "listen" };

interface SettingDef {
  kind: Kind;
  default: unknown;
  /** Extra environment variable read when the SQLITE2PG_ one is unset. */
  envAlias?: string;
  secret?: boolean;
  /** SIGHUP applies a new value to a running daemon. */
  reload?: boolean;
  /** What it is, for `config --print`. */
  about: string;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

const SETTINGS = {
  sqlite: { kind: { type: "path" }, default: undefined, about: "SQLite database file" },
  pg: {
    kind: { type: "string" },
    default: undefined,
    envAlias: "DATABASE_URL",
    secret: true,
    about: "PostgreSQL connection string (unset: libpq's PG* variables, PGPASSFILE)",
  },
  schema: { kind: { type: "string" }, default: "public", about: "target schema in PostgreSQL" },
  preserveCase: { kind: { type: "bool" }, default: false, about: "keep identifiers' case" },
  jobs: {
    kind: { type: "int", min: 1, max: 64 },
    default: 2,
    about: "migrate: tables and ranges copied in parallel; the threads of the census and of validate --full's SQLite side",
  },
  dropExisting: { kind: { type: "bool" }, default: false, about: "migrate/init: drop the target schema first" },
  fixText: { kind: { type: "bool" }, default: false, about: "strip NUL bytes and replace invalid UTF-8 instead of refusing them" },
  verbose: { kind: { type: "bool" }, default: false, about: "debug logs and stack traces" },
  json: { kind: { type: "bool" }, default: false, about: "machine-readable output" },
  logLevel: { kind: { type: "enum", choices: LOG_LEVELS }, default: undefined, reload: true, about: "log level (default info; debug with verbose)" },
  pollMs: { kind: { type: "int", min: 1, max: 3_600_000 }, default: 1000, reload: true, about: "run: poll interval when no WAL change is seen, ms" },
  batchSize: { kind: { type: "int", min: 1, max: 10_000_000 }, default: 10000, reload: true, about: "run: changes per Postgres transaction" },
  batchMb: { kind: { type: "number", min: 0, max: 1024, unit: "MiB" }, default: 32, reload: true, about: "run: a batch ends once its rows pass this many MiB" },
  batchDelayMs: {
    kind: { type: "int", min: 0, max: 60_000 },
    default: 25,
    reload: true,
    about:
      "run: while changes keep coming, wait this long after a batch commits before reading the next, so they gather into fewer, larger transactions (0: at once)",
  },
  chunkRows: { kind: { type: "int", min: 1, max: 10_000_000 }, default: 20000, reload: true, about: "run: rows per snapshot chunk" },
  chunkMb: {
    kind: { type: "number", min: 0, max: 1024, unit: "MiB" },
    default: 32,
    reload: true,
    about: "run: a snapshot chunk ends once its rows pass this many MiB",
  },
  pruneInterval: {
    kind: { type: "number", min: 0, max: 86400, zero: true, unit: "seconds" },
    default: 60,
    reload: true,
    about: "run: seconds between prunes of applied changes",
  },
  checkpointFrames: {
    kind: { type: "int", min: 0, max: 1_000_000 },
    default: 500,
    reload: true,
    about:
      "run: WAL frames waiting at which the daemon checkpoints the SQLite file itself, so the application's commits do not (0: leave it to the application)",
  },
  maxLag: {
    kind: { type: "number", min: 0, max: 86400 * 365, unit: "seconds" },
    default: 10,
    reload: true,
    about: "run: /healthz fails above this lag once streaming",
  },
  stallTimeout: {
    kind: { type: "number", min: 0, max: 86400, unit: "seconds" },
    default: 300,
    reload: true,
    about: "run: /healthz fails, and the systemd watchdog is no longer fed, when the daemon makes no progress this long",
  },
  maxFreeze: {
    kind: { type: "number", min: 0, max: 3600, unit: "seconds" },
    default: 5,
    reload: true,
    about: "run: longest SQLite (cutover) or PostgreSQL (rollback) stays frozen in an attempt",
  },
  validate: { kind: { type: "enum", choices: ["full", "counts"] }, default: "full", reload: true, about: "run: validation at the cutover" },
  onCutover: { kind: { type: "string" }, default: undefined, reload: true, about: "run: shell command run after the cutover" },
  cutover: { kind: { type: "bool" }, default: false, about: "run: cut over as soon as caught up" },
  fallback: {
    kind: { type: "bool" },
    default: true,
    about: "run: after the cutover, keep applying PostgreSQL's writes to SQLite until `finish` or `rollback` (false: exit at the cutover)",
  },
  onRollback: { kind: { type: "string" }, default: undefined, reload: true, about: "run: shell command run after a rollback" },
  listen: { kind: { type: "listen" }, default: undefined, about: "run: serve /metrics, /healthz and /status on [host:]port" },
} satisfies Record<string, SettingDef>;

type Key = keyof typeof SETTINGS;
const KEYS = Object.keys(SETTINGS) as Key[];
const def = (k: Key): SettingDef => SETTINGS[k] as SettingDef;

/** Settings shared by the commands, after flags, environment and config file are merged. */
export interface Config {
  sqlite: string | undefined;
  /** Postgres connection string; undefined means libpq's PG* variables. */
  pg: string | undefined;
  schema: string;
  preserveCase: boolean;
  jobs: number;
  dropExisting: boolean;
  fixText: boolean;
  verbose: boolean;
  json: boolean;
  /** Unset: info (debug with verbose). */
  logLevel: (typeof LOG_LEVELS)[number] | undefined;
  pollMs: number;
  batchSize: number;
  batchMb: number;
  /** ms; 0 reads the next batch as soon as one commits. */
  batchDelayMs: number;
  chunkRows: number;
  chunkMb: number;
  /** Seconds; 0 prunes after every batch. */
  pruneInterval: number;
  /** WAL frames; 0 leaves checkpoints to the application. */
  checkpointFrames: number;
  maxLag: number;
  stallTimeout: number;
  /** Seconds. */
  maxFreeze: number;
  validate: "full" | "counts";
  onCutover: string | undefined;
  cutover: boolean;
  fallback: boolean;
  onRollback: string | undefined;
  /** `[host:]port`, checked. */
  listen: string | undefined;
  /** Whether the schema was given (flag, environment or file) rather than defaulted. Not a setting. */
  schemaGiven: boolean;
}

/** Where a setting's value came from: `config --print` says so. */
export type Origin = "default" | `file ${string}` | `env ${string}` | `flag --${string}`;

/** The environment variable of a setting: `SQLITE2PG_BATCH_SIZE` for `batchSize`. */
export function envName(k: string): string {
  return `SQLITE2PG_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** The flag of a setting: `--batch-size` for `batchSize`. */
export function flagName(k: string): string {
  return `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/**
 * Variables named SQLITE2PG_* that are not settings but are expected in
 * the environment: the config file, what a cutover hook receives (a hook
 * may itself run `sqlite2pg status`), and the crash points.
 */
const OTHER_ENV = new Set([
  "SQLITE2PG_CONFIG",
  "SQLITE2PG_RESULT",
  "SQLITE2PG_VALIDATION",
  "SQLITE2PG_FREEZE_MS",
  "SQLITE2PG_MARKER",
  "SQLITE2PG_CRASH_AT",
  "SQLITE2PG_CRASH_AFTER",
]);

/** How a value's origin is named in an error: the flag, the variable, or the key in its file. */
function named(k: Key, origin: Origin): string {
  if (origin.startsWith("env ")) return origin.slice(4);
  if (origin.startsWith("file ")) return `"${k}" in ${origin.slice(5)}`;
  return flagName(k);
}

function spellings(k: Key): string {
  return `${flagName(k)}, ${envName(k)} or "${k}" in the config file`;
}

/** Check (and, from the environment's text, convert) one value; a usage error naming the setting where it came from. */
function checkValue(k: Key, raw: unknown, origin: Origin): unknown {
  const kind = def(k).kind;
  // Text from the environment or a flag is converted; the config file's JSON must have the right type.
  const fromText = (origin.startsWith("env ") || origin.startsWith("flag ")) && typeof raw === "string";
  const code = `BAD_${envName(k).slice("SQLITE2PG_".length)}`;
  const shown = typeof raw === "string" ? JSON.stringify(raw.length > 60 ? `${raw.slice(0, 60)}…` : raw) : String(raw);
  const bad = (what: string) =>
    usageError(code, `${named(k, origin)} must be ${what}, not ${def(k).secret ? "the value given" : shown}`, {
      context: { setting: k },
      hint: `set it with ${spellings(k)}`,
    });
  switch (kind.type) {
    case "string":
    case "path":
      if (typeof raw !== "string" || raw === "") throw bad(kind.type === "path" ? "a path" : "a non-empty string");
      return raw;
    case "bool": {
      if (typeof raw === "boolean") return raw;
      if (fromText) {
        const t = (raw as string).trim().toLowerCase();
        if (["1", "true", "yes", "on"].includes(t)) return true;
        if (["0", "false", "no", "off", ""].includes(t)) return false;
      }
      throw bad(fromText ? "true or false (1/0, yes/no, on/off)" : "true or false");
    }
    case "int":
    case "number": {
      let n = raw;
      if (fromText) n = (raw as string).trim() === "" ? NaN : Number(raw);
      const range =
        kind.type === "int"
          ? `a whole number from ${kind.min} to ${kind.max}`
          : `a number of ${kind.unit} ${kind.zero ? `from ${kind.min}` : `above ${kind.min}`} (at most ${kind.max})`;
      if (typeof n !== "number" || !Number.isFinite(n) || n > kind.max) throw bad(range);
      if (kind.type === "int" && (!Number.isInteger(n) || n < kind.min)) throw bad(range);
      if (kind.type === "number" && (n < kind.min || (n === kind.min && !kind.zero))) throw bad(range);
      return n;
    }
    case "enum":
      if (typeof raw !== "string" || !kind.choices.includes(raw)) throw bad(`one of ${kind.choices.join(", ")}`);
      return raw;
    case "listen":
      if (typeof raw !== "string" && typeof raw !== "number") throw bad("[host:]port");
      try {
        parseListen(String(raw));
      } catch {
        throw usageError("BAD_LISTEN", `${named(k, origin)} must be [host:]port with a port from 1 to 65535, not ${JSON.stringify(String(raw))}`, {
          context: { setting: k },
          hint: `e.g. 9187 (127.0.0.1:9187) or 0.0.0.0:9187; set it with ${spellings(k)}`,
        });
      }
      return String(raw);
  }
}

/** A merged configuration and where each value came from. */
export interface Resolved {
  config: Config;
  origins: Record<Key, Origin>;
  /** SQLITE2PG_* variables that name no setting (a typo?): warned about, not refused. */
  unknownEnv: string[];
}

/**
 * Merge configuration: command-line flags over the environment
 * (`SQLITE2PG_*`; `DATABASE_URL` for the connection string; libpq's `PG*`
 * left to the driver) over the config file (JSON, the keys camelCase).
 * Every value is checked, and an error names the setting as it was given.
 */
export function resolveConfig(flags: object, env: NodeJS.ProcessEnv = process.env): Config {
  return resolveConfigWithOrigins(flags, env).config;
}

/** {@link resolveConfig}, with the origin of every value (for `config --print`). */
export function resolveConfigWithOrigins(given: object, env: NodeJS.ProcessEnv = process.env): Resolved {
  const flags = given as Record<string, unknown>;
  const file = (flags.config as string | undefined) ?? env.SQLITE2PG_CONFIG;
  const fromFile = file ? readConfigFile(file) : null;
  // Not an error: other tools' variables may share the prefix. `run` and `config --print` warn.
  const unknownEnv = Object.keys(env).filter((v) => v.startsWith("SQLITE2PG_") && !OTHER_ENV.has(v) && !KEYS.some((k) => envName(k) === v));
  const values: Record<string, unknown> = {};
  const origins = {} as Record<Key, Origin>;
  for (const k of KEYS) {
    values[k] = def(k).default;
    origins[k] = "default";
    const layers: [unknown, Origin][] = [];
    if (fromFile && fromFile.data[k] !== undefined) layers.push([fromFile.data[k], `file ${fromFile.path}`]);
    const alias = def(k).envAlias;
    if (alias && env[alias] !== undefined && env[alias] !== "") layers.push([env[alias], `env ${alias}`]);
    if (env[envName(k)] !== undefined) layers.push([env[envName(k)], `env ${envName(k)}`]);
    if (flags[k] !== undefined) layers.push([flags[k], `flag ${flagName(k)}` as Origin]);
    for (const [raw, origin] of layers) {
      values[k] = checkValue(k, raw, origin);
      origins[k] = origin;
    }
  }
  const config = { ...(values as Omit<Config, "schemaGiven">), schemaGiven: origins.schema !== "default" };
  if (Buffer.byteLength(config.schema) > 63)
    throw usageError("BAD_SCHEMA", `${named("schema", origins.schema)} must be a name of 1 to 63 bytes`, { hint: `set it with ${spellings("schema")}` });
  if (config.pg !== undefined) checkPgUrl(config.pg, named("pg", origins.pg));
  return { config, origins, unknownEnv };
}

/**
 * A connection string the driver would misread is a usage error here, not
 * a baffling connection failure later (node-postgres takes `nonsense` for
 * a database name on a socket called "base").
 */
function checkPgUrl(url: string, where: string): void {
  const hint =
    "pass --pg postgres://user@host[:port]/database (or set DATABASE_URL; without either, libpq's PGHOST, PGPORT, PGUSER, PGDATABASE apply; the password from PGPASSWORD or PGPASSFILE/~/.pgpass)";
  if (typeof url !== "string" || !/^postgres(ql)?:\/\//i.test(url)) {
    throw usageError("BAD_PG_URL", `${where} must be a postgres:// or postgresql:// URL`, { hint });
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw usageError("BAD_PG_URL", `${where} is not a valid URL (a password with @, :, / or % must be percent-encoded)`, { hint });
  }
  try {
    decodeURIComponent(u.password);
    decodeURIComponent(u.username);
    decodeURIComponent(u.pathname);
  } catch {
    throw usageError("BAD_PG_URL", `${where} has a malformed percent-encoding`, { hint });
  }
}

/**
 * Read the JSON config file. A path starting with `-` is optional, as in
 * systemd's `EnvironmentFile=-…`: a missing file means no settings from it
 * (the template unit points every instance at its own, which may not exist).
 */
function readConfigFile(given: string): { path: string; data: Partial<Record<Key, unknown>> } | null {
  const optional = given.startsWith("-");
  const path = optional ? given.slice(1) : given;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if (optional && (e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw usageError("CONFIG_UNREADABLE", `cannot read config file ${path}: ${(e as Error).message}`, { context: { config: path } });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw usageError("CONFIG_INVALID", `config file ${path} is not valid JSON: ${(e as Error).message}`, { context: { config: path } });
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw usageError("CONFIG_INVALID", `config file ${path} must hold a JSON object`, { context: { config: path } });
  }
  const unknown = Object.keys(data).filter((k) => !KEYS.includes(k as Key));
  if (unknown.length)
    throw usageError("CONFIG_INVALID", `config file ${path} has unknown key(s): ${unknown.join(", ")}`, {
      context: { config: path },
      hint: `known keys: ${KEYS.join(", ")}`,
    });
  return { path, data: data as Partial<Record<Key, unknown>> };
}

/** The values a setting with a fixed set of values takes (for the flags' help). */
export function settingChoices(k: "validate" | "logLevel"): string[] {
  const kind = def(k).kind;
  return kind.type === "enum" ? [...kind.choices] : [];
}

/** The settings SIGHUP can change in a running daemon. */
export function reloadable(k: string): boolean {
  return KEYS.includes(k as Key) && def(k as Key).reload === true;
}

/** The effective configuration as lines (or records) for `config --print`: secrets masked, every value with its origin. */
export function describeConfig(r: Resolved): { key: string; value: unknown; origin: Origin; env: string; flag: string; reload: boolean; about: string }[] {
  return KEYS.map((k) => {
    let value: unknown = r.config[k];
    if (def(k).secret && typeof value === "string") value = redactUrl(value);
    return { key: k, value: value ?? null, origin: r.origins[k], env: envName(k), flag: flagName(k), reload: def(k).reload === true, about: def(k).about };
  });
}

/** The SQLite path, or a usage error saying how to give it. */
export function requireSqlite(c: Config): string {
  if (!c.sqlite) throw usageError("NO_SQLITE", "no SQLite file given", { hint: 'pass --sqlite PATH (or SQLITE2PG_SQLITE, or "sqlite" in the config file)' });
  let isDir = false;
  try {
    isDir = statSync(c.sqlite).isDirectory();
  } catch {
    /* missing: the command that opens it says so (a source error naming the path) */
  }
  if (isDir)
    throw usageError("SQLITE_IS_DIRECTORY", `--sqlite ${c.sqlite} is a directory, not a SQLite database file`, {
      context: { sqlite: c.sqlite },
      hint: "give the path of the database file itself, e.g. --sqlite /var/lib/app/app.db",
    });
  return c.sqlite;
}
