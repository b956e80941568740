/**
 * Per-test databases: every test gets a fresh Postgres database and a
 * temporary directory for its SQLite files. Both are removed when the test
 * passes and kept when it fails, so the evidence stays.
 */
import Database from "better-sqlite3";
import { inject, onTestFailed } from "vitest";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";

/** The server URL the global setup chose. */
export function serverUrl(): string {
  return inject("pgUrl");
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = "/" + name;
  return u.toString();
}

/** A fresh database for this test; its URL, and a client connected to it. */
export async function freshDatabase(): Promise<{ url: string; client: pg.Client; name: string }> {
  const name = `t_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name} ENCODING 'UTF8' TEMPLATE template0`);
  await admin.end();
  const url = withDatabase(serverUrl(), name);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let failed = false;
  onTestFailed(() => {
    failed = true;
    process.stderr.write(`kept database ${name} of the failed test\n`);
  });
  cleanups.push(async () => {
    await client.end().catch(() => undefined);
    if (failed) return;
    const a = new pg.Client({ connectionString: serverUrl() });
    await a.connect();
    await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await a.end();
  });
  return { url, client, name };
}

/** A temporary directory for this test's SQLite files. */
export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sqlite2pg-test-"));
  let failed = false;
  onTestFailed(() => {
    failed = true;
    process.stderr.write(`kept directory ${d} of the failed test\n`);
  });
  cleanups.push(async () => {
    if (!failed) rmSync(d, { recursive: true, force: true });
  });
  return d;
}

const cleanups: (() => Promise<void>)[] = [];

/** Run the cleanups registered by this file's tests; call from afterEach. */
export async function cleanup(): Promise<void> {
  while (cleanups.length) await cleanups.pop()!();
}

/** Create a SQLite file from SQL and return its path. */
export function sqliteFrom(dir: string, sql: string, name = "src.db"): string {
  const path = join(dir, name);
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("foreign_keys = OFF"); // SQLite's own default; better-sqlite3 turns it on
  db.exec(sql);
  db.close();
  return path;
}

/** The corpus of real SQLite files beside the project, if present. */
export const CORPUS_DIR = resolve(__dirname, "../../../shared/corpus");
export const corpusPresent = existsSync(CORPUS_DIR);
