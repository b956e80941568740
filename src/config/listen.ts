import { usageError } from "../errors.js";

/** Where to listen: `--listen [host:]port`, checked; a usage error otherwise. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** Parse `--listen [host:]port` (host defaults to 127.0.0.1; `[::1]:9100` for IPv6). */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]:|([^:\s[\]]*):)?(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw usageError("BAD_LISTEN", `--listen must be [host:]port with a port from 1 to 65535, not ${JSON.stringify(text)}`, {
      hint: "e.g. --listen 9187 (127.0.0.1:9187) or --listen 0.0.0.0:9187",
    });
  }
  return { host: m[1] ?? (m[2] || "127.0.0.1"), port };
}
