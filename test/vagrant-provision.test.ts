// provision/*.sh: lint (shellcheck), distribution families, the BTF check's message and exit code,
// usage errors, and idempotence of the package step on this host. In a guest they run in the
// vagrant end-to-end test (test/vagrant-e2e.test.ts).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { inCI } from './helpers/requirements.ts';

const ROOT = resolve(import.meta.dirname, '..');
const P = (f: string) => join(ROOT, 'provision', f);
const SCRIPTS = ['common.sh', 'packages.sh', 'check-btf.sh', 'build.sh', 'setup.sh'];

function sh(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync('sh', args, { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
}

function osRelease(text: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'osr-')), 'os-release');
  writeFileSync(f, text);
  return f;
}

// On a fresh machine (CI) the host packages come first (shellcheck is in host-deps-vagrant.txt).
if (spawnSync('shellcheck', ['--version']).status !== 0 && process.getuid?.() === 0)
  spawnSync('bash', [join(ROOT, 'provision', 'host-deps.sh'), 'vagrant'], { stdio: 'inherit', timeout: 40 * 60_000 });
const haveShellcheck = spawnSync('shellcheck', ['--version']).status === 0;

describe('provision scripts', () => {
  it.skipIf(!haveShellcheck && !inCI)(`pass shellcheck${haveShellcheck ? '' : ' (skipped: no shellcheck; bash provision/host-deps.sh vagrant)'}`, () => {
    const r = spawnSync('shellcheck', ['-x', ...SCRIPTS.map(P)], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it.each([
    ['Debian 12', 'ID=debian\nVERSION_ID="12"\n', 'debian'],
    ['Ubuntu 22.04', 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n', 'debian'],
    ['Linux Mint', 'ID=linuxmint\nID_LIKE="ubuntu debian"\n', 'debian'],
    ['Fedora 39', 'ID=fedora\nVERSION_ID=39\n', 'fedora'],
    ['Rocky 9', 'ID="rocky"\nID_LIKE="rhel centos fedora"\n', 'fedora'],
    ['AlmaLinux 9', 'ID="almalinux"\nID_LIKE="rhel centos fedora"\n', 'fedora'],
    ['CentOS Stream', 'ID="centos"\nID_LIKE="rhel fedora"\n', 'fedora'],
  ])('%s is the %s family', (_n, text, family) => {
    const r = sh(['-c', `. ${P('common.sh')}; distro_family`], { USM_LAB_OS_RELEASE: osRelease(text) });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(family);
  });

  it.each([
    ['Arch', 'ID=arch\n'],
    ['Alpine', 'ID=alpine\n'],
  ])('%s is refused with exit 3 and what is supported', (_n, text) => {
    const r = sh(['-c', `. ${P('common.sh')}; distro_family`], { USM_LAB_OS_RELEASE: osRelease(text) });
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/unsupported distribution .*supported: Debian\/Ubuntu family with apt, Fedora\/RHEL family with dnf/);
  });

  it('a kernel without BTF: exit 4 and a message naming the kernel and what to use instead', () => {
    const r = sh([P('check-btf.sh')], { USM_LAB_BTF_PATH: '/nonexistent/btf/vmlinux' });
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/kernel \S+ has no BTF \(\/nonexistent\/btf\/vmlinux missing\)/);
    expect(r.stderr).toMatch(/use a box with a newer kernel/);
  });

  it('a kernel with BTF: exit 0, says its size', () => {
    const f = join(mkdtempSync(join(tmpdir(), 'btf-')), 'vmlinux');
    writeFileSync(f, 'x'.repeat(1234));
    const r = sh([P('check-btf.sh')], { USM_LAB_BTF_PATH: f });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/btf: yes \(kernel .*1234 bytes\)/);
  });

  it.each([
    [['--bogus'], /unknown argument '--bogus'/],
    [['--from'], /--from needs a folder/],
  ])('setup.sh %j is a usage error (exit 2)', (args, re) => {
    const r = sh([P('setup.sh'), ...args]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(re);
  });

  it('build.sh without sources says what is missing (exit 6)', () => {
    const r = sh([P('build.sh'), mkdtempSync(join(tmpdir(), 'nosrc-'))]);
    expect(r.status).toBe(6);
    expect(r.stderr).toMatch(/no .*\/bpf\/Makefile: upload bpf\/ and client\/ first/);
  });

  it('packages.sh --dry-run on this host: the family and nothing else to do twice in a row', () => {
    const a = sh([P('packages.sh'), '--dry-run']);
    const b = sh([P('packages.sh'), '--dry-run']);
    expect(a.status, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/provision: packages: (all present|would install) \(debian\)/);
    expect(b.stdout).toBe(a.stdout);
  });
});
