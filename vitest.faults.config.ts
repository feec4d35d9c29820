import { defineConfig } from 'vitest/config';

// The fault suite (`npm run test:faults`): each case injects one fault into a real run. Not part
// of `npm test` (see README "Fault suite" for what it costs).
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 10 * 60_000,
    hookTimeout: 120_000,
  },
});
