import { defineConfig } from "vitest/config";

/**
 * Three tiers, each with only the setup it needs:
 *   unit         no database, no build: seconds (`npm run test:unit`)
 *   integration  in-process against a real PostgreSQL (`npm run test:integration`)
 *   e2e          real processes (the CLI, daemons, writers) and faults (`npm run test:e2e`)
 * Integration and e2e share one global setup: the server, and a fresh dist/
 * (CLI processes and copy workers run from it).
 */
export default defineConfig({
  test: {
    // Two cores: a few files at a time, each test with its own database.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      { extends: true, test: { name: "integration", include: ["test/integration/**/*.test.ts"], globalSetup: ["test/helpers/global-setup.ts"] } },
      { extends: true, test: { name: "e2e", include: ["test/e2e/**/*.test.ts"], globalSetup: ["test/helpers/global-setup.ts"] } },
    ],
  },
});
