// Vagrant benchmark (scripts/bench-vagrant.mjs), all in one run on the same image:
// 1. time to a ready SSH machine (Backend.up -> Lease with an authenticated SshMachine) through
//    the qemu backend and through the vagrant backend (no provisioning), median of N; the goal
//    is vagrant <= 1.5x qemu;
// 2. first up with provision + build (cold, snapshot saved) vs a later up restoring that build
//    snapshot; 3. destroy times; 4. time per target: the same cells run through runMatrix (what
//    `scripts/matrix.mjs --targets S` does: up, prepare, every cell, stop) with the qemu backend
//    and with the vagrant backend restoring its build snapshot; the goal is vagrant <= 1.5x qemu.
// Box add and image build happen in a warm-up, outside the timings.
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Suite } from '../domain.ts';
import type { MatrixDefaults } from '../config/matrix.ts';
import { SETTLE_MS } from '../cli/run.ts';
import { runMatrix, type ResolvedRun } from '../matrix.ts';
import type { Emit, ProgressEvent } from '../progress/events.ts';
import type { Backend, BackendContext, Lease, TargetSpec } from '../backends/types.ts';
import { QemuBackend } from '../backends/qemu/index.ts';
import { VagrantBackend, leftovers, type VagrantFacts } from '../backends/vagrant/index.ts';
import { median } from './stats.ts';

export const GOAL_RATIO = 1.5;

export interface VagrantBench {
  suite: Suite;
  accel: string;
  runs: number;
  qemu: { readyMs: number[]; medianMs: number };
  vagrant: { readyMs: number[]; medianMs: number; upMs: number[]; destroyMs: number[]; destroyMedianMs: number };
  /** vagrant median / qemu median. */
  ratio: number;
  goal: number;
  snapshot: { firstUpMs: number; provisionMs: number; snapshotSaveMs: number; restoreUpMs: number; ratio: number };
  /** Time per target (up + prepare + cells + stop) through runMatrix; absent with no cells. */
  target?: { cells: TargetCells; qemu: TargetTiming; vagrant: TargetTiming; ratio: number; goal: number };
  leftovers: { domains: string[]; volumes: string[] };
}

/** The settings of the time-per-target run: matrix.yaml's defaults, the cells possibly narrowed. */
export type TargetCells = Omit<MatrixDefaults, 'memory'>;

export interface TargetTiming {
  ms: number;
  /** Summed step times: boot (up to SSH), upload + build (0 when the guest already had them), cells, stop. */
  bootMs: number;
  prepareMs: number;
  cellsMs: number;
  stopMs: number;
  cells: number;
}

/** A frozen copy of what the vagrant backend reads; `marker` changes the sources hash. */
function frozenRepo(repoRoot: string, marker: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'bench-vagrant-repo-'));
  for (const f of ['Vagrantfile', 'matrix.yaml']) cpSync(join(repoRoot, f), join(dir, f));
  for (const d of ['bpf', 'client', 'provision']) cpSync(join(repoRoot, d), join(dir, d), { recursive: true, filter: (p) => !p.split('/').includes('build') });
  writeFileSync(join(dir, 'provision', '.bench-marker'), `${marker}\n`);
  return dir;
}

/** One target's cells through runMatrix on `backend`, timed; throws when a cell is not ok. */
async function timeTarget(o: {
  backend: Backend;
  repoRoot: string;
  target: TargetSpec;
  cells: TargetCells;
  cacheDir: string;
  emit: Emit;
  signal: AbortSignal;
}): Promise<TargetTiming> {
  const steps = new Map<string, number>();
  const emit: Emit = (e) => {
    if (e.type === 'step-end') steps.set(e.step, (steps.get(e.step) ?? 0) + e.ms);
    o.emit(e);
  };
  const runId = `bench-${o.backend.name}`;
  const { cpus, ...cells } = o.cells;
  const run: ResolvedRun = {
    targets: [{ ...o.target, backend: o.backend.name }],
    client: null,
    tracer: null,
    ...cells,
    cpus: { [o.target.name]: cpus.slice(0, 1) },
    settleMs: SETTLE_MS,
    parallel: 1,
    keep: false,
    outDir: join(mkdtempSync(join(tmpdir(), 'bench-vagrant-target-')), runId),
    runId,
    cacheDir: o.cacheDir,
    rebuild: false,
    // A benchmark measures whole runs: nothing reused.
    resume: 'off',
    force: false,
  };
  const t0 = performance.now();
  const r = await runMatrix(run, { repoRoot: o.repoRoot, backends: async () => o.backend, emit, signal: o.signal, argv: ['bench-vagrant'] });
  const ms = performance.now() - t0;
  const bad = r.cells.filter((c) => c.status !== 'ok');
  if (bad.length)
    throw new Error(
      `${o.backend.name}: ${bad.length} cell(s) not ok (${bad.map((c) => `${c.scenario}-${c.mode}-${c.variant}: ${c.status}`).join(', ')}); see ${r.outDir}`,
    );
  const sum = (...names: string[]) => Math.round(names.reduce((a, n) => a + (steps.get(n) ?? 0), 0));
  return { ms: Math.round(ms), bootMs: sum('boot'), prepareMs: sum('upload', 'build'), cellsMs: sum('run'), stopMs: sum('stop'), cells: r.cells.length };
}

export async function benchVagrant(o: {
  repoRoot: string;
  cacheDir: string;
  suite: Suite;
  runs: number;
  targetCells?: TargetCells;
  emit: Emit;
  signal: AbortSignal;
}): Promise<VagrantBench> {
  const target: TargetSpec = { name: o.suite, backend: 'vagrant', suite: o.suite, memoryMiB: 1024, cpus: 1 };
  const stepMs = new Map<string, number[]>();
  const emit: Emit = (e: ProgressEvent) => {
    if (e.type === 'step-end' && e.ok) stepMs.set(e.step, [...(stepMs.get(e.step) ?? []), e.ms]);
    o.emit(e);
  };
  const ctx = (tag: string): BackendContext => ({
    runDir: mkdtempSync(join(tmpdir(), `bench-vagrant-${tag}-`)),
    emit,
    signal: o.signal,
    keep: false,
    cacheDir: o.cacheDir,
  });
  const timed = async (f: () => Promise<Lease>): Promise<{ lease: Lease; ms: number }> => {
    const t0 = performance.now();
    const lease = await f();
    return { lease, ms: performance.now() - t0 };
  };

  const qemu = new QemuBackend();
  const vagrant = new VagrantBackend({ repoRoot: o.repoRoot, cacheDir: o.cacheDir, sandboxed: true, provision: false });
  const marker = `${Date.now()}`;
  const snapRepo = frozenRepo(o.repoRoot, marker);
  const snapBackend = new VagrantBackend({ repoRoot: snapRepo, cacheDir: o.cacheDir, sandboxed: true });
  try {
    // Warm-up (not timed): image, accelerator probe, box add, base volume upload.
    const w1 = await qemu.up({ ...target, backend: 'qemu' }, ctx('warm-qemu'));
    await w1.stop();
    const w2 = await vagrant.up(target, ctx('warm-vagrant'));
    const accel = String(w2.facts.accel);
    await w2.stop();

    const q: number[] = [];
    const v: number[] = [];
    const vUp: number[] = [];
    const vDestroy: number[] = [];
    for (let i = 0; i < o.runs; i++) {
      // Alternate, so neither side always runs on a warmer page cache.
      const a = await timed(() => qemu.up({ ...target, backend: 'qemu' }, ctx(`qemu-${i}`)));
      q.push(a.ms);
      await a.lease.stop();
      const b = await timed(() => vagrant.up(target, ctx(`vagrant-${i}`)));
      v.push(b.ms);
      vUp.push((b.lease.facts as VagrantFacts).upMs);
      const d0 = performance.now();
      await b.lease.stop();
      vDestroy.push(performance.now() - d0);
    }

    // First up (provision + build + snapshot save) vs restore, on sources nobody edits meanwhile.
    const first = await timed(() => snapBackend.up(target, ctx('first')));
    const ff = first.lease.facts as VagrantFacts;
    await first.lease.stop();
    const again = await timed(() => snapBackend.up(target, ctx('restore')));
    const rf = again.lease.facts as VagrantFacts;
    await again.lease.stop();
    if (rf.snapshot !== 'restored') throw new Error(`the second up did not restore the build snapshot (snapshot: ${rf.snapshot})`);

    // Time per target, on the frozen sources: qemu boots a fresh overlay and builds; vagrant
    // restores the build snapshot saved above (as every run after a target's first does).
    let perTarget: VagrantBench['target'];
    if (o.targetCells) {
      const common = { repoRoot: snapRepo, target, cells: o.targetCells, cacheDir: o.cacheDir, emit, signal: o.signal };
      const tq = await timeTarget({ ...common, backend: qemu });
      const tv = await timeTarget({ ...common, backend: snapBackend });
      perTarget = { cells: o.targetCells, qemu: tq, vagrant: tv, ratio: Math.round((tv.ms / tq.ms) * 100) / 100, goal: GOAL_RATIO };
    }

    const qm = median(q);
    const vm = median(v);
    return {
      suite: o.suite,
      accel,
      runs: o.runs,
      qemu: { readyMs: q.map(Math.round), medianMs: Math.round(qm) },
      vagrant: {
        readyMs: v.map(Math.round),
        medianMs: Math.round(vm),
        upMs: vUp,
        destroyMs: vDestroy.map(Math.round),
        destroyMedianMs: Math.round(median(vDestroy)),
      },
      ratio: Math.round((vm / qm) * 100) / 100,
      goal: GOAL_RATIO,
      snapshot: {
        firstUpMs: Math.round(first.ms),
        provisionMs: ff.provisionMs ?? 0,
        snapshotSaveMs: ff.snapshotMs ?? 0,
        restoreUpMs: Math.round(again.ms),
        ratio: Math.round((again.ms / first.ms) * 100) / 100,
      },
      ...(perTarget ? { target: perTarget } : {}),
      leftovers: await leftovers(vagrant.prefix).then(async (a) => {
        const b = await leftovers(snapBackend.prefix);
        return { domains: [...a.domains, ...b.domains], volumes: [...a.volumes, ...b.volumes] };
      }),
    };
  } finally {
    await snapBackend.shutdown();
    await vagrant.shutdown();
  }
}

export function formatVagrantBench(r: VagrantBench): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  return [
    `suite ${r.suite}, accel ${r.accel}, ${r.runs} run(s) each; ready = Backend.up() until an authenticated SSH session`,
    `  qemu backend     ready ${s(r.qemu.medianMs)} (median of ${r.qemu.readyMs.map(s).join(', ')})`,
    `  vagrant backend  ready ${s(r.vagrant.medianMs)} (median of ${r.vagrant.readyMs.map(s).join(', ')}; vagrant up + ssh ${r.vagrant.upMs.map(s).join(', ')})`,
    `  ratio vagrant/qemu ${r.ratio.toFixed(2)}x (goal <= ${r.goal}x: ${r.ratio <= r.goal ? 'met' : 'NOT met'})`,
    `  vagrant destroy  ${s(r.vagrant.destroyMedianMs)} (median)`,
    `  first up with provision + build + snapshot save ${s(r.snapshot.firstUpMs)} (provision ${s(r.snapshot.provisionMs)}, snapshot save ${s(r.snapshot.snapshotSaveMs)})`,
    `  up restoring the build snapshot ${s(r.snapshot.restoreUpMs)}  (restore/first ${r.snapshot.ratio.toFixed(2)}x)`,
    ...(r.target ? formatTarget(r.target) : []),
    `  left behind: ${r.leftovers.domains.length} domain(s), ${r.leftovers.volumes.length} volume(s)`,
  ].join('\n');
}

function formatTarget(t: NonNullable<VagrantBench['target']>): string[] {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const line = (name: string, x: TargetTiming) =>
    `    ${name.padEnd(8)} ${s(x.ms).padStart(8)}  (boot ${s(x.bootMs)}, upload + build ${s(x.prepareMs)}, ${x.cells} cells ${s(x.cellsMs)}, stop ${s(x.stopMs)})`;
  return [
    `  time per target, ${t.qemu.cells} cells (${t.cells.variants.join(',')} x ${t.cells.modes.join(',')} x ${t.cells.scenarios.join(',')}, ${t.cells.iterations} iterations):`,
    line('qemu', t.qemu),
    line('vagrant', t.vagrant),
    `  ratio vagrant/qemu per target ${t.ratio.toFixed(2)}x (goal <= ${t.goal}x: ${t.ratio <= t.goal ? 'met' : 'NOT met'})`,
  ];
}
