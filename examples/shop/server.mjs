#!/usr/bin/env node
/**
 * The shop: a small HTTP service on node:http whose database handle is a
 * `SwitchingDatabase`. It starts on the SQLite file that `sqlite2pg init`
 * captured and, when the daemon cuts over, follows the data to PostgreSQL by
 * itself: no restart, no failed request, no order lost or made twice.
 *
 *   SHOP_SQLITE=shop.db DATABASE_URL=postgres://… PORT=8080 node examples/shop/server.mjs
 *
 * Configuration (environment):
 *   SHOP_SQLITE          the SQLite file (default ./shop.db), created by setup.mjs
 *   DATABASE_URL         the PostgreSQL the daemon replicates into (required)
 *   PORT                 the port to listen on (default 8080; 0: any free port)
 *   HOST                 the address to listen on (default 127.0.0.1)
 *   SHOP_FREEZE_WAIT_MS  how long a write is held during the cutover's freeze (default 10000)
 *
 * Endpoints:
 *   POST /orders      {"customer_id": 7, "lines": [{"product_id": 3, "qty": 2}], "request_id": "…", "note"?: "…"}
 *                     → 201 {"id", "request_id"}; the same request_id again → 200 with the same id
 *   GET  /orders/:id  → 200 the order with its lines and total, 404 if there is none
 *   GET  /health      → 200 {"status": "ok", "dialect": "sqlite" | "postgres", "switched_at"}
 *
 * On start it prints one JSON line on stdout, {"listening": {host, port}, "dialect"},
 * and one when the database switches, {"switched": "postgres", "at"}. SIGTERM
 * or SIGINT: stop taking connections, finish the requests under way, close.
 *
 * Inside this repository the library is imported from its build
 * (`npx tsc -p tsconfig.json` makes dist/); an application that installed the
 * package writes `import { SwitchingDatabase } from "sqlite2pg"` instead.
 */
import { createServer } from "node:http";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { FreezeTimeoutError, SwitchingDatabase, UniqueViolationError } from "../../dist/index.js";

const MAX_BODY = 64 * 1024;
const MAX_LINES = 100;

/** An error answered with its status and message (a client's mistake, not the server's). */
class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** JSON with bigint ids (beyond 2^53) as strings. */
function json(res, status, body, headers = {}) {
  const text = JSON.stringify(body, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolveBody, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, `the body is larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolveBody(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

const positiveInt = (v) => Number.isSafeInteger(v) && v > 0;

/** The order a POST asks for, checked; a 400 names what is wrong. */
function parseOrder(text) {
  let o;
  try {
    o = JSON.parse(text);
  } catch {
    throw new HttpError(400, "the body is not JSON");
  }
  if (o === null || typeof o !== "object") throw new HttpError(400, "the body must be a JSON object");
  if (!positiveInt(o.customer_id)) throw new HttpError(400, "customer_id must be a positive integer");
  if (typeof o.request_id !== "string" || o.request_id.length < 1 || o.request_id.length > 200) {
    throw new HttpError(400, "request_id must be a string of 1 to 200 characters (the client's idempotency id)");
  }
  if (!Array.isArray(o.lines) || o.lines.length < 1 || o.lines.length > MAX_LINES) throw new HttpError(400, `lines must be a list of 1 to ${MAX_LINES} lines`);
  for (const l of o.lines) {
    if (l === null || typeof l !== "object" || !positiveInt(l.product_id) || !positiveInt(l.qty) || l.qty > 1000) {
      throw new HttpError(400, "each line must be {product_id: positive integer, qty: 1 to 1000}");
    }
  }
  if (o.note !== undefined && o.note !== null && (typeof o.note !== "string" || o.note.length > 1000))
    throw new HttpError(400, "note must be a string of at most 1000 characters");
  return { customerId: o.customer_id, requestId: o.request_id, lines: o.lines, note: o.note ?? null };
}

/**
 * Place an order: one transaction, the order and its lines. It may run twice
 * (a transaction SQLite refused during the cutover's freeze is run again,
 * whole, on PostgreSQL), so it only reads and writes the database.
 */
function placeOrder(db, order) {
  return db.transaction(async (tx) => {
    const [existing] = await tx.query("SELECT id FROM orders WHERE request_id = ?", [order.requestId]);
    if (existing) return { id: existing.id, created: false };
    const [customer] = await tx.query("SELECT id FROM customers WHERE id = ?", [order.customerId]);
    if (!customer) throw new HttpError(422, `no customer ${order.customerId}`);
    const ids = [...new Set(order.lines.map((l) => l.product_id))];
    const products = await tx.query(`SELECT id, price_cents FROM products WHERE id IN (${ids.map(() => "?").join(", ")})`, ids);
    const price = new Map(products.map((p) => [Number(p.id), p.price_cents]));
    const unknown = ids.filter((id) => !price.has(id));
    if (unknown.length) throw new HttpError(422, `no product ${unknown.join(", ")}`);
    const [row] = await tx.query("INSERT INTO orders (customer_id, placed_at, note, request_id) VALUES (?, ?, ?, ?) RETURNING id", [
      order.customerId,
      new Date().toISOString(),
      order.note,
      order.requestId,
    ]);
    for (const l of order.lines) {
      await tx.execute("INSERT INTO order_lines (order_id, product_id, qty, price_cents) VALUES (?, ?, ?, ?)", [
        row.id,
        l.product_id,
        l.qty,
        price.get(l.product_id),
      ]);
    }
    return { id: row.id, created: true };
  });
}

async function postOrder(db, req, res) {
  const order = parseOrder(await readBody(req));
  let placed;
  try {
    placed = await placeOrder(db, order);
  } catch (e) {
    // The same request_id placed meanwhile by a concurrent request (a client retrying early): that order stands.
    if (!(e instanceof UniqueViolationError)) throw e;
    const [existing] = await db.query("SELECT id FROM orders WHERE request_id = ?", [order.requestId]);
    if (!existing) throw e;
    placed = { id: existing.id, created: false };
  }
  json(res, placed.created ? 201 : 200, { id: placed.id, request_id: order.requestId }, placed.created ? { location: `/orders/${placed.id}` } : {});
}

async function getOrder(db, id, res) {
  const [order] = await db.query("SELECT id, customer_id, placed_at, note, request_id FROM orders WHERE id = ?", [id]);
  if (!order) throw new HttpError(404, `no order ${id}`);
  const lines = await db.query("SELECT product_id, qty, price_cents FROM order_lines WHERE order_id = ? ORDER BY id", [id]);
  const total = lines.reduce((s, l) => s + Number(l.qty) * Number(l.price_cents), 0);
  json(res, 200, { ...order, lines, total_cents: total });
}

/** The shop's request handler over a database handle. */
export function shopHandler(db, state = { switchedAt: null }) {
  return async (req, res) => {
    try {
      const url = new URL(req.url ?? "/", "http://shop");
      const orderPath = /^\/orders\/(\d{1,18})$/.exec(url.pathname);
      if (req.method === "POST" && url.pathname === "/orders") return await postOrder(db, req, res);
      if (req.method === "GET" && orderPath) return await getOrder(db, Number(orderPath[1]), res);
      if (req.method === "GET" && url.pathname === "/health") {
        await db.query("SELECT 1 AS ok");
        return json(res, 200, { status: "ok", dialect: db.dialect, switched_at: state.switchedAt });
      }
      throw new HttpError(404, `no route ${req.method} ${url.pathname}`);
    } catch (e) {
      if (e instanceof HttpError) return json(res, e.status, { error: e.message });
      // Held through the freeze longer than freezeWaitMs: nothing was written, the client may retry.
      if (e instanceof FreezeTimeoutError) return json(res, 503, { error: e.message, retryable: true }, { "retry-after": "1" });
      console.error(JSON.stringify({ error: e?.message ?? String(e), kind: e?.kind, code: e?.code, method: req.method, url: req.url }));
      return json(res, 500, { error: "internal error" });
    }
  };
}

async function main() {
  const sqlite = resolve(process.env.SHOP_SQLITE ?? "shop.db");
  const pgUrl = process.env.DATABASE_URL;
  if (!pgUrl) {
    console.error("DATABASE_URL must name the PostgreSQL that sqlite2pg replicates into");
    process.exit(2);
  }
  const port = Number(process.env.PORT ?? 8080);
  const freezeWaitMs = process.env.SHOP_FREEZE_WAIT_MS === undefined ? undefined : Number(process.env.SHOP_FREEZE_WAIT_MS);
  if (!Number.isInteger(port) || port < 0 || port > 65535 || (freezeWaitMs !== undefined && !(freezeWaitMs > 0))) {
    console.error("PORT must be a port number (0: any free one) and SHOP_FREEZE_WAIT_MS a number of milliseconds above 0");
    process.exit(2);
  }
  const state = { switchedAt: null };
  const db = new SwitchingDatabase({
    sqlite,
    pg: { primary: pgUrl, pool: { max: 10 } },
    freezeWaitMs,
    onSwitch: (to) => {
      state.switchedAt = new Date().toISOString();
      console.log(JSON.stringify({ switched: to, at: state.switchedAt }));
    },
  });
  await db.ready(); // connect and learn where the data lives before taking requests
  const server = createServer(shopHandler(db, state));
  server.keepAliveTimeout = 10_000;
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close(() => {
      db.close().then(
        () => process.exit(0),
        (e) => {
          console.error(`closing the database: ${e.message}`);
          process.exit(1);
        },
      );
    });
    server.closeIdleConnections();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  server.listen(port, process.env.HOST ?? "127.0.0.1", () => {
    const a = server.address();
    console.log(JSON.stringify({ listening: { host: a.address, port: a.port }, dialect: db.dialect }));
  });
}

// Run as a program (not when imported for its handler).
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e) => {
    console.error(`the shop could not start: ${e.message}`);
    process.exit(1);
  });
}
