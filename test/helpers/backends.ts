/**
 * The application library's three backends for tests: a fresh SQLite file,
 * a fresh PostgreSQL database (freshDatabase) and a fresh MySQL/MariaDB
 * database on the server named by MYSQL_URL. Each adapter is closed, and
 * each database dropped, by {@link closeBackends} (call it from afterEach);
 * a failed test keeps its MySQL database, as freshDatabase keeps its own.
 */
import { join } from "node:path";
import mysql from "mysql2/promise";
import { onTestFailed } from "vitest";
import type { Database } from "../../src/db/database.js";
import type { Dialect } from "../../src/db/errors.js";
import { MysqlAdapter } from "../../src/db/mysql-adapter.js";
import { PostgresAdapter } from "../../src/db/postgres-adapter.js";
import { SqliteAdapter } from "../../src/db/sqlite-adapter.js";
import { cleanup, freshDatabase, tempDir } from "./db.js";

/** The MySQL/MariaDB server for the tests (`.ci/run` sets mysql://root@127.0.0.1:3306/test), or undefined. */
export const MYSQL_URL = process.env.MYSQL_URL;
if (!MYSQL_URL) {
  process.stdout.write("MySQL tests skipped: MYSQL_URL is not set (e.g. MYSQL_URL=mysql://root@127.0.0.1:3306/test)\n");
}

const closers: (() => Promise<void>)[] = [];

/** Close this test's adapters, then drop its databases; call from afterEach. */
export async function closeBackends(): Promise<void> {
  while (closers.length) await closers.pop()!();
  await cleanup();
}

/** A fresh MySQL database; its URL. */
async function freshMysqlDatabase(): Promise<string> {
  if (!MYSQL_URL) throw new Error("MYSQL_URL is not set");
  const name = `t_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = await mysql.createConnection(MYSQL_URL);
  await admin.query(`CREATE DATABASE ${name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  await admin.end();
  let failed = false;
  onTestFailed(() => {
    failed = true;
    process.stderr.write(`kept MySQL database ${name} of the failed test\n`);
  });
  // Registered first, so it runs after the adapters are closed.
  closers.unshift(async () => {
    if (failed) return;
    const a = await mysql.createConnection(MYSQL_URL);
    await a.query(`DROP DATABASE IF EXISTS ${name}`);
    await a.end();
  });
  const u = new URL(MYSQL_URL);
  u.pathname = "/" + name;
  return u.toString();
}

/** Track an adapter so that closeBackends closes it. */
export function tracked<T extends Database>(db: T): T {
  closers.push(() => db.close());
  return db;
}

/** A fresh database of each backend, and how to reach it. */
export interface Backend {
  dialect: Dialect;
  /** A new adapter on this test's database (several may be opened; all are closed by closeBackends). */
  open(): Database;
  /** What a child process needs to open the same database: dialect and URL or file. */
  target: { dialect: Dialect; url: string };
}

export async function freshBackend(dialect: Dialect, opts: { busyTimeoutMs?: number } = {}): Promise<Backend> {
  let url: string;
  let open: () => Database;
  if (dialect === "sqlite") {
    url = join(tempDir(), "app.db");
    open = () => tracked(new SqliteAdapter({ file: url, busyTimeoutMs: opts.busyTimeoutMs }));
  } else if (dialect === "postgres") {
    const d = await freshDatabase();
    await d.client.end();
    url = d.url;
    open = () => tracked(new PostgresAdapter({ primary: url, pool: { max: 4 } }));
  } else {
    url = await freshMysqlDatabase();
    open = () => tracked(new MysqlAdapter({ url, pool: { connectionLimit: 4 } }));
  }
  return { dialect, open, target: { dialect, url } };
}

/** The three backends, for `describe.each`-style loops. */
export const DIALECTS: Dialect[] = ["sqlite", "postgres", "mysql"];

/** Whether a backend cannot be tested here (MySQL without MYSQL_URL): its tests show as skipped, with the reason printed above. */
export function unavailable(dialect: Dialect): boolean {
  return dialect === "mysql" && !MYSQL_URL;
}
