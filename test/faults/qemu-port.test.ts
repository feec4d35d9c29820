// Fault case 9 with real QEMU: the host forward's port is taken between its reservation and
// QEMU's bind. The test hook $USM_LAB_TEST_SQUAT_FORWARD makes the run's own process bind the
// first reserved port right after handing it off (and write its number to a file): QEMU really
// fails to set up the forward, and the toolkit must start QEMU again on another port, say so, and
// run the cell. Never on the shared cache: a copy of a current bookworm image in a temporary cache.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  MatrixRun,
  copyImageCache,
  descendants,
  leftoverFiles,
  listenersOf,
  missingForQemu,
  missingImageToCopy,
  qemuOf,
  skipUnless,
  waitNoLeftovers,
  tracked,
} from './harness.ts';

const missing = missingForQemu() ?? (await missingImageToCopy());
const ONE_CELL = [
  '--targets',
  'bookworm',
  '--variants',
  'upstream',
  '--modes',
  'interleaved',
  '--scenarios',
  'preexisting',
  '--trials',
  '1',
  '--iterations',
  '20',
];

const { runs, tempDir } = tracked();

describe.skipIf(skipUnless(missing))(`the host forward port taken (real qemu)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root, QEMU and a current bookworm image to copy', () => {
    expect(missing, `the case cannot run here: ${missing}`).toBeNull();
  });

  it(
    '9: the first forward port taken before QEMU binds it -> QEMU started again on another port, said so; the cell ok',
    async () => {
      const cache = await copyImageCache(tempDir('fault-cache-'));
      const file = join(tempDir('fault-port-'), 'squatted');
      const t0 = Date.now();
      const r = new MatrixRun(ONE_CELL, join(tempDir('fault-port-out-'), 'out'), { USM_LAB_CACHE: cache, USM_LAB_TEST_SQUAT_FORWARD: file });
      runs.push(r);
      await r.waitFor(/\[bookworm\] ssh-wait\b/, 5 * 60_000);
      const taken = Number(readFileSync(file, 'utf8').trim());
      expect(taken).toBeGreaterThan(0);
      // the port is really held (by the run's node process), and QEMU forwards another one
      const node = descendants(r.pid).find((p) => /^node .*matrix\.mjs/.test(p.cmdline));
      expect(listenersOf(node!.pid), `node holds 127.0.0.1:${taken}`).toContain(`127.0.0.1:${taken}`);
      const qemu = qemuOf(r.outDir);
      expect(qemu).toHaveLength(1);
      const fwd = Number(/hostfwd=tcp:127\.0\.0\.1:(\d+)-:22/.exec(qemu[0]!.cmdline)?.[1]);
      expect(fwd, qemu[0]!.cmdline).toBeGreaterThan(0);
      expect(fwd).not.toBe(taken);
      const exit = await r.exit(20 * 60_000);
      const cells = r.summary();
      const log = `${JSON.stringify(cells.map((c) => [c.variant, c.status, c.error]))}\n${r.log()}`;
      expect([0, 1], log).toContain(exit.code);
      expect(cells.map((c) => c.status)).toEqual(['ok']);
      expect(r.stderr, log).toContain(`the SSH forward's port 127.0.0.1:${taken} was taken before QEMU could bind it: QEMU started again on ${fwd}`);
      expect(readFileSync(join(r.outDir, 'bookworm', 'qemu.log'), 'utf8'), 'QEMU itself said why').toMatch(/host forwarding rule|Address already in use/i);
      const manifest = JSON.parse(readFileSync(join(r.outDir, 'manifest.json'), 'utf8')) as { targets: { facts: { sshPort?: number } }[] };
      expect(manifest.targets[0]!.facts.sshPort).toBe(fwd);
      expect(await waitNoLeftovers(r.outDir, 15_000)).toEqual([]);
      expect(qemuOf(r.outDir)).toEqual([]);
      expect(leftoverFiles(r.outDir, t0)).toEqual([]);
      expect(existsSync(join(r.outDir, 'bookworm', 'overlay.qcow2'))).toBe(false);
      console.log(
        `figure: forward port taken: ${taken} squatted, QEMU on ${fwd}; exit ${exit.code}, cell ${cells[0]!.status}, ${Math.round((Date.now() - t0) / 1000)} s`,
      );
    },
    25 * 60_000,
  );
});
