// The unit tests that guard the figures, for mutation testing (stryker.config.json): only pure
// logic, no VM, no BPF, no browser. The end-to-end files (e2e-*, qemu, vagrant-*, bpf, images,
// client, procs, ssh) and the workflow/format checks are left out, and so is summary.html's
// headless-Chromium test (its escaping tests stay).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // every test folder under one folder of this run, removed at its end (test/helpers/global-tmp.ts)
    globalSetup: ['test/helpers/global-tmp.ts'],
    include: [
      'test/analysis.test.ts',
      'test/http-layer.test.ts',
      'test/interval.test.ts',
      'test/config.test.ts',
      'test/cli-run.test.ts',
      'test/resume.test.ts',
      'test/matrix.test.ts',
      'test/report.test.ts',
      'test/summary-md.test.ts',
      'test/trend.test.ts',
      'test/junit.test.ts',
      'test/feb5.test.ts',
      'test/report-html.test.ts',
      'test/servers.test.ts',
      'test/client-src.test.ts',
      'test/attribution.test.ts',
      'test/verdicts.test.ts',
      'test/tracer.test.ts',
      'test/lookalike.test.ts',
      'test/trial.test.ts',
      'test/http-rules.test.ts',
      'test/summary.test.ts',
      'test/report-cell.test.ts',
      'test/compare.test.ts',
      'test/matrix-md.test.ts',
      'test/merge.test.ts',
      'test/view.test.ts',
      'test/artifacts.test.ts',
      'test/html-cell.test.ts',
      'test/html.test.ts',
    ],
    testNamePattern: /^(?!.*headless Chromium)/,
    testTimeout: 30_000,
  },
});
