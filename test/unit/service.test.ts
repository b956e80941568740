/**
 * The daemon's service side without a database: every setting in its three
 * spellings, the health verdict, the status line, and sd_notify messages
 * sent through systemd-notify to a real AF_UNIX datagram socket.
 */
import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { describeConfig, envName, flagName, resolveConfig, resolveConfigWithOrigins } from "../../src/config/config.js";
import { redactUrl } from "../../src/redact.js";
import { errorKind, Sqlite2pgError, usageError } from "../../src/errors.js";
import { health } from "../../src/observe/http.js";
import type { LiveStatus } from "../../src/observe/live.js";
import { Notifier } from "../../src/observe/notify.js";
import { shortCount, statusLine } from "../../src/observe/status-line.js";
import { NotifySocket } from "../helpers/notify-socket.js";

function file(data: unknown): string {
  const p = join(mkdtempSync(join(tmpdir(), "sqlite2pg-cfg-")), "c.json");
  writeFileSync(p, typeof data === "string" ? data : JSON.stringify(data));
  return p;
}

function usage(fn: () => unknown): Sqlite2pgError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(Sqlite2pgError);
    expect((e as Sqlite2pgError).category).toBe("usage");
    return e as Sqlite2pgError;
  }
  throw new Error("expected a usage error");
}

/** A valid value of each setting, as the config file and as the environment's text. */
const SAMPLES: Record<string, [unknown, string]> = {
  sqlite: ["/var/lib/app/app.db", "/var/lib/app/app.db"],
  pg: ["postgres://app:pw@db.example:5433/app", "postgres://app:pw@db.example:5433/app"],
  schema: ["app", "app"],
  preserveCase: [true, "yes"],
  jobs: [4, "4"],
  dropExisting: [true, "1"],
  fixText: [true, "on"],
  verbose: [true, "true"],
  json: [true, "true"],
  logLevel: ["debug", "debug"],
  pollMs: [250, "250"],
  batchSize: [500, "500"],
  batchMb: [4.5, "4.5"],
  batchDelayMs: [0, "0"],
  chunkRows: [1000, "1000"],
  chunkMb: [8, "8"],
  pruneInterval: [0, "0"],
  checkpointFrames: [0, "0"],
  maxLag: [30, "30"],
  stallTimeout: [120, "120"],
  maxFreeze: [2.5, "2.5"],
  validate: ["counts", "counts"],
  onCutover: ["systemctl restart app", "systemctl restart app"],
  cutover: [true, "true"],
  fallback: [false, "false"],
  onRollback: ["systemctl restart app", "systemctl restart app"],
  listen: ["0.0.0.0:9187", "0.0.0.0:9187"],
};

describe("settings", () => {
  it("every setting is a flag, a SQLITE2PG_* variable and a config key, flags over variables over the file", () => {
    const keys = describeConfig(resolveConfigWithOrigins({}, {})).map((r) => r.key);
    expect(keys.sort()).toEqual(Object.keys(SAMPLES).sort());
    for (const [k, [value, text]] of Object.entries(SAMPLES)) {
      const fromFile = resolveConfigWithOrigins({ config: file({ [k]: value }) }, {});
      expect((fromFile.config as unknown as Record<string, unknown>)[k], k).toEqual(value);
      expect(fromFile.origins[k as keyof typeof fromFile.origins]).toMatch(/^file /);
      const fromEnv = resolveConfigWithOrigins({ config: file({ [k]: value }) }, { [envName(k)]: text });
      expect((fromEnv.config as unknown as Record<string, unknown>)[k], k).toEqual(value);
      expect(fromEnv.origins[k as keyof typeof fromEnv.origins]).toBe(`env ${envName(k)}`);
      const fromFlag = resolveConfigWithOrigins({ [k]: value }, { [envName(k)]: text });
      expect(fromFlag.origins[k as keyof typeof fromFlag.origins]).toBe(`flag ${flagName(k)}`);
    }
    expect(envName("maxFreeze")).toBe("SQLITE2PG_MAX_FREEZE");
    expect(flagName("maxFreeze")).toBe("--max-freeze");
  });

  it("a bad value is refused naming the setting as it was given: flag, variable, or key in its file", () => {
    expect(usage(() => resolveConfig({}, { SQLITE2PG_BATCH_SIZE: "many" })).message).toBe(
      'SQLITE2PG_BATCH_SIZE must be a whole number from 1 to 10000000, not "many"',
    );
    const f = file({ batchSize: 0 });
    expect(usage(() => resolveConfig({ config: f }, {})).message).toBe(`"batchSize" in ${f} must be a whole number from 1 to 10000000, not 0`);
    expect(usage(() => resolveConfig({ batchSize: 1.5 }, {})).message).toMatch(/^--batch-size must be a whole number/);
    // Flags arrive as text from the command line and are checked by the same table.
    expect(usage(() => resolveConfig({ batchSize: "many" }, {})).message).toBe('--batch-size must be a whole number from 1 to 10000000, not "many"');
    expect(resolveConfig({ batchSize: "500", maxFreeze: "2.5", pruneInterval: "0" }, {})).toMatchObject({ batchSize: 500, maxFreeze: 2.5, pruneInterval: 0 });
    for (const [k, bad] of [
      ["listen", "nonsense"],
      ["validate", "some"],
      ["logLevel", "loud"],
      ["maxLag", "-1"],
      ["stallTimeout", "0"],
      ["cutover", "maybe"],
      ["pollMs", "1e9"],
      ["chunkMb", ""],
    ] as const) {
      const e = usage(() => resolveConfig({}, { [envName(k)]: bad }));
      expect(e.message, k).toContain(envName(k));
      expect(e.hint, k).toContain(flagName(k));
    }
    // The connection string is never echoed, even when it is refused.
    const e = usage(() => resolveConfig({}, { DATABASE_URL: "mysql://u:hunter2@h/d" }));
    expect(e.message).toContain("DATABASE_URL");
    expect(`${e.message} ${e.hint}`).not.toContain("hunter2");
  });

  it("SQLITE2PG_PG wins over DATABASE_URL; a config path starting with - may be missing; unknown variables are reported", () => {
    const r = resolveConfigWithOrigins(
      { config: "-/nonexistent/sqlite2pg.json" },
      {
        DATABASE_URL: "postgres://a@h/one",
        SQLITE2PG_PG: "postgres://a@h/two",
        SQLITE2PG_LISTN: "9187",
        SQLITE2PG_RESULT: "{}",
      },
    );
    expect(r.config.pg).toBe("postgres://a@h/two");
    expect(r.unknownEnv).toEqual(["SQLITE2PG_LISTN"]);
    expect(usage(() => resolveConfig({ config: "/nonexistent/sqlite2pg.json" }, {})).code).toBe("CONFIG_UNREADABLE");
    expect(usage(() => resolveConfig({ config: file({ listenn: 1 }) }, {})).message).toContain("unknown key(s): listenn");
  });

  it("config --print masks the password, and says where each value came from", () => {
    const rows = describeConfig(resolveConfigWithOrigins({}, { DATABASE_URL: "postgres://app:s3cr%40t@db/app?sslpassword=x", SQLITE2PG_MAX_LAG: "3" }));
    const pg = rows.find((r) => r.key === "pg")!;
    expect(pg.value).toBe("postgres://app:***@db/app?sslpassword=***");
    expect(pg.origin).toBe("env DATABASE_URL");
    expect(JSON.stringify(rows)).not.toContain("s3cr");
    expect(rows.find((r) => r.key === "maxLag")).toMatchObject({ value: 3, origin: "env SQLITE2PG_MAX_LAG", reload: true });
    expect(rows.find((r) => r.key === "listen")).toMatchObject({ value: null, origin: "default", reload: false });
    expect(redactUrl("postgres://app@db/app")).toBe("postgres://app@db/app");
  });
});

function live(over: Partial<LiveStatus>): LiveStatus {
  return {
    role: "active",
    phase: "streaming",
    applied_seq: 10,
    newest_seq: 10,
    lag_changes: 0,
    lag_seconds: 0.01,
    apply_rate: 5,
    last_error: null,
    snapshot: null,
    seconds_since_progress: 0.2,
    frozen_at: null,
    ...over,
  };
}

describe("health and status", () => {
  const limits = { maxLagSeconds: 10, stallSeconds: 60 };
  it("healthy while doing its job in its role; unhealthy when starting, failing, stalled, or lagging once streaming", () => {
    expect(health(live({}), limits)).toEqual({ ok: true, reasons: [] });
    expect(health(live({ role: "standby", phase: null, lag_seconds: null }), limits).ok).toBe(true);
    expect(health(live({ role: "starting", phase: null }), limits).ok).toBe(false);
    expect(health(live({ last_error: "boom" }), limits).reasons.join()).toMatch(/failed/);
    expect(health(live({ phase: "snapshot", seconds_since_progress: 61 }), limits).reasons.join()).toMatch(/no progress for 61 s/);
    expect(health(live({ lag_seconds: 11 }), limits).reasons.join()).toMatch(/lag 11 s is above max-lag 10 s/);
    // During the snapshot and catch-up the lag is expected to be large.
    expect(health(live({ phase: "snapshot", lag_seconds: 500 }), limits).ok).toBe(true);
    expect(health(live({ phase: "catch-up", lag_seconds: 500 }), limits).ok).toBe(true);
  });

  it("says in one line what the daemon does", () => {
    const snap = [
      { table: "orders", rows: 3_000_000, total: 3_000_000, done: true },
      { table: "users", rows: 1_234_567, total: 3_000_000, done: false },
    ];
    expect(statusLine(live({ phase: "snapshot", snapshot: snap }))).toBe("snapshot 70% (users 1.2M/3M)");
    expect(statusLine(live({}))).toBe("streaming, lag 0 changes / 0.01 s");
    expect(statusLine(live({ last_error: "x" }))).toBe("streaming, lag 0 changes / 0.01 s; the last step failed, retrying");
    expect(statusLine(live({ role: "standby", phase: null }))).toMatch(/^standby/);
    expect(statusLine(live({ phase: "frozen", frozen_at: new Date(1000).toISOString() }), 1012)).toBe("frozen 12 ms: cutting over");
    expect(statusLine(live({ phase: "done" }))).toBe("cutover done");
    expect([shortCount(999), shortCount(1000), shortCount(12_345), shortCount(250_000_000)]).toEqual(["999", "1k", "12.3k", "250M"]);
  });

  it("errors are counted by a short stable kind", () => {
    expect(errorKind(usageError("BAD_X", "x"))).toBe("BAD_X");
    expect(errorKind(Object.assign(new Error("x"), { code: "23514", severity: "ERROR" }))).toBe("SQLSTATE_23514");
    expect(errorKind(Object.assign(new Error("x"), { code: "ECONNRESET" }))).toBe("ECONNRESET");
    expect(errorKind(Object.assign(new Error("x"), { code: "SQLITE_BUSY" }))).toBe("SQLITE_BUSY");
    expect(errorKind(new Error("x"))).toBe("UNKNOWN");
    expect(errorKind("a string")).toBe("UNKNOWN");
  });
});

describe("sd_notify through systemd-notify", () => {
  const sockets: NotifySocket[] = [];
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });

  it("sends each message in order to a real datagram socket", async () => {
    const s = new NotifySocket();
    sockets.push(s);
    await s.listening();
    const n = new Notifier(pino({ level: "silent" }), { ...process.env, NOTIFY_SOCKET: s.path, WATCHDOG_USEC: "30000000" });
    expect(n.enabled).toBe(true);
    expect(n.watchdogMs()).toBe(30_000);
    n.ready("snapshot 0%");
    n.watchdog();
    n.reloading();
    n.ready("streaming, lag 0 changes / 0 s");
    n.stopping("stopped\nnow");
    await n.flushed();
    await s.waitFor((m) => m.STOPPING === "1", 10_000, "STOPPING=1");
    expect(s.messages[0]).toEqual({ READY: "1", STATUS: "snapshot 0%" });
    const kinds = s.messages.map((m) => Object.keys(m).sort().join("+"));
    expect(kinds.indexOf("RELOADING")).toBeGreaterThan(kinds.indexOf("READY+STATUS"));
    expect(kinds.lastIndexOf("READY+STATUS")).toBeGreaterThan(kinds.indexOf("RELOADING"));
    expect(s.messages.at(-1)).toEqual({ STOPPING: "1", STATUS: "stopped now" }); // one line: no newline in STATUS
    expect(s.barriers).toBeGreaterThan(0); // systemd-notify waited for the socket's owner to read each message
  });

  it("does nothing outside a notify unit; a watchdog meant for another pid is not ours; a missing client is said once", async () => {
    const lines: string[] = [];
    const log = pino({ level: "error" }, { write: (l: string) => lines.push(l) });
    const off = new Notifier(log, {});
    expect(off.enabled).toBe(false);
    off.ready();
    await off.flushed();
    expect(new Notifier(log, { NOTIFY_SOCKET: "/x", WATCHDOG_USEC: "1000000", WATCHDOG_PID: "1" }).watchdogMs()).toBeNull();
    const broken = new Notifier(log, { NOTIFY_SOCKET: "/nonexistent/notify" }, "/nonexistent/systemd-notify");
    broken.ready();
    broken.status("a");
    broken.watchdog();
    await broken.flushed();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("could not notify systemd");
  });
});
