import { defineConfig } from 'vitest/config';

// `npm run screenshot:debug-page`: starts a daemon with demo pods, loads
// /debug/ in Debian's headless Chromium and writes docs/debug-page.png for
// reviewers. Not part of `npm test` (it asserts nothing about the page; the
// browser test is test/integration/debug-page.test.ts).
export default defineConfig({
  test: {
    include: ['test/screenshot/**/*.shot.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
