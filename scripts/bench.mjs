#!/usr/bin/env zx
// Benchmark on this host (needs root + BPF): throughput per tracer variant and the local matrix.
// Thin: see src/bench/local.ts and --help.
import { launch } from './launch.mjs';

const { argv, repoRoot, signal } = launch(import.meta.url, { signals: ['SIGINT'], force: false });
const { benchMain } = await import('../src/bench/local.ts');
const { stopAll } = await import('../src/cleanup.ts');
const code = await benchMain(argv, repoRoot, signal).catch((err) => {
  process.stderr.write(`error: ${err?.message ?? err}\n`);
  return 3;
});
await stopAll();
process.exit(code);
