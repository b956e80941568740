import { readFileSync } from "node:fs";
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
}

const DEFAULTS: Config = {
  sqlite: undefined, pg: undefined, schema: "public", jobs: 2, preserveCase: false, dropExisting: false, fixText: false, verbose: false, json: false,
};

const KEYS = Object.keys(DEFAULTS) as (keyof Config)[];

/**
 * Merge configuration: command-line flags over the environment
 * (`SQLITE2PG_*`, `DATABASE_URL`, libpq's `PG*` left to the driver) over the
 * config file (JSON with the same keys as the long flags, camelCase).
 */
export function resolveConfig(flags: Partial<Config> & { config?: string }, env: NodeJS.ProcessEnv = process.env): Config {
  const file = flags.config ?? env.SQLITE2PG_CONFIG;
  const fromFile = file ? readConfigFile(file) : {};
  const fromEnv: Partial<Config> = {};
  if (env.SQLITE2PG_SQLITE) fromEnv.sqlite = env.SQLITE2PG_SQLITE;
  if (env.DATABASE_URL) fromEnv.pg = env.DATABASE_URL;
  if (env.SQLITE2PG_SCHEMA) fromEnv.schema = env.SQLITE2PG_SCHEMA;
  if (env.SQLITE2PG_JOBS) fromEnv.jobs = Number(env.SQLITE2PG_JOBS);
  const merged: Config = { ...DEFAULTS };
  for (const src of [fromFile, fromEnv, flags] as Partial<Config>[]) {
    for (const k of KEYS) {
      const v = src[k];
      if (v !== undefined) (merged as unknown as Record<string, unknown>)[k] = v;
    }
  }
  if (!Number.isInteger(merged.jobs) || merged.jobs < 1 || merged.jobs > 64) {
    throw usageError("BAD_JOBS", `--jobs must be an integer from 1 to 64, not ${merged.jobs}`);
  }
  if (!merged.schema || merged.schema.length > 63) throw usageError("BAD_SCHEMA", "--schema must be a name of 1 to 63 bytes");
  return merged;
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
  if (unknown.length) throw usageError("CONFIG_INVALID", `config file ${path} has unknown key(s): ${unknown.join(", ")}`, { context: { config: path }, hint: `known keys: ${KEYS.join(", ")}` });
  return data as Partial<Config>;
}

/** The SQLite path, or a usage error saying how to give it. */
export function requireSqlite(c: Config): string {
  if (!c.sqlite) throw usageError("NO_SQLITE", "no SQLite file given", { hint: "pass --sqlite PATH (or SQLITE2PG_SQLITE, or \"sqlite\" in the config file)" });
  return c.sqlite;
}
