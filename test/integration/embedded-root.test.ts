/**
 * The embedded PostgreSQL where its binaries and its data directory are
 * under directories of mode 0700 — a checkout in /root, say. As root, the
 * server runs as the `postgres` user, who cannot enter them: the binaries
 * run from a copy it can reach and the data directory is placed where it can
 * reach it. initdb's password file is 0600, the server user's, and gone
 * afterwards, also when initdb fails. Every failure is one target error with
 * a hint, printed as one paragraph. (Not root: the same starts, in place.)
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { describeError, Sqlite2pgError } from "../../src/errors.js";
import { packagedNativeDir, startEmbeddedPostgres } from "../../src/postgres/embedded.js";

const asRoot = process.getuid?.() === 0;
const serverUser = asRoot ? "postgres" : spawnSync("id", ["-un"], { encoding: "utf8" }).stdout.trim();
const made: string[] = [];

/** A new directory of mode 0700 (removed after the file's tests). */
function privateDir(): string {
  const d = mkdtempSync(join(tmpdir(), "sqlite2pg-private-"));
  chmodSync(d, 0o700);
  made.push(d);
  return d;
}

/**
 * A copy of the platform package's binaries under a 0700 directory. Its
 * initdb is a wrapper that records, in $SQLITE2PG_TEST_PWPROBE, the mode and
 * owner of the password file it is given and of that file's directory, then
 * runs the real initdb — or, with $SQLITE2PG_TEST_INITDB_FAILS, fails as
 * initdb does.
 */
async function privateTree(): Promise<string> {
  const tree = join(privateDir(), "node_modules", "native");
  cpSync(await packagedNativeDir(), tree, { recursive: true, verbatimSymlinks: true });
  renameSync(join(tree, "bin", "initdb"), join(tree, "bin", "initdb.real"));
  const wrapper = `#!/bin/sh
for a in "$@"; do
  case "$a" in
    --pwfile=*)
      f="\${a#--pwfile=}"
      stat -c 'file %a %U %n' "$f" >> "$SQLITE2PG_TEST_PWPROBE"
      stat -c 'dir %a %U %n' "$(dirname "$f")" >> "$SQLITE2PG_TEST_PWPROBE"
      if [ -n "$SQLITE2PG_TEST_INITDB_FAILS" ]; then
        echo "initdb: error: could not create directory: No space left on device" >&2
        exit 1
      fi
      ;;
  esac
done
exec "$(dirname "$0")/initdb.real" "$@"
`;
  writeFileSync(join(tree, "bin", "initdb"), wrapper);
  chmodSync(join(tree, "bin", "initdb"), 0o755);
  return tree;
}

/** A file the server's user can append to, for the initdb wrapper's records. */
function probeFile(): string {
  const d = mkdtempSync(join(tmpdir(), "sqlite2pg-probe-"));
  made.push(d);
  chmodSync(d, 0o755);
  const f = join(d, "pwfile");
  writeFileSync(f, "");
  chmodSync(f, 0o666);
  return f;
}

/** The probe's records: what initdb was given as its password file. */
function records(probe: string): { file: { mode: string; owner: string; path: string }; dir: { mode: string; owner: string; path: string } } {
  const parse = (kind: string) => {
    const line = readFileSync(probe, "utf8")
      .split("\n")
      .find((l) => l.startsWith(`${kind} `));
    expect(line, `the initdb wrapper recorded the password ${kind}`).toBeDefined();
    const [, mode, owner, ...path] = line!.split(" ");
    return { mode: mode!, owner: owner!, path: path.join(" ") };
  };
  return { file: parse("file"), dir: parse("dir") };
}

/** The place a requested data directory is moved to when the server's user cannot reach it. */
function relocatedHome(requested: string): string {
  return join("/var/tmp", `sqlite2pg-pgdata-${createHash("sha256").update(requested).digest("hex").slice(0, 16)}`);
}

/** Assert the error is one target error with a hint, printed as one paragraph without a stack. */
function expectOneParagraph(err: unknown, code: string): Sqlite2pgError {
  expect(err).toBeInstanceOf(Sqlite2pgError);
  const e = err as Sqlite2pgError;
  expect(e.category).toBe("target");
  expect(e.code).toBe(code);
  expect(e.hint).toBeTruthy();
  const text = describeError(e);
  expect(text).toMatch(new RegExp(`^error \\[${code}\\]: `));
  expect(text).not.toMatch(/^\s+at /m);
  expect(text.split("\n").every((l) => l.trim() !== "")).toBe(true);
  expect(text).toMatch(/\n {2}hint: /);
  return e;
}

let tree = "";
const copies = new Set<string>();
beforeAll(async () => {
  tree = await privateTree();
});
afterEach(() => {
  delete process.env.SQLITE2PG_TEST_PWPROBE;
  delete process.env.SQLITE2PG_TEST_INITDB_FAILS;
});
afterAll(() => {
  for (const d of [...made, ...copies]) rmSync(d, { recursive: true, force: true });
});

describe("the embedded PostgreSQL under 0700 directories", () => {
  it("starts from binaries and a data directory the server's user cannot enter, with initdb's password file 0600 and then gone", async () => {
    const probe = probeFile();
    process.env.SQLITE2PG_TEST_PWPROBE = probe;
    const parent = privateDir();
    const dir = join(parent, "pg");
    const server = await startEmbeddedPostgres(dir, { nativeDir: tree });
    let stopped = false;
    try {
      const c = new pg.Client({ connectionString: server.url });
      await c.connect();
      const row = (await c.query("SELECT current_setting('data_directory') AS data, pg_backend_pid() AS pid, current_user AS who")).rows[0];
      // The program and the user of this connection's server process, while it lives.
      const exe = readlinkSync(`/proc/${row.pid}/exe`);
      const backendUid = statSync(`/proc/${row.pid}`).uid;
      await c.end();
      expect(row.who).toBe("postgres");
      expect(row.data).toBe(server.dataDir);
      if (asRoot) {
        // The binaries ran from a copy outside the private directory; the data is outside too, the requested path a link to it.
        expect(exe.startsWith(dirname(dirname(tree)))).toBe(false);
        expect(exe).toMatch(/\/sqlite2pg-postgres-[0-9a-f]{16}\/bin\/postgres$/);
        copies.add(dirname(dirname(exe)));
        const copy = statSync(dirname(dirname(exe)));
        expect([copy.uid, copy.mode & 0o777]).toEqual([0, 0o755]);
        expect(backendUid).not.toBe(0);
        expect(server.dataDir.startsWith(parent)).toBe(false);
        expect(server.dataDir).toBe(join(relocatedHome(dir), "data"));
        expect(lstatSync(dir).isSymbolicLink()).toBe(true);
        expect(realpathSync(dir)).toBe(server.dataDir);
        const data = statSync(server.dataDir);
        expect([data.uid, data.mode & 0o777]).toEqual([backendUid, 0o700]);
        expect(statSync(parent).mode & 0o777).toBe(0o700); // the private directory stays private
      } else {
        expect(exe).toBe(join(tree, "bin", "postgres"));
        expect(server.dataDir).toBe(dir);
      }
      // A random password, required: without it the server refuses.
      const u = new URL(server.url);
      expect(u.password).toMatch(/^[0-9a-f]{24}$/);
      u.password = "";
      await expect(new pg.Client({ connectionString: u.toString() }).connect()).rejects.toThrow();

      const { file, dir: pwDir } = records(probe);
      expect([file.mode, file.owner]).toEqual(["600", serverUser]);
      expect([pwDir.mode, pwDir.owner]).toEqual(["700", serverUser]);
      expect(existsSync(file.path)).toBe(false);
      expect(existsSync(pwDir.path)).toBe(false);

      // Stopped and started again: the same data, found through the requested path.
      await server.stop();
      stopped = true;
      const again = await startEmbeddedPostgres(dir, { nativeDir: tree });
      expect(again.dataDir).toBe(server.dataDir);
      const same = new URL(server.url); // the password initdb set; the new random one is not the server's
      same.port = String(again.port);
      const c2 = new pg.Client({ connectionString: same.toString() });
      await c2.connect();
      expect((await c2.query("SELECT 1 AS one")).rows[0].one).toBe(1);
      await c2.end();
      await again.stop({ removeData: true });
    } finally {
      if (!stopped) await server.stop({ removeData: true });
    }
    expect(lstatOr(dir)).toBe(false);
    expect(existsSync(server.dataDir)).toBe(false);
    if (asRoot) expect(existsSync(relocatedHome(dir))).toBe(false);
  });

  it("a failing initdb: one target error with initdb's words, and its password file removed", async () => {
    const probe = probeFile();
    process.env.SQLITE2PG_TEST_PWPROBE = probe;
    process.env.SQLITE2PG_TEST_INITDB_FAILS = "1";
    const dir = join(privateDir(), "pg");
    const err = await startEmbeddedPostgres(dir, { nativeDir: tree }).then(
      () => null,
      (e: unknown) => e,
    );
    const e = expectOneParagraph(err, "EMBEDDED_PG_INITDB");
    expect(e.message).toMatch(/No space left on device/);
    const { file, dir: pwDir } = records(probe);
    expect([file.mode, file.owner]).toEqual(["600", serverUser]);
    expect(existsSync(file.path)).toBe(false);
    expect(existsSync(pwDir.path)).toBe(false);
    expect(lstatOr(dir)).toBe(false); // nothing half-made left behind
    if (asRoot) expect(existsSync(relocatedHome(dir))).toBe(false);
  });

  it("a port in use: one target error that quotes the server's log, and nothing left behind", async () => {
    const blocker = createServer();
    await new Promise<void>((res) => blocker.listen(0, "127.0.0.1", res));
    const port = (blocker.address() as { port: number }).port;
    const dir = join(privateDir(), "pg");
    try {
      const err = await startEmbeddedPostgres(dir, { port }).then(
        () => null,
        (e: unknown) => e,
      );
      const e = expectOneParagraph(err, "EMBEDDED_PG_START");
      expect(e.message).toMatch(/Address already in use/);
      expect(e.context.port).toBe(port);
      expect(e.hint).toMatch(/port/);
    } finally {
      await new Promise((res) => blocker.close(res));
    }
    expect(lstatOr(dir)).toBe(false);
    if (asRoot) expect(existsSync(relocatedHome(dir))).toBe(false);
  });

  it("binaries that cannot be run: one target error naming the binary, with what to do", async () => {
    const broken = join(privateDir(), "native");
    cpSync(await packagedNativeDir(), broken, { recursive: true, verbatimSymlinks: true });
    chmodSync(join(broken, "bin", "initdb"), 0o644);
    const dir = join(privateDir(), "pg");
    const err = await startEmbeddedPostgres(dir, { nativeDir: broken }).then(
      () => null,
      (e: unknown) => e,
    );
    const e = expectOneParagraph(err, "EMBEDDED_PG_BINARY");
    expect(e.message).toMatch(/initdb cannot be run.*permission denied \(EACCES\)/);
    expect(e.context.binary).toBe(join(broken, "bin", "initdb"));
    expect(e.hint).toMatch(/npm ci/);
    expect(lstatOr(dir)).toBe(false);
  });
});

/** Whether anything (a link included) is at `p`. */
function lstatOr(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
