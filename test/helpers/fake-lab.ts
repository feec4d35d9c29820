import type { ResolvedRun } from '../../src/matrix.ts';
// Fakes of the orchestrator's collaborators (src/matrix.ts MatrixDeps): a Backend that hands out
// fake Machines, and the scenario's two entry points writing what a trial fetches. No VM, no tracer.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend, BackendContext, Lease, TargetSpec } from '../../src/backends/types.ts';
import { LabError } from '../../src/errors.ts';
import type { Machine } from '../../src/machine/types.ts';
import type { prepareMachine } from '../../src/scenario/prepare.ts';
import type { runTrial, TrialRun } from '../../src/scenario/run.ts';

export function fakeMachine(target: string): Machine {
  return {
    target,
    workdir: '/fake/workdir',
    exec: async () => ({ code: 0, signal: null, stdout: '', stderr: '', timedOut: false }),
    put: async () => {},
    get: async () => {},
    close: async () => {},
  };
}

export class FakeBackend implements Backend {
  readonly name = 'qemu' as const;
  readonly ups: string[] = [];
  readonly stops: string[] = [];
  constructor(private readonly failBoot: readonly string[] = []) {}
  async up(t: TargetSpec, ctx: BackendContext): Promise<Lease> {
    if (ctx.signal.aborted) throw new LabError('interrupted', 'interrupted before boot');
    this.ups.push(t.name);
    if (this.failBoot.includes(t.name)) throw new LabError('boot-failed', `${t.name}: the kernel panicked`, 'Kernel panic - not syncing');
    return { machine: fakeMachine(t.name), facts: { kernel: '6.1.0-fake', accel: 'kvm' }, stop: async () => void this.stops.push(t.name) };
  }
}

export const fakePrepare: typeof prepareMachine = async () => ({
  tools: { tracer: '/t', client: '/c', server: '/s', terminator: '/tt', python: '/p', libssl: '/libssl.so.3' },
  facts: { kernel: '6.1.0-fake', openssl: '3.0.11' },
});

/** A trial that ran: the client printed READY and DONE, the tracer its stats; no wrong rows. */
export function fakeTrial(
  o: { fail?: (spec: { target: string; trial: number; mode: string; variant: string }) => LabError | undefined; onRun?: () => void } = {},
): typeof runTrial {
  return async (opts) => {
    o.onRun?.();
    await mkdir(opts.localDir, { recursive: true });
    await writeFile(join(opts.localDir, 'client.out'), 'READY:40001:18001:40002:18002\nDONE\nconn1 ok=2 fail=0\nconn2 ok=2 fail=0\n');
    await writeFile(
      join(opts.localDir, 'events.jsonl'),
      `${JSON.stringify({ meta: { hook: 'kprobe' } })}\n${JSON.stringify({ stats: { calls: { SSL_write: 4, SSL_read: 4 } } })}\n`,
    );
    // an external tracer's trial brings its endpoint's answer (no rows)
    if (opts.spec.external) await writeFile(join(opts.localDir, 'http_monitoring.json'), '[]');
    const run: TrialRun = { localDir: opts.localDir, conns: [], clientPid: 100, clientRc: 0, durationMs: 1, phases: [], notes: [] };
    const error = o.fail?.({ target: opts.machine.target, trial: opts.spec.trial, mode: opts.spec.mode, variant: opts.spec.variant });
    return error ? { ...run, error } : run;
  };
}

/** A resolved run for the fakes: targets on qemu/bookworm, one mode pair, one trial, nothing slow (no settle). */
export function fakeRun(
  o: { targets: string[]; outDir: string; runId: string; cacheDir: string; resume: ResolvedRun['resume'] },
  over: Partial<ResolvedRun> = {},
): ResolvedRun {
  return {
    targets: o.targets.map((name) => ({ name, backend: 'qemu', suite: 'bookworm' })),
    client: null,
    tracer: null,
    variants: ['upstream'],
    modes: ['sequential', 'interleaved'],
    scenarios: ['baseline'],
    iterations: 2,
    iterationsByMode: {},
    trials: 1,
    ports: [18001, 18002],
    reads: ['full'],
    servers: ['python'],
    nagle: 'off',
    cpus: {},
    settleMs: 0,
    trace: 'all',
    api: 'classic',
    hook: 'auto',
    seed: 1,
    parallel: 1,
    keep: false,
    outDir: o.outDir,
    runId: o.runId,
    cacheDir: o.cacheDir,
    rebuild: false,
    resume: o.resume,
    force: false,
    ...over,
  };
}
