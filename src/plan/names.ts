import { sourceError } from "../errors.js";

/** Postgres truncates identifiers to NAMEDATALEN-1 bytes. */
const PG_MAX_IDENT_BYTES = 63;

/**
 * The Postgres name for a SQLite name: ASCII letters folded to lower case
 * (what Postgres does to the application's unquoted identifiers) unless
 * `preserveCase`, then cut to 63 bytes on a character boundary, as Postgres
 * would cut it silently.
 */
export function pgName(name: string, preserveCase: boolean): string {
  const folded = preserveCase ? name : name.replace(/[A-Z]+/g, (s) => s.toLowerCase());
  return truncateIdent(folded);
}

/** Cut a name to at most 63 UTF-8 bytes without splitting a character. */
export function truncateIdent(name: string): string {
  if (Buffer.byteLength(name) <= PG_MAX_IDENT_BYTES) return name;
  let out = "";
  let bytes = 0;
  for (const ch of name) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > PG_MAX_IDENT_BYTES) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/**
 * Names in one Postgres namespace (the relations of a schema, or the columns
 * of a table). Two source names that become the same Postgres name are an
 * error naming both; generated names (indexes, constraints) instead take a
 * numeric suffix.
 */
export class Namespace {
  private readonly taken = new Map<string, string>();

  constructor(private readonly what: string) {}

  /** Claim the Postgres name of a source object; throws when another source name already became it. */
  claim(sourceName: string, name: string, context: Record<string, string> = {}): string {
    const prev = this.taken.get(name);
    if (prev !== undefined) {
      const why =
        Buffer.byteLength(sourceName) > PG_MAX_IDENT_BYTES || Buffer.byteLength(prev) > PG_MAX_IDENT_BYTES
          ? "Postgres keeps only the first 63 bytes of a name"
          : "names fold to lower case";
      throw sourceError(
        "NAME_COLLISION",
        `${this.what} ${JSON.stringify(prev)} and ${JSON.stringify(sourceName)} both become ${JSON.stringify(name)} in Postgres (${why})`,
        {
          context: { ...context, first: prev, second: sourceName, postgres_name: name },
          hint: why.startsWith("names fold")
            ? "use --preserve-case to keep names exactly as in SQLite, or rename one of them in SQLite"
            : "rename one of them in SQLite to differ within its first 63 bytes",
        },
      );
    }
    this.taken.set(name, sourceName);
    return name;
  }

  /** Claim a generated name, adding `_2`, `_3` … (within 63 bytes) until it is free. */
  claimGenerated(base: string): string {
    let name = truncateIdent(base);
    for (let i = 2; this.taken.has(name); i++) {
      const suffix = `_${i}`;
      name = truncateIdent(base.slice(0, Math.max(1, base.length)));
      while (Buffer.byteLength(name + suffix) > PG_MAX_IDENT_BYTES) name = name.slice(0, -1);
      name += suffix;
    }
    this.taken.set(name, base);
    return name;
  }

  has(name: string): boolean {
    return this.taken.has(name);
  }
}
