// vitest globalSetup (vitest.config.ts, vitest.mutation.config.ts, vitest.faults.config.ts): the
// tests' temporary folders go into one folder of this run, removed when the run ends. The test
// files make their folders with mkdtemp(tmpdir()) and most never removed them: a mutation run,
// which runs the unit tests thousands of times, left 1.8 GB in /tmp. Workers inherit TMPDIR, and
// so do the matrix runs and loaders the tests start. USM_LAB_KEEP_TEST_TMP=1 keeps the folder
// (its path is printed) to look at a failure.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'usm-race-lab-tests-'));
  // as /tmp is for the users the tests run things as (libvirt's qemu reads images from there)
  chmodSync(dir, 0o755);
  const before = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  return () => {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
    if (process.env.USM_LAB_KEEP_TEST_TMP === '1') process.stderr.write(`test temporary folders kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  };
}
