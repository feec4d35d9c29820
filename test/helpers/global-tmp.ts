// vitest globalSetup (vitest.config.ts, vitest.mutation.config.ts, vitest.faults.config.ts): the
// tests' temporary folders go into one folder of this run, removed when the run ends. The test
// files make their folders with mkdtemp(tmpdir()) and most never removed them: a mutation run,
// which runs the unit tests thousands of times, left 1.8 GB in /tmp. Workers inherit TMPDIR, and
// so do the matrix runs and loaders the tests start. USM_LAB_KEEP_TEST_TMP=1 keeps the folder
// (its path is printed) to look at a failure.
//
// A run that is killed never reaches its teardown: Stryker kills its vitest runner on a timeout
// and at its end, leaving 0.2-1.3 GB a time. So the folder's name holds the pid of the process
// that made it, and every run first removes the folders of runs whose process is gone (not one
// kept with USM_LAB_KEEP_TEST_TMP=1, which puts a .keep file in it).
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive } from '../../src/images/lock.ts';

const PREFIX = 'usm-race-lab-tests-';
const NAME = new RegExp(`^${PREFIX}(\\d+)-[A-Za-z0-9]{6}$`);

/** The pid in a run folder's name (usm-race-lab-tests-<pid>-XXXXXX), or null for another name. */
export function ownerPid(name: string): number | null {
  const m = NAME.exec(name);
  return m ? Number(m[1]) : null;
}

/** Removes the run folders in base whose process is gone and that nobody asked to keep; returns their names. */
export function sweepDeadRuns(base: string): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(base)) {
    const pid = ownerPid(name);
    if (pid === null || alive(pid) || existsSync(join(base, name, '.keep'))) continue;
    rmSync(join(base, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

export function setup(): () => void {
  const base = tmpdir();
  sweepDeadRuns(base);
  const dir = mkdtempSync(join(base, `${PREFIX}${process.pid}-`));
  // as /tmp is for the users the tests run things as (libvirt's qemu reads images from there)
  chmodSync(dir, 0o755);
  const before = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  const keep = process.env.USM_LAB_KEEP_TEST_TMP === '1';
  if (keep) writeFileSync(join(dir, '.keep'), '');
  // a runner that exits without the teardown (Stryker disposing of it) still removes it
  const onExit = () => {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', onExit);
  return () => {
    process.off('exit', onExit);
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
    if (keep) process.stderr.write(`test temporary folders kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  };
}
