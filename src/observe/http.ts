import { createServer, type Server } from "node:http";
import type { ListenAddress } from "../config/listen.js";
import { usageError } from "../errors.js";
import type { LiveStatus } from "./live.js";
import type { Logger } from "./logger.js";
import { type DaemonMetrics, snapshotRatio } from "./metrics.js";

/** The thresholds of /healthz; read at each request, so a reload (SIGHUP) changes them. */
export interface HealthLimits {
  maxLagSeconds: number;
  stallSeconds: number;
}

/** Whether the daemon is doing its job, and if not, why: what /healthz answers. */
export function health(s: LiveStatus, limits: HealthLimits): { ok: boolean; reasons: string[] } {
  const reasons: string[] = [];
  if (s.role === "starting") reasons.push("starting: connecting to PostgreSQL and taking the source's lock");
  if (s.last_error) reasons.push("the last step failed and is being retried (see /status and the log)");
  if (s.seconds_since_progress > limits.stallSeconds)
    reasons.push(`no progress for ${Math.round(s.seconds_since_progress)} s (stall timeout ${limits.stallSeconds} s)`);
  // The lag is a promise only once streaming: during the snapshot and catch-up it is expected to be large.
  if (s.phase === "streaming" && s.lag_seconds !== null && s.lag_seconds > limits.maxLagSeconds)
    reasons.push(`lag ${s.lag_seconds} s is above max-lag ${limits.maxLagSeconds} s`);
  // After the cutover the promise is the way back's: SQLite follows PostgreSQL within max-lag.
  if (s.phase === "fallback" && s.fallback_lag_seconds != null && s.fallback_lag_seconds > limits.maxLagSeconds)
    reasons.push(`fallback lag ${s.fallback_lag_seconds} s is above max-lag ${limits.maxLagSeconds} s`);
  return { ok: reasons.length === 0, reasons };
}

/**
 * The daemon's local HTTP endpoint: `/metrics` (Prometheus), `/healthz`
 * (200 while the daemon does its job in its role, 503 otherwise, with the
 * reasons) and `/status` (JSON). Nothing secret is exposed: no connection
 * strings, no values.
 */
export async function startHttp(
  listen: ListenAddress,
  read: () => LiveStatus,
  opts: { limits: () => HealthLimits; metrics: DaemonMetrics; log: Logger },
): Promise<Server> {
  const { registry } = opts.metrics;
  const { host, port } = listen;
  const server = createServer((req, res) => {
    void (async () => {
      try {
        const s = read();
        const path = (req.url ?? "/").split("?")[0];
        if (path === "/metrics") {
          opts.metrics.update(s);
          const body = await registry.metrics(); // before the head: a failure still answers 500
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(body);
        } else if (path === "/healthz") {
          const limits = opts.limits();
          const h = health(s, limits);
          res.writeHead(h.ok ? 200 : 503, { "content-type": "application/json" });
          res.end(
            `${JSON.stringify({
              ok: h.ok,
              role: s.role,
              phase: s.phase,
              lag_changes: s.lag_changes,
              lag_seconds: s.lag_seconds,
              max_lag_seconds: limits.maxLagSeconds,
              failing: Boolean(s.last_error),
              seconds_since_progress: s.seconds_since_progress,
              snapshot_ratio: snapshotRatio(s),
              reasons: h.reasons,
            })}\n`,
          );
        } else if (path === "/status") {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(`${JSON.stringify({ ...s, snapshot_ratio: snapshotRatio(s) })}\n`);
        } else {
          res.writeHead(404).end();
        }
      } catch (e) {
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end(`status unavailable: ${(e as Error).message}\n`);
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
