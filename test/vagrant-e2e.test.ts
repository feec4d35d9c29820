// End to end through Vagrant: the local bookworm box under TCG (vagrant-libvirt, sandboxed: no
// libvirt network), exec + put/get over SSH, destroy, and no domain or volume of the run left.
// Also: two machines up at once on distinct ports, provision + build snapshot then a restore,
// and Ctrl-C during `vagrant up`. On a fresh machine the backend installs the host packages
// (provision/host-deps.sh vagrant) and the image is built through ensureImage.
// Needs Linux + root (libvirt's system daemon). Under CI=true a missing requirement FAILS.
import { afterAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { VagrantBackend, leftovers } from '../src/backends/vagrant/index.ts';
import type { VagrantFacts } from '../src/backends/vagrant/index.ts';
import { listDomains, listVolumes, pidsOf } from '../src/backends/vagrant/libvirt.ts';
import type { ProgressEvent } from '../src/progress/events.ts';
import type { BackendContext, Lease, TargetSpec } from '../src/backends/types.ts';
import { inCI } from './helpers/requirements.ts';

const REPO = resolve(import.meta.dirname, '..');
// A frozen copy of what the backend reads (Vagrantfile, matrix.yaml, bpf/, client/, provision/):
// others edit the tree while this runs, and any edit of bpf/ rightly invalidates the snapshot.
const ROOT = mkdtempSync(join(tmpdir(), 'vagrant-e2e-repo-'));
for (const f of ['Vagrantfile', 'matrix.yaml']) cpSync(join(REPO, f), join(ROOT, f));
for (const d of ['bpf', 'client', 'provision']) cpSync(join(REPO, d), join(ROOT, d), { recursive: true, filter: (src) => !src.split('/').includes('build') });
// A marker only this run has: the first up below is always cold (provision + snapshot save).
writeFileSync(join(ROOT, 'provision', '.e2e-marker'), `${process.pid} ${Date.now()}\n`);
const CACHE = process.env.USM_LAB_CACHE ?? join(homedir(), '.cache', 'usm-race-lab');

function missingForVagrant(): string | null {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return "needs root (libvirt's system daemon, host packages)";
  return null;
}
const missing = missingForVagrant();
// The libvirt daemons running before any backend of this file started one: not ours, to be left alone.
const DAEMONS = ['libvirtd', 'virtlogd'];
const runningBefore = (await Promise.all(DAEMONS.map(async (name) => (await pidsOf(name)).map((pid) => ({ name, pid }))))).flat();

const events: ProgressEvent[] = [];
function ctx(name: string, signal = new AbortController().signal): BackendContext {
  return { runDir: mkdtempSync(join(tmpdir(), `vagrant-e2e-${name}-`)), emit: (e) => events.push(e), signal, keep: false, cacheDir: CACHE };
}
const bookworm = (name: string): TargetSpec => ({ name, backend: 'vagrant', suite: 'bookworm', memoryMiB: 1024, cpus: 1 });

async function expectNothingLeft(b: VagrantBackend): Promise<void> {
  const left = await leftovers(b.prefix);
  expect(left, `left behind by ${b.prefix}*`).toEqual({ domains: [], volumes: [] });
  // The same check as a person would do it: virsh list --all / virsh vol-list.
  expect((await listDomains()).filter((d) => d.startsWith(b.prefix))).toEqual([]);
  expect((await listVolumes('usm-race-lab')).filter((v) => v.startsWith(b.prefix))).toEqual([]);
}

describe.skipIf(missing !== null && !inCI)(`vagrant end to end${missing ? ` (skipped: ${missing})` : ''}`, () => {
  const backends: VagrantBackend[] = [];
  const make = (o: Partial<ConstructorParameters<typeof VagrantBackend>[0]> = {}) => {
    const b = new VagrantBackend({ repoRoot: ROOT, cacheDir: CACHE, sandboxed: true, ...o });
    backends.push(b);
    return b;
  };
  afterAll(async () => {
    for (const b of backends) await b.shutdown();
  }, 300_000);

  it('requirements: Linux and root', () => {
    expect(missing, `vagrant end-to-end tests cannot run here: ${missing}`).toBeNull();
  });

  it.runIf(missing === null)(
    'two bookworm machines up at once (distinct ports): uname -r, put/get, destroy, nothing left',
    async () => {
      const b = make({ provision: false });
      const t0 = Date.now();
      const leases = await Promise.all([b.up(bookworm('bookworm'), ctx('a')), b.up(bookworm('bookworm-b'), ctx('b'))]);
      const upSeconds = (Date.now() - t0) / 1000;
      try {
        const facts = leases.map((l) => l.facts as VagrantFacts);
        expect(facts[0]!.sshPort).not.toBe(facts[1]!.sshPort);
        expect(facts[0]!.domain).not.toBe(facts[1]!.domain);
        for (const f of facts) {
          expect(f.accel).toMatch(/^(tcg|kvm)$/);
          expect(f.box).toBe('usm-lab/bookworm');
          expect(f.boxVersion).toMatch(/^1\.\d{8}\.\d{6}$/);
        }
        const domains = await listDomains();
        expect(domains).toEqual(expect.arrayContaining(facts.map((f) => f.domain)));
        for (const l of leases) await roundTrip(l);
        events.push({ type: 'info', target: 'test', message: `two ups in parallel: ${upSeconds.toFixed(1)} s` });
      } finally {
        await Promise.all(leases.map((l) => l.stop()));
      }
      await expectNothingLeft(b);
      expect(events.some((e) => e.type === 'step-end' && e.step === 'vagrant-destroy' && e.ok)).toBe(true);
    },
    900_000,
  );

  it.runIf(missing === null)(
    'provision + build, snapshot saved; the next up restores it without provisioning',
    async () => {
      const b = make();
      const first = await b.up(bookworm('bookworm'), ctx('snap1'));
      let f1: VagrantFacts;
      try {
        f1 = first.facts as VagrantFacts;
        expect(f1.snapshot).toBe('saved');
        expect(f1.provisionMs).toBeGreaterThan(0);
        // provision/setup.sh built both programs in the guest (or the snapshot has them).
        const built = await first.machine.exec(['ls', `${first.machine.workdir}/bpf/build/usm_tls`, `${first.machine.workdir}/client/build/race_client`], {
          timeoutMs: 30_000,
        });
        expect(built.code, built.stderr).toBe(0);
        // Idempotent: a second setup.sh run installs nothing and makes nothing.
        if (f1.snapshot === 'saved') {
          const again = await first.machine.exec(['sh', `${first.machine.workdir}/provision/setup.sh`, '--workdir', first.machine.workdir], {
            timeoutMs: 300_000,
          });
          expect(again.code, again.stderr).toBe(0);
          expect(again.stdout).toMatch(/packages: all present \(debian\)/);
          expect(again.stdout).toMatch(/btf: yes/);
          expect(again.stdout).not.toMatch(/^\s+(BTF|BPF|SKEL|CC|LINK)\s/m); // make rebuilt nothing
        }
      } finally {
        await first.stop();
      }
      await expectNothingLeft(b);

      const second = await b.up(bookworm('bookworm'), ctx('snap2'));
      try {
        const f2 = second.facts as VagrantFacts;
        expect(f2.snapshot).toBe('restored');
        expect(f2.box).toBe('usm-lab-snap/bookworm');
        expect(f2.provisionMs).toBeUndefined();
        const built = await second.machine.exec(['ls', `${second.machine.workdir}/bpf/build/usm_tls`], { timeoutMs: 30_000 });
        expect(built.code, built.stderr).toBe(0);
      } finally {
        await second.stop();
      }
      await expectNothingLeft(b);
    },
    1_200_000,
  );

  it.runIf(missing === null)(
    'Ctrl-C during vagrant up: the up fails as interrupted and nothing is left',
    async () => {
      const b = make({ provision: false });
      const ac = new AbortController();
      const c = ctx('abort', ac.signal);
      const up = b.up(bookworm('bookworm'), {
        ...c,
        emit: (e) => {
          events.push(e);
          if (e.type === 'step-start' && e.step === 'vagrant-up') setTimeout(() => ac.abort(), 4_000);
        },
      });
      await expect(up).rejects.toMatchObject({ kind: 'interrupted' });
      expect(events.some((e) => e.type === 'step-end' && e.step === 'vagrant-up' && !e.ok && e.target === 'bookworm')).toBe(true);
      await expectNothingLeft(b);
    },
    600_000,
  );

  it.runIf(missing === null)(
    'shutdown stops only the daemons the backend started',
    async () => {
      const ours = (await Promise.all(backends.map((b) => b.startedDaemons()))).flat();
      for (const b of backends) await b.shutdown();
      for (const d of ours) expect(existsSync(`/proc/${d.pid}`), `${d.name} (pid ${d.pid}) still running`).toBe(false);
      // Daemons that were running before the tests (not ours) are left alone, whether or not the
      // backends started others beside them.
      const ourPids = new Set(ours.map((d) => d.pid));
      const theirs = runningBefore.filter((d) => !ourPids.has(d.pid));
      for (const d of theirs) expect(existsSync(`/proc/${d.pid}`), `${d.name} (pid ${d.pid}) ran before the tests and was stopped`).toBe(true);
      // libvirtd was needed: either it ran before, or a backend started it.
      expect([...theirs, ...ours].some((d) => d.name === 'libvirtd')).toBe(true);
    },
    300_000,
  );
});

async function roundTrip(l: Lease): Promise<void> {
  const m = l.machine;
  const r = await m.exec(['uname', '-r'], { timeoutMs: 30_000 });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout.trim()).toMatch(/^6\.1\.\d+.*-amd64$/);
  expect(r.stdout.trim()).toBe((l.facts as VagrantFacts).kernel);
  const dir = mkdtempSync(join(tmpdir(), 'vagrant-put-'));
  const local = join(dir, 'hello.txt');
  writeFileSync(local, `hello from the host, ${m.target}\n`);
  await m.put(local, '/tmp/hello.txt', { timeoutMs: 60_000 });
  const cat = await m.exec(['sh', '-c', 'cat /tmp/hello.txt; echo from-guest > /tmp/back.txt'], { timeoutMs: 30_000 });
  expect(cat.stdout).toBe(`hello from the host, ${m.target}\n`);
  await m.get('/tmp/back.txt', join(dir, 'back.txt'), { timeoutMs: 60_000 });
  expect(readFileSync(join(dir, 'back.txt'), 'utf8')).toBe('from-guest\n');
}
