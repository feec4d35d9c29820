// Fault cases 1 and 2 on a real qemu guest, through the test hooks of scripts/matrix.mjs
// ($USM_LAB_TEST_APPEND: extra guest kernel arguments; $USM_LAB_TEST_BOOT_TIMEOUT_S: the boot
// deadline): a kernel panic at boot, and a guest that never starts sshd.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MatrixRun, leftoverFiles, missingForQemu, skipUnless, waitNoLeftovers } from './harness.ts';

const missing = missingForQemu();
const TWO_CELLS = ['--targets', 'bookworm', '--variants', 'upstream,scoped', '--modes', 'interleaved', '--scenarios', 'preexisting', '--iterations', '20'];
let runs: MatrixRun[] = [];
afterEach(() => {
  for (const r of runs) r.kill();
  runs = [];
});

async function bootFault(env: NodeJS.ProcessEnv, kind: string, error: RegExp, fileRe: RegExp): Promise<void> {
  const t0 = Date.now();
  const r = new MatrixRun(TWO_CELLS, mkdtempSync(join(tmpdir(), 'fault-boot-')), env);
  runs.push(r);
  const exit = await r.exit(10 * 60_000);
  const cells = r.summary();
  const log = `${JSON.stringify(cells.map((c) => [c.variant, c.status, c.error]))}\n${r.log()}`;
  expect(exit.code, log).toBe(3);
  expect(cells, 'every planned cell is in summary.json').toHaveLength(2);
  for (const c of cells) {
    expect(c.status, log).toBe(kind);
    expect(c.error, log).toMatch(error);
  }
  // The console tail that says why, saved beside the target's logs and quoted in summary.md.
  const detail = readFileSync(join(r.outDir, 'bookworm', `${kind}.txt`), 'utf8');
  expect(detail, log).toMatch(fileRe);
  expect(existsSync(join(r.outDir, 'summary.md'))).toBe(true);
  expect(await waitNoLeftovers(r.outDir, 10_000)).toEqual([]);
  expect(leftoverFiles(r.outDir, t0)).toEqual([]);
  console.log(`figure: ${kind}: exit ${exit.code}, cells ${cells.map((c) => c.status).join(',')}, ${Math.round((exit.at - t0) / 1000)} s`);
}

describe.skipIf(skipUnless(missing))(`boot faults (real qemu)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root and QEMU are available', () => {
    expect(missing, `the boot fault cases cannot run here: ${missing}`).toBeNull();
  });

  it('1: a kernel panic at boot (init= names no program) -> every cell boot-failed with the panic and its cause; exit 3; nothing left', () =>
    bootFault({ USM_LAB_TEST_APPEND: 'init=/no-such-init' }, 'boot-failed', /kernel panic|QEMU exited/, /no-such-init is missing[\s\S]*Kernel panic/));

  it('2: SSH never comes up (init=/bin/sh: no sshd) -> every cell boot-timeout; exit 3; the VM stopped', () =>
    bootFault({ USM_LAB_TEST_APPEND: 'init=/bin/sh', USM_LAB_TEST_BOOT_TIMEOUT_S: '40' }, 'boot-timeout', /SSH|within/i, /console\.log/));
});
