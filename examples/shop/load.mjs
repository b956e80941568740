#!/usr/bin/env node
/**
 * A load generator for the shop: a steady request rate, open loop (requests
 * go out on schedule whether or not earlier ones have answered, so a stall
 * of the server shows as latency instead of being hidden by a waiting
 * client), over keep-alive connections.
 *
 *   node examples/shop/load.mjs --url http://127.0.0.1:8080 [--rate 200] [--duration 30]
 *        [--post-ratio 0.5] [--customers 1000] [--products 50] [--out load.json] [--pg URL] [--run-id ID] [--progress]
 *
 * The mix: a POST /orders with a unique request_id (`<run id>-<n>`; --run-id
 * sets the prefix, default a random one) and 1–4 lines, or a GET
 * /orders/:id of an order this run placed (checked: the same request_id and
 * lines). Every request's start (epoch ms), latency,
 * status and outcome is recorded; a failure is a network error, a timeout,
 * an unexpected status, or a GET that does not return the order as it was
 * acknowledged.
 *
 * It runs for --duration seconds (0: until SIGTERM or SIGINT), then waits
 * for the requests under way, asks the shop's /health when it switched,
 * and with --pg reads the cutover's freeze from `sqlite2pg.state`
 * (frozen_at, freeze_ms), to split the latencies into windows:
 *   before  requests that ended before SQLite froze
 *   during  requests that overlapped the freeze, from SQLite's freeze to the
 *           later of the PostgreSQL commit and the moment the shop switched
 *   after   requests that started after that
 * It prints the summary (JSON) on stdout, writes it with every acknowledged
 * order, every failure and every request to --out, and exits 0 when no
 * request failed, 1 otherwise (2: bad flags).
 *
 * As a module: startLoad(options) → { stop(), progress() }, health(),
 * freezeWindow(), splitWindows(), latency(), summarize();
 * bench/shop-cutover.mjs uses them.
 */
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import http from "node:http";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";

/** Epoch milliseconds, sub-millisecond, on a monotonic base. */
const now = () => performance.timeOrigin + performance.now();

/** One HTTP request: resolves { status, body } or rejects on a network error or timeout. */
function request(agent, base, method, path, body, timeoutMs) {
  return new Promise((done, fail) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      new URL(path, base),
      {
        method,
        agent,
        headers: payload === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed = null;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = { raw: text.slice(0, 500) };
          }
          done({ status: res.statusCode, body: parsed });
        });
        res.on("error", fail);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", fail);
    req.end(payload);
  });
}

/** A seeded PRNG (mulberry32), so a run's mix can be repeated. */
function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Start sending. Options: url (the shop), rate (requests/s, default 200),
 * postRatio (default 0.5), customers and products (the ids to pick from,
 * as setup.mjs made them; default 1000 and 50), runId (the request_id
 * prefix; default a random one), seed, timeoutMs (per request, default
 * 30000), onProgress(progress) once a second.
 * Returns { runId, progress(), stop() }; stop() resolves with the result.
 */
export function startLoad(o) {
  const rate = o.rate ?? 200;
  const postRatio = o.postRatio ?? 0.5;
  const customers = o.customers ?? 1000;
  const products = o.products ?? 50;
  const timeoutMs = o.timeoutMs ?? 30_000;
  const runId = o.runId ?? randomUUID().slice(0, 8);
  const random = prng(o.seed ?? 1);
  const pick = (n) => 1 + Math.floor(random() * n);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const interval = 1000 / rate;
  const startedAt = now();
  const requests = [];
  const acknowledged = [];
  const failures = [];
  const inFlight = new Set();
  let sent = 0;
  let posts = 0;
  let stopped = false;
  let timer = null;
  let maxLagMs = 0;

  const record = (r, extra) => {
    const rec = { t: r.t, ms: +(now() - r.t).toFixed(3), kind: r.kind, ...extra };
    requests.push(rec);
    return rec;
  };

  const fail = (r, status, error) => {
    const rec = record(r, { status, ok: false });
    failures.push({ ...rec, request_id: r.requestId, order_id: r.orderId, error });
  };

  async function post(r) {
    const n = ++posts;
    const lines = Array.from({ length: pick(4) }, () => ({ product_id: pick(products), qty: pick(5) }));
    r.requestId = `${runId}-${n}`;
    const res = await request(agent, o.url, "POST", "/orders", { customer_id: pick(customers), lines, request_id: r.requestId }, timeoutMs);
    if (res.status !== 201 || res.body?.id === undefined)
      return fail(r, res.status, `POST /orders answered ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
    const rec = record(r, { status: res.status, ok: true });
    acknowledged.push({ request_id: r.requestId, id: res.body.id, lines, t: rec.t, ms: rec.ms });
  }

  async function get(r, order) {
    r.requestId = order.request_id;
    r.orderId = order.id;
    const res = await request(agent, o.url, "GET", `/orders/${order.id}`, undefined, timeoutMs);
    if (res.status !== 200)
      return fail(r, res.status, `GET /orders/${order.id} (acknowledged) answered ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
    const b = res.body;
    const same =
      b.request_id === order.request_id &&
      Array.isArray(b.lines) &&
      b.lines.length === order.lines.length &&
      b.lines.every((l, i) => Number(l.product_id) === order.lines[i].product_id && Number(l.qty) === order.lines[i].qty);
    if (!same) return fail(r, res.status, `GET /orders/${order.id} is not the order acknowledged for ${order.request_id}: ${JSON.stringify(b).slice(0, 300)}`);
    record(r, { status: res.status, ok: true });
  }

  function fire(scheduled) {
    sent++;
    // A GET of an order this run placed (the newest ones half of the time), else a POST.
    const useGet = acknowledged.length > 0 && random() >= postRatio;
    let order = null;
    if (useGet) {
      const k = random() < 0.5 ? Math.max(0, acknowledged.length - 20) : 0;
      order = acknowledged[k + Math.floor(random() * (acknowledged.length - k))];
    }
    const r = { t: now(), kind: useGet ? "get" : "post", requestId: undefined, orderId: undefined };
    maxLagMs = Math.max(maxLagMs, r.t - scheduled);
    const p = (useGet ? get(r, order) : post(r)).catch((e) => fail(r, null, `${r.kind.toUpperCase()} failed: ${e.message}`));
    inFlight.add(p);
    p.finally(() => inFlight.delete(p));
  }

  // Open loop: request k goes out at start + k / rate, however the earlier ones fare.
  function tick() {
    if (stopped) return;
    const t = now();
    while (startedAt + sent * interval <= t) fire(startedAt + sent * interval);
    timer = setTimeout(tick, Math.max(0, startedAt + sent * interval - now()));
  }
  tick();

  const progressTimer = o.onProgress ? setInterval(() => o.onProgress(progress()), 1000) : null;
  progressTimer?.unref();

  function progress() {
    return { runId, sent, done: requests.length, in_flight: inFlight.size, acknowledged: acknowledged.length, failed: failures.length };
  }

  async function stop() {
    stopped = true;
    clearTimeout(timer);
    if (progressTimer) clearInterval(progressTimer);
    const stoppedAt = now();
    while (inFlight.size) await Promise.allSettled([...inFlight]);
    agent.destroy();
    return {
      run_id: runId,
      url: o.url,
      rate,
      post_ratio: postRatio,
      started_at: new Date(startedAt).toISOString(),
      stopped_at: new Date(stoppedAt).toISOString(),
      seconds: +((stoppedAt - startedAt) / 1000).toFixed(3),
      max_schedule_lag_ms: +maxLagMs.toFixed(3),
      requests: requests.sort((a, b) => a.t - b.t),
      acknowledged,
      failures,
    };
  }

  return { runId, progress, stop };
}

/** The shop's /health (its dialect and when it switched), or null when it does not answer. */
export async function health(url) {
  const agent = new http.Agent({ keepAlive: false });
  try {
    const r = await request(agent, url, "GET", "/health", undefined, 10_000);
    return r.status === 200 ? r.body : null;
  } catch {
    return null;
  } finally {
    agent.destroy();
  }
}

/** The cutover's freeze as the daemon recorded it in `sqlite2pg.state` (the newest cutover in that database), or null before one. */
export async function freezeWindow(pgUrl) {
  const c = new pg.Client({ connectionString: pgUrl });
  await c.connect();
  try {
    const r = await c.query(
      "SELECT phase, frozen_at, cutover_at, freeze_ms FROM sqlite2pg.state WHERE cutover_at IS NOT NULL AND frozen_at IS NOT NULL ORDER BY cutover_at DESC LIMIT 1",
    );
    const s = r.rows[0];
    if (!s) return null;
    return { phase: s.phase, frozen_at: s.frozen_at.toISOString(), cutover_at: s.cutover_at.toISOString(), freeze_ms: s.freeze_ms };
  } finally {
    await c.end();
  }
}

/** Nearest-rank percentile of ascending numbers. */
function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Latency of some requests: count, failures, p50/p95/p99/max in ms (nearest rank). */
export function latency(reqs) {
  const ms = reqs.map((r) => r.ms).sort((a, b) => a - b);
  const r1 = (v) => (v === null ? null : +v.toFixed(1));
  return {
    requests: reqs.length,
    failed: reqs.filter((r) => !r.ok).length,
    p50_ms: r1(percentile(ms, 50)),
    p95_ms: r1(percentile(ms, 95)),
    p99_ms: r1(percentile(ms, 99)),
    max_ms: r1(ms.length ? ms[ms.length - 1] : null),
  };
}

/**
 * Split requests around the freeze: `before` ended before SQLite froze,
 * `during` overlapped [frozen_at, the later of the PostgreSQL commit
 * (frozen_at + freeze_ms) and the shop's switch], `after` started after it.
 * Null without a recorded freeze.
 */
export function splitWindows(requests, freeze, switchedAt = null) {
  if (!freeze?.frozen_at || freeze.freeze_ms === null || freeze.freeze_ms === undefined) return null;
  const from = Date.parse(freeze.frozen_at);
  const committed = from + freeze.freeze_ms;
  const to = Math.max(committed, switchedAt ? Date.parse(switchedAt) : committed);
  return {
    from,
    committed,
    to,
    before: requests.filter((r) => r.t + r.ms < from),
    during: requests.filter((r) => r.t < to && r.t + r.ms >= from),
    after: requests.filter((r) => r.t >= to),
  };
}

/**
 * The summary of a run: counts, latency overall and (given the freeze and
 * the shop's switch time) before / during / after the freeze, and whether
 * p99 during the freeze stayed within `targetMs` (default 100) of p99 before.
 */
export function summarize(result, { freeze = null, switchedAt = null, targetMs = 100 } = {}) {
  const reqs = result.requests;
  const out = {
    run_id: result.run_id,
    rate: result.rate,
    seconds: result.seconds,
    requests: reqs.length,
    posts: reqs.filter((r) => r.kind === "post").length,
    gets: reqs.filter((r) => r.kind === "get").length,
    acknowledged_posts: result.acknowledged.length,
    failed: result.failures.length,
    achieved_rate: result.seconds > 0 ? +(reqs.length / result.seconds).toFixed(1) : null,
    max_schedule_lag_ms: result.max_schedule_lag_ms,
    overall: latency(reqs),
  };
  const w = splitWindows(reqs, freeze, switchedAt);
  if (w) {
    out.freeze = {
      frozen_at: freeze.frozen_at,
      freeze_ms: freeze.freeze_ms,
      committed_at: new Date(w.committed).toISOString(),
      shop_switched_at: switchedAt,
      window_ms: +(w.to - w.from).toFixed(1),
    };
    out.windows = { before: latency(w.before), during: latency(w.during), after: latency(w.after) };
    const b = out.windows.before.p99_ms;
    const d = out.windows.during.p99_ms;
    out.target = {
      what: `p99 during the freeze ≤ ${targetMs} ms above p99 before it`,
      during_minus_before_p99_ms: b === null || d === null ? null : +(d - b).toFixed(1),
      met: b === null || d === null ? null : d - b <= targetMs,
    };
  }
  return out;
}

async function main() {
  const USAGE =
    "usage: node examples/shop/load.mjs --url URL [--rate 200] [--duration S (0: until SIGTERM)] [--post-ratio 0.5] [--customers 1000] [--products 50] [--out FILE] [--pg URL] [--run-id ID] [--progress]";
  let v;
  try {
    ({ values: v } = parseArgs({
      options: {
        url: { type: "string" },
        rate: { type: "string", default: "200" },
        duration: { type: "string", default: "0" },
        "post-ratio": { type: "string", default: "0.5" },
        customers: { type: "string", default: "1000" },
        products: { type: "string", default: "50" },
        out: { type: "string" },
        pg: { type: "string" },
        "run-id": { type: "string" },
        progress: { type: "boolean", default: false },
      },
    }));
  } catch (e) {
    console.error(`${e.message}\n${USAGE}`);
    process.exit(2);
  }
  const num = (k, ok) => {
    const n = Number(v[k]);
    if (!ok(n)) {
      console.error(`bad --${k} ${JSON.stringify(v[k])}\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  if (!v.url) {
    console.error(`--url is required\n${USAGE}`);
    process.exit(2);
  }
  const load = startLoad({
    url: v.url,
    rate: num("rate", (n) => n > 0),
    postRatio: num("post-ratio", (n) => n >= 0 && n <= 1),
    customers: num("customers", (n) => Number.isInteger(n) && n >= 1),
    products: num("products", (n) => Number.isInteger(n) && n >= 1),
    runId: v["run-id"],
    onProgress: v.progress ? (p) => console.error(JSON.stringify(p)) : undefined,
  });
  const duration = num("duration", (n) => n >= 0);
  console.error(JSON.stringify({ started: load.runId, url: v.url }));
  await new Promise((done) => {
    if (duration > 0) setTimeout(done, duration * 1000);
    process.once("SIGTERM", done);
    process.once("SIGINT", done);
  });
  const result = await load.stop();
  const h = await health(v.url);
  let freeze = null;
  if (v.pg) {
    freeze = await freezeWindow(v.pg).catch((e) => {
      console.error(`reading the freeze from sqlite2pg.state: ${e.message}`);
      return null;
    });
  }
  const summary = summarize(result, { freeze, switchedAt: h?.switched_at ?? null });
  summary.health = h;
  if (v.out) writeFileSync(v.out, JSON.stringify({ summary, ...result }));
  console.log(JSON.stringify(summary, null, 2));
  process.exit(summary.failed === 0 ? 0 : 1);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
