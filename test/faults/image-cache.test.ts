// Fault case 13: a corrupt image cache. A truncated disk.qcow2 -> the boot rebuilds the image,
// says so (a progress line, and imageRebuilt in the target's facts), and the cell runs on the new
// image. A corrupt manifest.json -> the run says "rebuilding ...: corrupt manifest" (not "first
// use", no TypeError); that run is interrupted once the rebuild has started (the rebuild itself
// is the one the first case proves), and the interrupted build leaves the cache as it was.
// Never on the shared cache: each case copies a current bookworm image (from
// $USM_LAB_FAULT_IMAGE_SOURCE, else the default cache, under its build lock) into a temporary cache.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { imagePaths } from '../../src/images/manifest.ts';
import {
  MatrixRun,
  cacheLeftovers,
  copyImageCache,
  imageOk,
  leftoverFiles,
  missingForQemu,
  missingImageToCopy,
  qemuOf,
  skipUnless,
  waitNoLeftovers,
  tracked,
} from './harness.ts';

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

async function missingHere(): Promise<string | null> {
  const q = missingForQemu();
  if (q) return q;
  if (spawnSync('sh', ['-c', 'command -v debootstrap || test -x /usr/sbin/debootstrap']).status !== 0)
    return 'needs debootstrap (bash provision/host-deps.sh images)';
  return missingImageToCopy();
}
const missing = await missingHere();

const { runs, tempDir } = tracked();

function start(cache: string): MatrixRun {
  const out = tempDir('fault-img-');
  const r = new MatrixRun(ONE_CELL, join(out, 'out'), { USM_LAB_CACHE: cache });
  runs.push(r);
  return r;
}

describe.skipIf(skipUnless(missing))(`a corrupt image cache (real qemu, real image build)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root, QEMU, debootstrap and a current bookworm image to copy', () => {
    expect(missing, `the image cache fault cases cannot run here: ${missing}`).toBeNull();
  });

  it(
    '13a: a truncated disk.qcow2 -> rebuilt, the run says so (progress and facts.imageRebuilt), the cell ok on the new image',
    async () => {
      const cache = await copyImageCache(tempDir('fault-cache-'));
      const p = imagePaths(cache, 'bookworm');
      const before = JSON.parse(readFileSync(p.manifest, 'utf8')) as { sha256: string };
      truncateSync(p.disk, Math.floor(statSync(p.disk).size / 2));
      const t0 = Date.now();
      const r = start(cache);
      const exit = await r.exit(25 * 60_000);
      const cells = r.summary();
      const log = `${JSON.stringify(cells.map((c) => [c.variant, c.status, c.error]))}\n${r.log()}`;
      expect(r.stderr, log).toMatch(/rebuilding the bookworm image: checksum mismatch for \S*disk\.qcow2/);
      expect([0, 1], log).toContain(exit.code);
      expect(cells, log).toHaveLength(1);
      expect(cells[0]!.status, log).toBe('ok');
      const manifest = JSON.parse(readFileSync(join(r.outDir, 'manifest.json'), 'utf8')) as { targets: { facts: Record<string, unknown> }[] };
      expect(String(manifest.targets[0]!.facts.imageRebuilt), 'the target record says why the image was rebuilt').toMatch(/^checksum mismatch/);
      // the new image is whole, and another one than the truncated copy
      expect(await imageOk(cache), 'the new image is whole and current').toBe(true);
      expect((JSON.parse(readFileSync(p.manifest, 'utf8')) as { sha256: string }).sha256).not.toBe(before.sha256);
      expect(cacheLeftovers(cache)).toEqual([]);
      expect(await waitNoLeftovers(r.outDir, 15_000)).toEqual([]);
      expect(qemuOf(r.outDir)).toEqual([]);
      expect(leftoverFiles(r.outDir, t0)).toEqual([]);
      console.log(
        `figure: truncated qcow2: exit ${exit.code}, rebuilt (${manifest.targets[0]!.facts.imageRebuilt}), cell ${cells[0]!.status}, ${Math.round((Date.now() - t0) / 1000)} s`,
      );
    },
    30 * 60_000,
  );

  it(
    '13b: a corrupt manifest.json -> the run says "rebuilding ...: corrupt manifest" and starts the rebuild; interrupted there, the cache is as it was',
    async () => {
      const cache = await copyImageCache(tempDir('fault-cache-'));
      const p = imagePaths(cache, 'bookworm');
      const disk = statSync(p.disk).size;
      writeFileSync(p.manifest, '{"suite":"bookworm","kernel":"6.1');
      const t0 = Date.now();
      const r = start(cache);
      await r.waitFor(/rebuilding the bookworm image: corrupt manifest: \S*manifest\.json is not valid JSON/, 5 * 60_000);
      expect(r.stderr).not.toMatch(/first use/);
      await r.waitFor(/\[bookworm\] debootstrap\b/, 60_000);
      process.kill(-r.pid, 'SIGINT');
      const exit = await r.exit(120_000);
      expect(exit.code, r.log()).toBe(130);
      expect(r.summary().map((c) => c.status)).toEqual(['interrupted']);
      // the interrupted build removed its folder and lock; the old files are untouched
      expect(cacheLeftovers(cache)).toEqual([]);
      expect(statSync(p.disk).size).toBe(disk);
      expect(await waitNoLeftovers(r.outDir, 15_000)).toEqual([]);
      expect(leftoverFiles(r.outDir, t0)).toEqual([]);
      console.log(`figure: corrupt manifest: said so after ${Math.round((Date.now() - t0) / 1000)} s, exit ${exit.code}`);
    },
    10 * 60_000,
  );
});
