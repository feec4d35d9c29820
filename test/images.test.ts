// Images: recipe hash, manifest checks (on small fake files, not real images), initrd pieces
// (module order, cpio), keys, the images.mjs flags; and, as root, that a failed or interrupted
// build leaves the cache as it was.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabError } from '../src/errors.ts';
import { parseMirror } from '../src/images/build.ts';
import { formatList, parseImagesFlags } from '../src/images/cli.ts';
import { ensureImage, listImages } from '../src/images/index.ts';
import { pidLock } from '../src/images/lock.ts';
import { cpioNewc, isStaticElf, moduleName, planModules } from '../src/images/initrd.ts';
import { ensureClientKey, publicKeyBlob } from '../src/images/keys.ts';
import { cachePaths, checkImage, imagePaths, resolveCacheRoot, sha256File, type ImageManifest } from '../src/images/manifest.ts';
import { SUITES } from '../src/domain.ts';
import { PACKAGES, readGuestScripts, recipeFor, recipeHash } from '../src/images/recipe.ts';
import type { ProgressEvent } from '../src/progress/events.ts';
import { inCI } from './helpers/requirements.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'images-test-'));
/** Cut a file to its first n bytes (a copy or a download that stopped half way). */
const truncateFile = (f: string, n: number) => truncate(f, n);
const BUSYBOX = '/bin/busybox';
const haveBusybox = existsSync(BUSYBOX);

describe('recipe', () => {
  const scripts = readGuestScripts();
  const r = recipeFor('bookworm', scripts);

  it('hashes the same recipe to the same value', () => {
    expect(recipeHash(recipeFor('bookworm', { ...scripts }))).toBe(recipeHash(r));
    expect(recipeHash(r)).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each([
    ['another suite', { suite: 'trixie' as const }],
    ['one more package', { packages: [...r.packages, 'strace'] }],
    ['one package less', { packages: r.packages.slice(1) }],
    ['a changed init script', { scripts: { ...scripts, 'init.sh': scripts['init.sh'] + '\n# changed\n' } }],
    ['a changed initrd /init', { scripts: { ...scripts, 'initrd-init.sh': scripts['initrd-init.sh'] + ' ' } }],
    ['another module list', { initrdModules: ['virtio_pci'] }],
    ['another busybox applet list', { initrdApplets: ['sh'] }],
    ['more free space', { freeSpaceMiB: r.freeSpaceMiB + 1 }],
    ['a new build code version', { buildCodeVersion: r.buildCodeVersion + 1 }],
  ])('changes with %s', (_name, over) => {
    expect(recipeHash({ ...r, ...over })).not.toBe(recipeHash(r));
  });

  it('lists the base system and the toolchain for every suite, initramfs-tools except on sid', () => {
    for (const s of SUITES) {
      for (const p of ['linux-image-cloud-amd64', 'openssh-server', 'python3', 'clang', 'libbpf-dev', 'bpftool', 'libssl-dev'])
        expect(PACKAGES[s]).toContain(p);
      expect(PACKAGES[s].includes('initramfs-tools')).toBe(s !== 'sid');
    }
  });
});

describe('manifest checks (fake image)', () => {
  async function fakeImage(): Promise<{ root: string; manifest: ImageManifest }> {
    const root = tmp();
    const p = imagePaths(root, 'bookworm');
    await mkdir(p.dir, { recursive: true });
    await writeFile(p.disk, 'not really a qcow2 image\n');
    await writeFile(p.kernel, 'k');
    await writeFile(p.initrd, 'i');
    const manifest: ImageManifest = {
      suite: 'bookworm',
      kernel: '6.1.0-1-cloud-amd64',
      versions: { openssl: '3.0.15-1~deb12u1' },
      recipeHash: 'r1',
      hostKey: 'ssh-ed25519 HHHH host',
      clientKey: 'ssh-ed25519 AAAA client',
      files: { disk: 'disk.qcow2', kernel: 'vmlinuz', initrd: 'initrd.img' },
      sha256: await sha256File(p.disk),
      size: 25,
      fsSize: 0,
      builtAt: '2026-12-01T00:00:00.000Z',
      buildSeconds: 1,
      packages: [],
    };
    await writeFile(p.manifest, JSON.stringify(manifest));
    return { root, manifest };
  }

  it('accepts an intact image', async () => {
    const { root } = await fakeImage();
    const s = await checkImage(imagePaths(root, 'bookworm'), { recipeHash: 'r1', clientKey: 'ssh-ed25519 AAAA client' });
    expect(s.ok).toBe(true);
  });

  it.each([
    ['a modified disk', async (p: ReturnType<typeof imagePaths>) => writeFile(p.disk, 'tampered\n'), {}, /checksum mismatch/],
    ['a truncated disk', async (p: ReturnType<typeof imagePaths>) => writeFile(p.disk, ''), {}, /checksum mismatch/],
    ['a missing kernel', async (p: ReturnType<typeof imagePaths>) => rm(p.kernel), {}, /vmlinuz is missing/],
    ['another recipe', async () => {}, { recipeHash: 'r2' }, /recipe changed/],
    ['another client key', async () => {}, { clientKey: 'ssh-ed25519 BBBB other' }, /key pair changed/],
    ['no manifest', async (p: ReturnType<typeof imagePaths>) => rm(p.manifest), {}, /^not built$/],
    // a corrupt manifest is a rebuild that says why, not a silent "first use" and never a TypeError at the boot
    [
      'a truncated manifest',
      async (p: ReturnType<typeof imagePaths>) => truncateFile(p.manifest, 40),
      {},
      /^corrupt manifest: .*manifest\.json is not valid JSON/,
    ],
    ['an empty manifest', async (p: ReturnType<typeof imagePaths>) => writeFile(p.manifest, ''), {}, /^corrupt manifest: .*not valid JSON/],
    ['a manifest that is null', async (p: ReturnType<typeof imagePaths>) => writeFile(p.manifest, 'null'), {}, /^corrupt manifest: .*is not a JSON object/],
    [
      'a manifest without its checksum and host key',
      async (p: ReturnType<typeof imagePaths>) => {
        const m = JSON.parse(await readFile(p.manifest, 'utf8'));
        delete m.sha256;
        delete m.hostKey;
        await writeFile(p.manifest, JSON.stringify(m));
      },
      {},
      /^corrupt manifest: .*lacks hostKey, sha256/,
    ],
    ['a truncated qcow2 (half of it)', async (p: ReturnType<typeof imagePaths>) => truncateFile(p.disk, 12), {}, /^checksum mismatch for .*disk\.qcow2/],
  ])('rejects %s', async (_name, mutate, want, re) => {
    const { root } = await fakeImage();
    const p = imagePaths(root, 'bookworm');
    await mutate(p);
    const s = await checkImage(p, { recipeHash: 'r1', clientKey: 'ssh-ed25519 AAAA client', ...want });
    expect(s.ok).toBe(false);
    if (!s.ok) expect(s.reason).toMatch(re);
    // only a missing manifest is a first build; everything else is a rebuild
    if (!s.ok) expect(s.absent === true, 'absent').toBe(_name === 'no manifest');
  });

  it('lists a corrupt manifest as such (no TypeError on its missing fields)', async () => {
    const { root } = await fakeImage();
    await writeFile(imagePaths(root, 'bookworm').manifest, '{"suite":"bookworm"}');
    const rows = await listImages(root);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.manifest).toBeNull();
    expect(rows[0]!.problem).toMatch(/lacks kernel/);
    expect(formatList(rows, root)).toMatch(/bookworm .* corrupt manifest/);
  });

  it('resolves the cache root from flag, env, then home', () => {
    expect(resolveCacheRoot({ flag: 'c', env: { USM_LAB_CACHE: '/e' }, cwd: '/w', home: '/h' })).toBe('/w/c');
    expect(resolveCacheRoot({ env: { USM_LAB_CACHE: '/e' }, cwd: '/w', home: '/h' })).toBe('/e');
    expect(resolveCacheRoot({ env: {}, cwd: '/w', home: '/h' })).toBe('/h/.cache/usm-race-lab');
    expect(cachePaths('/h/.cache/usm-race-lab').images).toBe('/h/.cache/usm-race-lab/images');
  });
});

describe('runLogged', () => {
  it('an abort while the command line is being logged still stops the tool (fault case 13b: SIGINT right at the debootstrap step)', async () => {
    const { runLogged } = await import('../src/images/exec.ts');
    const log = join(tmp(), 'log');
    const ac = new AbortController();
    const t0 = Date.now();
    const p = runLogged(['sleep', '30'], { log, timeoutMs: 60_000, signal: ac.signal });
    ac.abort(); // runLogged is at its first await (appending the command line to the log)
    const err = await p.catch((e: unknown) => e);
    expect((err as LabError).kind).toBe('interrupted');
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});

describe('initrd pieces', () => {
  const dep = [
    'kernel/drivers/virtio/virtio.ko:',
    'kernel/drivers/virtio/virtio_ring.ko:',
    'kernel/drivers/virtio/virtio_pci_modern_dev.ko:',
    'kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko',
    'kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko',
    'kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/char/hw_random/rng-core.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko',
    'kernel/drivers/char/hw_random/rng-core.ko:',
  ].join('\n');

  it('orders modules dependencies first, each once; built-ins and missing ones apart', () => {
    const plan = planModules(dep, 'kernel/fs/ext4/ext4.ko\n', ['virtio_pci', 'virtio_blk', 'virtio-rng', 'ext4', 'virtio_net']);
    expect(plan.load.map(moduleName)).toEqual(['virtio', 'virtio_ring', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio_blk', 'rng_core', 'virtio_rng']);
    expect(plan.builtin).toEqual(['ext4']);
    expect(plan.missing).toEqual(['virtio_net']);
  });

  it.each([
    ['kernel/drivers/block/virtio_blk.ko', 'virtio_blk'],
    ['kernel/drivers/block/virtio_blk.ko.xz', 'virtio_blk'],
    ['kernel/drivers/char/hw_random/virtio-rng.ko.zst', 'virtio_rng'],
  ])('module name of %s is %s', (p, want) => {
    expect(moduleName(p)).toBe(want);
  });

  const archive = () =>
    cpioNewc([
      { kind: 'dir', path: 'bin' },
      { kind: 'file', path: 'init', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 },
      { kind: 'file', path: 'bin/odd', data: Buffer.from('abc') },
      { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    ]);

  it('writes a newc archive: magic first, trailer last', () => {
    const a = archive();
    expect(a.subarray(0, 6).toString()).toBe('070701');
    expect(a.includes(Buffer.from('TRAILER!!!'))).toBe(true);
  });

  // busybox is what the initrd runs: without it this cannot be checked (skips outside CI, fails in it).
  it.skipIf(!haveBusybox && !inCI)(`busybox cpio extracts the archive${haveBusybox ? '' : ` (skipped: no ${BUSYBOX})`}`, () => {
    expect(haveBusybox, `needs ${BUSYBOX} (apt-get install busybox-static)`).toBe(true);
    const dir = tmp();
    const r = spawnSync(BUSYBOX, ['cpio', '-id'], { cwd: dir, input: archive(), timeout: 10_000 });
    expect(r.status, String(r.stderr)).toBe(0);
    expect(readFileSync(join(dir, 'init'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(statSync(join(dir, 'init')).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(dir, 'bin/odd'), 'utf8')).toBe('abc');
    expect(spawnSync('readlink', [join(dir, 'bin/sh')], { encoding: 'utf8' }).stdout.trim()).toBe('busybox');
  });

  it('tells a dynamic ELF and a script from a static ELF', () => {
    expect(isStaticElf(readFileSync(process.execPath))).toBe(false);
    expect(isStaticElf(Buffer.from('#!/bin/sh\n'))).toBe(false);
  });

  it.skipIf(!haveBusybox && !inCI)(`tells a static ELF (busybox) as static${haveBusybox ? '' : ` (skipped: no ${BUSYBOX})`}`, () => {
    expect(haveBusybox, `needs ${BUSYBOX} (apt-get install busybox-static)`).toBe(true);
    expect(isStaticElf(readFileSync(BUSYBOX))).toBe(true);
  });
});

describe('keys', () => {
  it('creates the cache key pair once (0600) and reuses it', async () => {
    const dir = tmp();
    const path = join(dir, 'images/id_ed25519');
    const a = await ensureClientKey(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(a.publicKey).toMatch(/^ssh-ed25519 AAAA/);
    const b = await ensureClientKey(path);
    expect(b.publicKey).toBe(a.publicKey);
    expect(publicKeyBlob(a.publicKey).length).toBeGreaterThan(30);
  });
});

describe('pidLock (image and box caches)', () => {
  it('a second taker waits for the release, says once who holds it, and gets it', async () => {
    const path = join(tmp(), '.lock-x');
    const release = await pidLock(path, { pollMs: 20, waitingFor: 'x' });
    expect(readFileSync(path, 'utf8')).toBe(String(process.pid));
    const waits: number[] = [];
    let got = false;
    const second = pidLock(path, { pollMs: 20, waitingFor: 'x', onWait: (h) => waits.push(h) }).then((r) => ((got = true), r));
    await new Promise((r) => setTimeout(r, 150));
    expect(got).toBe(false);
    await release();
    const release2 = await second;
    expect(waits).toEqual([process.pid]);
    await release2();
    expect(existsSync(path)).toBe(false);
  });

  it("a dead holder's lock is taken over; an abort while waiting is 'interrupted'", async () => {
    const dir = tmp();
    const dead = spawnSync('true').pid!;
    await writeFile(join(dir, '.lock-dead'), String(dead));
    const release = await pidLock(join(dir, '.lock-dead'), { pollMs: 20, waitingFor: 'dead' });
    expect(readFileSync(join(dir, '.lock-dead'), 'utf8')).toBe(String(process.pid));
    const ac = new AbortController();
    const waiting = pidLock(join(dir, '.lock-dead'), { pollMs: 20, waitingFor: 'the dead image', signal: ac.signal });
    ac.abort();
    const err = await waiting.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).kind).toBe('interrupted');
    expect((err as LabError).message).toMatch(/the dead image/);
    await release();
  });
});

describe('images.mjs flags', () => {
  it.each([
    [['list'], { command: 'list', suites: [], rebuild: false }],
    [['build', '--suite', 'bookworm'], { command: 'build', suites: ['bookworm'], rebuild: false }],
    [['build', '--suite', 'bullseye,sid', '--rebuild', '--cache', '/c'], { command: 'build', suites: ['bullseye', 'sid'], rebuild: true, cache: '/c' }],
    [['build', '--suite', 'all'], { command: 'build', suites: [...SUITES], rebuild: false }],
    [['clean'], { command: 'clean', suites: [], rebuild: false }],
    [['clean', '--suite', 'trixie'], { command: 'clean', suites: ['trixie'], rebuild: false }],
    [['--help'], { command: 'help', suites: [], rebuild: false }],
  ])('%j', (argv, want) => {
    expect(parseImagesFlags(argv)).toEqual(want);
  });

  it.each([
    [['build', '--suite', 'jessie'], /unknown suite 'jessie' \(allowed: bullseye, bookworm, trixie, sid\)/],
    [['build'], /build needs --suite \(allowed: bullseye, bookworm, trixie, sid, or all\)/],
    [['frobnicate'], /unknown command 'frobnicate' \(allowed: list, build, clean\)/],
    [['list', '--colour'], /Unknown option '--colour'.*allowed flags: --suite, --rebuild, --cache, --help/],
    [[], /expected one command \(allowed: list, build, clean\)/],
    [['clean', '--rebuild'], /--rebuild only applies to build/],
  ])('rejects %j', (argv, re) => {
    expect(() => parseImagesFlags(argv)).toThrow(re);
  });

  it('lists cached images with versions and sizes', () => {
    const m = {
      kernel: '6.1.0-50-cloud-amd64',
      versions: { openssl: '3.0.20-1~deb12u2', clang: '1:14.0-55.7~deb12u1', libbpf: '1:1.1.2-0+deb12u1', bpftool: '7.1.0+6.1.176-1' },
      builtAt: '2026-01-02T03:04:05Z',
    } as unknown as ImageManifest;
    const out = formatList([{ suite: 'bookworm', dir: '/c/images/bookworm', manifest: m, current: true, bytes: 944_000_000 }], '/c');
    expect(out).toMatch(/bookworm\s+6\.1\.0-50-cloud-amd64\s+3\.0\.20\s+14\.0\s+1\.1\.2\s+7\.1\.0\s+900 MiB\s+2026-01-02 03:04\s+current/);
    expect(formatList([], '/c')).toMatch(/no images cached/);
  });

  it('finds the Debian mirror in apt sources (deb822 and one-line)', () => {
    expect(
      parseMirror(['Types: deb\nURIs: http://deb.debian.org/debian-security\n', 'Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n']),
    ).toBe('http://mirror.example/debian');
    expect(parseMirror(['deb [signed-by=/k.gpg] http://ftp.de.debian.org/debian bookworm main\n'])).toBe('http://ftp.de.debian.org/debian');
    expect(parseMirror(['deb https://packages.cloud.google.com/apt cloud-sdk main\n'])).toBeNull();
  });
});

const canBuild =
  process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v debootstrap || test -x /usr/sbin/debootstrap'], { timeout: 5_000 }).status === 0;

const cannotBuild = canBuild ? null : 'needs root and debootstrap';

// Outside CI a missing requirement skips with its reason; in CI it fails with it.
describe.skipIf(!canBuild && !inCI)(`a failed or interrupted build leaves the cache as it was (root)${cannotBuild ? ` (skipped: ${cannotBuild})` : ''}`, () => {
  it('requirements: root and debootstrap', () => {
    expect(cannotBuild, `the build tests cannot run here: ${cannotBuild}`).toBeNull();
  });

  const leftovers = (root: string) =>
    readdirSync(join(root, 'images')).filter((e) => e.startsWith('.build-') || e.startsWith('.old-') || e.startsWith('.lock-'));

  it.runIf(canBuild)(
    'rebuilds an image whose checksum does not match, says so, and keeps the old one when the build fails',
    async () => {
      const root = tmp();
      const key = await ensureClientKey(cachePaths(root).clientKey);
      const p = imagePaths(root, 'bookworm');
      await mkdir(p.dir, { recursive: true });
      for (const f of [p.disk, p.kernel, p.initrd]) await writeFile(f, 'x');
      await writeFile(
        p.manifest,
        JSON.stringify({
          suite: 'bookworm',
          kernel: 'k',
          versions: {},
          recipeHash: recipeHash(recipeFor('bookworm')),
          hostKey: 'ssh-ed25519 HHHH host',
          clientKey: key.publicKey,
          sha256: '0'.repeat(64),
          size: 1,
          builtAt: '2026-12-01T00:00:00.000Z',
        }),
      );
      const events: ProgressEvent[] = [];
      // An unreachable mirror makes debootstrap fail at once.
      const err = await ensureImage('bookworm', {
        cacheDir: root,
        emit: (e) => events.push(e),
        env: { ...process.env, USM_LAB_MIRROR: 'http://127.0.0.1:9/debian' },
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LabError);
      expect((err as LabError).kind).toBe('build-failed');
      expect(events.some((e) => e.type === 'info' && /rebuilding the bookworm image: checksum mismatch/.test(e.message))).toBe(true);
      expect(readFileSync(p.disk, 'utf8')).toBe('x');
      expect(leftovers(root)).toEqual([]);
      expect(existsSync(join(root, 'images/bookworm.failed-build.log'))).toBe(true);
    },
    120_000,
  );

  it.runIf(canBuild)(
    'rebuilds an image whose manifest is corrupt and says so (not "first use")',
    async () => {
      const root = tmp();
      await ensureClientKey(cachePaths(root).clientKey);
      const p = imagePaths(root, 'bookworm');
      await mkdir(p.dir, { recursive: true });
      for (const f of [p.disk, p.kernel, p.initrd]) await writeFile(f, 'x');
      await writeFile(p.manifest, '{"suite":"bookworm","kernel":"6.1');
      const events: ProgressEvent[] = [];
      const err = await ensureImage('bookworm', {
        cacheDir: root,
        emit: (e) => events.push(e),
        env: { ...process.env, USM_LAB_MIRROR: 'http://127.0.0.1:9/debian' },
      }).catch((e: unknown) => e);
      expect((err as LabError).kind).toBe('build-failed');
      const infos = events.flatMap((e) => (e.type === 'info' ? [e.message] : []));
      expect(infos.join('\n')).toMatch(/rebuilding the bookworm image: corrupt manifest: .*manifest\.json is not valid JSON/);
      expect(infos.join('\n')).not.toMatch(/first use/);
      expect(leftovers(root)).toEqual([]);
    },
    120_000,
  );

  it.runIf(canBuild)(
    'an aborted build removes its temporary folder',
    async () => {
      const root = tmp();
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 1_500);
      const err = await ensureImage('bookworm', { cacheDir: root, signal: ac.signal }).catch((e: unknown) => e);
      expect((err as LabError).kind).toBe('interrupted');
      expect(leftovers(root)).toEqual([]);
      expect(existsSync(imagePaths(root, 'bookworm').dir)).toBe(false);
    },
    120_000,
  );
});
