// The Vagrantfile, read by the real Vagrant (`vagrant validate`, `vagrant status`), fed by the
// matrix files or by the environment the backend builds; plus the pure env builders.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadMatrix } from '../src/config/matrix.ts';
import { baseVolumeName, domainName, targetEntry, vagrantEnv } from '../src/backends/vagrant/env.ts';
import { boxCatalog, boxMetadata, boxVersionFromDate, bootVolumeNames } from '../src/backends/vagrant/box.ts';
import { provisionFailure } from '../src/backends/vagrant/index.ts';
import { parseStatus, parseErrorExit } from '../src/backends/vagrant/parse.ts';
import { squashProgress, parseSnapshotList } from '../src/backends/vagrant/cli.ts';
import { inCI } from './helpers/requirements.ts';

const ROOT = resolve(import.meta.dirname, '..');
// On a fresh machine (CI) the host packages come first, as the backend itself would do.
if (spawnSync('vagrant', ['--version']).status !== 0 && process.getuid?.() === 0)
  spawnSync('bash', [join(ROOT, 'provision', 'host-deps.sh'), 'vagrant'], { stdio: 'inherit', timeout: 40 * 60_000 });
const haveVagrant = spawnSync('vagrant', ['--version'], { encoding: 'utf8' }).status === 0;
const missing = haveVagrant ? null : 'vagrant is not installed (bash provision/host-deps.sh vagrant)';

function vagrant(args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync('vagrant', args, { cwd: ROOT, env, encoding: 'utf8', timeout: 120_000 });
}

function freshHome(): { home: string; dot: string; key: string } {
  const d = mkdtempSync(join(tmpdir(), 'vagrant-test-'));
  const key = join(d, 'id_test');
  writeFileSync(key, 'not really a key\n', { mode: 0o600 });
  return { home: join(d, 'vagrant.d'), dot: join(d, 'dot'), key };
}

function baseEnv(h: { home: string; dot: string }, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    VAGRANT_HOME: h.home,
    VAGRANT_DOTFILE_PATH: h.dot,
    VAGRANT_CWD: ROOT,
    VAGRANT_CHECKPOINT_DISABLE: '1',
    ...extra,
  };
  for (const k of Object.keys(env)) if (k.startsWith('USM_LAB_') && !(k in extra)) delete env[k];
  return env;
}

describe('env for the Vagrantfile (pure)', () => {
  it('builds one target entry per machine', () => {
    expect(
      targetEntry(
        { name: 'bookworm', backend: 'vagrant', suite: 'bookworm', memoryMiB: 2048 },
        { box: 'usm-lab/bookworm', boxVersion: '1.2.3', sshPort: 40001, console: '/r/console.log' },
      ),
    ).toEqual({
      name: 'bookworm',
      box: 'usm-lab/bookworm',
      box_version: '1.2.3',
      suite: 'bookworm',
      memory: 2048,
      cpus: 1,
      ssh_port: 40001,
      console: '/r/console.log',
    });
    expect(targetEntry({ name: 'u', backend: 'vagrant', box: 'generic/ubuntu2204' }, { box: 'generic/ubuntu2204' })).toEqual({
      name: 'u',
      box: 'generic/ubuntu2204',
      memory: 1024,
      cpus: 1,
    });
  });

  it('sets VAGRANT_HOME, the dotfile path and the lab settings; drops stray USM_LAB_* but the cache', () => {
    const env = vagrantEnv(
      { PATH: '/bin', USM_LAB_MATRIX: 'x.yaml', USM_LAB_CACHE: '/c' },
      {
        repoRoot: '/repo',
        vagrantHome: '/c/vagrant.d',
        dotfilePath: '/run/t/vagrant',
        targets: [{ name: 'a', box: 'b' }],
        sandboxed: true,
        driver: 'qemu',
        pool: 'p',
        prefix: 'usm-lab-1234-',
        bootTimeoutS: 600,
      },
    );
    expect(env).toMatchObject({
      PATH: '/bin',
      USM_LAB_CACHE: '/c',
      VAGRANT_HOME: '/c/vagrant.d',
      VAGRANT_CWD: '/repo',
      VAGRANT_DOTFILE_PATH: '/run/t/vagrant',
      USM_LAB_SANDBOXED: '1',
      USM_LAB_LIBVIRT_DRIVER: 'qemu',
      USM_LAB_POOL: 'p',
      USM_LAB_PREFIX: 'usm-lab-1234-',
      USM_LAB_BOOT_TIMEOUT: '600',
    });
    expect(env.USM_LAB_MATRIX).toBeUndefined();
    expect(JSON.parse(env.USM_LAB_VAGRANT_TARGETS!)).toEqual([{ name: 'a', box: 'b' }]);
  });

  it.each([
    ['usm-lab-ab12cd34-', 'bookworm', 'usm-lab-ab12cd34-bookworm'],
    ['usm-lab-', 'ubuntu2204', 'usm-lab-ubuntu2204'],
    ['p/', 'we!rd', 'pwerd'],
  ])('domain name %s + %s = %s (vagrant-libvirt strips odd characters)', (p, m, want) => {
    expect(domainName(p, m)).toBe(want);
  });

  it('names boxes, versions and volumes as Vagrant and vagrant-libvirt do', () => {
    expect(boxVersionFromDate('2026-11-24T18:10:54.266Z')).toBe('1.20261124.181054');
    expect(() => boxVersionFromDate('yesterday')).toThrow(/bad image build time/);
    expect(boxMetadata(3_215_982_592)).toEqual({ provider: 'libvirt', format: 'qcow2', virtual_size: 3 });
    expect(boxMetadata(1)).toEqual({ provider: 'libvirt', format: 'qcow2', virtual_size: 1 });
    expect(baseVolumeName('usm-lab/bookworm', '1.2')).toBe('usm-lab-VAGRANTSLASH-bookworm_vagrant_box_image_1.2_box.img');
    expect(bootVolumeNames('usm-lab-snap/bookworm', '1.5')).toEqual({
      kernel: 'usm-lab-snap-bookworm-1.5-vmlinuz',
      initrd: 'usm-lab-snap-bookworm-1.5-initrd',
    });
    const cat = boxCatalog({ name: 'usm-lab/bookworm', version: '1.2', boxFile: '/c/b x.box', sha256: 'ab' });
    expect(cat.versions[0]!.providers[0]).toEqual({ name: 'libvirt', url: 'file:///c/b%20x.box', checksum_type: 'sha256', checksum: 'ab' });
  });

  it.each([
    [3, /unsupported distribution/],
    [4, /kernel has no BTF/],
    [5, /installing the toolchain failed/],
    [6, /building bpf\/ or client\/ failed/],
    [7, /must run as root/],
    [1, /provision\/setup.sh failed \(exit 1\)/],
  ])('provision exit %i is reported as %s', (code, re) => {
    const e = provisionFailure(code, 'ubuntu2004', 'line\nprovision: error: the reason');
    expect(e.kind).toBe('build-failed');
    expect(e.message).toMatch(re);
    expect(e.detail).toContain('the reason');
  });

  it('squashes upload progress redraws in logs, keeps the last one', () => {
    expect(squashProgress('a\n\x1b[KProgress: 0%\x1b[KProgress: 5%\x1b[KProgress: 100%\x1b[K==> b: x\n')).toBe('a\n\x1b[KProgress: 100%\x1b[K==> b: x\n');
    expect(squashProgress('no progress here')).toBe('no progress here');
  });

  it('reads snapshot names from `vagrant snapshot list --machine-readable`', () => {
    const out = '1,bookworm,metadata,provider,libvirt\n1,bookworm,ui,output,==> bookworm: \n1,bookworm,ui,detail,usm-built\n1,bookworm,ui,detail,other\n';
    expect(parseSnapshotList(out)).toEqual(['usm-built', 'other']);
    expect(parseSnapshotList('1,bookworm,ui,output,==> bookworm: No snapshots have been taken yet!\n')).toEqual([]);
  });
});

describe.skipIf(missing !== null && !inCI)(`Vagrantfile read by vagrant${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: vagrant is installed', () => {
    expect(missing, `cannot run: ${missing}`).toBeNull();
  });

  it.runIf(missing === null)(
    'validates with the default matrix.yaml and defines every VM target (not local)',
    () => {
      const h = freshHome();
      const v = vagrant(['validate'], baseEnv(h));
      expect(v.status, v.stdout + v.stderr).toBe(0);
      const s = vagrant(['status', '--machine-readable'], baseEnv(h));
      expect(s.status, s.stderr).toBe(0);
      expect([...parseStatus(s.stdout).keys()]).toEqual(['bullseye', 'bookworm', 'trixie', 'sid']);
      expect([...parseStatus(s.stdout).values()].every((x) => x === 'not_created')).toBe(true);
    },
    60_000,
  );

  it.runIf(missing === null)(
    'defines exactly the targets the tool passes, with a local box entry',
    () => {
      const h = freshHome();
      const env = vagrantEnv(baseEnv(h), {
        repoRoot: ROOT,
        vagrantHome: h.home,
        dotfilePath: h.dot,
        targets: [targetEntry({ name: 'bookworm', backend: 'vagrant', suite: 'bookworm' }, { box: 'usm-lab/bookworm', boxVersion: '1.2', sshPort: 40123 })],
        sandboxed: true,
        driver: 'qemu',
        pool: 'usm-race-lab',
        prefix: 'usm-lab-test-',
      });
      spawnSync('mkdir', ['-p', h.home]);
      writeFileSync(
        join(h.home, 'usm-lab-boxes.json'),
        JSON.stringify({
          'usm-lab/bookworm': {
            version: '1.2',
            kernel: '/k',
            initrd: '/i',
            cmdline: 'root=/dev/vda',
            user: 'root',
            key: h.key,
            hostKey: 'ssh-ed25519 AAAA',
            restrict: true,
          },
        }),
      );
      const v = vagrant(['validate'], env);
      expect(v.status, v.stdout + v.stderr).toBe(0);
      const s = vagrant(['status', '--machine-readable'], env);
      expect([...parseStatus(s.stdout).keys()]).toEqual(['bookworm']);
    },
    60_000,
  );

  it.runIf(missing === null)(
    'a missing SSH key of a local box is a validation error naming it',
    () => {
      const h = freshHome();
      const env = vagrantEnv(baseEnv(h), {
        repoRoot: ROOT,
        vagrantHome: h.home,
        dotfilePath: h.dot,
        targets: [{ name: 'bookworm', box: 'usm-lab/bookworm', ssh_port: 40123 }],
        sandboxed: true,
        driver: 'qemu',
        pool: 'usm-race-lab',
        prefix: 'usm-lab-test-',
      });
      spawnSync('mkdir', ['-p', h.home]);
      writeFileSync(
        join(h.home, 'usm-lab-boxes.json'),
        JSON.stringify({
          'usm-lab/bookworm': { version: '1.2', kernel: '/k', initrd: '/i', cmdline: 'x', user: 'root', key: '/nonexistent/key', hostKey: '', restrict: true },
        }),
      );
      const v = vagrant(['validate'], env);
      expect(v.status).not.toBe(0);
      expect(v.stdout + v.stderr).toMatch(/private_key_path.*\/nonexistent\/key/);
    },
    60_000,
  );

  it.runIf(missing === null)(
    'sandboxed without an SSH port is refused with the reason',
    () => {
      const h = freshHome();
      const env = vagrantEnv(baseEnv(h), {
        repoRoot: ROOT,
        vagrantHome: h.home,
        dotfilePath: h.dot,
        targets: [{ name: 'x', box: 'generic/debian12' }],
        sandboxed: true,
        driver: 'qemu',
        pool: 'usm-race-lab',
        prefix: 'usm-lab-test-',
      });
      const v = vagrant(['status', 'x', '--machine-readable'], env);
      expect(v.status).not.toBe(0);
      expect(v.stdout + v.stderr).toMatch(/target x: sandboxed mode needs an ssh_port/);
    },
    60_000,
  );

  it.runIf(missing === null)(
    'USM_LAB_VAGRANT_TARGETS that is not a JSON list is an error saying so',
    () => {
      const h = freshHome();
      const v = vagrant(['status', '--machine-readable'], baseEnv(h, { USM_LAB_VAGRANT_TARGETS: '{"name":"a"}' }));
      expect(v.status).not.toBe(0);
      expect(v.stdout + v.stderr).toMatch(/USM_LAB_VAGRANT_TARGETS must be a JSON list/);
    },
    60_000,
  );

  it.runIf(missing === null)(
    'matrix.workstation.yaml: valid for the matrix loader and for Vagrant (public boxes, not sandboxed)',
    async () => {
      const m = await loadMatrix(join(ROOT, 'matrix.workstation.yaml'));
      expect(m.vagrant.sandboxed).toBe(false);
      const vagrantTargets = m.targets.filter((t) => t.backend === 'vagrant');
      expect(vagrantTargets.map((t) => t.box)).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/ubuntu.?20\.?04/),
          expect.stringMatching(/ubuntu.?22\.?04/),
          expect.stringMatching(/ubuntu-?24\.?04/),
          expect.stringMatching(/bullseye|debian11/),
          expect.stringMatching(/bookworm|debian12/),
          expect.stringMatching(/fedora/),
          expect.stringMatching(/rocky|alma/),
        ]),
      );
      const h = freshHome();
      const env = baseEnv(h, { USM_LAB_MATRIX: 'matrix.workstation.yaml' });
      const v = vagrant(['validate'], env);
      expect(v.status, v.stdout + v.stderr).toBe(0);
      const s = vagrant(['status', '--machine-readable'], env);
      expect([...parseStatus(s.stdout).keys()]).toEqual(vagrantTargets.map((t) => t.name));
      expect(parseErrorExit(s.stdout)).toBeNull();
    },
    60_000,
  );

  it('the Vagrantfile never starts a libvirt network in sandboxed mode', () => {
    const text = readFileSync(join(ROOT, 'Vagrantfile'), 'utf8');
    expect(text).toMatch(/lv\.mgmt_attach = false/);
    expect(text).toMatch(/hostfwd=tcp:127\.0\.0\.1:#\{port\}-:22/);
    expect(text).toMatch(/addr=0x10/);
    expect(text).not.toMatch(/private_network|public_network/);
  });
});
