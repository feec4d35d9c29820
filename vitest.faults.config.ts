import { defineConfig } from 'vitest/config';

// The fault suite (`npm run test:faults`): each case injects one fault into a real run. Not part
// of `npm test` (see README "Fault suite" for what it costs).
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    fileParallelism: false,
    // every test folder under one folder of this run, removed at its end (test/helpers/global-tmp.ts)
    globalSetup: ['test/helpers/global-tmp.ts'],
    testTimeout: 10 * 60_000,
    hookTimeout: 120_000,
  },
});
