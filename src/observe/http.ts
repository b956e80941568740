import { createServer, type Server } from "node:http";
import client from "prom-client";
import type { Logger } from "./logger.js";

/** What the daemon reports to the endpoint; read at each request. */
export interface LiveStatus {
  phase: string;
  applied_seq: number;
  newest_seq: number;
  lag_changes: number;
  lag_seconds: number;
  apply_rate: number | null;
  last_error: string | null;
}

/**
 * The daemon's local HTTP endpoint: `/metrics` (Prometheus), `/healthz`
 * (200 while the lag is under the threshold and the last apply succeeded,
 * 503 otherwise) and `/status` (JSON). Nothing secret is exposed: no
 * connection strings, no values.
 */
export function startHttp(listen: string, read: () => Promise<LiveStatus>, opts: { maxLagSeconds: number; log: Logger }): Server {
  const registry = new client.Registry();
  const gauge = (name: string, help: string) => new client.Gauge({ name, help, registers: [registry] });
  const lagChanges = gauge("sqlite2pg_lag_changes", "Changes recorded in SQLite and not yet applied to Postgres");
  const lagSeconds = gauge("sqlite2pg_lag_seconds", "Age of the oldest change not yet applied, in seconds");
  const applied = gauge("sqlite2pg_applied_seq", "Last changelog seq applied to Postgres");
  const newest = gauge("sqlite2pg_newest_seq", "Newest changelog seq in SQLite");
  const rate = gauge("sqlite2pg_apply_rate", "Changes applied per second, recent");
  const failing = gauge("sqlite2pg_failing", "1 while the last apply failed");
  const phase = new client.Gauge({ name: "sqlite2pg_phase", help: "1 for the current phase", labelNames: ["phase"], registers: [registry] });
  const [host, portText] = listen.includes(":") ? [listen.slice(0, listen.lastIndexOf(":")), listen.slice(listen.lastIndexOf(":") + 1)] : ["127.0.0.1", listen];
  const server = createServer((req, res) => {
    void (async () => {
      try {
        const s = await read();
        if (req.url === "/metrics") {
          lagChanges.set(s.lag_changes);
          lagSeconds.set(s.lag_seconds);
          applied.set(s.applied_seq);
          newest.set(s.newest_seq);
          rate.set(s.apply_rate ?? 0);
          failing.set(s.last_error ? 1 : 0);
          phase.reset();
          phase.set({ phase: s.phase }, 1);
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(await registry.metrics());
        } else if (req.url === "/healthz") {
          const ok = !s.last_error && s.lag_seconds <= opts.maxLagSeconds;
          res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
          res.end(JSON.stringify({ ok, phase: s.phase, lag_seconds: s.lag_seconds, max_lag_seconds: opts.maxLagSeconds, failing: Boolean(s.last_error) }) + "\n");
        } else if (req.url === "/status") {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify(s) + "\n");
        } else {
          res.writeHead(404).end();
        }
      } catch (e) {
        res.writeHead(500, { "content-type": "text/plain" }).end(`status unavailable: ${(e as Error).message}\n`);
      }
    })();
  });
  server.listen(Number(portText), host || "127.0.0.1", () => opts.log.info({ listen: `${host}:${portText}` }, "metrics and health endpoint listening"));
  server.unref();
  return server;
}
