import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The fault suite has its own config and command (vitest.faults.config.ts, `npm run test:faults`).
    exclude: [...configDefaults.exclude, 'test/faults/**'],
    // One file at a time: the end-to-end tests attach uprobes to the system libssl, which every
    // other test's TLS traffic would cross; and VMs want the cores to themselves.
    fileParallelism: false,
    // every test folder under one folder of this run, removed at its end (test/helpers/global-tmp.ts)
    globalSetup: ['test/helpers/global-tmp.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
});
