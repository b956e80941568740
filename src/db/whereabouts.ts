/**
 * Where the data of a replicated SQLite file lives, as the switching
 * database reads it: the phases of `sqlite2pg.state` and the marker files
 * the daemon writes next to the file. Names only; the library does not
 * import the daemon (a test holds these names to the daemon's).
 */
import { existsSync, readFileSync } from "node:fs";
import { markerPath, rollbackMarkerPath } from "../sqlite/freeze.js";
import { isFrozenError, isRollbackFrozenError } from "./frozen.js";

/** Where the data lives. */
export type Target = "sqlite" | "postgres";

/** The phases in which PostgreSQL holds the data: from the cutover's commit to a rollback's. */
const POSTGRES_PHASES = new Set(["cut-over", "fallback", "rolling-back", "done"]);
/** The phases in which SQLite holds the data: before the cutover commits, and once a rollback committed. */
const SQLITE_PHASES = new Set(["new", "snapshot", "catch-up", "streaming", "cutover-catch-up", "frozen", "rolled-back"]);
/** The phases in which PostgreSQL's replicated tables refuse writes: its freeze is installed and dropped in the transactions that enter and leave `rolling-back`. */
const POSTGRES_FROZEN_PHASES = new Set(["rolling-back", "rolled-back"]);

/** Where a phase says the data is; null for a phase this version does not know. */
export function targetOf(phase: string): Target | null {
  if (POSTGRES_PHASES.has(phase)) return "postgres";
  if (SQLITE_PHASES.has(phase)) return "sqlite";
  return null;
}

/** Whether PostgreSQL takes writes in `phase` (not frozen for a rollback). */
export function postgresTakesWrites(phase: string): boolean {
  return !POSTGRES_FROZEN_PHASES.has(phase);
}

/** Whether an error is a write refused by a freeze, on either side: nothing of it committed. */
export function isRefusal(e: unknown): boolean {
  return isFrozenError(e) || isRollbackFrozenError(e);
}

/** What a marker says: where the data is, and the schema it is in there. */
interface MarkerSays {
  to: Target;
  schema: string | null;
}

/**
 * Where the markers next to `sqlite` say the data of source `sourceId` is,
 * for when the state cannot be read; null when they say nothing. The
 * rollback's marker first: it is written after the rollback committed, and
 * the cutover's may survive it (the rollback removes it first, but a crash
 * can come between). A marker counts only when it names this source (one
 * left by an earlier migration of the file does not).
 */
export function markersSay(sqlite: string, sourceId: string | null): MarkerSays | null {
  if (!sourceId) return null;
  const back = read(rollbackMarkerPath(sqlite), sourceId);
  if (back) return { to: "sqlite", schema: back.schema };
  const over = read(markerPath(sqlite), sourceId);
  if (over) return { to: "postgres", schema: over.schema };
  return null;
}

function read(path: string, sourceId: string): { schema: string | null } | null {
  if (!existsSync(path)) return null;
  try {
    const m = JSON.parse(readFileSync(path, "utf8")) as { source_id?: unknown; schema?: unknown };
    if (m.source_id !== sourceId) return null;
    return { schema: typeof m.schema === "string" ? m.schema : null };
  } catch {
    return null; // being written: the state or the next look decides
  }
}
