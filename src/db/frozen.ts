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

/** Whether an error is a write refused by the freeze. */
export function isFrozenError(e: unknown): boolean {
  return e instanceof Error && e.message.includes(FROZEN_MESSAGE);
}
