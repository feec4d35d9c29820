// Fault (issue 15, Vagrant): a crashed run's libvirt domain and overlay volume are left behind. The
// vagrant backend marks its own domain prefix as a live process's (or a --keep run's) and, when it
// prepares the host, removes the domains and volumes of prefixes no live run owns. Real libvirtd,
// real virsh; a domain defined (never started) and a volume in a pool of the test's own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ensureDaemons,
  ensurePool,
  listDomains,
  listVolumes,
  markOwner,
  stopDaemons,
  sweepDeadRuns,
  virsh,
  type StartedDaemon,
} from '../src/backends/vagrant/libvirt.ts';
import { inCI } from './helpers/requirements.ts';
import { ownersDir } from '../src/backends/vagrant/index.ts';

const has = (bin: string) => spawnSync('sh', ['-c', 'command -v "$1" || test -x "/usr/sbin/$1"', 'sh', bin], { timeout: 5_000 }).status === 0;
const missing =
  process.getuid?.() !== 0
    ? 'needs root (libvirtd)'
    : !has('libvirtd') || !has('virsh')
      ? 'needs libvirtd and virsh (bash provision/host-deps.sh vagrant)'
      : !has('qemu-system-x86_64')
        ? 'needs qemu-system-x86_64'
        : null;

const dir = mkdtempSync(join(tmpdir(), 'vagrant-leftovers-'));
// the host-wide marks: a live run's domains (another run on this machine) are never taken for dead
const owners = ownersDir();
const pool = `usm-lab-testpool-${process.pid}`;
let started: StartedDaemon[] = [];
const dead = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim();

function defineDomain(name: string): void {
  const xml = join(dir, `${name}.xml`);
  writeFileSync(
    xml,
    `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices></devices></domain>\n`,
  );
  const r = spawnSync('virsh', ['-c', 'qemu:///system', 'define', xml], { encoding: 'utf8', timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
}

describe.skipIf(missing !== null && !inCI)(`leftovers of a crashed Vagrant run${missing ? ` (skipped: ${missing})` : ''}`, () => {
  beforeAll(async () => {
    if (missing) return;
    started = await ensureDaemons(dir, () => {}, 'test');
    mkdirSync(join(dir, 'pool'));
    await ensurePool(pool, join(dir, 'pool'));
  }, 120_000);

  afterAll(async () => {
    if (missing) return;
    for (const d of (await listDomains().catch(() => [] as string[])).filter((n) => /^usm-lab-(cafebabe|0badf00d|deadbeef|snap)-/.test(n)))
      await virsh(['undefine', d], 30_000);
    await virsh(['pool-destroy', pool], 30_000);
    await virsh(['pool-undefine', pool], 30_000);
    await stopDaemons(started);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('requirements: root, libvirtd, virsh, QEMU', () => {
    expect(missing, `the case cannot run here: ${missing}`).toBeNull();
  });

  it.runIf(missing === null)(
    "a dead run's domain and volume are removed; a live run's and a --keep run's are left; nothing else is touched",
    async () => {
      for (const name of ['usm-lab-deadbeef-bookworm', 'usm-lab-cafebabe-bookworm', 'usm-lab-0badf00d-sid', 'usm-lab-snap-bookworm']) defineDomain(name);
      for (const vol of ['usm-lab-deadbeef-bookworm.img', 'usm-lab-cafebabe-bookworm.img', 'usm-lab-snap-VAGRANTSLASH-bookworm_vagrant_box_image_0_box.img'])
        expect((await virsh(['vol-create-as', pool, vol, '1M', '--format', 'raw'], 60_000)).code).toBe(0);
      // deadbeef: marked by a process that is gone; cafebabe: by this live one; 0badf00d: a --keep run's
      mkdirSync(owners, { recursive: true });
      writeFileSync(join(owners, 'usm-lab-deadbeef.pid'), `${dead}\n`);
      const unmark = await markOwner(owners, 'usm-lab-cafebabe-', false);
      await markOwner(owners, 'usm-lab-0badf00d-', true);
      expect(readFileSync(join(owners, 'usm-lab-0badf00d.pid'), 'utf8')).toBe(`keep ${process.pid}\n`);

      // (a real dead run's leftovers on this machine would go too: only the test's names are compared)
      const ours = (names: string[]) => names.filter((n) => /^usm-lab-(cafebabe|0badf00d|deadbeef|snap)-/.test(n));
      const swept = await sweepDeadRuns(owners, pool);
      expect({ domains: ours(swept.domains), volumes: swept.volumes }).toEqual({
        domains: ['usm-lab-deadbeef-bookworm'],
        volumes: ['usm-lab-deadbeef-bookworm.img'],
      });
      const domains = await listDomains();
      expect(domains).not.toContain('usm-lab-deadbeef-bookworm');
      for (const d of ['usm-lab-cafebabe-bookworm', 'usm-lab-0badf00d-sid', 'usm-lab-snap-bookworm']) expect(domains).toContain(d);
      expect((await listVolumes(pool)).sort()).toEqual(['usm-lab-cafebabe-bookworm.img', 'usm-lab-snap-VAGRANTSLASH-bookworm_vagrant_box_image_0_box.img']);
      expect(existsSync(join(owners, 'usm-lab-deadbeef.pid'))).toBe(false);

      // the live run ends: its mark goes, and its domain is a dead run's for the next sweep; a kept mark stays
      await unmark();
      expect(existsSync(join(owners, 'usm-lab-cafebabe.pid'))).toBe(false);
      expect(ours((await sweepDeadRuns(owners, pool)).domains)).toEqual(['usm-lab-cafebabe-bookworm']);
      expect(await listDomains()).toContain('usm-lab-0badf00d-sid');
      expect(existsSync(join(owners, 'usm-lab-0badf00d.pid'))).toBe(true);
      // a domain with no mark at all (a run of an older version, or its cache removed): gone too
      defineDomain('usm-lab-deadbeef-trixie');
      expect(ours((await sweepDeadRuns(owners, pool)).domains)).toEqual(['usm-lab-deadbeef-trixie']);
      rmSync(join(owners, 'usm-lab-0badf00d.pid'), { force: true });
      await virsh(['undefine', 'usm-lab-snap-bookworm'], 30_000);
      await virsh(['undefine', 'usm-lab-0badf00d-sid'], 30_000);
    },
    300_000,
  );
});
