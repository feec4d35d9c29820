#!/usr/bin/env zx
// Benchmark on this host (needs root + BPF): throughput per tracer variant and the local matrix.
// Thin: see src/bench/local.ts and --help.
import { register } from 'tsx/esm/api';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';

register();
const repoRoot = dirname(dirname(fileURLToPath(import.meta.url)));
const { benchMain } = await import('../src/bench/local.ts');
const { stopAll } = await import('../src/cleanup.ts');
const ac = new AbortController();
process.on('SIGINT', () => ac.abort());
const code = await benchMain(process.argv.slice(process.argv.findIndex((a) => a.endsWith('bench.mjs')) + 1), repoRoot, ac.signal).catch((err) => {
  process.stderr.write(`error: ${err?.message ?? err}\n`);
  return 3;
});
await stopAll();
process.exit(code);
