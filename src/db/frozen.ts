/**
 * What an application sees of the cutover: while the SQLite file is frozen,
 * every write to it fails with {@link FROZEN_MESSAGE}. The application (or
 * the switching database) recognises that refusal and writes to PostgreSQL.
 *
 * This module is the application library's side of the contract; the freeze
 * triggers (triggers/freeze.sql, installed by src/sqlite/freeze.ts) raise the
 * same text (a unit test holds them together). It imports nothing, so the
 * library never pulls in the daemon.
 */

/** The message every write to a frozen table fails with: applications and the switching database recognise it. */
export const FROZEN_MESSAGE = "sqlite2pg: database frozen for the move to PostgreSQL; write to PostgreSQL";

/**
 * The message every write to a replicated table in PostgreSQL fails with
 * while `sqlite2pg rollback` moves the data back to SQLite, and for good
 * after it: the application writes to SQLite again.
 */
export const ROLLBACK_FROZEN_MESSAGE = "sqlite2pg: database frozen for the move back to SQLite; write to SQLite";

/** Whether an error is a write PostgreSQL refused because of the rollback. */
export function isRollbackFrozenError(e: unknown): boolean {
  return e instanceof Error && e.message.includes(ROLLBACK_FROZEN_MESSAGE);
}

/** Whether an error is a write refused by the freeze. */
export function isFrozenError(e: unknown): boolean {
  return e instanceof Error && e.message.includes(FROZEN_MESSAGE);
}
