// Boot benchmark (scripts/bench-boot.mjs): per suite, QEMU spawn -> authenticated SSH (median
// of N) against the floor measured in the same run (the same kernel with the busybox marker
// initrd, no disk: spawn -> marker on the console). Runs alternate floor and full boot so
// both see the same host load. Optionally (--cold) the cold build of every image first, N at a
// time as a matrix run builds them (one per worker): wall time for all, and each image's own.
import { mkdir, rm } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import type { Suite } from '../domain.ts';
import { ensureFloorInitrd, ensureImage } from '../images/index.ts';
import { silent, type Emit } from '../progress/events.ts';
import { probeAccel, runFloor, type Accel } from '../backends/shared/accel.ts';
import { bootVm } from '../backends/qemu/boot.ts';
import { median } from './stats.ts';

export const GOAL_RATIO = 2.0;

export interface SuiteBench {
  suite: Suite;
  kernel: string;
  bootMs: number[];
  floorMs: number[];
  bootMedianMs: number;
  floorMedianMs: number;
  /** bootMedian / floorMedian. */
  ratio: number;
  /** Seconds of the cold build (--cold), else null. */
  coldBuildSeconds: number | null;
  imageBytes: number;
  error?: string;
}

export interface BenchResult {
  at: string;
  accel: Accel;
  accelReason: string;
  runs: number;
  memoryMiB: number;
  /** Load averages (1 min) at start and end: other work on the host skews the figures. */
  host: { cpus: number; model: string; loadStart: number; loadEnd: number };
  goalRatio: number;
  suites: SuiteBench[];
  /** --cold: every suite rebuilt, `parallel` at a time, before the boots; wall seconds for all. */
  coldBuild?: { parallel: number; wallSeconds: number; goalSeconds: number };
}

export const COLD_BUILD_GOAL_S = 360;

export interface BenchOptions {
  suites: readonly Suite[];
  runs: number;
  cold: boolean;
  /** Cold builds at once (default: the number of cores, like matrix.mjs --parallel). */
  parallel?: number;
  cacheDir: string;
  workDir: string;
  memoryMiB?: number;
  emit?: Emit;
  signal: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

export async function benchBoot(o: BenchOptions): Promise<BenchResult> {
  const emit = o.emit ?? silent;
  const memoryMiB = o.memoryMiB ?? 1024;
  const loadStart = loadavg()[0]!;
  await mkdir(o.workDir, { recursive: true });
  const floorInitrd = await ensureFloorInitrd(o.cacheDir);
  const out: SuiteBench[] = o.suites.map((suite) => ({
    suite,
    kernel: '',
    bootMs: [],
    floorMs: [],
    bootMedianMs: NaN,
    floorMedianMs: NaN,
    ratio: NaN,
    coldBuildSeconds: null,
    imageBytes: 0,
  }));
  let accel: Accel = 'tcg';
  let accelReason = '';
  let coldBuild: BenchResult['coldBuild'];
  const imageOpts = (suite: Suite, rebuild: boolean) => ({
    cacheDir: o.cacheDir,
    emit,
    signal: o.signal,
    rebuild,
    target: suite,
    ...(o.env ? { env: o.env } : {}),
  });
  if (o.cold) {
    const parallel = Math.max(1, Math.min(o.parallel ?? availableParallelism(), out.length));
    const queue = [...out];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        for (let row = queue.shift(); row && !o.signal.aborted; row = queue.shift()) {
          try {
            row.coldBuildSeconds = (await ensureImage(row.suite, imageOpts(row.suite, true))).manifest.buildSeconds;
          } catch (err) {
            row.error = `cold build failed: ${err instanceof Error ? err.message : String(err)}`;
          }
        }
      }),
    );
    coldBuild = { parallel, wallSeconds: Math.round((performance.now() - t0) / 100) / 10, goalSeconds: COLD_BUILD_GOAL_S };
  }
  for (const row of out) {
    if (o.signal.aborted) break;
    if (row.error) continue;
    const suite = row.suite;
    try {
      const image = await ensureImage(suite, imageOpts(suite, false));
      row.kernel = image.manifest.kernel;
      row.imageBytes = image.manifest.size;
      const probe = await probeAccel({ kernel: image.paths.kernel, initrd: floorInitrd, workDir: o.workDir, ...(o.env ? { env: o.env } : {}) });
      accel = probe.accel;
      accelReason = probe.reason;
      for (let i = 0; i < o.runs && !o.signal.aborted; i++) {
        const f = await runFloor({ accel, kernel: image.paths.kernel, initrd: floorInitrd, workDir: o.workDir, timeoutMs: 60_000, memoryMiB, tag: suite });
        if (!f.ok) throw new Error(`floor boot failed: ${f.reason}`);
        row.floorMs.push(Math.round(f.ms));
        const runDir = join(o.workDir, `${suite}-${i + 1}`);
        await mkdir(runDir, { recursive: true });
        const b = await bootVm({ name: suite, image, accel, cpus: 1, memoryMiB, runDir, keep: false, deadlineMs: 180_000, signal: o.signal, emit });
        row.bootMs.push(Math.round(b.bootMs));
        await b.machine.close();
        await b.vm.stop();
        await rm(runDir, { recursive: true, force: true });
        emit({
          type: 'info',
          target: suite,
          message: `run ${i + 1}/${o.runs}: floor ${(f.ms / 1000).toFixed(2)} s, boot to SSH ${(b.bootMs / 1000).toFixed(2)} s`,
        });
      }
    } catch (err) {
      row.error = err instanceof Error ? err.message : String(err);
    }
    row.bootMedianMs = median(row.bootMs);
    row.floorMedianMs = median(row.floorMs);
    row.ratio = Math.round((row.bootMedianMs / row.floorMedianMs) * 100) / 100;
  }
  return {
    at: new Date().toISOString(),
    accel,
    accelReason,
    runs: o.runs,
    memoryMiB,
    host: { cpus: availableParallelism(), model: cpus()[0]?.model ?? 'unknown', loadStart, loadEnd: loadavg()[0]! },
    goalRatio: GOAL_RATIO,
    suites: out,
    ...(coldBuild ? { coldBuild } : {}),
  };
}

export function formatBench(r: BenchResult): string {
  const head = ['suite', 'kernel', 'floor s', 'boot->SSH s', 'ratio', 'cold build s', 'image'];
  const s = (ms: number) => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : '-');
  const body = r.suites.map((x) => [
    x.suite,
    x.kernel || '-',
    s(x.floorMedianMs),
    s(x.bootMedianMs),
    Number.isFinite(x.ratio) ? `${x.ratio.toFixed(2)}${x.ratio <= r.goalRatio ? '' : ' (>goal)'}` : '-',
    x.coldBuildSeconds === null ? '-' : x.coldBuildSeconds.toFixed(1),
    x.imageBytes ? `${Math.round(x.imageBytes / 2 ** 20)} MiB` : '-',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => v.padEnd(w[i]!))
      .join('  ')
      .trimEnd();
  const errors = r.suites.filter((x) => x.error).map((x) => `${x.suite}: ${x.error}`);
  return (
    [
      `boot to SSH vs floor, median of ${r.runs}, accel ${r.accel} (${r.accelReason}), ${r.memoryMiB} MiB, 1 vCPU, goal ratio <= ${r.goalRatio}; host load ${r.host.loadStart.toFixed(1)} -> ${r.host.loadEnd.toFixed(1)}`,
      line(head),
      ...body.map(line),
      ...(r.coldBuild
        ? [
            `cold build of ${r.suites.length} image(s), ${r.coldBuild.parallel} at a time: ${r.coldBuild.wallSeconds.toFixed(1)} s wall (goal <= ${r.coldBuild.goalSeconds} s: ${r.coldBuild.wallSeconds <= r.coldBuild.goalSeconds ? 'met' : 'NOT met'})`,
          ]
        : []),
      ...errors.map((e) => `error: ${e}`),
    ].join('\n') + '\n'
  );
}
