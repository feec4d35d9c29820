// provision/*.sh: lint (shellcheck), distribution families, the BTF check's message and exit code,
// usage errors, and idempotence of the package step on this host. In a guest they run in the
// vagrant end-to-end test (test/vagrant-e2e.test.ts).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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

  it('packages.sh --dry-run on this host: says the family and changes nothing', () => {
    const r = sh([P('packages.sh'), '--dry-run']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/provision: packages: (all present|would install) \(debian\)/);
  });

  // A fake apt world on PATH (dpkg-query answers from a state folder, apt-get installs into it and
  // logs each call, id says root): the first run installs only what is missing, the second
  // installs nothing and says so.
  describe('packages.sh is idempotent (fake dpkg-query and apt-get)', () => {
    const WANT =
      'gcc make pkg-config clang llvm libbpf-dev libssl-dev libelf-dev zlib1g-dev python3 openssl ca-certificates nginx haproxy nodejs curl bpftool'.split(' ');
    const world = () => {
      const dir = mkdtempSync(join(tmpdir(), 'apt-world-'));
      const bin = join(dir, 'bin');
      const state = join(dir, 'state');
      spawnSync('mkdir', ['-p', bin, state]);
      const tool = (name: string, body: string) => writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
      tool('id', 'echo 0');
      tool('dpkg-query', `for a; do p=$a; done; [ -e "${state}/$p" ] || exit 1; printf 'install ok installed'`);
      tool('apt-get', `echo "$*" >>"${dir}/apt.log"; for a; do case $a in -*|update|install) ;; *) : >"${state}/$a" ;; esac; done`);
      const run = (...args: string[]) =>
        sh([P('packages.sh'), ...args], { PATH: `${bin}:${process.env.PATH}`, USM_LAB_OS_RELEASE: osRelease('ID=debian\nVERSION_ID="12"\n') });
      const aptLog = () => (existsSync(join(dir, 'apt.log')) ? readFileSync(join(dir, 'apt.log'), 'utf8') : '');
      return { state, run, aptLog };
    };

    it('first run installs only the missing packages, the second installs nothing', () => {
      const w = world();
      for (const p of WANT.filter((p) => p !== 'clang' && p !== 'bpftool')) writeFileSync(join(w.state, p), '');
      const first = w.run();
      expect(first.status, first.stderr).toBe(0);
      expect(first.stdout).toContain('provision: packages: installing (debian): clang bpftool');
      expect(w.aptLog()).toBe('update -qq\ninstall -y -qq --no-install-recommends clang bpftool\n');
      const second = w.run();
      expect(second.status, second.stderr).toBe(0);
      expect(second.stdout).toContain('provision: packages: all present (debian)');
      expect(w.aptLog().split('\n').filter(Boolean)).toHaveLength(2); // no new apt-get call
    });

    it('--dry-run says what it would install and installs nothing', () => {
      const w = world();
      for (const p of WANT.filter((p) => p !== 'python3')) writeFileSync(join(w.state, p), '');
      const r = w.run('--dry-run');
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain('provision: packages: would install (debian): python3');
      expect(w.aptLog()).toBe('');
      expect(existsSync(join(w.state, 'python3'))).toBe(false);
    });
  });
});
