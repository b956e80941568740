// Shared description of the benchmark schema: the SQLite DDL used by
// generate.mjs and the equivalent hand-written Postgres DDL / CSV export
// queries used by the "raw pipe" and "pg COPY" baselines in migrate.mjs.

export const TABLES = ['users', 'orders', 'events'];

// Rows per table at scale 1 (~600 MB SQLite file).
export const BASE_ROWS = { users: 1_000_000, orders: 2_000_000, events: 2_000_000 };

export const rowsAt = (scale) =>
  Object.fromEntries(Object.entries(BASE_ROWS).map(([t, n]) => [t, Math.max(1, Math.round(n * scale))]));

export const SQLITE_DDL = `
CREATE TABLE users (
  id         INTEGER PRIMARY KEY,
  email      TEXT NOT NULL,
  name       TEXT,
  created_at DATETIME NOT NULL,
  is_active  BOOLEAN NOT NULL DEFAULT 1,
  balance    REAL,
  avatar     BLOB
);
CREATE TABLE orders (
  id         INTEGER PRIMARY KEY,
  user_id    INTEGER REFERENCES users(id),
  amount     NUMERIC(10,2) NOT NULL,
  status     TEXT NOT NULL,
  note       TEXT,
  created_at DATETIME NOT NULL
);
CREATE TABLE events (
  ts      INTEGER NOT NULL,
  kind    TEXT NOT NULL,
  payload TEXT,
  value   REAL
);`;

// Created after the bulk load (as a real app would have them).
export const SQLITE_INDEXES = `
CREATE UNIQUE INDEX users_email_key ON users(email);
CREATE INDEX orders_user_id_idx ON orders(user_id);
CREATE INDEX events_ts_idx ON events(ts);`;

// Hand-written Postgres equivalent for the raw pipe (no keys: added after load).
export const PG_DDL = `
CREATE TABLE users (
  id bigint NOT NULL, email text NOT NULL, name text, created_at timestamp NOT NULL,
  is_active boolean NOT NULL DEFAULT true, balance double precision, avatar bytea);
CREATE TABLE orders (
  id bigint NOT NULL, user_id bigint, amount numeric(10,2) NOT NULL, status text NOT NULL,
  note text, created_at timestamp NOT NULL);
CREATE TABLE events (
  ts bigint NOT NULL, kind text NOT NULL, payload text, value double precision);`;

// Keys/indexes added after the load, per table (run in this order per table;
// the FK needs users' primary key, so it is a separate final step).
export const PG_POST = {
  users: ['ALTER TABLE users ADD PRIMARY KEY (id)', 'CREATE UNIQUE INDEX users_email_key ON users(email)'],
  orders: ['ALTER TABLE orders ADD PRIMARY KEY (id)', 'CREATE INDEX orders_user_id_idx ON orders(user_id)'],
  events: ['CREATE INDEX events_ts_idx ON events(ts)'],
};
export const PG_POST_FINAL = ['ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users(id)'];

// CSV export queries for `sqlite3 -csv`. Notes (checked with sqlite3 3.40):
//  * REAL values are printed with only 15 significant digits by the CLI, so
//    doubles are exported with printf('%!.17g') (plain '%.17g' caps at 16);
//    printf(NULL) would give '' (not NULL), hence the CASE.
//  * BLOBs are printed as raw bytes and cut at the first NUL, so they are
//    exported as '\x' || hex(blob), which Postgres' bytea input parses.
//  * NULL is printed as an empty unquoted field and '' as "" (quoted), which is
//    exactly how COPY ... csv tells NULL from the empty string.
//  * BOOLEAN 0/1 is accepted by Postgres' boolean input as-is.
const real = (c) => `CASE WHEN ${c} IS NULL THEN NULL ELSE printf('%!.17g', ${c}) END`;
export const EXPORT_SQL = {
  users: `SELECT id, email, name, created_at, is_active, ${real('balance')},
            CASE WHEN avatar IS NULL THEN NULL ELSE '\\x' || hex(avatar) END FROM users`,
  orders: 'SELECT id, user_id, amount, status, note, created_at FROM orders',
  events: `SELECT ts, kind, payload, ${real('value')} FROM events`,
};
