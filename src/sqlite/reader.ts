import type BetterSqlite3 from "better-sqlite3";
import { quoteIdent } from "../ident.js";
import { rowidName, type SourceTable } from "./schema.js";

/** What a reader needs of a table: its SQLite definition and the order to read it in (a plan's table is one). */
export interface ReadTable {
  source: SourceTable;
  readOrder: { kind: "rowid" } | { kind: "key"; columns: string[] };
  bigIntegers: boolean;
}

/** The key fields a reader's rows start with: their SQL names (for messages) and their number. */
export function readKey(t: ReadTable): { names: string[]; width: number } {
  if (t.readOrder.kind === "rowid") return { names: [t.source.rowidAlias ?? rowidName(t.source)], width: 1 };
  return { names: t.readOrder.columns, width: t.readOrder.columns.length };
}

/** A range of rowids to read: `after` exclusive, `upTo` inclusive; null means open. */
export interface RowidRange {
  after: bigint | null;
  upTo: bigint | null;
}

/**
 * Reads a table in key order, in short chunks: each chunk is one statement,
 * so no read transaction outlives it and the application's checkpoints are
 * never held back for long. Rows are raw arrays: the key fields first, then
 * the requested columns.
 */
export class ChunkReader {
  private readonly first: BetterSqlite3.Statement;
  private readonly next: BetterSqlite3.Statement;
  private cursor: unknown[] | null = null;
  private done = false;
  /** Rows per statement: grows while rows are small, shrinks to one when they are huge. */
  private step = 1;
  readonly keyWidth: number;
  /** SQL names of the key fields, for messages. */
  readonly keyNames: string[];
  /**
   * A chunk also ends once its rows pass this many bytes (roughly as COPY
   * text; always at least one row): a table of large blobs is read in
   * chunks that fit in memory and in a string, not `chunkRows` at a time.
   */
  maxBytes = DEFAULT_CHUNK_BYTES;
  /** Bytes (as {@link rowBytes} counts them) of the rows the last `read` returned; 0 when `maxBytes` is unbounded. */
  lastBytes = 0;

  constructor(
    db: BetterSqlite3.Database,
    t: ReadTable,
    columns: string[],
    /** Rows per chunk; may change between chunks (a reloaded setting). */
    public chunkRows: number,
    range: RowidRange = { after: null, upTo: null },
    bigIntegers = t.bigIntegers,
  ) {
    const from = `main.${quoteIdent(t.source.name)}`;
    const cols = columns.map(quoteIdent).join(", ");
    ({ names: this.keyNames, width: this.keyWidth } = readKey(t));
    if (t.readOrder.kind === "rowid") {
      const rowid = rowidName(t.source); // a user column may be named rowid
      const upTo = range.upTo !== null ? `${rowid} <= ${range.upTo}` : null;
      const sel = `SELECT ${rowid}${cols ? ", " + cols : ""} FROM ${from}`;
      const order = ` ORDER BY ${rowid} LIMIT ?`;
      this.next = db.prepare(`${sel} WHERE ${rowid} > ?${upTo ? " AND " + upTo : ""}${order}`);
      this.first = range.after === null ? db.prepare(`${sel}${upTo ? " WHERE " + upTo : ""}${order}`) : this.next;
      this.cursor = range.after === null ? null : [range.after];
    } else {
      const keys = t.readOrder.columns.map(quoteIdent);
      const sel = `SELECT ${keys.join(", ")}${cols ? ", " + cols : ""} FROM ${from}`;
      const order = ` ORDER BY ${keys.join(", ")} LIMIT ?`;
      this.first = db.prepare(sel + order);
      const tuple = keys.length === 1 ? keys[0] : `(${keys.join(", ")})`;
      const params = keys.length === 1 ? "?" : `(${keys.map(() => "?").join(", ")})`;
      this.next = db.prepare(`${sel} WHERE ${tuple} > ${params}${order}`);
    }
    for (const s of [this.first, this.next]) s.raw(true).safeIntegers(bigIntegers);
  }

  /** Continue after this key (the last key a previous run finished), for a resumed snapshot. */
  resumeAfter(key: unknown[]): void {
    this.cursor = key;
  }

  /** The next chunk of rows (at most `chunkRows`, and about `maxBytes`), or null at the end. */
  read(): unknown[][] | null {
    if (this.done) return null;
    const out: unknown[][] = [];
    let bytes = 0;
    while (out.length < this.chunkRows) {
      const want = Math.min(this.chunkRows - out.length, this.maxBytes === Infinity ? this.chunkRows : this.step);
      const rows = (this.cursor === null ? this.first.all(want) : this.next.all(...this.cursor, want)) as unknown[][];
      if (this.maxBytes === Infinity) {
        if (rows.length > 0) this.cursor = rows[rows.length - 1]!.slice(0, this.keyWidth);
        for (const r of rows) out.push(r);
        if (rows.length < want) this.done = true;
        if (rows.length < want) break;
        continue;
      }
      let biggest = 1;
      let full = false;
      let j = 0;
      for (; j < rows.length; j++) {
        const r = rows[j]!;
        out.push(r);
        const b = rowBytes(r);
        bytes += b;
        if (b > biggest) biggest = b;
        // The chunk ends with the row that passes the budget; the rest of this read comes again next chunk.
        if (bytes >= this.maxBytes) {
          full = true;
          break;
        }
      }
      if (rows.length > 0) this.cursor = rows[Math.min(j, rows.length - 1)]!.slice(0, this.keyWidth);
      if (full) {
        this.step = Math.max(1, Math.min(1024, Math.floor(this.maxBytes / biggest)));
        break;
      }
      if (rows.length < want) {
        this.done = true;
        break;
      }
      // Sized by the biggest row just read: small rows soon come 1024 at a time, huge ones one by one.
      this.step = Math.max(1, Math.min(1024, this.step * 2, Math.floor((this.maxBytes - bytes) / biggest)));
    }
    this.lastBytes = bytes;
    return out.length > 0 ? out : null;
  }
}

/** Default byte budget of a chunk or batch: 32 MiB of COPY text. */
export const DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024;

/** Roughly the bytes a row takes as COPY text (blobs as hex): enough to bound memory, cheap to compute. */
export function rowBytes(row: unknown[]): number {
  let n = 1;
  for (const v of row) n += Buffer.isBuffer(v) ? 2 * v.length + 4 : typeof v === "string" ? v.length + 1 : 9;
  return n;
}

/**
 * The lowest and highest rowid of a table (nulls when it is empty). Two
 * subqueries: SQLite answers a lone min() or max() of the rowid from the
 * b-tree's ends, but both in one SELECT scan the whole table.
 */
export function rowidBounds(db: BetterSqlite3.Database, table: string, rowid = "rowid"): { lo: bigint | null; hi: bigint | null } {
  const from = `main.${quoteIdent(table)}`;
  return db.prepare(`SELECT (SELECT min(${rowid}) FROM ${from}) AS lo, (SELECT max(${rowid}) FROM ${from}) AS hi`).safeIntegers(true).get() as {
    lo: bigint | null;
    hi: bigint | null;
  };
}

/** Split a rowid table into `parts` ranges of roughly equal rowid span. */
export function splitRowidRange(db: BetterSqlite3.Database, table: string, parts: number, rowid = "rowid"): RowidRange[] {
  const r = rowidBounds(db, table, rowid);
  if (r.lo === null || r.hi === null || parts <= 1) return [{ after: null, upTo: null }];
  const span = r.hi - r.lo + 1n;
  const step = span / BigInt(parts) + 1n;
  const out: RowidRange[] = [];
  let after: bigint | null = null;
  for (let i = 1; i < parts; i++) {
    const upTo = r.lo - 1n + step * BigInt(i);
    if (upTo >= r.hi) break;
    out.push({ after, upTo });
    after = upTo;
  }
  out.push({ after, upTo: null });
  return out;
}

/** Largest |rowid| of a table, to know whether rowids fit a JS number. */
export function rowidNeedsBigInt(db: BetterSqlite3.Database, table: string, rowid = "rowid"): boolean {
  const r = rowidBounds(db, table, rowid);
  return (r.lo !== null && r.lo < -9007199254740991n) || (r.hi !== null && r.hi > 9007199254740991n);
}

/**
 * Reads the current rows of a table for a set of keys (rowids, or primary
 * key tuples of a WITHOUT ROWID table), in the same row layout as
 * {@link ChunkReader}: key fields first, then the columns. Keys that no
 * longer exist simply return no row.
 */
export class KeyedReader {
  private readonly stmts = new Map<number, BetterSqlite3.Statement>();
  readonly keyWidth: number;
  readonly keyNames: string[];
  private readonly select: string;
  private readonly keyTuple: string;

  constructor(
    private readonly db: BetterSqlite3.Database,
    t: ReadTable,
    columns: string[],
    private readonly bigIntegers = true,
  ) {
    const cols = columns.map(quoteIdent).join(", ");
    const from = `main.${quoteIdent(t.source.name)}`;
    ({ names: this.keyNames, width: this.keyWidth } = readKey(t));
    if (t.readOrder.kind === "rowid") {
      const rowid = rowidName(t.source);
      this.select = `SELECT ${rowid}${cols ? ", " + cols : ""} FROM ${from}`;
      this.keyTuple = rowid;
    } else {
      const keys = t.readOrder.columns.map(quoteIdent);
      this.select = `SELECT ${keys.join(", ")}${cols ? ", " + cols : ""} FROM ${from}`;
      this.keyTuple = keys.length === 1 ? keys[0]! : `(${keys.join(", ")})`;
    }
  }

  private stmt(n: number): BetterSqlite3.Statement {
    let s = this.stmts.get(n);
    if (!s) {
      const one = this.keyWidth === 1 ? "?" : `(${Array(this.keyWidth).fill("?").join(", ")})`;
      const list = this.keyWidth === 1 ? Array(n).fill("?").join(", ") : `VALUES ${Array(n).fill(one).join(", ")}`;
      s = this.db.prepare(`${this.select} WHERE ${this.keyTuple} IN (${list})`).raw(true).safeIntegers(this.bigIntegers);
      this.stmts.set(n, s);
    }
    return s;
  }

  /** The current rows for these keys (each key an array of `keyWidth` values). */
  read(keys: unknown[][]): unknown[][] {
    const out: unknown[][] = [];
    const size = 500;
    for (let i = 0; i < keys.length; i += size) {
      const part = keys.slice(i, i + size);
      out.push(...(this.stmt(part.length).all(...part.flat()) as unknown[][]));
    }
    return out;
  }
}
