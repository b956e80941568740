import Database from "better-sqlite3";

/**
 * A small shop database with the values that trip one-shot loaders:
 * 64-bit ids, doubles that single precision would round, -0.0 and
 * infinities, text with tabs, newlines, backslashes and emoji, blobs with
 * NUL bytes, ISO datetimes, 0/1 booleans, numeric(10,2) prices, a composite
 * key, a table without a key (with duplicate rows) and an AUTOINCREMENT
 * table whose highest ids were deleted.
 */
export function createSampleDatabase(path: string, orders = 20000): void {
  const db = new Database(path);
  try {
    db.pragma("journal_mode = WAL");
    db.exec(`
      CREATE TABLE customers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        email TEXT NOT NULL UNIQUE,
        name TEXT,
        created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
        is_active BOOLEAN NOT NULL DEFAULT 1,
        balance REAL,
        avatar BLOB
      );
      CREATE TABLE products (sku TEXT PRIMARY KEY, title TEXT NOT NULL, price NUMERIC(10,2) NOT NULL CHECK (price >= 0)) WITHOUT ROWID;
      CREATE TABLE orders (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
        placed_at DATETIME NOT NULL,
        note TEXT,
        big_counter INTEGER
      );
      CREATE TABLE order_lines (
        order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
        sku TEXT NOT NULL REFERENCES products(sku),
        qty INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (order_id, sku)
      );
      CREATE TABLE audit_log (at INTEGER, event TEXT, detail TEXT);
      CREATE INDEX orders_by_customer ON orders(customer_id, placed_at DESC);
    `);
    let seed = 42;
    const rnd = () => {
      seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0;
      return ((seed >>> 0) % 1_000_000) / 1_000_000;
    };
    const notes = ["tab\there", "line\nbreak", "back\\slash", "quote ' and \"", "emoji 🚀 ünïcödé", "", "plain"];
    const specialReals = [0.1 + 0.2, -0.0, 1e308, 5e-324, Infinity, -Infinity, 7717.84260030836];
    const load = db.transaction(() => {
      const c = db.prepare("INSERT INTO customers (email, name, created_at, is_active, balance, avatar) VALUES (?, ?, ?, ?, ?, ?)");
      const customers = Math.max(10, Math.floor(orders / 4));
      for (let i = 1; i <= customers; i++) {
        const day = new Date(Date.UTC(2020, 0, 1) + Math.floor(rnd() * 1.5e11)).toISOString().replace("T", " ").slice(0, 19);
        const balance = i <= specialReals.length ? specialReals[i - 1] : rnd() * 10000 - 5000;
        const avatar = i % 3 === 0 ? Buffer.from([0, i & 255, 10, 13, 92, 0]) : null;
        c.run(`user${i}@example.com`, `Customer ${i} ${notes[i % notes.length]}`, day, i % 5 ? 1 : 0, balance, avatar);
      }
      const p = db.prepare("INSERT INTO products VALUES (?, ?, ?)");
      for (let i = 1; i <= 50; i++) p.run(`SKU-${String(i).padStart(3, "0")}`, `Product ${i}`, Math.round(rnd() * 10000) / 100);
      const o = db.prepare("INSERT INTO orders VALUES (?, ?, ?, ?, ?)");
      const l = db.prepare("INSERT INTO order_lines VALUES (?, ?, ?)");
      for (let i = 1; i <= orders; i++) {
        const id = i === orders ? 9007199254740993n : BigInt(i); // beyond 2^53
        o.run(
          id,
          1 + Math.floor(rnd() * customers),
          new Date(Date.UTC(2021, 0, 1) + Math.floor(rnd() * 1e11)).toISOString().replace("T", " ").slice(0, 23),
          notes[i % notes.length],
          i % 7 === 0 ? 9223372036854775807n - BigInt(i) : i,
        );
        l.run(id, `SKU-${String(1 + (i % 50)).padStart(3, "0")}`, 1 + (i % 4));
      }
      const a = db.prepare("INSERT INTO audit_log VALUES (?, ?, ?)");
      for (let i = 0; i < orders / 2; i++) a.run(1700000000 + (i % 1000), "order placed", i % 10 === 0 ? "duplicate" : `order ${i}`);
      db.prepare("DELETE FROM customers WHERE id > ?").run(customers - 3); // sqlite_sequence stays ahead of max(id)
    });
    load();
  } finally {
    db.close();
  }
}
