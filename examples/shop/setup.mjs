#!/usr/bin/env node
/**
 * Create the shop's SQLite file: schema.sql, in WAL mode, seeded with
 * products, customers and some past orders (deterministic: the same flags
 * give the same rows).
 *
 *   node examples/shop/setup.mjs [--sqlite shop.db] [--products 50] [--customers 1000] [--orders 2000] [--force]
 *
 * The file comes from --sqlite, else SHOP_SQLITE, else ./shop.db. An
 * existing file is refused unless --force (which replaces it, with its
 * -wal and -shm files). Prints one JSON line: the file and the row counts.
 */
import Database from "better-sqlite3";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";

const USAGE = "usage: node examples/shop/setup.mjs [--sqlite FILE] [--products N] [--customers N] [--orders N] [--force]";

function count(values, name, dflt) {
  if (values[name] === undefined) return dflt;
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a whole number ≥ 0, not ${JSON.stringify(values[name])}\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      sqlite: { type: "string" },
      products: { type: "string" },
      customers: { type: "string" },
      orders: { type: "string" },
      force: { type: "boolean", default: false },
    },
  }));
} catch (e) {
  console.error(`${e.message}\n${USAGE}`);
  process.exit(2);
}
const file = resolve(values.sqlite ?? process.env.SHOP_SQLITE ?? "shop.db");
const products = count(values, "products", 50);
const customers = count(values, "customers", 1000);
const orders = count(values, "orders", 2000);
if (orders > 0 && (products < 1 || customers < 1)) {
  console.error(`orders need at least one product and one customer\n${USAGE}`);
  process.exit(2);
}

if (existsSync(file)) {
  if (!values.force) {
    console.error(`${file} exists: pass --force to replace it`);
    process.exit(1);
  }
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
}

// A small seeded PRNG (mulberry32): the same flags give the same file contents.
let seed = 20261201;
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (n) => 1 + Math.floor(random() * n);

const db = new Database(file);
db.pragma("journal_mode = WAL");
db.exec(readFileSync(new URL("schema.sql", import.meta.url), "utf8"));
const addProduct = db.prepare("INSERT INTO products (id, sku, name, price_cents) VALUES (?, ?, ?, ?)");
const addCustomer = db.prepare("INSERT INTO customers (id, name, email) VALUES (?, ?, ?)");
const addOrder = db.prepare("INSERT INTO orders (id, customer_id, placed_at, note, request_id) VALUES (?, ?, ?, ?, ?)");
const addLine = db.prepare("INSERT INTO order_lines (order_id, product_id, qty, price_cents) VALUES (?, ?, ?, ?)");
const priceOf = [];
let lines = 0;
db.transaction(() => {
  for (let i = 1; i <= products; i++) {
    const price = 100 + Math.floor(random() * 9900);
    priceOf[i] = price;
    addProduct.run(i, `SKU-${String(i).padStart(5, "0")}`, `Product ${i}`, price);
  }
  for (let i = 1; i <= customers; i++) addCustomer.run(i, `Customer ${i}`, `customer${i}@example.com`);
  const start = Date.parse("2026-01-01T00:00:00Z");
  for (let i = 1; i <= orders; i++) {
    const placedAt = new Date(start + i * 60_000 + Math.floor(random() * 60_000)).toISOString();
    addOrder.run(i, pick(customers), placedAt, random() < 0.3 ? `gift wrap, order ${i}` : null, `seed-${i}`);
    const n = pick(4);
    for (let k = 0; k < n; k++) {
      const p = pick(products);
      addLine.run(i, p, pick(5), priceOf[p]);
      lines++;
    }
  }
})();
db.pragma("wal_checkpoint(TRUNCATE)");
db.close();
console.log(JSON.stringify({ file, products, customers, orders, order_lines: lines }));
