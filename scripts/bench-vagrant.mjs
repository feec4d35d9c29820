#!/usr/bin/env zx
// Vagrant benchmark, in one run on the same image: time to a ready SSH machine through Vagrant
// vs through the qemu backend (goal: Vagrant <= 1.5x), first up (provision + build + snapshot)
// vs snapshot restore, destroy; time per target (up, prepare, every cell, stop) through runMatrix
// with each backend (goal: Vagrant <= 1.5x). Thin: flags -> src/bench/vagrant.ts -> figures on
// stdout, JSON to --out. Exit 0 when measured (the ratio is a figure, not a verdict), 2 usage,
// 3 failure, 130 interrupted.
//   npx zx scripts/bench-vagrant.mjs [--suite bookworm] [--runs 3] [--cells default|quick|none] [--out FILE] [--cache DIR]
import { parseArgs } from 'node:util';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { launch } from './launch.mjs';

const { argv, repoRoot, signal } = launch(import.meta.url, { message: () => '\ninterrupted: destroying the benchmark machines (again to force)...\n' });
const { benchVagrant, formatVagrantBench } = await import('../src/bench/vagrant.ts');
const { SUITES } = await import('../src/domain.ts');
const { parseSuite, resolveCacheRoot } = await import('../src/images/index.ts');
const { createReporter } = await import('../src/progress/reporter.ts');
const { stopAll } = await import('../src/cleanup.ts');
const { asLabError } = await import('../src/errors.ts');
const { loadMatrix } = await import('../src/config/matrix.ts');
const { int, one } = await import('../src/cli/flags.ts');

const HELP = `Usage: npx zx scripts/bench-vagrant.mjs [flags]
  --suite S     ${SUITES.join(', ')} (default bookworm)
  --runs N      ready-SSH measurements per backend, median reported (default 3)
  --cells C     cells of the time-per-target comparison: default (matrix.yaml's defaults,
                16 cells), quick (upstream + scoped, interleaved, preexisting), none (skip)
  --out FILE    write the results as JSON
  --cache DIR   cache root (default $USM_LAB_CACHE or ~/.cache/usm-race-lab)
  -h, --help
`;

let flags;
try {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      suite: { type: 'string', default: 'bookworm' },
      cells: { type: 'string', default: 'default' },
      runs: { type: 'string', default: '3' },
      out: { type: 'string' },
      cache: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  flags = {
    ...values,
    runs: int('runs', values.runs, 1, 100),
    cells: one('cells', values.cells, ['default', 'quick', 'none']),
    suite: parseSuite(values.suite),
  };
} catch (err) {
  process.stderr.write(
    `bench-vagrant: ${err.message.replace(/\. To specify a positional.*$/s, '')} (allowed: --suite, --runs, --cells, --out, --cache, --help)\n\n${HELP}`,
  );
  process.exit(2);
}

const reporter = createReporter(process.stderr);
let code = 0;
try {
  // matrix.yaml's settings (ports, trace, api, hook, iterations ...); quick narrows the cells.
  const { memory: _memory, ...defaults } = (await loadMatrix(resolve(repoRoot, 'matrix.yaml'))).defaults;
  const targetCells =
    flags.cells === 'none'
      ? undefined
      : flags.cells === 'quick'
        ? { ...defaults, variants: ['upstream', 'scoped'], modes: ['interleaved'], scenarios: ['preexisting'] }
        : defaults;
  const r = await benchVagrant({
    repoRoot,
    cacheDir: resolveCacheRoot({ flag: flags.cache }),
    suite: flags.suite,
    runs: flags.runs,
    ...(targetCells ? { targetCells } : {}),
    emit: reporter.emit,
    signal,
  });
  reporter.stop();
  process.stdout.write(`${formatVagrantBench(r)}\n`);
  if (flags.out) {
    await mkdir(dirname(resolve(flags.out)), { recursive: true });
    await writeFile(flags.out, JSON.stringify(r, null, 2) + '\n');
    process.stdout.write(`wrote ${flags.out}\n`);
  }
} catch (err) {
  reporter.stop();
  const e = asLabError(err);
  process.stderr.write(`bench-vagrant: ${e.kind}: ${e.message}\n${e.detail ? `${e.detail}\n` : ''}`);
  code = signal.aborted ? 130 : 3;
} finally {
  await stopAll();
}
process.exit(code);
