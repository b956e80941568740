/** Checks on text as SQLite hands it over. */

/** True when a string may not be stored as Postgres text as it is: a NUL, or U+FFFD (possibly invalid UTF-8 in the file). */
export function isSuspectText(s: string): boolean {
  return s.includes("\u0000") || s.includes("\uFFFD");
}
