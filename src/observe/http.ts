import { createServer, type Server } from "node:http";
import client from "prom-client";
import type { Logger } from "./logger.js";
import { usageError } from "../errors.js";

/** Where to listen: `--listen [host:]port`, checked; a usage error otherwise. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** Parse `--listen [host:]port` (host defaults to 127.0.0.1; `[::1]:9100` for IPv6). */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]:|([^:\s[\]]*):)?(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw usageError("BAD_LISTEN", `--listen must be [host:]port with a port from 1 to 65535, not ${JSON.stringify(text)}`, {
      hint: "e.g. --listen 9187 (127.0.0.1:9187) or --listen 0.0.0.0:9187",
    });
  }
  return { host: m[1] ?? (m[2] || "127.0.0.1"), port };
}

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
export async function startHttp(listen: ListenAddress, read: () => Promise<LiveStatus>, opts: { maxLagSeconds: number; log: Logger }): Promise<Server> {
  const registry = new client.Registry();
  const gauge = (name: string, help: string) => new client.Gauge({ name, help, registers: [registry] });
  const lagChanges = gauge("sqlite2pg_lag_changes", "Changes recorded in SQLite and not yet applied to Postgres");
  const lagSeconds = gauge("sqlite2pg_lag_seconds", "Age of the oldest change not yet applied, in seconds");
  const applied = gauge("sqlite2pg_applied_seq", "Last changelog seq applied to Postgres");
  const newest = gauge("sqlite2pg_newest_seq", "Newest changelog seq in SQLite");
  const rate = gauge("sqlite2pg_apply_rate", "Changes applied per second, recent");
  const failing = gauge("sqlite2pg_failing", "1 while the last apply failed");
  const phase = new client.Gauge({ name: "sqlite2pg_phase", help: "1 for the current phase", labelNames: ["phase"], registers: [registry] });
  const { host, port } = listen;
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
          res.end(
            JSON.stringify({ ok, phase: s.phase, lag_seconds: s.lag_seconds, max_lag_seconds: opts.maxLagSeconds, failing: Boolean(s.last_error) }) + "\n",
          );
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
  // A busy port or an address this host does not have is the operator's to fix: a usage error, before the daemon starts.
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      const what =
        e.code === "EADDRINUSE"
          ? "is already in use"
          : e.code === "EACCES"
            ? "needs privileges this process does not have"
            : e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND"
              ? "is not an address of this host"
              : `cannot be listened on (${e.code ?? e.message})`;
      reject(
        usageError("LISTEN_FAILED", `--listen ${host}:${port} ${what}`, {
          context: { listen: `${host}:${port}`, errno: e.code },
          hint: "choose another port with --listen (or stop what listens there); --listen is optional",
        }),
      );
    });
    server.listen(port, host, () => resolve());
  });
  server.on("error", (e) => opts.log.error({ err: e.message }, "metrics endpoint error"));
  opts.log.info({ listen: `${host}:${port}` }, "metrics and health endpoint listening");
  server.unref();
  return server;
}
