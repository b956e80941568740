import { describeConfig, resolveConfigWithOrigins } from "../config/config.js";

/**
 * `sqlite2pg config --print`: the configuration `run` would use, each
 * value with where it came from; the connection string's password masked.
 */
export async function configCommand(flags: Record<string, unknown> & { config?: string; json?: boolean }): Promise<void> {
  const resolved = resolveConfigWithOrigins(flags);
  const rows = describeConfig(resolved);
  if (flags.json) {
    const out = { settings: rows, unknown_environment: resolved.unknownEnv };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return;
  }
  const width = Math.max(...rows.map((r) => r.key.length));
  const shown = (v: unknown) => (v === null ? "(unset)" : typeof v === "string" ? v : JSON.stringify(v));
  const lines = rows.map((r) => `${r.key.padEnd(width)}  ${shown(r.value)}   # ${r.origin}${r.reload ? "; SIGHUP reloads" : ""}`);
  if (resolved.unknownEnv.length) lines.push("", `ignored (no such setting): ${resolved.unknownEnv.join(", ")}`);
  lines.push(
    "",
    "Each setting is a flag (--batch-size), a variable (SQLITE2PG_BATCH_SIZE) and a config-file key (batchSize); flags win over variables, variables over the file.",
  );
  process.stdout.write(`${lines.join("\n")}\n`);
}
