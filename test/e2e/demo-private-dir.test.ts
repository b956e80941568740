/**
 * `sqlite2pg demo` with its directory under one of mode 0700 — as root,
 * where the embedded server runs as the `postgres` user, who cannot enter
 * it: the demo still runs to the end, and says truly where the server's
 * data is.
 */
import { lstatSync, realpathSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cleanup, tempDir } from "../helpers/db.js";
import { runCli } from "../helpers/daemon.js";

afterEach(cleanup);

describe("the demo in a private directory", () => {
  it("runs to the end and says where the server's data is", async () => {
    const parent = tempDir();
    expect(statSync(parent).mode & 0o777).toBe(0o700);
    const dir = join(parent, "demo");
    const r = await runCli(["demo", "--dir", dir, "--rows", "500", "--seconds", "1"], 170_000);
    const data = /The server's data stays in (\S+);/.exec(r.stdout)?.[1];
    try {
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/validation \(row checksums\): Postgres held exactly what SQLite held/);
      expect(data).toBeDefined();
      if (process.getuid?.() === 0) {
        // Out of the private directory, where the server's user can reach it; the demo's directory links there.
        expect(data!.startsWith(parent)).toBe(false);
        expect(r.stdout).toContain(`its data: ${data}, where the server's user can reach it (${join(dir, "pgdata")} links there)`);
        expect(lstatSync(join(dir, "pgdata")).isSymbolicLink()).toBe(true);
        expect(realpathSync(join(dir, "pgdata"))).toBe(data);
      } else {
        expect(data).toBe(join(dir, "pgdata"));
      }
      expect(statSync(parent).mode & 0o777).toBe(0o700);
    } finally {
      // The demo keeps its server's data; placed elsewhere, it goes with its own directory.
      if (data && /\/sqlite2pg-pgdata-[0-9a-f]{16}$/.test(dirname(data))) rmSync(dirname(data), { recursive: true, force: true });
    }
  }, 180_000);
});
