import { defineConfig } from 'vitest/config';

// Two projects: `unit` (pure code, no registry, no CLI build) and `integration` (real registries,
// the built CLI). `npm test` runs both; `npx vitest run --project unit` needs nothing running.
// Integration tests start real registries and spawn the CLI: give them room, and keep the two
// cores of a CI machine from being oversubscribed by parallel files.
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // The shared registry starts only when an integration file runs.
          globalSetup: ['test/harness/global-setup.ts'],
        },
      },
    ],
  },
});
