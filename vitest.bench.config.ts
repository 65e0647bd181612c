import { defineConfig } from 'vitest/config';

// `npm run bench`: the benchmark scenarios, run once, sequentially, printing
// their figures. Not part of `npm test`; no timing assertions anywhere.
export default defineConfig({
  test: {
    include: ['bench/**/*.bench-run.ts'],
    testTimeout: 900_000,
    hookTimeout: 900_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
