import pg from "pg";
import pgpass from "pgpass";
import { targetError } from "../errors.js";
import { redactUrl } from "../redact.js";

export { redactUrl } from "../redact.js";

/**
 * Open one Postgres connection. `url` may be empty: libpq's PG* variables
 * then apply, as node-postgres reads them. Failures become a target error
 * that names the server, never the password.
 */
export async function connectPg(url: string | undefined, applicationName = "sqlite2pg"): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url || undefined, application_name: applicationName });
  // Set after construction: a connection string's (empty) password would replace one given with it.
  const password = passwordSource(url);
  if (password) (client as unknown as { password: unknown }).password = password;
  client.on("error", () => {
    // An idle connection that dies is reported by the next query that uses it.
  });
  try {
    await client.connect();
    // Translated defaults and expressions are written for standard strings.
    await client.query("SET standard_conforming_strings = on");
  } catch (e) {
    const where = url ? redactUrl(url) : `${process.env.PGHOST ?? "localhost"}:${process.env.PGPORT ?? 5432}`;
    throw targetError("PG_CONNECT", `cannot connect to PostgreSQL at ${where}: ${(e as Error).message}`, {
      cause: e,
      hint: "check --pg (or DATABASE_URL / PGHOST, PGPORT, PGUSER, PGDATABASE) and that the server is running",
    });
  }
  const enc = (await client.query("SHOW server_encoding")).rows[0] as { server_encoding: string };
  if (enc.server_encoding !== "UTF8") {
    await client.end();
    throw targetError("PG_ENCODING", `the target database uses encoding ${enc.server_encoding}; SQLite text is Unicode and needs a UTF8 database`, {
      hint: "create the target database with ENCODING 'UTF8'",
    });
  }
  return client;
}

/**
 * Where the password comes from when neither the connection string nor
 * PGPASSWORD has one: libpq's password file (PGPASSFILE, else ~/.pgpass;
 * ignored, as by libpq, unless only its owner can read it). Asked only if
 * the server wants a password. So no password need be on a command line
 * or in an environment file.
 */
function passwordSource(url: string | undefined): (() => Promise<string>) | undefined {
  let given = Boolean(process.env.PGPASSWORD);
  try {
    if (url && new URL(url).password) given = true;
  } catch {
    /* not a URL: checked by the configuration, the driver reports the rest */
  }
  if (given) return undefined;
  return function (this: void, ...args: unknown[]) {
    const p = args[0] as { host?: string; port?: number; database?: string; user?: string };
    // No entry: undefined, and the driver reports that the server asked for a password.
    return new Promise<string | undefined>((resolve) => pgpass({ host: p.host, port: p.port, database: p.database, user: p.user }, resolve));
  } as () => Promise<string>;
}

/** Run `fn` with a connection and always close it. */
export async function withPg<T>(url: string | undefined, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await connectPg(url);
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Wrap a Postgres error from a statement as a target error naming what was being done. */
export function pgFailure(code: string, what: string, e: unknown, context: Record<string, string> = {}) {
  const pe = e as { message?: string; code?: string; detail?: string };
  return targetError(code, `${what}: ${pe.message ?? String(e)}`, {
    context: { ...context, sqlstate: pe.code, detail: pe.detail },
    cause: e,
  });
}

/**
 * How many relations a schema holds: tables (plain and partitioned), views,
 * materialized views, sequences and foreign tables — anything a migration
 * into the schema could collide with. Indexes and composite types go with
 * their tables.
 */
export async function countRelations(c: pg.ClientBase, schema: string): Promise<number> {
  const r = await c.query<{ n: string }>(
    "SELECT count(*) AS n FROM pg_class k JOIN pg_namespace s ON s.oid = k.relnamespace WHERE s.nspname = $1 AND k.relkind IN ('r','p','v','m','S','f')",
    [schema],
  );
  return Number(r.rows[0]!.n);
}
