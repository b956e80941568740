import { readFileSync, statSync } from "node:fs";
import { usageError } from "../errors.js";

/** Settings shared by the commands, after flags, environment and config file are merged. */
export interface Config {
  /** Path of the SQLite file. */
  sqlite: string | undefined;
  /** Postgres connection string; undefined means libpq's PG* variables. */
  pg: string | undefined;
  /** Target schema in Postgres. */
  schema: string;
  jobs: number;
  preserveCase: boolean;
  dropExisting: boolean;
  fixText: boolean;
  verbose: boolean;
  json: boolean;
  /** `run`: the longest SQLite may stay frozen during a cutover attempt, in seconds (env SQLITE2PG_MAX_FREEZE). */
  maxFreeze: number;
  /** Whether the schema was given (flag, environment or file) rather than defaulted. Not a setting. */
  schemaGiven: boolean;
}

const DEFAULTS: Omit<Config, "schemaGiven"> = {
  sqlite: undefined,
  pg: undefined,
  schema: "public",
  jobs: 2,
  preserveCase: false,
  dropExisting: false,
  fixText: false,
  verbose: false,
  json: false,
  maxFreeze: 5,
};

const KEYS = Object.keys(DEFAULTS) as (keyof Config)[];

/**
 * Merge configuration: command-line flags over the environment
 * (`SQLITE2PG_*`, `DATABASE_URL`, libpq's `PG*` left to the driver) over the
 * config file (JSON with the same keys as the long flags, camelCase).
 */
export function resolveConfig(flags: Partial<Config> & { config?: string }, env: NodeJS.ProcessEnv = process.env): Config {
  flags = Object.fromEntries(Object.entries(flags).filter(([k]) => k !== "schemaGiven"));
  const file = flags.config ?? env.SQLITE2PG_CONFIG;
  const fromFile = file ? readConfigFile(file) : {};
  const fromEnv: Partial<Config> = {};
  if (env.SQLITE2PG_SQLITE) fromEnv.sqlite = env.SQLITE2PG_SQLITE;
  if (env.DATABASE_URL) fromEnv.pg = env.DATABASE_URL;
  if (env.SQLITE2PG_SCHEMA) fromEnv.schema = env.SQLITE2PG_SCHEMA;
  if (env.SQLITE2PG_JOBS) fromEnv.jobs = Number(env.SQLITE2PG_JOBS);
  if (env.SQLITE2PG_MAX_FREEZE) fromEnv.maxFreeze = Number(env.SQLITE2PG_MAX_FREEZE);
  const merged: Config = { ...DEFAULTS, schemaGiven: false };
  for (const src of [fromFile, fromEnv, flags] as Partial<Config>[]) {
    if (src.schema !== undefined) merged.schemaGiven = true;
    for (const k of KEYS) {
      const v = src[k];
      if (v !== undefined) (merged as unknown as Record<string, unknown>)[k] = v;
    }
  }
  if (!Number.isInteger(merged.jobs) || merged.jobs < 1 || merged.jobs > 64) {
    throw usageError("BAD_JOBS", `--jobs must be an integer from 1 to 64, not ${merged.jobs}`);
  }
  if (typeof merged.schema !== "string" || !merged.schema || Buffer.byteLength(merged.schema) > 63)
    throw usageError("BAD_SCHEMA", "--schema must be a name of 1 to 63 bytes");
  if (typeof merged.maxFreeze !== "number" || !Number.isFinite(merged.maxFreeze) || merged.maxFreeze <= 0 || merged.maxFreeze > 3600) {
    throw usageError("BAD_MAX_FREEZE", `--max-freeze must be a number of seconds above 0 (at most 3600), not ${String(merged.maxFreeze)}`, {
      hint: 'e.g. --max-freeze 5 (the default), or SQLITE2PG_MAX_FREEZE=5, or "maxFreeze": 5 in the config file',
    });
  }
  if (merged.pg !== undefined) checkPgUrl(merged.pg);
  if (merged.sqlite !== undefined && typeof merged.sqlite !== "string") throw usageError("BAD_SQLITE", "--sqlite must be a path");
  return merged;
}

/**
 * A connection string the driver would misread is a usage error here, not
 * a baffling connection failure later (node-postgres takes `nonsense` for
 * a database name on a socket called "base").
 */
function checkPgUrl(url: string): void {
  const hint =
    "pass --pg postgres://user[:password]@host[:port]/database (or set DATABASE_URL; without either, libpq's PGHOST, PGPORT, PGUSER, PGDATABASE apply)";
  if (typeof url !== "string" || !/^postgres(ql)?:\/\//i.test(url)) {
    throw usageError("BAD_PG_URL", "--pg (or DATABASE_URL) must be a postgres:// or postgresql:// URL", { hint });
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw usageError("BAD_PG_URL", "--pg (or DATABASE_URL) is not a valid URL (a password with @, :, / or % must be percent-encoded)", { hint });
  }
  try {
    decodeURIComponent(u.password);
    decodeURIComponent(u.username);
    decodeURIComponent(u.pathname);
  } catch {
    throw usageError("BAD_PG_URL", "--pg (or DATABASE_URL) has a malformed percent-encoding", { hint });
  }
}

function readConfigFile(path: string): Partial<Config> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
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
  const unknown = Object.keys(data).filter((k) => !KEYS.includes(k as keyof Config));
  if (unknown.length)
    throw usageError("CONFIG_INVALID", `config file ${path} has unknown key(s): ${unknown.join(", ")}`, {
      context: { config: path },
      hint: `known keys: ${KEYS.join(", ")}`,
    });
  return data as Partial<Config>;
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
