#!/usr/bin/env zx
// Boot benchmark: per suite, boot-to-SSH (median of --runs) against the floor (same kernel,
// busybox marker initrd, no disk) measured in the same run; ratio goal <= 2.0. Thin: flags ->
// src/bench/boot.ts -> table on stdout, JSON to --out.
//   npx zx scripts/bench-boot.mjs [--suite S,...|all] [--runs 3] [--cold [--parallel N]] [--out FILE] [--cache DIR]
import { parseArgs } from 'node:util';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { launch } from './launch.mjs';

// First signal: abort (a build removes its temporary folder, VMs stop); second: leave at once.
let stopAll = async () => {};
const { argv, signal } = launch(import.meta.url, { message: (sig) => `\n${sig}: stopping (again to force)...\n`, onInterrupt: () => void stopAll() });
const { benchBoot, formatBench } = await import('../src/bench/boot.ts');
({ stopAll } = await import('../src/cleanup.ts'));
const { SUITES } = await import('../src/domain.ts');
const { parseSuite, resolveCacheRoot } = await import('../src/images/index.ts');
const { createReporter } = await import('../src/progress/reporter.ts');
const { int } = await import('../src/cli/flags.ts');

const HELP = `Usage: npx zx scripts/bench-boot.mjs [flags]
  --suite S,...   ${SUITES.join(', ')} or all (default all)
  --runs N        boots per suite, median reported (default 3)
  --cold          rebuild every image first (N at a time) and report the cold build times:
                  wall time for all, and each image's own
  --parallel N    cold builds at once (default: the number of cores, as matrix.mjs)
  --out FILE      write the results as JSON
  --cache DIR     cache root (default $USM_LAB_CACHE or ~/.cache/usm-race-lab)
  -h, --help
`;

let flags;
try {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      suite: { type: 'string', default: 'all' },
      runs: { type: 'string', default: '3' },
      cold: { type: 'boolean', default: false },
      parallel: { type: 'string' },
      out: { type: 'string' },
      cache: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const runs = int('runs', values.runs, 1, 100);
  const parallel = int('parallel', values.parallel, 1, 64);
  if (parallel !== undefined && !values.cold) throw new Error('--parallel only applies with --cold');
  const suites = values.suite === 'all' ? [...SUITES] : values.suite.split(',').map((s) => parseSuite(s.trim()));
  flags = { ...values, runs, suites, parallel };
} catch (err) {
  process.stderr.write(
    `bench-boot: ${err.message.replace(/\. To specify a positional.*$/s, '')} (allowed: --suite, --runs, --cold, --parallel, --out, --cache, --help)\n\n${HELP}`,
  );
  process.exit(2);
}

const reporter = createReporter(process.stderr);
const workDir = await mkdtemp(join(tmpdir(), 'bench-boot-'));
const result = await benchBoot({
  suites: flags.suites,
  runs: flags.runs,
  cold: flags.cold,
  ...(flags.parallel ? { parallel: flags.parallel } : {}),
  cacheDir: resolveCacheRoot({ flag: flags.cache }),
  workDir,
  emit: reporter.emit,
  signal,
});
reporter.stop();
await stopAll();
await rm(workDir, { recursive: true, force: true });
process.stdout.write(formatBench(result));
if (flags.out) {
  const out = resolve(flags.out);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(`wrote ${out}\n`);
}
process.exit(signal.aborted ? 130 : result.suites.some((s) => s.error) ? 3 : 0);
