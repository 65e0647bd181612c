import { defineConfig } from 'vitest/config';

// One run covers every tier. Tiers that need root, Linux or Go skip themselves
// with a printed reason (see test/helpers/env.ts); CI has all of them.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    allowOnly: !process.env['CI'],
  },
});
