#!/usr/bin/env zx
// Main entry: run the kernel matrix. Thin: load the TypeScript library, map Ctrl-C to an abort,
// exit with the code it returns. See --help.
import { launch } from './launch.mjs';

let stopAll = async () => {};
const { argv, repoRoot, signal } = launch(import.meta.url, {
  message: (sig) => `\n${sig}: stopping every VM and process of this run (again to force)...\n`,
  onForce: () => stopAll(),
});
const { matrixMain } = await import('../src/cli/matrix.ts');
({ stopAll } = await import('../src/cleanup.ts'));

const code = await matrixMain({ argv, cwd: process.cwd(), repoRoot, env: process.env, stdout: process.stdout, stderr: process.stderr, signal });
await stopAll();
process.exit(code);
