#!/usr/bin/env zx
// Main entry: run the kernel matrix. Thin: load the TypeScript library, map Ctrl-C, SIGTERM and
// a vanished parent to an abort, exit with the code it returns. See --help.
import { launch } from './launch.mjs';

let stopAll = async () => {};
const { argv, repoRoot, signal, exitCode } = launch(import.meta.url, {
  message: (sig) => `\n${sig}: stopping every VM and process of this run (again, a second later, to force)...\n`,
  onForce: () => stopAll(),
});
const { matrixMain } = await import('../src/cli/matrix.ts');
({ stopAll } = await import('../src/cleanup.ts'));

const code = await matrixMain({ argv, cwd: process.cwd(), repoRoot, env: process.env, stdout: process.stdout, stderr: process.stderr, signal });
await stopAll();
// Interrupted, even after the last cell (while the reports were written): 130, or 143 after
// SIGTERM, 129 when the parent went away (scripts/launch.mjs).
process.exit(exitCode(signal.aborted && code !== 2 ? 130 : code));
