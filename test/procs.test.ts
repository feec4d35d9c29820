// The background-process layer on a real shell (LocalMachine): the same commands go over SSH.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalMachine } from '../src/machine/local.ts';
import { shellJoin } from '../src/machine/types.ts';
import { ProcGone, readProc, signalProc, startProc, stopProc, toEre, waitExit, waitForLine, type BgProc } from '../src/scenario/procs.ts';
import type { Machine } from '../src/machine/types.ts';
import { LabError } from '../src/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'procs-test-'));
const m = new LocalMachine({ workdir: dir });
const started: BgProc[] = [];
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** A killed child whose reaper is slow shows as a zombie: dead for our purpose. */
const zombie = (pid: number) => {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
};

afterEach(async () => {
  for (const p of started.splice(0)) {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

describe('background processes over Machine.exec', () => {
  it('starts a program with hostile arguments verbatim, reads its lines and exit code', async () => {
    const weird = `it's "quoted" $(echo no) ; rm -rf / \` \n newline`;
    const p = await startProc(m, {
      name: 'echoer',
      dir,
      kind: 'client-failed',
      argv: ['python3', '-c', 'import sys; print(sys.argv[1]); print("READY", flush=True)', weird],
    });
    started.push(p);
    const st = await waitForLine(m, p, /^READY$/, 10_000);
    expect(st.out.split('\n')[0]).toBe(weird.split('\n')[0]);
    const end = await waitExit(m, p, 10_000);
    expect(end.rc).toBe(0);
    expect(readFileSync(`${dir}/echoer.out`, 'utf8')).toContain(weird);
  }, 30_000);

  it('a process that exits before its ready line fails with its kind and stderr', async () => {
    const p = await startProc(m, { name: 'dies', dir, kind: 'tracer-failed', argv: ['sh', '-c', 'echo "failed to load: EPERM" >&2; exit 4'] });
    started.push(p);
    const err = await waitForLine(m, p, /^READY$/, 10_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).kind).toBe('tracer-failed');
    expect((err as LabError).message).toMatch(/exited with code 4/);
    expect((err as LabError).detail).toMatch(/EPERM/);
  }, 30_000);

  it('a ready line that never comes times out within the deadline', async () => {
    const p = await startProc(m, { name: 'mute', dir, kind: 'client-failed', argv: ['sleep', '30'] });
    started.push(p);
    const t0 = Date.now();
    const err = await waitForLine(m, p, /^READY$/, 1_000).catch((e: unknown) => e);
    expect((err as LabError).message).toMatch(/did not print/);
    expect(Date.now() - t0).toBeLessThan(5_000);
    await stopProc(m, p);
    expect(alive(p.pid)).toBe(false);
  }, 30_000);

  it('signals reach the program itself (its pid, not a wrapper shell)', async () => {
    const p = await startProc(m, {
      name: 'trap',
      dir,
      kind: 'client-failed',
      argv: [
        'python3',
        '-c',
        'import signal,sys,time\nsignal.signal(signal.SIGUSR1, lambda *a: (print("GOT", flush=True), sys.exit(7)))\nprint("READY", flush=True)\ntime.sleep(30)',
      ],
    });
    started.push(p);
    await waitForLine(m, p, /^READY$/, 10_000);
    await signalProc(m, p, 'USR1');
    const st = await waitExit(m, p, 10_000);
    expect(st.rc).toBe(7);
    expect(st.out).toContain('GOT');
  }, 30_000);

  it('stopProc kills a program that ignores TERM, and its children', async () => {
    const p = await startProc(m, {
      name: 'stubborn',
      dir,
      kind: 'server-failed',
      argv: ['sh', '-c', 'trap "" TERM; sleep 60 & echo child $!; echo READY; wait'],
    });
    started.push(p);
    const st = await waitForLine(m, p, /^READY$/, 10_000);
    const child = Number(/child (\d+)/.exec(st.out)?.[1]);
    expect(alive(child)).toBe(true);
    await stopProc(m, p, { graceMs: 500 });
    await new Promise((r) => setTimeout(r, 200));
    expect(alive(p.pid)).toBe(false);
    expect(alive(child) && !zombie(child)).toBe(false);
    expect((await readProc(m, p)).rc).not.toBeNull();
  }, 30_000);

  it('waits on the machine: one exec per wait, not one per check', async () => {
    // Over SSH into a TCG guest an exec costs 0.2-0.9 s: polling from the host would need one
    // per check. Count the execs a wait makes on a machine that forwards to the real shell.
    let execs = 0;
    const counting: Machine = {
      target: m.target,
      workdir: m.workdir,
      exec: (argv, o) => (execs++, m.exec(argv, o)),
      put: (a, b) => m.put(a, b),
      get: (a, b) => m.get(a, b),
      close: () => m.close(),
    };
    const p = await startProc(m, { name: 'slow', dir, kind: 'client-failed', argv: ['sh', '-c', 'sleep 1.5; echo READY:1:2; sleep 1.5; exit 3'] });
    started.push(p);
    const t0 = Date.now();
    await waitForLine(counting, p, /^READY(:\d+)+$/, 20_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_000); // it did wait for the line
    expect(execs).toBe(1);
    execs = 0;
    const st = await waitExit(counting, p, 20_000);
    expect(st.rc).toBe(3);
    expect(execs).toBe(1);
  }, 30_000);

  it('an exec that relies on a process that has exited does nothing and says which (ProcGone); its folders are made first otherwise', async () => {
    const gone = await startProc(m, { name: 'gone', dir, kind: 'server-failed', argv: ['sh', '-c', 'exit 7'] });
    await waitExit(m, gone, 10_000);
    const live = await startProc(m, { name: 'live', dir, kind: 'tracer-failed', argv: ['sleep', '30'] });
    started.push(live);
    const sub = join(dir, 'made', 'here');
    // a launch: nothing started, no folder made
    const err = await startProc(m, { name: 'never', dir: join(dir, 'never'), kind: 'client-failed', argv: ['true'], alive: [live, gone] }).catch((e) => e);
    expect(err).toBeInstanceOf(ProcGone);
    expect(err.proc).toBe(gone);
    expect(err.code).toBe('7');
    expect(existsSync(join(dir, 'never'))).toBe(false);
    // a wait's first round trip: neither the line written nor the signal sent
    const file = join(dir, 'written');
    const w = await waitForLine(m, live, /^X$/, 5_000, undefined, null, { alive: [gone], write: { file, line: 'x' }, kill: 'TERM' }).catch((e) => e);
    expect(w).toBeInstanceOf(ProcGone);
    expect(existsSync(file)).toBe(false);
    expect((await readProc(m, live)).rc).toBeNull();
    // all alive: the folders are made, the program runs in its own (made) folder
    const ok = await startProc(m, { name: 'ok', dir: join(dir, 'own'), kind: 'client-failed', argv: ['sh', '-c', 'exit 0'], alive: [live], mkdir: [sub] });
    expect((await waitExit(m, ok, 10_000)).rc).toBe(0);
    expect(existsSync(sub)).toBe(true);
  }, 30_000);

  it('toEre: a grep -E wake-up hint for the ready lines, or none when unsure', () => {
    expect(toEre(/^READY(:\d+)+$/)).toBe('^READY(:[0-9]+)+$');
    expect(toEre(/^LISTENING 18001$/)).toBe('^LISTENING 18001$');
    expect(toEre(/^a\sb$/)).toBe('');
    expect(toEre(/ready/i)).toBe('');
  });

  it('exec times out and kills the command', async () => {
    const r = await m.exec(['sleep', '20'], { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(r.code).toBeNull();
  });

  it('shellJoin round-trips arbitrary arguments through a real sh', async () => {
    const args = ['plain', '', "it's", '$HOME', '`id`', 'a b\tc', 'x\ny', '--flag=1', '*', '\\'];
    const r = await m.exec(['sh', '-c', `printf '%s\\0' ${shellJoin(args)}`], { timeoutMs: 5_000 });
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(args);
  });
});

process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
