/** Types of workload.mjs (plain JavaScript: it also runs in the writer process). */
import type Database from "better-sqlite3";

export interface Rng {
  next(): number;
  int(lo: number, hi: number): number;
  pick<T>(xs: readonly T[]): T;
  chance(p: number): boolean;
  weighted<T>(pairs: [number, T][]): T;
}

export function prng(seed: number): Rng;
export function populate(db: Database.Database, seed: number, counts?: { items: number; stock: number; events: number }): void;

export class Workload {
  constructor(db: Database.Database, seed: number);
  runTx(i: number): { committed: boolean; kinds: string[] };
}
