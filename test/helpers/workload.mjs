/**
 * A seeded random workload for a live SQLite database, as an application
 * would write it: inserts, updates (also of keys), deletes, INSERT OR
 * REPLACE, upserts, key swaps, bulk statements, multi-table and rolled-back
 * transactions, over three tables: an INTEGER PRIMARY KEY table (with a
 * UNIQUE text column, so REPLACE also deletes rows other than the one with
 * the new row's key, and unique values swap between rows), a WITHOUT ROWID
 * table with a composite (text, integer) key, and a table without any key
 * (duplicates allowed). Every statement is one that cannot fail (OR IGNORE,
 * OR REPLACE, keys picked free), so the writer only ever sees SQLITE_BUSY.
 *
 * Deterministic: transaction number i draws from its own PRNG seeded by
 * (seed, i), so a retried transaction does the same thing, and the same seed
 * gives the same sequence of committed transactions and the same data.
 *
 * Plain JavaScript (ESM) because it also runs in a child process
 * (workload-writer.mjs) with plain `node`.
 */

const SCHEMA_SQL = `
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, data BLOB, code TEXT UNIQUE);
CREATE TABLE stock (sku TEXT NOT NULL, bin INTEGER NOT NULL, qty INTEGER NOT NULL, note TEXT, PRIMARY KEY (sku, bin)) WITHOUT ROWID;
CREATE TABLE events (kind TEXT, amount REAL, n INTEGER);
`;

/** sfc32 seeded through splitmix32: a small, fast, well-mixed PRNG. */
export function prng(seed) {
  let s = seed >>> 0;
  const mix = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = mix(),
    b = mix(),
    c = mix(),
    d = mix();
  const next = () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    const r = (t + d) | 0;
    c = (c + r) | 0;
    return (r >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  const r = {
    /** [0, 1) */
    next,
    /** integer in [lo, hi] */
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    chance: (p) => next() < p,
    /** weighted choice: [[weight, value], …] */
    weighted: (pairs) => {
      const total = pairs.reduce((s, [w]) => s + w, 0);
      let x = next() * total;
      for (const [w, v] of pairs) {
        x -= w;
        if (x < 0) return v;
      }
      return pairs[pairs.length - 1][1];
    },
  };
  return r;
}

/** A seed for transaction `i` of the workload seeded `seed`. */
function txSeed(seed, i) {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca77)) >>> 0;
}

const WORDS = [
  "widget",
  "gadget",
  "tab\there",
  "line\nbreak",
  "back\\slash",
  "\\N",
  "quote ' \"",
  "emoji 🚀",
  "ünïcödé",
  "",
  " lead",
  "trail ",
  "\u0001ctl",
  "日本語",
  "semi;colon",
  "comma,",
  "pct%_",
];

function text(r) {
  const n = r.int(1, 3);
  const parts = [];
  for (let i = 0; i < n; i++) parts.push(r.pick(WORDS));
  return `${parts.join(" ")} ${r.int(0, 99999)}`;
}

function real(r) {
  return r.weighted([
    [50, () => (r.next() - 0.5) * 10 ** r.int(-3, 9)],
    [5, () => 0.1 + 0.2],
    [3, () => -0],
    [2, () => Infinity],
    [2, () => -Infinity],
    [2, () => 5e-324],
    [2, () => 1.7976931348623157e308],
    [4, () => r.int(-1000, 1000)],
    [6, () => null],
  ])();
}

function blob(r) {
  return r.weighted([
    [
      60,
      () => {
        const b = Buffer.alloc(r.int(1, 48));
        for (let i = 0; i < b.length; i++) b[i] = r.int(0, 255);
        return b;
      },
    ],
    [5, () => Buffer.alloc(0)],
    [5, () => Buffer.from([0, 0, 92, 78, 10, 13, 9])],
    [10, () => null],
  ])();
}

const BIG_BINS = [9007199254740993n, -9223372036854775808n, 9223372036854775807n, 4294967296n, -1n];

function bin(r) {
  return r.chance(0.03) ? r.pick(BIG_BINS) : BigInt(r.int(0, 40));
}

function sku(r) {
  return `SKU-${String(r.int(0, 2999)).padStart(4, "0")}${r.chance(0.1) ? " ✓" : ""}`;
}

function code(r) {
  return `C-${String(r.int(0, 299)).padStart(3, "0")}`;
}

const KINDS = ["click", "view", "buy", "refund", "tab\tkind", "ünï"];

/** Fill a fresh database (schema included) with `counts` rows, deterministically. */
export function populate(db, seed, counts = { items: 1000, stock: 500, events: 500 }) {
  db.exec(SCHEMA_SQL);
  const r = prng(seed ^ 0x5eed);
  const insItem = db.prepare("INSERT INTO items (id, name, price, data, code) VALUES (?, ?, ?, ?, ?)");
  const insStock = db.prepare("INSERT OR IGNORE INTO stock (sku, bin, qty, note) VALUES (?, ?, ?, ?)");
  const insEvent = db.prepare("INSERT INTO events (kind, amount, n) VALUES (?, ?, ?)");
  db.transaction(() => {
    let id = 0;
    let codes = 0;
    for (let i = 0; i < counts.items; i++) {
      id += r.int(1, 3);
      const c = codes < 300 && r.chance(0.05) ? `C-${String(codes++).padStart(3, "0")}` : null;
      insItem.run(id, text(r), real(r), blob(r), c);
    }
    for (let i = 0; i < counts.stock; i++) insStock.run(sku(r), bin(r), r.int(-1000, 100000), r.chance(0.3) ? null : text(r));
    for (let i = 0; i < counts.events; i++) {
      const row = [r.pick(KINDS), real(r), r.int(0, 20)];
      const dups = r.chance(0.1) ? r.int(2, 4) : 1;
      for (let k = 0; k < dups; k++) insEvent.run(...row);
    }
  }).immediate();
}

/** Raised inside a transaction that the workload means to roll back. */
class Rollback extends Error {}

/**
 * The workload over one open connection. `runTx(i)` runs transaction i
 * (BEGIN IMMEDIATE … COMMIT, or ROLLBACK for a few) and returns what it did.
 */
export class Workload {
  constructor(db, seed) {
    this.db = db;
    this.seed = seed >>> 0;
    const p = (sql) => db.prepare(sql);
    this.s = {
      itemRange: p("SELECT min(id) AS lo, max(id) AS hi FROM items"),
      itemAt: p("SELECT id FROM items WHERE id >= ? ORDER BY id LIMIT 1").pluck(),
      itemIns: p("INSERT INTO items (name, price, data) VALUES (?, ?, ?)"),
      itemInsId: p("INSERT OR IGNORE INTO items (id, name, price, data) VALUES (?, ?, ?, ?)"),
      itemUpd: p("UPDATE items SET name = ?, price = ? WHERE id = ?"),
      itemUpdBlob: p("UPDATE items SET data = ? WHERE id = ?"),
      itemMove: p("UPDATE OR IGNORE items SET id = ? WHERE id = ?"),
      itemMoveReplace: p("UPDATE OR REPLACE items SET id = ? WHERE id = ?"),
      itemDel: p("DELETE FROM items WHERE id = ?"),
      itemDelRange: p("DELETE FROM items WHERE id BETWEEN ? AND ?"),
      itemReplace: p("INSERT OR REPLACE INTO items (id, name, price, data) VALUES (?, ?, ?, ?)"),
      itemUpsert: p(
        "INSERT INTO items (id, name, price, data) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET price = excluded.price, name = substr(items.name, 1, 40) || '+'",
      ),
      itemCodeAt: p("SELECT id, code FROM items WHERE code >= ? ORDER BY code LIMIT 1").raw(true),
      itemSetCode: p("UPDATE OR REPLACE items SET code = ? WHERE id = ?"),
      itemInsCode: p("INSERT OR REPLACE INTO items (id, name, price, data, code) VALUES (?, ?, ?, ?, ?)"),
      itemPlainCode: p("UPDATE items SET code = ? WHERE id = ?"),
      itemBulk: p("UPDATE items SET price = -price WHERE id BETWEEN ? AND ?"),
      itemSet: p("UPDATE items SET id = ? WHERE id = ?"),
      stockAt: p("SELECT sku, bin FROM stock WHERE (sku, bin) >= (?, ?) ORDER BY sku, bin LIMIT 1").raw(true).safeIntegers(true),
      stockIns: p("INSERT OR IGNORE INTO stock (sku, bin, qty, note) VALUES (?, ?, ?, ?)"),
      stockUpd: p("UPDATE stock SET qty = ?, note = ? WHERE sku = ? AND bin = ?"),
      stockMoveBin: p("UPDATE OR IGNORE stock SET bin = ? WHERE sku = ? AND bin = ?"),
      stockMoveSku: p("UPDATE OR REPLACE stock SET sku = ? WHERE sku = ? AND bin = ?"),
      stockSet: p("UPDATE stock SET sku = ?, bin = ? WHERE sku = ? AND bin = ?"),
      stockDel: p("DELETE FROM stock WHERE sku = ? AND bin = ?"),
      stockDelSku: p("DELETE FROM stock WHERE sku = ?"),
      stockReplace: p("INSERT OR REPLACE INTO stock (sku, bin, qty, note) VALUES (?, ?, ?, ?)"),
      stockUpsert: p(
        "INSERT INTO stock (sku, bin, qty, note) VALUES (?, ?, ?, ?) ON CONFLICT (sku, bin) DO UPDATE SET qty = stock.qty + excluded.qty, note = excluded.note",
      ),
      stockBulk: p("UPDATE stock SET qty = qty + 1 WHERE sku BETWEEN ? AND ?"),
      eventRange: p("SELECT min(rowid) AS lo, max(rowid) AS hi FROM events"),
      eventAt: p("SELECT rowid FROM events WHERE rowid >= ? ORDER BY rowid LIMIT 1").pluck(),
      eventIns: p("INSERT INTO events (kind, amount, n) VALUES (?, ?, ?)"),
      eventDup: p("INSERT INTO events (kind, amount, n) SELECT kind, amount, n FROM events WHERE rowid = ?"),
      eventUpd: p("UPDATE events SET n = n + 1 WHERE rowid = ?"),
      eventUpdVal: p("UPDATE events SET amount = ? WHERE kind = ? AND n = ?"),
      eventDel: p("DELETE FROM events WHERE rowid = ?"),
      eventDelMax: p("DELETE FROM events WHERE rowid = (SELECT max(rowid) FROM events)"),
      eventDelVal: p("DELETE FROM events WHERE kind = ? AND n = ?"),
      eventMove: p("UPDATE OR IGNORE events SET rowid = ? WHERE rowid = ?"),
    };
  }

  anyItem(r) {
    const { lo, hi } = this.s.itemRange.get();
    if (lo === null) return null;
    return this.s.itemAt.get(r.int(lo, hi));
  }

  anyStock(r) {
    return this.s.stockAt.get(sku(r), BigInt(r.int(0, 40))) ?? this.s.stockAt.get("", -9223372036854775808n) ?? null;
  }

  anyEvent(r) {
    const { lo, hi } = this.s.eventRange.get();
    if (lo === null) return null;
    return this.s.eventAt.get(r.int(lo, hi));
  }

  /** One statement (or a few, for swaps) chosen at random; returns its kind. */
  op(r, i) {
    const s = this.s;
    const kind = r.weighted([
      [10, "item.insert"],
      [3, "item.insertId"],
      [10, "item.update"],
      [3, "item.updateBlob"],
      [4, "item.moveKey"],
      [1, "item.moveKeyReplace"],
      [5, "item.delete"],
      [1, "item.deleteRange"],
      [4, "item.replace"],
      [5, "item.upsert"],
      [1, "item.bulk"],
      [2, "item.swap"],
      [3, "item.setCode"],
      [2, "item.insertCode"],
      [2, "item.swapCode"],
      [1, "item.clearCode"],
      [6, "stock.insert"],
      [6, "stock.update"],
      [3, "stock.moveBin"],
      [1, "stock.moveSku"],
      [3, "stock.delete"],
      [1, "stock.deleteSku"],
      [3, "stock.replace"],
      [5, "stock.upsert"],
      [1, "stock.bulk"],
      [2, "stock.swap"],
      [6, "event.insert"],
      [3, "event.dup"],
      [4, "event.update"],
      [1, "event.updateValue"],
      [3, "event.delete"],
      [1, "event.deleteMax"],
      [1, "event.deleteValue"],
      [1, "event.moveRowid"],
    ]);
    switch (kind) {
      case "item.insert":
        s.itemIns.run(text(r), real(r), blob(r));
        break;
      case "item.insertId":
        s.itemInsId.run(r.int(1, 200000), text(r), real(r), blob(r));
        break;
      case "item.update": {
        const id = this.anyItem(r);
        if (id !== null) s.itemUpd.run(text(r), real(r), id);
        break;
      }
      case "item.updateBlob": {
        const id = this.anyItem(r);
        if (id !== null) s.itemUpdBlob.run(blob(r), id);
        break;
      }
      case "item.moveKey": {
        const id = this.anyItem(r);
        if (id !== null) s.itemMove.run(r.int(1, 200000), id);
        break;
      }
      case "item.moveKeyReplace": {
        const a = this.anyItem(r),
          b = this.anyItem(r);
        if (a !== null && b !== null) s.itemMoveReplace.run(b, a);
        break;
      }
      case "item.delete": {
        const id = this.anyItem(r);
        if (id !== null) s.itemDel.run(id);
        break;
      }
      case "item.deleteRange": {
        const id = this.anyItem(r);
        if (id !== null) s.itemDelRange.run(id, id + r.int(1, 30));
        break;
      }
      case "item.replace": {
        const id = r.chance(0.8) ? this.anyItem(r) : r.int(1, 200000);
        if (id !== null) s.itemReplace.run(id, text(r), real(r), blob(r));
        break;
      }
      case "item.upsert": {
        const id = r.chance(0.7) ? this.anyItem(r) : r.int(1, 200000);
        if (id !== null) s.itemUpsert.run(id, text(r), real(r), blob(r));
        break;
      }
      case "item.bulk": {
        const id = this.anyItem(r);
        if (id !== null) s.itemBulk.run(id, id + r.int(10, r.chance(0.2) ? 3000 : 150));
        break;
      }
      case "item.swap": {
        const a = this.anyItem(r),
          b = this.anyItem(r);
        if (a === null || b === null || a === b) break;
        const tmp = -1 - i;
        s.itemSet.run(tmp, a);
        s.itemSet.run(a, b);
        s.itemSet.run(b, tmp);
        break;
      }
      case "item.setCode": {
        const id = this.anyItem(r);
        if (id !== null) s.itemSetCode.run(code(r), id);
        break;
      }
      case "item.insertCode": {
        const id = r.chance(0.5) ? this.anyItem(r) : r.int(1, 200000);
        if (id !== null) s.itemInsCode.run(id, text(r), real(r), blob(r), code(r));
        break;
      }
      case "item.clearCode": {
        const a = this.s.itemCodeAt.get(code(r));
        if (a) s.itemPlainCode.run(null, a[0]);
        break;
      }
      case "item.swapCode": {
        // two rows exchange their unique values: a → NULL, b → a's, a → b's
        const a = this.s.itemCodeAt.get(code(r)),
          b = this.s.itemCodeAt.get(code(r));
        if (!a || !b || a[0] === b[0]) break;
        s.itemPlainCode.run(null, a[0]);
        s.itemPlainCode.run(a[1], b[0]);
        s.itemPlainCode.run(b[1], a[0]);
        break;
      }
      case "stock.insert":
        s.stockIns.run(sku(r), bin(r), r.int(-1000, 100000), r.chance(0.3) ? null : text(r));
        break;
      case "stock.update": {
        const k = this.anyStock(r);
        if (k) s.stockUpd.run(r.int(-1000, 100000), r.chance(0.3) ? null : text(r), k[0], k[1]);
        break;
      }
      case "stock.moveBin": {
        const k = this.anyStock(r);
        if (k) s.stockMoveBin.run(bin(r), k[0], k[1]);
        break;
      }
      case "stock.moveSku": {
        const k = this.anyStock(r);
        if (k) s.stockMoveSku.run(sku(r), k[0], k[1]);
        break;
      }
      case "stock.delete": {
        const k = this.anyStock(r);
        if (k) s.stockDel.run(k[0], k[1]);
        break;
      }
      case "stock.deleteSku": {
        const k = this.anyStock(r);
        if (k) s.stockDelSku.run(k[0]);
        break;
      }
      case "stock.replace": {
        const k = r.chance(0.7) ? this.anyStock(r) : [sku(r), bin(r)];
        if (k) s.stockReplace.run(k[0], k[1], r.int(-1000, 100000), text(r));
        break;
      }
      case "stock.upsert": {
        const k = r.chance(0.7) ? this.anyStock(r) : [sku(r), bin(r)];
        if (k) s.stockUpsert.run(k[0], k[1], r.int(-100, 100), r.chance(0.3) ? null : text(r));
        break;
      }
      case "stock.bulk": {
        const a = sku(r);
        s.stockBulk.run(a, a.slice(0, 7) + "9");
        break;
      }
      case "stock.swap": {
        const a = this.anyStock(r),
          b = this.anyStock(r);
        if (!a || !b || (a[0] === b[0] && a[1] === b[1])) break;
        const tmp = ["~swap", BigInt(i)];
        s.stockSet.run(tmp[0], tmp[1], a[0], a[1]);
        s.stockSet.run(a[0], a[1], b[0], b[1]);
        s.stockSet.run(b[0], b[1], tmp[0], tmp[1]);
        break;
      }
      case "event.insert":
        s.eventIns.run(r.pick(KINDS), real(r), r.int(0, 20));
        break;
      case "event.dup": {
        const id = this.anyEvent(r);
        if (id !== null) s.eventDup.run(id);
        break;
      }
      case "event.update": {
        const id = this.anyEvent(r);
        if (id !== null) s.eventUpd.run(id);
        break;
      }
      case "event.updateValue":
        s.eventUpdVal.run(real(r), r.pick(KINDS), r.int(0, 20));
        break;
      case "event.delete": {
        const id = this.anyEvent(r);
        if (id !== null) s.eventDel.run(id);
        break;
      }
      case "event.deleteMax":
        s.eventDelMax.run();
        break;
      case "event.deleteValue":
        s.eventDelVal.run(r.pick(KINDS), r.int(0, 20));
        break;
      case "event.moveRowid": {
        const id = this.anyEvent(r);
        if (id !== null) s.eventMove.run(r.int(1, 100000), id);
        break;
      }
    }
    return kind;
  }

  /**
   * Transaction i: BEGIN IMMEDIATE, 1–6 statements (sometimes 20–60, sometimes
   * one per table), COMMIT; about 3% roll back instead. Returns the kinds of
   * statement run and whether it committed. Throws SQLITE_BUSY and the like
   * unchanged (the transaction is rolled back; run it again).
   */
  runTx(i) {
    const r = prng(txSeed(this.seed, i));
    const shape = r.weighted([
      [80, "small"],
      [10, "multi-table"],
      [7, "large"],
      [3, "rollback"],
    ]);
    const kinds = [];
    const body = () => {
      if (shape === "multi-table") {
        // an "order": a new item, its stock, an event
        kinds.push("tx.multi-table");
        const id = this.s.itemIns.run(text(r), real(r), blob(r)).lastInsertRowid;
        this.s.stockUpsert.run(sku(r), bin(r), r.int(1, 10), `item ${id}`);
        this.s.eventIns.run("buy", real(r), Number(id) % 21);
        for (let k = r.int(0, 3); k > 0; k--) kinds.push(this.op(r, i));
        return;
      }
      const n = shape === "large" ? r.int(20, 60) : r.int(1, 6);
      for (let k = 0; k < n; k++) kinds.push(this.op(r, i));
      if (shape === "rollback") throw new Rollback();
    };
    try {
      this.db.transaction(body).immediate();
      return { committed: true, kinds };
    } catch (e) {
      if (e instanceof Rollback) return { committed: false, kinds };
      throw e;
    }
  }
}
