// The build cache of scenario/prepare.ts: a remote machine's bpf/build and client/build are kept
// on the host, keyed by the sources and the guest's packages, kernel and BTF, and restored by the
// next run instead of a build (under TCG a build takes minutes). Real make, real tar, on a
// LocalMachine whose workdir is not the repository (so it is treated as a remote one).
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { LocalMachine } from '../src/machine/local.ts';
import type { ProgressEvent } from '../src/progress/events.ts';
import { prepareMachine } from '../src/scenario/prepare.ts';
import { inCI, missingForBpf } from './helpers/requirements.ts';

const missing = missingForBpf();
const ROOT = resolve(import.meta.dirname, '..');
const cache = mkdtempSync(join(tmpdir(), 'build-cache-'));
const made: string[] = [cache];
afterAll(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function prepare(tag: string) {
  const workdir = mkdtempSync(join(tmpdir(), `build-cache-${tag}-`));
  made.push(workdir);
  const logDir = join(workdir, 'logs');
  const events: ProgressEvent[] = [];
  const p = await prepareMachine({
    machine: new LocalMachine({ workdir }),
    repoRoot: ROOT,
    logDir,
    emit: (e) => events.push(e),
    buildTimeoutMs: 600_000,
    buildCacheDir: cache,
  });
  return { p, events, log: readFileSync(join(logDir, 'build.log'), 'utf8') };
}

describe.skipIf(missing !== null && !inCI)(`build cache${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root and the BPF toolchain are available', () => {
    expect(missing, `this test cannot run here: ${missing}`).toBeNull();
  });

  it.runIf(missing === null)(
    'the first prepare builds and keeps the output; the next restores it with no make; a damaged copy is built again',
    async () => {
      const first = await prepare('a');
      expect(first.log).toContain('$ make -C bpf');
      const kept = readdirSync(cache).filter((f) => f.endsWith('.tar'));
      expect(kept).toHaveLength(1);
      expect(first.events.some((e) => e.type === 'step-start' && e.step === 'facts')).toBe(true);

      const second = await prepare('b');
      expect(second.log).toMatch(/^restored from the build cache: .*\.tar$/m);
      expect(second.log).not.toContain('$ make');
      // the facts were kept with the build: the same versions and tools, and facts.sh not run again
      expect(second.p.facts).toEqual(first.p.facts);
      expect(second.p.tools.libssl).toBe(first.p.tools.libssl);
      expect(second.p.tools.python).toBe(first.p.tools.python);
      expect(second.events.some((e) => e.type === 'step-start' && e.step === 'facts')).toBe(false);
      // what was restored runs
      for (const bin of [second.p.tools.tracer, second.p.tools.client]) {
        const r = spawnSync(bin, ['--help'], { encoding: 'utf8', timeout: 10_000 });
        expect(r.status, `${bin} --help: ${r.stderr}`).toBe(0);
      }

      writeFileSync(join(cache, kept[0]!), 'not a tar');
      const third = await prepare('c');
      expect(third.events.some((e) => e.type === 'warn' && /did not restore/.test(e.message))).toBe(true);
      expect(third.log).toContain('$ make -C bpf');
    },
    600_000,
  );
});
