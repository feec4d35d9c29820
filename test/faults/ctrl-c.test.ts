// Fault case 11: Ctrl-C (SIGINT to the whole process group, as a terminal sends it) at five
// points of a matrix run: boot (a real qemu guest), build, tracer start, traffic and report
// (the local backend, real tracer, client and servers). Each: exit 130, summary.json lists every
// planned cell, the cells finished before the signal keep their reports, nothing is left.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  LocalPids,
  MatrixRun,
  isPidFileOf,
  leftoverFiles,
  localRunDir,
  missingForLocal,
  missingForQemu,
  qemuOf,
  runIdOf,
  skipUnless,
  waitNoLeftovers,
} from './harness.ts';

const missingLocal = missingForLocal();
const missingQemu = missingForQemu();
const CELLS = ['--variants', 'upstream,scoped', '--modes', 'interleaved', '--scenarios', 'preexisting', '--trials', '1'];

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups) c();
  cleanups = [];
});

async function startLocal(iterations: number): Promise<{ r: MatrixRun; procs: LocalPids }> {
  const r = await MatrixRun.local(['--backend', 'local', ...CELLS, '--iterations', String(iterations)], mkdtempSync(join(tmpdir(), 'fault-ctrlc-')));
  const procs = new LocalPids(r);
  cleanups.push(() => {
    r.kill();
    procs.stop();
    for (const pid of procs.pids.values())
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
  });
  return { r, procs };
}

/** Ctrl-C: SIGINT to every process of the run's group (flock, npm, node), as a terminal does. */
const ctrlC = (r: MatrixRun) => process.kill(-r.pid, 'SIGINT');

async function expectInterrupted(r: MatrixRun, finished: number, procs?: LocalPids): Promise<void> {
  const exit = await r.exit(3 * 60_000);
  const cells = r.summary();
  const log = `${JSON.stringify(cells.map((c) => [c.variant, c.status, c.error]))}\n${r.log()}`;
  expect(exit.code, log).toBe(130);
  expect(cells, 'every planned cell is in summary.json').toHaveLength(2);
  const ok = cells.filter((c) => c.status === 'ok');
  expect(ok.length, log).toBe(finished);
  for (const c of ok)
    expect(existsSync(join(r.outDir, String(c.target), `${c.scenario}-${c.mode}-${c.variant}`, 'report.json')), 'a finished cell keeps its report').toBe(true);
  for (const c of cells.filter((x) => x.status !== 'ok')) expect(c.status, log).toBe('interrupted');
  expect(await waitNoLeftovers(r.outDir, 15_000)).toEqual([]);
  if (procs) {
    expect(procs.alive(), 'trial processes left running').toEqual([]);
    const id = runIdOf(r.outDir);
    if (id) expect(existsSync(localRunDir(id)), 'the run folder in /tmp is removed').toBe(false);
  }
  console.log(`figure: ctrl-c: exit ${exit.code}, cells ${cells.map((c) => `${c.variant}=${c.status}`).join(', ')}`);
}

describe.skipIf(skipUnless(missingQemu))(`Ctrl-C during the boot (real qemu)${missingQemu ? ` (skipped: ${missingQemu})` : ''}`, () => {
  it('requirements: root and QEMU are available', () => {
    expect(missingQemu, `this case cannot run here: ${missingQemu}`).toBeNull();
  });
  it(
    '11a: boot -> exit 130, both cells interrupted, the VM stopped',
    async () => {
      const t0 = Date.now();
      const r = new MatrixRun(['--targets', 'bookworm', ...CELLS, '--iterations', '20'], mkdtempSync(join(tmpdir(), 'fault-ctrlc-')));
      cleanups.push(() => r.kill());
      await r.waitFor(/\[bookworm\] ssh-wait\b/, 5 * 60_000);
      expect(qemuOf(r.outDir)).toHaveLength(1);
      ctrlC(r);
      await expectInterrupted(r, 0);
      expect(leftoverFiles(r.outDir, t0)).toEqual([]);
    },
    6 * 60_000,
  );
});

describe.skipIf(skipUnless(missingLocal))(`Ctrl-C on the local backend${missingLocal ? ` (skipped: ${missingLocal})` : ''}`, () => {
  it('requirements: root, BPF and flock are available', () => {
    expect(missingLocal, `these cases cannot run here: ${missingLocal}`).toBeNull();
  });

  it(
    '11b: build -> exit 130, both cells interrupted',
    async () => {
      const { r, procs } = await startLocal(2_000);
      await r.waitFor(/\[local\] build \.\.\./, 5 * 60_000);
      ctrlC(r);
      await expectInterrupted(r, 0);
      procs.stop();
    },
    6 * 60_000,
  );

  it(
    '11c: tracer start (its pid file there, not LOADED yet) -> exit 130, both cells interrupted, no process left',
    async () => {
      const { r, procs } = await startLocal(2_000);
      await procs.find('tracer', 5 * 60_000);
      ctrlC(r);
      await expectInterrupted(r, 0, procs);
    },
    6 * 60_000,
  );

  it(
    '11d: traffic of the second cell -> exit 130, the first cell kept, the second interrupted',
    async () => {
      const { r, procs } = await startLocal(20_000);
      await r.waitFor(/\[local\] run ok/, 5 * 60_000);
      const t0 = Date.now();
      // the second cell's tracer (one loaded per variant, tracer-<n>-<variant>.pid)
      while ([...procs.pids.keys()].filter((f) => isPidFileOf(f, 'tracer')).length < 2 && Date.now() - t0 < 60_000)
        await new Promise((res) => setTimeout(res, 50));
      await new Promise((res) => setTimeout(res, 4_000)); // the tracer attached, the client's requests under way
      ctrlC(r);
      await expectInterrupted(r, 1, procs);
    },
    6 * 60_000,
  );

  it(
    '11e: report (after the last cell, while the summary is written) -> exit 130, both cells kept',
    async () => {
      const { r, procs } = await startLocal(1_000);
      await r.waitFor(/\[local\] stop \.\.\./, 5 * 60_000);
      ctrlC(r);
      await expectInterrupted(r, 2, procs);
    },
    6 * 60_000,
  );
});
