/**
 * The one function that turns a name into an SQL identifier.
 *
 * SQLite and PostgreSQL both accept the SQL-standard double-quoted form, with
 * an embedded quote doubled, so the same function serves both sides. Every
 * identifier that reaches a statement in this project goes through here; data
 * never does (it travels as parameters or through COPY).
 */
export function quoteIdent(name: string): string {
  if (name.includes("\u0000")) {
    throw new TypeError(`identifier contains a NUL character: ${JSON.stringify(name)}`);
  }
  return `"${name.replace(/"/g, '""')}"`;
}

/** A schema-qualified Postgres name, each part quoted by {@link quoteIdent}. */
export function qualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/**
 * A string literal for SQL text that cannot take parameters (trigger
 * bodies): the name of a table, never data. Quotes are doubled.
 */
export function quoteLiteral(text: string): string {
  if (text.includes("\u0000")) throw new TypeError("literal contains a NUL character");
  return `'${text.replace(/'/g, "''")}'`;
}
