// The local backend is this host's: one matrix run at a time (its servers take the run's fixed
// ports, its tracer puts uprobes on the system libssl). A second up() waits for the first lease's
// stop and says so, naming the holder; an abort while waiting is an interruption; a dead holder's
// lock is taken over. Real lock files, real processes (fault case 15: two runs at once).
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalBackend, localLockPath } from '../src/backends/local.ts';
import type { ProgressEvent } from '../src/progress/events.ts';

const dir = mkdtempSync(join(tmpdir(), 'local-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ctx(events: ProgressEvent[], signal = new AbortController().signal) {
  return { runDir: dir, emit: (e: ProgressEvent) => void events.push(e), signal, keep: false, cacheDir: dir };
}

describe('the local backend: one run at a time on this host', () => {
  it('a second lease waits for the first one to stop, saying who holds it; the lock is gone after the last stop', async () => {
    const lock = join(dir, 'a.lock');
    const b = new LocalBackend(dir, lock, dir);
    const events: ProgressEvent[] = [];
    const first = await b.up({ name: 'local', backend: 'local' }, ctx(events));
    expect(readFileSync(lock, 'utf8').trim()).toBe(String(process.pid));
    let second: Awaited<ReturnType<typeof b.up>> | undefined;
    const waiting = b.up({ name: 'local', backend: 'local' }, ctx(events)).then((l) => (second = l));
    await new Promise((r) => setTimeout(r, 1200));
    expect(second, 'the second lease waits').toBeUndefined();
    expect(events.map((e) => ('message' in e ? e.message : ''))).toContainEqual(
      expect.stringMatching(new RegExp(`another matrix run \\(pid ${process.pid}\\) is using this host's local backend`)),
    );
    await first.stop();
    await first.stop(); // twice: no second release of the other's lock
    await waiting;
    expect(second).toBeDefined();
    expect(existsSync(lock)).toBe(true);
    await second!.stop();
    expect(existsSync(lock)).toBe(false);
  });

  it('an abort while waiting is an interruption, and leaves the holder its lock', async () => {
    const lock = join(dir, 'b.lock');
    const b = new LocalBackend(dir, lock, dir);
    const first = await b.up({ name: 'local', backend: 'local' }, ctx([]));
    const ac = new AbortController();
    const waiting = b.up({ name: 'local', backend: 'local' }, ctx([], ac.signal));
    setTimeout(() => ac.abort(), 300);
    await expect(waiting).rejects.toMatchObject({ kind: 'interrupted' });
    expect(readFileSync(lock, 'utf8').trim()).toBe(String(process.pid));
    await first.stop();
    expect(existsSync(lock)).toBe(false);
  });

  it("a dead holder's lock (a run killed with SIGKILL) is taken over at once", async () => {
    const lock = join(dir, 'c.lock');
    const dead = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim();
    writeFileSync(lock, dead);
    const b = new LocalBackend(dir, lock, dir);
    const events: ProgressEvent[] = [];
    const l = await b.up({ name: 'local', backend: 'local' }, ctx(events));
    expect(readFileSync(lock, 'utf8').trim()).toBe(String(process.pid));
    expect(events).toEqual([]);
    await l.stop();
  });

  it("with the lock held, a dead local run's scratch folders (/tmp/usm-lab-<run id>) are removed and said so; nothing else", async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'local-scratch-'));
    for (const n of ['usm-lab-20261201T090347Z', 'usm-lab-20261201T122608Z'])
      mkdirSync(join(scratch, n, 'preexisting-interleaved-upstream'), { recursive: true });
    for (const n of ['usm-lab-notes', 'usm-lab-20261201T1226Z', 'other']) mkdirSync(join(scratch, n));
    const events: ProgressEvent[] = [];
    const l = await new LocalBackend(dir, join(dir, 'd.lock'), scratch).up({ name: 'local', backend: 'local' }, ctx(events));
    expect(readdirSync(scratch).sort()).toEqual(['other', 'usm-lab-20261201T1226Z', 'usm-lab-notes']);
    expect(events.map((e) => ('message' in e ? e.message : ''))).toEqual([
      expect.stringMatching(
        /^removed 2 scratch folder\(s\) of earlier local runs that did not finish \(.*usm-lab-20261201T090347Z, .*usm-lab-20261201T122608Z\)$/,
      ),
    ]);
    await l.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('the lock is host-wide by default (not per cache), and USM_LAB_LOCAL_LOCK moves it', () => {
    expect(localLockPath({})).toBe(join(tmpdir(), 'usm-race-lab-local.lock'));
    expect(localLockPath({ USM_LAB_LOCAL_LOCK: '/x/l.lock' })).toBe('/x/l.lock');
  });
});
