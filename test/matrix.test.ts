// The orchestrator (src/matrix.ts) without real machines: a fake Backend hands out fake
// Machines, and the scenario's two entry points are fakes that write what a trial fetches.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backends/types.ts';
import { matrixMain } from '../src/cli/matrix.ts';
import { ConfigError, LabError } from '../src/errors.ts';
import { RUN_LOCK, exitCodeFor, runMatrix, type MatrixDeps, type ResolvedRun } from '../src/matrix.ts';
import type { ProgressEvent } from '../src/progress/events.ts';
import type { runTrial } from '../src/scenario/run.ts';
import { FakeBackend, fakePrepare, fakeRun, fakeTrial } from './helpers/fake-lab.ts';

const root = mkdtempSync(join(tmpdir(), 'usm-lab-matrix-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let runs = 0;

function resolved(targets: string[], over: Partial<ResolvedRun> = {}): ResolvedRun {
  const runId = `run-${++runs}`;
  return fakeRun({ targets, outDir: join(root, runId), runId, cacheDir: join(root, 'cache'), resume: 'off' }, over);
}

function deps(backend: Backend, trial: typeof runTrial, signal = new AbortController().signal): MatrixDeps & { events: ProgressEvent[] } {
  const events: ProgressEvent[] = [];
  return {
    repoRoot: root,
    backends: async () => backend,
    emit: (e) => events.push(e),
    signal,
    argv: [],
    scenario: { prepareMachine: fakePrepare, runTrial: trial },
    events,
  };
}

describe('runMatrix with a fake backend', () => {
  it('a second run on the same report folder is refused at once (fault case 15), the first one finishes; the lock goes with it', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const inner = fakeTrial();
    const slow: typeof runTrial = async (o) => (await gate, inner(o));
    const run = resolved(['a']);
    const first = runMatrix(run, deps(new FakeBackend(), slow));
    await new Promise((r) => setTimeout(r, 50));
    const second = await runMatrix({ ...run, runId: 'another' }, deps(new FakeBackend(), fakeTrial())).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(ConfigError);
    expect((second as Error).message).toMatch(
      new RegExp(`^another matrix run \\(pid ${process.pid}\\) is writing to ${run.outDir}: wait for it to finish, or give this run another --out`),
    );
    open();
    const res = await first;
    expect(res.cells.map((c) => c.status)).toEqual(['ok', 'ok']);
    expect(existsSync(join(run.outDir, RUN_LOCK)), 'the lock is released').toBe(false);
    // and a run after it may use the folder again (resume)
    expect((await runMatrix({ ...run, resume: 'auto' }, deps(new FakeBackend(), fakeTrial()))).cells).toHaveLength(2);
  });

  it('every cell ok and as expected: exit 0, one report per cell, the lease stopped', async () => {
    const b = new FakeBackend();
    const res = await runMatrix(resolved(['a', 'b']), deps(b, fakeTrial()));
    expect(res.exitCode).toBe(0);
    expect(res.cells.map((c) => [c.target, c.status, c.verdict.pass])).toEqual([
      ['a', 'ok', true],
      ['a', 'ok', true],
      ['b', 'ok', true],
      ['b', 'ok', true],
    ]);
    expect(b.stops).toEqual(['a', 'b']);
    expect(res.cells[0]!.kernel).toBe('6.1.0-fake');
    const summary = JSON.parse(readFileSync(join(res.outDir, 'summary.json'), 'utf8'));
    expect(summary).toBeTruthy();
  });

  it('a verdict not as expected (upstream, preexisting, no wrong rows): exit 1', async () => {
    const res = await runMatrix(resolved(['a'], { scenarios: ['preexisting'] }), deps(new FakeBackend(), fakeTrial()));
    expect(res.cells.every((c) => c.status === 'ok' && c.verdict.pass === false)).toBe(true);
    expect(res.exitCode).toBe(1);
  });

  it('one target fails at boot: its cells say so, the others keep their results; exit 3', async () => {
    const b = new FakeBackend(['a']);
    const d = deps(b, fakeTrial());
    const res = await runMatrix(resolved(['a', 'b', 'c']), d);
    expect(b.ups).toEqual(['a', 'b', 'c']);
    expect(res.cells.map((c) => [c.target, c.status])).toEqual([
      ['a', 'boot-failed'],
      ['a', 'boot-failed'],
      ['b', 'ok'],
      ['b', 'ok'],
      ['c', 'ok'],
      ['c', 'ok'],
    ]);
    expect(res.cells[0]!.error).toBe('a: the kernel panicked');
    expect(res.manifest.targets.map((t) => [t.name, t.status])).toEqual([
      ['a', 'boot-failed'],
      ['b', 'ok'],
      ['c', 'ok'],
    ]);
    expect(readFileSync(join(res.outDir, 'a', 'boot-failed.txt'), 'utf8')).toBe('Kernel panic - not syncing');
    expect(d.events).toContainEqual({ type: 'warn', target: 'a', message: 'boot-failed: a: the kernel panicked' });
    expect(res.exitCode).toBe(3);
  });

  it('a failed trial fails its cell only, with a failed run step naming the tracer log; exit 3', async () => {
    const d = deps(
      new FakeBackend(),
      fakeTrial({ fail: (s) => (s.target === 'a' && s.trial === 1 ? new LabError('tracer-failed', 'tracer exited with code 1') : undefined) }),
    );
    const res = await runMatrix(resolved(['a', 'b'], { modes: ['sequential'] }), d);
    expect(res.cells.map((c) => [c.target, c.status, c.error])).toEqual([
      ['a', 'tracer-failed', 'tracer exited with code 1'],
      ['b', 'ok', undefined],
    ]);
    expect(res.manifest.targets.map((t) => t.status)).toEqual(['cells-failed', 'ok']);
    const failed = d.events.find((e) => e.type === 'step-end' && e.step === 'run' && !e.ok);
    expect(failed).toMatchObject({
      target: 'a',
      detail: 'baseline-sequential-upstream#1: tracer exited with code 1',
      logFile: join(res.outDir, 'a', 'baseline-sequential-upstream', 'trial-1', 'tracer.log'),
    });
    expect(res.exitCode).toBe(3);
  });

  it('Ctrl-C mid-matrix: the running target stops, the cells left are interrupted, the next target does not boot; exit 130', async () => {
    const ac = new AbortController();
    const b = new FakeBackend();
    let n = 0;
    const res = await runMatrix(resolved(['a', 'b']), deps(b, fakeTrial({ onRun: () => void (++n === 1 && ac.abort()) }), ac.signal));
    expect(res.cells.map((c) => [c.target, c.status])).toEqual([
      ['a', 'ok'],
      ['a', 'interrupted'],
      ['b', 'interrupted'],
      ['b', 'interrupted'],
    ]);
    expect(b.ups).toEqual(['a']);
    expect(b.stops).toEqual(['a']);
    expect(res.exitCode).toBe(130);
  });
});

describe('exit codes (DESIGN.md)', () => {
  const cell = (status: string, pass: boolean | null) => ({ status, verdict: { pass } }) as unknown as Parameters<typeof exitCodeFor>[0][number];
  it('0 all ok, 1 a verdict failed, 3 a target or cell failed (or nothing ran), 130 interrupted', () => {
    expect(exitCodeFor([cell('ok', true), cell('ok', null)], false)).toBe(0);
    expect(exitCodeFor([cell('ok', true), cell('ok', false)], false)).toBe(1);
    expect(exitCodeFor([cell('ok', false), cell('boot-failed', false)], false)).toBe(3);
    expect(exitCodeFor([], false)).toBe(3);
    expect(exitCodeFor([cell('ok', true)], true)).toBe(130);
  });

  it('2 bad flags', async () => {
    const err = new PassThrough();
    let text = '';
    err.on('data', (d: Buffer) => (text += d.toString()));
    const code = await matrixMain({
      argv: ['--variants', 'nope'],
      cwd: root,
      repoRoot: root,
      env: {},
      stdout: new PassThrough() as unknown as NodeJS.WriteStream,
      stderr: err as unknown as NodeJS.WriteStream,
      signal: new AbortController().signal,
    });
    expect(code).toBe(2);
    expect(text).toContain("--variants: unknown value 'nope' (allowed: upstream, no-fallback, recv-hook, scoped)");
  });
});
