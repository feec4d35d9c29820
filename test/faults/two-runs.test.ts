// Fault case 15: two matrix runs at once. 15a: on one report folder -> the second is refused at
// once (exit 2, naming the first's pid), the first finishes with every cell. 15b: on one image
// cache whose image must be rebuilt -> the second waits for the first's build and says so
// (naming the builder's pid); it is interrupted while waiting (one guest at a time on this host),
// and the first builds, boots and runs its cell unharmed; the cache holds no lock or build folder
// afterwards. 15d: two runs at once on one warm image cache, each booting its own guest -> both
// complete with their figures, each guest on its own forward port and overlay, nothing shared
// left behind. 15b and 15d never touch the shared cache: they copy a current bookworm image (from
// $USM_LAB_FAULT_IMAGE_SOURCE, else the default cache) into a temporary cache.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { imagePaths } from '../../src/images/manifest.ts';
import {
  LocalPids,
  MatrixRun,
  cacheLeftovers,
  copyImageCache,
  descendants,
  imageOk,
  leftoverFiles,
  missingForLocal,
  missingForQemu,
  missingImageToCopy,
  qemuOf,
  skipUnless,
  waitNoLeftovers,
  tracked,
} from './harness.ts';

/** An unreachable mirror: a run that wrongly went on to build an image fails at once (never a guest). */
const NO_MIRROR = { USM_LAB_MIRROR: 'http://127.0.0.1:9/debian' };
const QEMU_CELL = [
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

async function missingForCache(): Promise<string | null> {
  const q = missingForQemu();
  if (q) return q;
  if (spawnSync('sh', ['-c', 'command -v debootstrap || test -x /usr/sbin/debootstrap']).status !== 0)
    return 'needs debootstrap (bash provision/host-deps.sh images)';
  return missingImageToCopy();
}
const missingLocal = missingForLocal() ?? missingForQemu();
const missingCache = await missingForCache();

const { runs, watchers, tempDir } = tracked();
const until = async (ok: () => boolean, timeoutMs: number, what: () => string) => {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`no ${what()} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe.skipIf(skipUnless(missingLocal))(`two runs on one report folder${missingLocal ? ` (skipped: ${missingLocal})` : ''}`, () => {
  it('requirements: root, BPF, flock, QEMU', () => {
    expect(missingLocal, `the case cannot run here: ${missingLocal}`).toBeNull();
  });

  it(
    '15a: a second run given the same --out is refused at once (exit 2, the first pid named); the first finishes with every cell',
    async () => {
      const out = join(tempDir('fault-two-'), 'out');
      const first = await MatrixRun.local(
        [
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
          '20000',
        ],
        out,
      );
      runs.push(first);
      const procs = new LocalPids(first);
      watchers.push(procs);
      await until(
        () => existsSync(join(out, 'manifest.json')),
        60_000,
        () => `manifest.json of the first run\n${first.log()}`,
      );
      // The second run: another target on an empty cache with no mirror, so that if it were let in
      // it would fail at once at its image build instead of running beside the first.
      const second = new MatrixRun(QEMU_CELL, out, { USM_LAB_CACHE: tempDir('fault-two-cache-'), ...NO_MIRROR });
      runs.push(second);
      const t0 = Date.now();
      const exit2 = await second.exit(60_000);
      expect(exit2.code, second.log()).toBe(2);
      const holder = Number(/another matrix run \(pid (\d+)\) is writing to (\S+):/.exec(second.stderr)?.[1]);
      expect(second.stderr, second.log()).toContain(`is writing to ${out}: wait for it to finish, or give this run another --out`);
      expect(
        descendants(first.pid).map((p) => p.pid),
        'the pid named is the first run',
      ).toContain(holder);
      expect(exit2.at - t0, 'refused at once').toBeLessThan(20_000);
      expect(second.stderr, 'the second run did not start a target').not.toMatch(/\[bookworm\]/);
      const exit1 = await first.exit(10 * 60_000);
      const cells = first.summary();
      expect([0, 1], first.log()).toContain(exit1.code);
      expect(
        cells.map((c) => [c.target, c.variant, c.status]),
        'only the first run in the folder',
      ).toEqual([
        ['local', 'upstream', 'ok'],
        ['local', 'scoped', 'ok'],
      ]);
      expect(existsSync(join(out, '.run.lock')), 'the folder lock is gone with the first run').toBe(false);
      expect(await waitNoLeftovers(out, 10_000)).toEqual([]);
      expect(procs.alive()).toEqual([]);
      console.log(
        `figure: same --out: second exit ${exit2.code} after ${exit2.at - t0} ms; first exit ${exit1.code}, cells ${cells.map((c) => c.status).join(', ')}`,
      );
    },
    12 * 60_000,
  );
});

describe.skipIf(skipUnless(missingLocal))(`two local runs at once${missingLocal ? ` (skipped: ${missingLocal})` : ''}`, () => {
  it(
    "15c: a second local run waits for the first (this host's ports and libssl are one), says so naming the first's pid, then runs; both complete every cell",
    async () => {
      const cells = ['--backend', 'local', '--variants', 'upstream', '--modes', 'interleaved', '--scenarios', 'preexisting', '--trials', '1'];
      // the first under the suite's flock (other users of this machine), the second beside it with only the toolkit's own lock
      const first = await MatrixRun.local([...cells, '--iterations', '3000'], join(tempDir('fault-local-a-'), 'out'));
      runs.push(first);
      await first.waitFor(/\[local\] run preexisting/, 5 * 60_000);
      const second = new MatrixRun([...cells, '--iterations', '50'], join(tempDir('fault-local-b-'), 'out'));
      runs.push(second);
      await second.waitFor(/is using this host's local backend/, 60_000);
      const holder = Number(/another matrix run \(pid (\d+)\)/.exec(second.stderr)![1]);
      expect(
        descendants(first.pid).map((d) => d.pid),
        'the holder named is the first run',
      ).toContain(holder);
      expect(second.stderr, 'the second starts nothing while it waits').not.toMatch(/\[local\] run /);
      const exit1 = await first.exit(10 * 60_000);
      const exit2 = await second.exit(10 * 60_000);
      expect([0, 1], first.log()).toContain(exit1.code);
      expect([0, 1], second.log()).toContain(exit2.code);
      expect(first.summary().map((c) => c.status)).toEqual(['ok']);
      expect(second.summary().map((c) => c.status)).toEqual(['ok']);
      for (const r of [first, second]) expect(await waitNoLeftovers(r.outDir, 15_000)).toEqual([]);
      console.log(`figure: two local runs: the second waited for pid ${holder}; exits ${exit1.code}, ${exit2.code}; cells ok, ok`);
    },
    20 * 60_000,
  );
});

describe.skipIf(skipUnless(missingCache))(
  `two runs on one image cache (real qemu, real image build)${missingCache ? ` (skipped: ${missingCache})` : ''}`,
  () => {
    it('requirements: root, QEMU, debootstrap and a current bookworm image to copy', () => {
      expect(missingCache, `the case cannot run here: ${missingCache}`).toBeNull();
    });

    it(
      '15d: two runs at once on one warm cache, each booting its own guest: both complete every cell with its figures; separate ports and overlays; nothing left',
      async () => {
        const cache = await copyImageCache(tempDir('fault-cache-'));
        const t0 = Date.now();
        const env = { USM_LAB_CACHE: cache, ...NO_MIRROR };
        const a = new MatrixRun(QEMU_CELL, join(tempDir('fault-both-a-'), 'out'), env);
        runs.push(a);
        const b = new MatrixRun(QEMU_CELL, join(tempDir('fault-both-b-'), 'out'), env);
        runs.push(b);
        // both guests up at the same time (each run's qemu, by its own folder)
        await until(
          () => qemuOf(a.outDir).length > 0 && qemuOf(b.outDir).length > 0,
          5 * 60_000,
          () => 'two guests',
        );
        const port = (out: string) => /hostfwd=tcp:127\.0\.0\.1:(\d+)-:22/.exec(qemuOf(out)[0]?.cmdline ?? '')?.[1];
        const pa = port(a.outDir);
        const pb = port(b.outDir);
        expect(pa).toBeDefined();
        expect(pa).not.toBe(pb);
        const [ea, eb] = await Promise.all([a.exit(20 * 60_000), b.exit(20 * 60_000)]);
        for (const [r, e] of [
          [a, ea],
          [b, eb],
        ] as const) {
          expect([0, 1], r.log()).toContain(e.code);
          const cells = r.summary();
          expect(cells.map((c) => c.status)).toEqual(['ok']);
          // figures, not a silent 0: the upstream cell's rows were captured
          expect(Number(cells[0]!.captured), r.log()).toBeGreaterThan(0);
          expect(r.stderr, 'a warm cache: no image is rebuilt').not.toMatch(/rebuilding|building the bookworm image/);
          expect(await waitNoLeftovers(r.outDir, 15_000)).toEqual([]);
          expect(qemuOf(r.outDir)).toEqual([]);
          expect(leftoverFiles(r.outDir, t0)).toEqual([]);
        }
        expect(await imageOk(cache)).toBe(true);
        expect(cacheLeftovers(cache)).toEqual([]);
        console.log(`figure: two guest-booting runs on one cache: exits ${ea.code}, ${eb.code}; ports ${pa}, ${pb}; ${Math.round((Date.now() - t0) / 1000)} s`);
      },
      30 * 60_000,
    );

    it(
      "15b: the second run waits for the first one's image build and says so; interrupted while waiting, exit 130; the first builds, boots and runs unharmed",
      async () => {
        const cache = await copyImageCache(tempDir('fault-cache-'));
        const p = imagePaths(cache, 'bookworm');
        truncateSync(p.disk, Math.floor(statSync(p.disk).size / 2));
        const t0 = Date.now();
        const first = new MatrixRun(QEMU_CELL, join(tempDir('fault-two-a-'), 'out'), { USM_LAB_CACHE: cache });
        runs.push(first);
        await first.waitFor(/\[bookworm\] debootstrap\b/, 5 * 60_000);
        const second = new MatrixRun(QEMU_CELL, join(tempDir('fault-two-b-'), 'out'), { USM_LAB_CACHE: cache });
        runs.push(second);
        await second.waitFor(/waiting for process \d+ to finish building the bookworm image/, 3 * 60_000);
        const holder = Number(/waiting for process (\d+)/.exec(second.stderr)![1]);
        expect(
          descendants(first.pid).map((d) => d.pid),
          'the builder named is the first run',
        ).toContain(holder);
        expect(second.stderr).not.toMatch(/rebuilding the bookworm image/);
        // One guest at a time on this host: the second is stopped while it waits (Ctrl-C to its group).
        process.kill(-second.pid, 'SIGINT');
        const exit2 = await second.exit(60_000);
        expect(exit2.code, second.log()).toBe(130);
        expect(second.summary().map((c) => c.status)).toEqual(['interrupted']);
        expect(await waitNoLeftovers(second.outDir, 15_000)).toEqual([]);
        const exit1 = await first.exit(25 * 60_000);
        const cells = first.summary();
        expect([0, 1], first.log()).toContain(exit1.code);
        expect(cells.map((c) => c.status)).toEqual(['ok']);
        expect(first.stderr).toMatch(/rebuilding the bookworm image: checksum mismatch/);
        expect(await imageOk(cache)).toBe(true);
        expect(cacheLeftovers(cache)).toEqual([]);
        expect(await waitNoLeftovers(first.outDir, 15_000)).toEqual([]);
        expect(qemuOf(first.outDir)).toEqual([]);
        expect(leftoverFiles(first.outDir, t0)).toEqual([]);
        console.log(
          `figure: one cache: second waited for pid ${holder}, exit ${exit2.code}; first exit ${exit1.code}, cell ${cells[0]!.status}, ${Math.round((Date.now() - t0) / 1000)} s`,
        );
      },
      30 * 60_000,
    );
  },
);
