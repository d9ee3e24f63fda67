import { defineConfig } from 'vitest/config';

// Integration tests start real registries and spawn the CLI: give them room, and keep the
// two cores of a CI machine from being oversubscribed by parallel files.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 2,
    globalSetup: ['test/harness/global-setup.ts'],
  },
});
