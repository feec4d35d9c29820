#!/usr/bin/env zx
// Images for the qemu backend: list | build --suite S [--rebuild] | clean [--suite S]. Thin:
// load the TypeScript library, map Ctrl-C to an abort (the build removes its temporary folder),
// exit with the code it returns. See --help.
import { register } from 'tsx/esm/api';

register();
const { imagesMain } = await import('../src/images/cli.ts');
const { createReporter } = await import('../src/progress/reporter.ts');

const ac = new AbortController();
let interrupts = 0;
const onSignal = (sig) => {
  interrupts++;
  ac.abort();
  if (interrupts === 1) process.stderr.write(`\n${sig}: stopping the build and removing its temporary folder (again to force)...\n`);
  else process.exit(130);
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

const reporter = createReporter(process.stderr);
const code = await imagesMain({
  argv: process.argv.slice(process.argv.findIndex((a) => a.endsWith('images.mjs')) + 1),
  cwd: process.cwd(),
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  emit: reporter.emit,
  signal: ac.signal,
});
reporter.stop();
process.exit(code);
