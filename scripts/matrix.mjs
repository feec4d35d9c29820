#!/usr/bin/env zx
// Main entry: run the kernel matrix. Thin: load the TypeScript library, map Ctrl-C to an abort,
// exit with the code it returns. See --help.
import { register } from 'tsx/esm/api';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';

register();
const repoRoot = dirname(dirname(fileURLToPath(import.meta.url)));
const { matrixMain } = await import('../src/cli/matrix.ts');
const { stopAll } = await import('../src/cleanup.ts');

const ac = new AbortController();
let interrupts = 0;
const onSignal = (sig) => {
  interrupts++;
  ac.abort();
  if (interrupts === 1) process.stderr.write(`\n${sig}: stopping every VM and process of this run (again to force)...\n`);
  else stopAll().finally(() => process.exit(130));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

const code = await matrixMain({
  argv: process.argv.slice(process.argv.findIndex((a) => a.endsWith('matrix.mjs')) + 1),
  cwd: process.cwd(),
  repoRoot,
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  signal: ac.signal,
});
await stopAll();
process.exit(code);
