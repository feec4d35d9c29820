// Fault case 17: the qemu process dies mid-cell (SIGKILL). The cell says the VM died (status
// vm-died, the console tail saved), the target is booted again once for the cells left, which
// complete with their figures; exit 3; nothing of the run is left. A real qemu guest.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MatrixRun, leftoverFiles, missingForQemu, qemuOf, skipUnless, waitNoLeftovers } from './harness.ts';

const missing = missingForQemu();
let runs: MatrixRun[] = [];
afterEach(() => {
  for (const r of runs) r.kill();
  runs = [];
});

describe.skipIf(skipUnless(missing))(`the VM dies mid-cell (real qemu)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root and QEMU are available', () => {
    expect(missing, `the vm-died fault case cannot run here: ${missing}`).toBeNull();
  });

  it(
    'SIGKILL of qemu during the first cell: that cell vm-died with the console tail, the target booted again once, the other cell ok; exit 3; nothing left',
    async () => {
      const args = ['--targets', 'bookworm', '--variants', 'upstream,scoped', '--modes', 'interleaved', '--scenarios', 'preexisting', '--iterations', '20'];
      const r = new MatrixRun(args, mkdtempSync(join(tmpdir(), 'fault-vmdied-')));
      runs.push(r);
      const t0 = Date.now();
      await r.waitFor(/\[bookworm\] run \S+#1 \.\.\./, 10 * 60_000);
      await new Promise((res) => setTimeout(res, 3_000)); // mid-protocol: servers and client up
      const [qemu] = qemuOf(r.outDir);
      expect(qemu, r.log()).toBeDefined();
      process.kill(qemu!.pid, 'SIGKILL');
      const exit = await r.exit(15 * 60_000);
      expect(exit.code, r.log()).toBe(3);
      const cells = r.summary();
      expect(cells, 'every planned cell is in summary.json').toHaveLength(2);
      const died = cells.filter((c) => c.status === 'vm-died');
      const ok = cells.filter((c) => c.status === 'ok');
      expect(died, JSON.stringify(cells, null, 1)).toHaveLength(1);
      expect(died[0]!.error).toMatch(/the VM died mid-cell: QEMU exited \(SIGKILL\)/);
      expect(ok, 'the cell left ran on the VM booted again, with its figures').toHaveLength(1);
      expect((ok[0] as { captured?: number }).captured).toBeGreaterThan(0);
      const tail = readFileSync(join(r.outDir, 'bookworm', 'vm-died.txt'), 'utf8');
      expect(tail).toMatch(/console\.log \(tail\)/);
      expect(tail).toMatch(/Server listening on/); // the guest's console, up to its death
      const manifest = JSON.parse(readFileSync(join(r.outDir, 'manifest.json'), 'utf8'));
      expect(manifest.targets[0].reboots).toBe(1);
      expect(r.stderr).toMatch(/booting it again \(once\) for the cells left/);
      expect(await waitNoLeftovers(r.outDir, 10_000)).toEqual([]);
      expect(leftoverFiles(r.outDir, t0)).toEqual([]);
      expect(existsSync(join(r.outDir, 'summary.md'))).toBe(true);
      console.log(`figure: vm-died: exit ${exit.code}, cells ${cells.map((c) => c.status).join(',')}, run ${Math.round((exit.at - t0) / 1000)} s`);
    },
    20 * 60_000,
  );
});
