// test/helpers/global-tmp.ts: the run folder's name holds its process's pid, and a run removes
// the folders of runs whose process is gone (a vitest runner Stryker killed), never a live run's,
// a kept one or another name. Real processes: a child that has exited gives a pid that is gone.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownerPid, sweepDeadRuns } from './helpers/global-tmp.ts';

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync('true');
  expect(r.status).toBe(0);
  return r.pid!;
}

describe('global-tmp', () => {
  it.each([
    ['usm-race-lab-tests-4242-a1B2c3', 4242],
    ['usm-race-lab-tests-a1B2c3', null], // the old name, without a pid
    ['usm-race-lab-tests-4242-a1B2c', null],
    ['xusm-race-lab-tests-4242-a1B2c3', null],
    ['usm-race-lab-tests-4242-a1B2c3-x', null],
  ])('ownerPid(%j) is %j', (name, pid) => {
    expect(ownerPid(name)).toBe(pid);
  });

  it("removes the folders of runs whose process is gone, with what is in them; keeps a live run's, a kept one's and other names", () => {
    const base = mkdtempSync(join(tmpdir(), 'sweep-'));
    const dead = deadPid();
    const make = (name: string, files: string[] = ['a/b.log']) => {
      for (const f of files) {
        mkdirSync(join(base, name, f, '..'), { recursive: true });
        writeFileSync(join(base, name, f), 'x');
      }
      return name;
    };
    const gone = make(`usm-race-lab-tests-${dead}-AAAAAA`);
    const live = make(`usm-race-lab-tests-${process.pid}-BBBBBB`);
    const init = make('usm-race-lab-tests-1-CCCCCC'); // pid 1 is always there
    const kept = make(`usm-race-lab-tests-${dead}-DDDDDD`, ['.keep', 'a/b.log']);
    const old = make('usm-race-lab-tests-EEEEEE');
    const other = make(`other-${dead}-FFFFFF`);
    expect(sweepDeadRuns(base)).toEqual([gone]);
    expect([gone, live, init, kept, old, other].map((n) => existsSync(join(base, n)))).toEqual([false, true, true, true, true, true]);
    expect(sweepDeadRuns(base)).toEqual([]);
  });
});
