// Fault case 14: the report folder's disk gets full mid-run. --out is on a small tmpfs mounted
// here; once the first cell's report is written and the second cell's client runs, the rest of
// the tmpfs is filled. Expected: the first cell's report kept on disk (ok, with its figures); the
// second cell `output-failed` (never `internal`); the run goes on to the end, prints every cell
// and says the folder is full; exit 3; nothing left running. Local backend, real tracer, client
// and servers, under the host-wide lock /tmp/usm-local.lock.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalPids, MatrixRun, localRunDir, missingForLocal, runIdOf, skipUnless, waitNoLeftovers, tracked } from './harness.ts';

function missingHere(): string | null {
  const m = missingForLocal();
  if (m) return m;
  const probe = mkdtempSync(join(tmpdir(), 'fault-mnt-probe-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { encoding: 'utf8', timeout: 10_000 });
  if (r.status === 0) spawnSync('umount', [probe], { timeout: 10_000 });
  rmSync(probe, { recursive: true, force: true });
  return r.status === 0 ? null : `cannot mount a tmpfs here (${r.stderr.trim()})`;
}
const missing = missingHere();
const TWO_CELLS = [
  '--backend',
  'local',
  '--variants',
  'upstream,scoped',
  '--modes',
  'interleaved',
  '--scenarios',
  'preexisting',
  '--trials',
  '1',
  '--iterations',
  '2000',
];

let mnt: string | undefined;
const { runs, watchers } = tracked();
afterAll(() => {
  if (mnt) {
    spawnSync('umount', [mnt], { timeout: 30_000 });
    rmSync(mnt, { recursive: true, force: true });
  }
});

const until = async (ok: () => boolean, timeoutMs: number, what: string) => {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe.skipIf(skipUnless(missing))(`the report folder's disk full (tmpfs as --out)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root, BPF, flock and tmpfs mounts', () => {
    expect(missing, `the disk-full case cannot run here: ${missing}`).toBeNull();
  });

  it(
    '14: the disk fills during the second cell -> that cell output-failed, the first one kept (ok, with figures), every cell printed; exit 3',
    async () => {
      mnt = mkdtempSync(join(tmpdir(), 'fault-full-'));
      const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', mnt], { encoding: 'utf8', timeout: 10_000 });
      expect(m.status, m.stderr).toBe(0);
      const out = join(mnt, 'out');
      const asked = Date.now();
      const r = await MatrixRun.local(TWO_CELLS, out);
      const locked = Date.now();
      runs.push(r);
      const procs = new LocalPids(r);
      watchers.push(procs);
      const first = join(out, 'local', 'preexisting-interleaved-upstream', 'report.json');
      await until(() => existsSync(first), 5 * 60_000, `${first}\n${r.log()}`);
      // the second cell's client is running: fill the disk before its trial is fetched
      const second = join(localRunDir(runIdOf(out)!), 'preexisting-interleaved-scoped');
      await until(
        () => [...procs.pids.keys()].some((f) => f.includes('preexisting-interleaved-scoped') && f.endsWith('client.pid')),
        60_000,
        `client of ${second}`,
      );
      const dd = spawnSync('dd', ['if=/dev/zero', `of=${join(mnt, 'filler')}`, 'bs=1M'], { encoding: 'utf8', timeout: 60_000 });
      expect(dd.stderr).toMatch(/No space left on device/);
      const exit = await r.exit(10 * 60_000);
      const log = r.log();
      expect(exit.code, log).toBe(3);
      // the first cell's report stayed as written: ok, with its figures
      const kept = JSON.parse(readFileSync(first, 'utf8')) as { cell: { status: string; captured: number } };
      expect(kept.cell.status).toBe('ok');
      expect(kept.cell.captured, 'the kept cell has its figures').toBeGreaterThan(0);
      // every cell is printed (the table), the second one output-failed; the run says the folder is full
      expect(r.stdout, log).toMatch(/upstream[^\n]*\bok\b/);
      expect(r.stdout, log).toMatch(/scoped[^\n]*output-failed/);
      expect(r.stderr, log).toMatch(/error: output-failed: cannot write .*no space left on the device/);
      expect(`${r.stdout}\n${r.stderr}`, 'a full disk is never an internal error').not.toMatch(/\binternal\b/);
      expect(await waitNoLeftovers(out, 10_000)).toEqual([]);
      expect(procs.alive(), 'trial processes left running').toEqual([]);
      expect(existsSync(localRunDir(runIdOf(out)!)), 'the run folder in /tmp is removed').toBe(false);
      console.log(
        `figure: disk full: exit ${exit.code} after ${Math.round((exit.at - locked) / 1000)} s (lock waited ${Math.round((locked - asked) / 1000)} s); ${r.stderr.split('\n').find((l) => l.startsWith('error:'))}`,
      );
    },
    12 * 60_000,
  );
});
