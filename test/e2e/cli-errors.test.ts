/**
 * Ordinary mistakes end in a typed refusal with the right exit status and
 * one paragraph saying what to do — never "internal error" (exit 70) or a
 * crash; and a refused `init` leaves the application's file byte for byte
 * as it was.
 */
import { afterEach, describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { createServer, type Server } from "node:net";
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanup, freshDatabase, sqliteFrom, tempDir } from "../helpers/db.js";
import { runCli } from "../helpers/daemon.js";

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) s.close();
  await cleanup();
});

/** One paragraph: an `error [CODE]` or commander `error:` line, no stack, no "internal error". */
function expectParagraph(stderr: string, code?: string) {
  expect(stderr).not.toMatch(/internal error| {4}at /);
  expect(stderr.trim().split("\n").length).toBeLessThanOrEqual(5);
  if (code) expect(stderr).toContain(`[${code}]`);
}

function appFile(
  dir: string,
  journal: "wal" | "delete" = "delete",
  sql = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b');",
) {
  const path = join(dir, "app.db");
  const db = new Database(path);
  db.pragma(`journal_mode = ${journal}`);
  db.exec(sql);
  db.close();
  return path;
}

describe("usage errors (exit 2)", () => {
  it("bad flag values, a bad --listen, a malformed --pg URL, a directory as --sqlite, a config that is not JSON", async () => {
    const dir = tempDir();
    const path = appFile(dir);
    const cfg = join(dir, "bad.json");
    writeFileSync(cfg, "sqlite: app.db\n");
    const cases: [string[], RegExp][] = [
      [["run", "--sqlite", path, "--listen", "nonsense"], /BAD_LISTEN/],
      [["run", "--sqlite", path, "--listen", "127.0.0.1:70000"], /BAD_LISTEN/],
      [["migrate", "--sqlite", path, "--pg", "postgres://u:p@:x/db"], /BAD_PG_URL/],
      [["migrate", "--sqlite", path, "--pg", "nonsense"], /BAD_PG_URL/],
      [["run", "--sqlite", path, "--batch-size", "abc"], /--batch-size/],
      [["run", "--sqlite", path, "--poll-ms", "-1"], /--poll-ms/],
      [["run", "--sqlite", path, "--chunk-rows", "1.5"], /--chunk-rows/],
      [["run", "--sqlite", path, "--validate", "x"], /--validate/],
      [["run", "--sqlite", path, "--max-freeze", "0"], /--max-freeze/],
      [["run", "--sqlite", path, "--max-lag", "soon"], /--max-lag/],
      [["cutover", "--sqlite", path, "--timeout", "-5"], /--timeout/],
      [["migrate", "--sqlite", path, "--jobs", "0"], /--jobs/],
      [["plan", "--sqlite", dir], /SQLITE_IS_DIRECTORY/],
      [["plan", "--sqlite", path, "--config", cfg], /CONFIG_INVALID/],
      [["plan"], /NO_SQLITE/],
    ];
    for (const [args, what] of cases) {
      const r = await runCli(args);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(what);
      expectParagraph(r.stderr);
    }
    const env = await runCli(["run", "--sqlite", path], 30_000, { env: { SQLITE2PG_MAX_FREEZE: "forever" } });
    expect(env.code, env.stderr).toBe(2);
    expect(env.stderr).toMatch(/BAD_MAX_FREEZE/);
  });

  it("a --listen port already in use is a usage error, before the daemon starts", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, "CREATE TABLE t (id INTEGER PRIMARY KEY)");
    const { url } = await freshDatabase();
    expect((await runCli(["init", "--sqlite", path, "--pg", url])).code).toBe(0);
    const server = createServer();
    servers.push(server);
    const port = await new Promise<number>((res) => server.listen(0, "127.0.0.1", () => res((server.address() as { port: number }).port)));
    const r = await runCli(["run", "--sqlite", path, "--pg", url, "--listen", `127.0.0.1:${port}`]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/LISTEN_FAILED/);
    expect(r.stderr).toMatch(/already in use/);
    expectParagraph(r.stderr);
    expect(existsSync(`${path}-sqlite2pg.pid`)).toBe(false);
  });

  it("run --schema other than the one init recorded is refused, naming both", async () => {
    const dir = tempDir();
    const path = sqliteFrom(dir, "CREATE TABLE t (id INTEGER PRIMARY KEY)");
    const { url } = await freshDatabase();
    expect((await runCli(["init", "--sqlite", path, "--pg", url, "--schema", "app"])).code).toBe(0);
    const r = await runCli(["run", "--sqlite", path, "--pg", url, "--schema", "other"]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/SCHEMA_MISMATCH/);
    expect(r.stderr).toMatch(/other/);
    expect(r.stderr).toMatch(/app/);
    expectParagraph(r.stderr);
  });
});

describe("source errors (exit 3) and timeouts (exit 6)", () => {
  it("a missing file is a source error with a hint; `cutover --wait` that times out exits 6", async () => {
    const dir = tempDir();
    const missing = await runCli(["plan", "--sqlite", join(dir, "nope.db")]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/SQLITE_NOT_FOUND/);
    expect(missing.stderr).toMatch(/hint:/);
    expectParagraph(missing.stderr);
    const path = sqliteFrom(dir, "CREATE TABLE t (id INTEGER PRIMARY KEY)");
    const { url } = await freshDatabase();
    expect((await runCli(["init", "--sqlite", path, "--pg", url])).code).toBe(0);
    const wait = await runCli(["cutover", "--sqlite", path, "--pg", url, "--wait", "--timeout", "1"]);
    expect(wait.code, wait.stderr).toBe(6);
    expect(wait.stderr).toMatch(/CUTOVER_TIMEOUT/);
    expectParagraph(wait.stderr);
  });

  it("init on a file this process cannot write is a source error (exit 3) with a hint, and changes nothing", async () => {
    const dir = tempDir();
    const path = appFile(dir, "wal");
    const { url, client } = await freshDatabase();
    const before = readFileSync(path);
    // Root ignores file modes: as root, the command runs without the capabilities for that.
    const modes = { fileModesApply: true };
    chmodSync(path, 0o444);
    for (const f of [`${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
    const r = await runCli(["init", "--sqlite", path, "--pg", url], 30_000, modes);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/SQLITE_NOT_WRITABLE/);
    expect(r.stderr).toMatch(/hint:/);
    expectParagraph(r.stderr);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(
      (await client.query("SELECT to_regclass('sqlite2pg.state') AS t")).rows[0].t === null ||
        (await client.query("SELECT count(*)::int AS n FROM sqlite2pg.state")).rows[0].n === 0,
    ).toBe(true);
    // `plan` writes nothing, so it reads a WAL-mode file in a directory it cannot write, and says so.
    chmodSync(dir, 0o555);
    try {
      const plan = await runCli(["plan", "--sqlite", path], 30_000, modes);
      expect(plan.code, plan.stderr).toBe(0);
      expect(plan.stdout).toMatch(/table t \(2 rows/);
      if (process.getuid?.() === 0) expect(plan.stdout).toMatch(/copy in memory/);
    } finally {
      chmodSync(dir, 0o700);
      chmodSync(path, 0o644);
    }
  });
});

describe("a refused init leaves the file byte for byte as it was", () => {
  it("refused for a non-empty target schema: same bytes, same journal mode, no capture", async () => {
    const dir = tempDir();
    const path = appFile(dir, "delete");
    const before = readFileSync(path);
    const { url, client } = await freshDatabase();
    await client.query("CREATE TABLE public.already_here (x int)");
    const r = await runCli(["init", "--sqlite", path, "--pg", url, "--wal"]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/TARGET_NOT_EMPTY/);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(existsSync(`${path}-wal`)).toBe(false);
    const db = new Database(path, { readonly: true });
    expect(db.pragma("journal_mode", { simple: true })).toBe("delete");
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name LIKE '_sqlite2pg%'").get()).toEqual({ n: 0 });
    db.close();
    // With the reason gone, the same command succeeds.
    await client.query("DROP TABLE public.already_here");
    const ok = await runCli(["init", "--sqlite", path, "--pg", url, "--wal"]);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it("refused for a value the plan refuses, or for an unreachable Postgres: the file is untouched", async () => {
    const dir = tempDir();
    const path = appFile(dir, "delete", "CREATE TABLE m (id INTEGER PRIMARY KEY, v); INSERT INTO m VALUES (1, x'00ff'), (2, 'text');");
    const before = readFileSync(path);
    const { url } = await freshDatabase();
    const refused = await runCli(["init", "--sqlite", path, "--pg", url, "--wal"]);
    expect(refused.code, refused.stderr).toBe(3);
    expectParagraph(refused.stderr);
    expect(readFileSync(path).equals(before)).toBe(true);
    const path2 = appFile(tempDir(), "delete");
    const before2 = readFileSync(path2);
    const down = await runCli(["init", "--sqlite", path2, "--pg", "postgres://postgres@127.0.0.1:1/postgres", "--wal"]);
    expect(down.code, down.stderr).toBe(4);
    expect(readFileSync(path2).equals(before2)).toBe(true);
  });
});

describe("a file with no tables", () => {
  it("migrates with exit 0 (nothing differs) and a warning naming the file", async () => {
    const dir = tempDir();
    const path = join(dir, "empty.db");
    new Database(path).close();
    const { url } = await freshDatabase();
    const r = await runCli(["migrate", "--sqlite", path, "--pg", url]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: .*empty\.db has no tables/);
  });
});
