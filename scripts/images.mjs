#!/usr/bin/env zx
// Images for the qemu backend: list | build --suite S [--rebuild] | clean [--suite S]; and
// box --suite S: the image as a versioned Vagrant box for the vagrant backend. Thin:
// load the TypeScript library, map Ctrl-C to an abort (the build removes its temporary folder),
// exit with the code it returns. See --help.
import { launch } from './launch.mjs';

const { argv, repoRoot, signal, exitCode } = launch(import.meta.url, {
  message: (sig) => `\n${sig}: stopping the build and removing its temporary folder (again to force)...\n`,
});
const { imagesMain } = await import('../src/images/cli.ts');
const { createReporter } = await import('../src/progress/reporter.ts');

const reporter = createReporter(process.stderr);
// `box --suite S`: the suite's image as a versioned Vagrant box (src/backends/vagrant/boxcli.ts).
const main = argv[0] === 'box' ? (await import('../src/backends/vagrant/boxcli.ts')).boxMain : imagesMain;
const code = await main({
  argv: argv[0] === 'box' ? argv.slice(1) : argv,
  repoRoot,
  cwd: process.cwd(),
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  emit: reporter.emit,
  signal,
});
reporter.stop();
process.exit(exitCode(code));
