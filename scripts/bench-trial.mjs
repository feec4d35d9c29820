#!/usr/bin/env zx
// Per-trial benchmark: where every second of a trial goes (see src/bench/trial.ts and --help).
import { launch } from './launch.mjs';

const { argv, repoRoot, signal } = launch(import.meta.url, { signals: ['SIGINT', 'SIGTERM'], force: false });
const { benchTrial } = await import('../src/bench/trial.ts');
const { stopAll } = await import('../src/cleanup.ts');
const code = await benchTrial(argv, repoRoot, signal).catch((err) => {
  process.stderr.write(`error: ${err?.message ?? err}\n`);
  return 3;
});
await stopAll();
process.exit(code);
