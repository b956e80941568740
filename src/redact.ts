/**
 * The one way a connection string is shown to people (logs, output, status,
 * the process' command line, the library's replica status): its password,
 * and any query parameter about a password, replaced by `***`. Imports
 * nothing, so the command line, the daemon and the application library all
 * use it.
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    for (const k of [...u.searchParams.keys()]) if (/pass/i.test(k)) u.searchParams.set(k, "***");
    return u.toString();
  } catch {
    // Not a URL the WHATWG parser takes (libpq's keyword=value form, or a socket URL with an empty host):
    // the userinfo's password and any password keyword (values may be quoted, with spaces).
    return url.replace(/(\/\/[^:/@]*:)[^@]*@/, "$1***@").replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)/gi, "$1***");
  }
}
