// Vagrant fault v1b: a libvirtd that cannot start, and one that starts but never answers. The
// backend starts virtlogd and libvirtd itself when they are not running (no systemd here); when
// libvirtd then fails, the run must fail with libvirtd's own words, and what it had started
// (virtlogd) must not be left running. Real virtlogd; libvirtd is a STAND-IN (a shell script put
// first on PATH) because a real libvirtd cannot be made to fail on purpose without breaking the
// host's libvirt. Needs root, virtlogd and no libvirtd running (else nothing can be injected);
// under CI=true a missing requirement FAILS this file.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDaemons, pidsOf } from '../src/backends/vagrant/libvirt.ts';
import { LabError } from '../src/errors.ts';
import type { ProgressEvent } from '../src/progress/events.ts';
import { inCI } from './helpers/requirements.ts';

const has = (bin: string) => spawnSync('sh', ['-c', 'command -v "$1" || test -x "/usr/sbin/$1"', 'sh', bin], { timeout: 5_000 }).status === 0;
const running = (name: string) => spawnSync('pgrep', ['-x', name], { timeout: 5_000 }).status === 0;
const missing =
  process.getuid?.() !== 0
    ? 'needs root (it starts virtlogd)'
    : !has('virtlogd')
      ? 'needs virtlogd (bash provision/host-deps.sh vagrant)'
      : running('libvirtd')
        ? 'a libvirtd is running on this host: a failing one cannot be injected'
        : null;

const dir = mkdtempSync(join(tmpdir(), 'vagrant-daemons-'));
const bin = join(dir, 'bin');
mkdirSync(bin);
const PATH = process.env.PATH;
const alive = (pid: number) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== '' && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
const gone = (pid: number) => {
  try {
    return !alive(pid);
  } catch {
    return true;
  }
};

/** The stand-in libvirtd: this shell script, first on PATH. */
function standIn(script: string): void {
  writeFileSync(join(bin, 'libvirtd'), `#!/bin/sh\n# STAND-IN for libvirtd (test/vagrant-daemons.test.ts)\n${script}\n`);
  chmodSync(join(bin, 'libvirtd'), 0o755);
  process.env.PATH = `${bin}:${PATH}`;
}

async function injected(answerMs?: number): Promise<{ err: LabError; events: ProgressEvent[] }> {
  const events: ProgressEvent[] = [];
  const runDir = mkdtempSync(join(dir, 'run-'));
  const err = await (ensureDaemons as any)(runDir, (e: ProgressEvent) => events.push(e), 'test', answerMs === undefined ? {} : { answerMs }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LabError);
  return { err: err as LabError, events };
}

/** The pids of the daemons ensureDaemons said it started. */
const startedPids = (events: ProgressEvent[]) =>
  events
    .flatMap((e) => (e.type === 'info' ? [/^started (\S+) \(pid (\d+)\)/.exec(e.message)] : []))
    .flatMap((m) => (m ? [{ name: m[1]!, pid: Number(m[2]) }] : []));

describe.skipIf(missing !== null && !inCI)(`a libvirtd that fails${missing ? ` (skipped: ${missing})` : ''}`, () => {
  const virtlogdBefore = running('virtlogd');
  afterEach(() => {
    process.env.PATH = PATH;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('requirements: root, virtlogd, no libvirtd running', () => {
    expect(missing, `the case cannot run here: ${missing}`).toBeNull();
  });

  it.runIf(missing === null)(
    "cannot start: boot-failed with libvirtd's own last words; the virtlogd it started is stopped again",
    async () => {
      standIn('echo "error : stand-in: cannot bind the socket (injected)" >&2\nexit 1');
      const { err, events } = await injected();
      expect(err.kind).toBe('boot-failed');
      expect(err.message).toBe('cannot start libvirtd (exit 1): error : stand-in: cannot bind the socket (injected)');
      expect(err.detail).toContain('provision/host-deps.sh vagrant');
      const started = startedPids(events);
      expect(started.map((d) => d.name)).toEqual(virtlogdBefore ? [] : ['virtlogd']);
      for (const d of started) expect(gone(d.pid), `${d.name} ${d.pid} left running`).toBe(true);
      expect(running('virtlogd')).toBe(virtlogdBefore);
    },
    60_000,
  );

  it.runIf(missing === null)(
    'starts but never answers: boot-failed "does not answer" after the deadline; both daemons it started are stopped',
    async () => {
      // daemonizes (a forked shell keeps the comm libvirtd) and writes its pid file, then never answers
      standIn('pidf=$3\n( while :; do sleep 0.2; done ) >/dev/null 2>&1 </dev/null &\necho $! >"$pidf"\nexit 0');
      const t0 = Date.now();
      const { err, events } = await injected(1_500);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1_500);
      expect(err.kind).toBe('boot-failed');
      expect(err.message).toBe('libvirtd does not answer on qemu:///system');
      const started = startedPids(events);
      expect(started.map((d) => d.name)).toEqual(virtlogdBefore ? ['libvirtd'] : ['virtlogd', 'libvirtd']);
      for (const d of started) expect(gone(d.pid), `${d.name} ${d.pid} left running`).toBe(true);
      expect(await pidsOf('libvirtd')).toEqual([]);
    },
    60_000,
  );
});
