import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One file at a time: the end-to-end tests attach uprobes to the system libssl, which every
    // other test's TLS traffic would cross; and VMs want the cores to themselves.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
});
