/** Settings that would be misread are usage errors, before anything runs. */
import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveConfig, requireSqlite } from "../../src/config/config.js";
import { parseListen } from "../../src/config/listen.js";
import { Sqlite2pgError, EXIT_CODES, exitCodeFor, timeoutError } from "../../src/errors.js";

function usage(fn: () => unknown, code: string) {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(Sqlite2pgError);
    expect((e as Sqlite2pgError).category).toBe("usage");
    expect((e as Sqlite2pgError).code).toBe(code);
    return e as Sqlite2pgError;
  }
  throw new Error(`expected a usage error ${code}`);
}

describe("--listen", () => {
  it("accepts [host:]port, IPv6 in brackets", () => {
    expect(parseListen("9187")).toEqual({ host: "127.0.0.1", port: 9187 });
    expect(parseListen("0.0.0.0:80")).toEqual({ host: "0.0.0.0", port: 80 });
    expect(parseListen("localhost:9000")).toEqual({ host: "localhost", port: 9000 });
    expect(parseListen("[::1]:9100")).toEqual({ host: "::1", port: 9100 });
  });
  it("refuses everything else", () => {
    for (const bad of ["nonsense", "", "0", "70000", "host:", ":", "1.2.3.4:x", "9187 9188", "-1"]) usage(() => parseListen(bad), "BAD_LISTEN");
  });
});

describe("resolveConfig", () => {
  it("refuses a --pg that is not a postgres URL, without echoing it", () => {
    for (const bad of ["nonsense", "host=localhost dbname=x", "postgres://u:p@:x/db", "postgres://u@h:99999/d", "mysql://u@h/d", "postgres://u:%zz@h/d"]) {
      const e = usage(() => resolveConfig({ pg: bad }, {}), "BAD_PG_URL");
      expect(e.message).not.toContain("%zz");
    }
    usage(() => resolveConfig({}, { DATABASE_URL: "nonsense" }), "BAD_PG_URL");
    expect(resolveConfig({ pg: "postgresql://u:p%40ss@db.example:6432/app?sslmode=require" }, {}).pg).toContain("db.example");
  });

  it("--max-freeze: flag over environment over file, default 5 s, bad values refused", () => {
    const dir = mkdtempSync(join(tmpdir(), "sqlite2pg-cfg-"));
    const file = join(dir, "c.json");
    writeFileSync(file, JSON.stringify({ maxFreeze: 7 }));
    expect(resolveConfig({}, {}).maxFreeze).toBe(5);
    expect(resolveConfig({ config: file }, {}).maxFreeze).toBe(7);
    expect(resolveConfig({ config: file }, { SQLITE2PG_MAX_FREEZE: "3" }).maxFreeze).toBe(3);
    expect(resolveConfig({ config: file, maxFreeze: 1.5 }, { SQLITE2PG_MAX_FREEZE: "3" }).maxFreeze).toBe(1.5);
    usage(() => resolveConfig({}, { SQLITE2PG_MAX_FREEZE: "soon" }), "BAD_MAX_FREEZE");
    usage(() => resolveConfig({ maxFreeze: 0 }, {}), "BAD_MAX_FREEZE");
    writeFileSync(file, JSON.stringify({ maxFreeze: "5" }));
    usage(() => resolveConfig({ config: file }, {}), "BAD_MAX_FREEZE");
  });

  it("knows whether the schema was given or defaulted", () => {
    expect(resolveConfig({}, {}).schemaGiven).toBe(false);
    expect(resolveConfig({ schema: "app" }, {}).schemaGiven).toBe(true);
    expect(resolveConfig({}, { SQLITE2PG_SCHEMA: "public" }).schemaGiven).toBe(true);
  });

  it("a config file that is not a JSON object, or a directory as --sqlite, is a usage error", () => {
    const dir = mkdtempSync(join(tmpdir(), "sqlite2pg-cfg-"));
    const file = join(dir, "c.json");
    writeFileSync(file, "sqlite = app.db");
    usage(() => resolveConfig({ config: file }, {}), "CONFIG_INVALID");
    writeFileSync(file, "[1]");
    usage(() => resolveConfig({ config: file }, {}), "CONFIG_INVALID");
    usage(() => resolveConfig({ config: join(dir, "missing.json") }, {}), "CONFIG_UNREADABLE");
    usage(() => requireSqlite(resolveConfig({ sqlite: dir }, {})), "SQLITE_IS_DIRECTORY");
  });
});

describe("exit codes", () => {
  it("timeouts have their own code, 6; 4 stays PostgreSQL unreachable", () => {
    expect(EXIT_CODES.timeout).toBe(6);
    expect(EXIT_CODES.target).toBe(4);
    expect(exitCodeFor(timeoutError("CUTOVER_TIMEOUT", "x"))).toBe(6);
    expect(new Set(Object.values(EXIT_CODES)).size).toBe(Object.values(EXIT_CODES).length);
  });
});
