import type BetterSqlite3 from "better-sqlite3";
import { StringDecoder } from "node:string_decoder";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import type pg from "pg";
import { to as copyTo } from "pg-copy-streams";
import type { ColumnPlan, MigrationPlan, TablePlan } from "../plan/plan.js";
import { qualified, quoteIdent } from "../sql/ident.js";
import { ChunkReader } from "../source/reader.js";
import { canonValue, isSuspectText } from "../target/copy-encode.js";

/**
 * An order-independent digest of a table: the row count and two 32-bit sums
 * of per-row hashes of each row's canonical text. Two tables with the same
 * rows in any order have the same digest.
 */
export interface Digest {
  rows: number;
  h1: number;
  h2: number;
}

/** Two independent 32-bit hashes of a string (FNV-1a and a murmur-style mix), finalised. */
export function lineHash(s: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 16777619);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  a ^= a >>> 16; a = Math.imul(a, 0x85ebca6b); a ^= a >>> 13; a = Math.imul(a, 0xc2b2ae35); a ^= a >>> 16;
  b ^= b >>> 15; b = Math.imul(b, 0x2c1b3c6d); b ^= b >>> 12; b = Math.imul(b, 0x297a2d39); b ^= b >>> 15;
  return [a >>> 0, b >>> 0];
}

function add(d: Digest, line: string): void {
  const [a, b] = lineHash(line);
  d.rows++;
  d.h1 = (d.h1 + a) >>> 0;
  d.h2 = (d.h2 + b) >>> 0;
}

/** The Postgres expression whose COPY text output is a column's canonical form. */
export function canonSelectExpr(c: ColumnPlan): string {
  const q = quoteIdent(c.name);
  switch (c.kind) {
    case "double precision":
      return `float8send(${q})`;
    case "timestamp":
      return `to_char(${q}, 'YYYY-MM-DD HH24:MI:SS.US')`;
    case "timestamptz":
      return `to_char(${q} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')`;
    default:
      return q;
  }
}

/** Session settings that make Postgres' output canonical, whatever the server's defaults. */
export const CANONICAL_SESSION = "SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; SET bytea_output = 'hex'; SET extra_float_digits = 3; SET IntervalStyle = 'postgres'";

/** The canonical line of one SQLite row (values only, key fields excluded). */
export function canonLine(row: unknown[], offset: number, cols: ColumnPlan[]): string {
  let line = "";
  for (let i = 0; i < cols.length; i++) {
    let v = row[offset + i];
    // The copy stripped NULs under --fix-text; an unfixed one was refused.
    if (typeof v === "string" && isSuspectText(v)) v = v.replace(/\u0000/g, "");
    const f = canonValue(v, cols[i]!, i);
    line += i === 0 ? f : "\t" + f;
  }
  return line;
}

/**
 * Digest of a table as SQLite holds it, read in short key-ordered chunks. It
 * yields to the event loop between chunks so that a Postgres digest streams
 * meanwhile.
 */
export async function sqliteDigest(db: BetterSqlite3.Database, t: TablePlan, chunkRows = 5000): Promise<Digest> {
  const reader = new ChunkReader(db, t, t.columns.map((c) => c.source.name), chunkRows);
  const d: Digest = { rows: 0, h1: 0, h2: 0 };
  for (let rows = reader.read(); rows !== null; rows = reader.read()) {
    for (const row of rows) add(d, canonLine(row, reader.keyWidth, t.columns));
    await yieldToLoop();
  }
  return d;
}

/** Digest of a table as Postgres holds it, streamed with COPY TO in canonical form. */
export async function pgDigest(client: pg.ClientBase, plan: MigrationPlan, t: TablePlan): Promise<Digest> {
  await client.query(CANONICAL_SESSION);
  const sql = `COPY (SELECT ${t.columns.map(canonSelectExpr).join(", ")} FROM ${qualified(plan.schema, t.name)}) TO STDOUT`;
  const d: Digest = { rows: 0, h1: 0, h2: 0 };
  const decoder = new StringDecoder("utf8");
  let carry = "";
  const stream = client.query(copyTo(sql));
  for await (const chunk of stream) {
    const text = carry + decoder.write(chunk as Buffer);
    let start = 0;
    for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", start)) {
      add(d, text.slice(start, nl));
      start = nl + 1;
    }
    carry = text.slice(start);
  }
  carry += decoder.end();
  if (carry.length) add(d, carry);
  return d;
}

/** Whether two digests are equal. */
export function sameDigest(a: Digest, b: Digest): boolean {
  return a.rows === b.rows && a.h1 === b.h1 && a.h2 === b.h2;
}
