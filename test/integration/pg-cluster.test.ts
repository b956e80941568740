/**
 * The test cluster (test/helpers/pg-cluster.ts): a primary and two streaming
 * replicas, made with pg_basebackup from the system's binaries when present,
 * and from a cold copy with the embedded package's binaries (which have no
 * pg_basebackup). A row written on the primary reaches both replicas; the
 * replicas are hot standbys that refuse writes; one replica stops and starts
 * again and catches up; and stopping the cluster leaves nothing behind.
 */
import { existsSync } from "node:fs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BinariesChoice, type ClusterOptions, type ClusterServer, type PgCluster, startCluster } from "../helpers/pg-cluster.js";

async function query<T = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end();
  }
}

const hasSystem = existsSync("/usr/lib/postgresql");
const variants: { name: string; binaries: BinariesChoice; method: NonNullable<ClusterOptions["method"]> }[] = [
  ...(hasSystem ? [{ name: "the system's binaries, pg_basebackup", binaries: "system" as const, method: "basebackup" as const }] : []),
  { name: "the embedded package's binaries, a cold copy", binaries: "embedded", method: "cold-copy" },
];

describe.each(variants)("a primary and two replicas: $name", ({ binaries, method }) => {
  let cluster: PgCluster;
  let servers: ClusterServer[];
  beforeAll(async () => {
    cluster = await startCluster({ replicas: 2, binaries, method });
    servers = [cluster.primary, ...cluster.replicas];
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it("is made as asked, every server on its own port, the replicas hot standbys", async () => {
    expect(cluster.binaries.source).toBe(binaries);
    expect(cluster.method).toBe(method);
    expect(cluster.replicas).toHaveLength(2);
    const ports = new Set<number>();
    for (const s of servers) {
      const [row] = await query<{ port: number; recovery: boolean }>(s.url, "SELECT inet_server_port() AS port, pg_is_in_recovery() AS recovery");
      expect(row.port).toBe(s.port);
      expect(row.recovery).toBe(s.role === "replica");
      ports.add(row.port);
    }
    expect(ports.size).toBe(3);
    const streaming = await query<{ application_name: string; usename: string }>(
      cluster.primary.url,
      "SELECT application_name, usename FROM pg_stat_replication WHERE state = 'streaming' ORDER BY application_name",
    );
    expect(streaming).toEqual([
      { application_name: "replica1", usename: "replicator" },
      { application_name: "replica2", usename: "replicator" },
    ]);
  });

  it("a row written on the primary is visible on both replicas; a replica refuses writes with SQLSTATE 25006", async () => {
    await query(cluster.primary.url, "CREATE TABLE t (id int PRIMARY KEY, v text)");
    await query(cluster.primary.url, "INSERT INTO t VALUES (1, 'one')");
    await cluster.waitReplayed();
    for (const r of cluster.replicas) expect(await query(r.url, "SELECT id, v FROM t")).toEqual([{ id: 1, v: "one" }]);
    for (const r of cluster.replicas) {
      await expect(query(r.url, "INSERT INTO t VALUES (2, 'two')")).rejects.toMatchObject({ code: "25006" });
      await expect(query(r.url, "CREATE TEMP SEQUENCE s")).rejects.toMatchObject({ code: "25006" });
    }
  });

  it("a replica stopped and started again catches up with what was written meanwhile", async () => {
    const [r1, r2] = cluster.replicas;
    await r1.stop();
    expect(r1.running).toBe(false);
    await expect(query(r1.url, "SELECT 1")).rejects.toThrow();
    await query(cluster.primary.url, "INSERT INTO t SELECT g, 'while stopped' FROM generate_series(100, 1099) g");
    await cluster.waitReplayed(); // the running replica only
    expect(await query(r2.url, "SELECT count(*)::int AS n FROM t WHERE v = 'while stopped'")).toEqual([{ n: 1000 }]);
    await r1.start();
    expect(r1.running).toBe(true);
    await cluster.waitReplayed();
    expect(await query(r1.url, "SELECT count(*)::int AS n, bool_and(pg_is_in_recovery()) AS recovery FROM t WHERE v = 'while stopped'")).toEqual([
      { n: 1000, recovery: true },
    ]);
    // Streaming again, not only replayed from what it found at start.
    await query(cluster.primary.url, "INSERT INTO t VALUES (2000, 'after restart')");
    await cluster.waitReplayed();
    expect(await query(r1.url, "SELECT v FROM t WHERE id = 2000")).toEqual([{ v: "after restart" }]);
  });

  it("stop() ends every server and removes its files", async () => {
    const dirs = servers.map((s) => s.dataDir);
    for (const d of dirs) expect(existsSync(d)).toBe(true);
    await cluster.stop();
    for (const s of servers) {
      expect(s.running).toBe(false);
      await expect(query(s.url, "SELECT 1")).rejects.toThrow();
    }
    for (const d of dirs) expect(existsSync(d)).toBe(false);
    await cluster.stop(); // idempotent
  });
});
