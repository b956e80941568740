-- The shop's schema, SQLite. `setup.mjs` runs it on a new file (in WAL mode) and seeds it;
-- `sqlite2pg init` then captures every table and the daemon replicates them into PostgreSQL.
-- Statements must stay valid on both backends after the cutover: `?` placeholders only,
-- nothing SQLite-specific in the application's queries.

CREATE TABLE products (
  id          INTEGER PRIMARY KEY,
  sku         TEXT NOT NULL UNIQUE,
  name        TEXT NOT NULL,
  price_cents INTEGER NOT NULL CHECK (price_cents >= 0)
);

CREATE TABLE customers (
  id    INTEGER PRIMARY KEY,
  name  TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE
);

-- request_id: the client's idempotency id. A POST sent again with the same id
-- (a retry after a timeout) finds the order it already made instead of making a second one.
CREATE TABLE orders (
  id          INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers (id),
  placed_at   TEXT NOT NULL,
  note        TEXT,
  request_id  TEXT NOT NULL UNIQUE
);
CREATE INDEX orders_customer ON orders (customer_id);

CREATE TABLE order_lines (
  id          INTEGER PRIMARY KEY,
  order_id    INTEGER NOT NULL REFERENCES orders (id),
  product_id  INTEGER NOT NULL REFERENCES products (id),
  qty         INTEGER NOT NULL CHECK (qty > 0),
  price_cents INTEGER NOT NULL
);
CREATE INDEX order_lines_order ON order_lines (order_id);
