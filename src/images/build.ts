// Build one suite's image: debootstrap a minbase tree, make it a lab image, build the tiny
// initrd, pack the tree into ext4 -> qcow2, write manifest.json. Everything happens in a
// temporary folder beside the final one (same file system) and is renamed into place at the
// end, so an interrupted build never leaves a half image.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../errors.ts';
import { step, type Emit } from '../progress/events.ts';
import { findTool, runLogged } from './exec.ts';
import { buildBootInitrd } from './initrd.ts';
import { generateEd25519, writeKeyPair, type KeyPair } from './keys.ts';
import { cachePaths, imagePaths, sha256File, type ImageManifest } from './manifest.ts';
import { VERSION_PACKAGES, recipeHash, type Recipe } from './recipe.ts';

export const HOST_TOOLS = ['debootstrap', 'mkfs.ext4', 'qemu-img', 'dpkg-query', 'xz', 'zstd', 'rm', 'umount', 'du'] as const;

export interface BuildOptions {
  cacheRoot: string;
  recipe: Recipe;
  clientKey: KeyPair;
  emit: Emit;
  signal: AbortSignal;
  /** Name used in progress events (default: the suite). */
  target?: string;
  /** Debian mirror (default: the host's apt configuration, else deb.debian.org). */
  mirror?: string;
  env?: NodeJS.ProcessEnv;
}

const MiB = 1024 * 1024;

/** First non-security Debian mirror in apt sources texts (one-line or deb822 format), or null. */
export function parseMirror(texts: readonly string[]): string | null {
  for (const text of texts) {
    for (const m of text.matchAll(/(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)/gm)) {
      const uri = m[1]!;
      if (/\/debian\/?$/.test(uri) && !/security/.test(uri)) return uri.replace(/\/$/, '');
    }
  }
  return null;
}

/** The Debian mirror the host's apt uses, for debootstrap ($USM_LAB_MIRROR overrides). */
export async function hostMirror(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.USM_LAB_MIRROR) return env.USM_LAB_MIRROR;
  const files = ['/etc/apt/sources.list'];
  try {
    for (const f of (await readdir('/etc/apt/sources.list.d')).sort()) files.push(join('/etc/apt/sources.list.d', f));
  } catch {
    /* none */
  }
  const texts = await Promise.all(files.map((f) => readFile(f, 'utf8').catch(() => '')));
  return parseMirror(texts) ?? 'http://deb.debian.org/debian';
}

export async function checkBuildHost(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new LabError(
      'build-failed',
      'building an image needs root (debootstrap, and root-owned files in the image): run as root, e.g. sudo npx zx scripts/images.mjs build --suite SUITE',
    );
  }
  const missing: string[] = [];
  for (const t of HOST_TOOLS) if (!(await findTool(t, env))) missing.push(t);
  if (missing.length)
    throw new LabError(
      'build-failed',
      `missing host tools: ${missing.join(', ')} (install the packages in provision/host-deps-images.txt: bash provision/host-deps.sh images)`,
    );
}

/** Unmount whatever is still mounted under dir (debootstrap mounts proc/sys in the tree). */
async function unmountUnder(dir: string, log: string): Promise<void> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8').catch(() => ''))
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await runLogged(['umount', '-l', m], { log, timeoutMs: 30_000 }).catch(() => {});
}

/** Remove a build folder: unmount first, and never cross into another file system. */
export async function removeBuildDir(dir: string, log = '/dev/null'): Promise<void> {
  await unmountUnder(dir, log);
  await runLogged(['rm', '-rf', '--one-file-system', dir], { log, timeoutMs: 300_000 });
}

export async function buildImage(opts: BuildOptions): Promise<ImageManifest> {
  const { recipe, emit, signal } = opts;
  const suite = recipe.suite;
  const target = opts.target ?? suite;
  const env = opts.env ?? process.env;
  await checkBuildHost(env);
  const images = cachePaths(opts.cacheRoot).images;
  const final = imagePaths(opts.cacheRoot, suite);
  await mkdir(images, { recursive: true });
  const tmp = join(images, `.build-${suite}-${randomBytes(4).toString('hex')}`);
  const tree = join(tmp, 'root');
  const log = join(tmp, 'build.log');
  await mkdir(tmp);
  await writeFile(log, `usm-race-lab image build: ${suite}, recipe ${recipeHash(recipe)}\n`);
  const t0 = Date.now();
  const sh = (argv: string[], timeoutMs: number) => runLogged(argv, { log, timeoutMs, signal, env });
  try {
    const mirror = opts.mirror ?? (await hostMirror(env));
    // INITRD=No: the kernel's postinst hooks (initramfs-tools, dracut) skip building the distro
    // initrd, which the lab never boots (it builds its own tiny one below).
    const bootstrap = ['debootstrap', '--variant=minbase', `--include=${recipe.packages.join(',')}`, suite, tree, mirror];
    await step(
      emit,
      target,
      'debootstrap',
      () => runLogged(bootstrap, { log, timeoutMs: 30 * 60_000, signal, env: { ...env, INITRD: 'No' } }),
      `${suite} from ${mirror}`,
    );

    const hostKey = generateEd25519(`root@lab-${suite}`);
    await step(emit, target, 'configure', async () => {
      const files = join(tmp, 'files');
      await mkdir(files, { mode: 0o700 });
      await writeKeyPair(join(files, 'host_ed25519'), hostKey);
      await writeFile(join(files, 'authorized_keys'), opts.clientKey.publicKey + '\n', { mode: 0o600 });
      await writeFile(join(files, 'init.sh'), recipe.scripts['init.sh'] ?? '', { mode: 0o755 });
      await writeFile(join(files, 'configure-tree.sh'), recipe.scripts['configure-tree.sh'] ?? '', { mode: 0o755 });
      await sh(
        ['sh', join(files, 'configure-tree.sh'), tree, `lab-${suite}`, join(files, 'init.sh'), join(files, 'authorized_keys'), join(files, 'host_ed25519')],
        120_000,
      );
      await removeBuildDir(files, log);
    });

    const kver = await kernelRelease(tree);
    const versions = await packageVersions(tree, log, signal, env);
    await step(
      emit,
      target,
      'initrd',
      async () => {
        await copyFile(join(tree, 'boot', `vmlinuz-${kver}`), join(tmp, 'vmlinuz'));
        const plan = await buildBootInitrd({
          tree,
          kver,
          out: join(tmp, 'initrd.img'),
          initScript: recipe.scripts['initrd-init.sh'] ?? '',
          modules: recipe.initrdModules,
          applets: recipe.initrdApplets,
        });
        await writeFile(log, `initrd modules (load order): ${plan.load.join(' ')}; built in: ${plan.builtin.join(' ')}\n`, { flag: 'a' });
      },
      kver,
    );

    const raw = join(tmp, 'disk.raw');
    let fsSize = 0;
    await step(emit, target, 'filesystem', async () => {
      const used = Number((await sh(['du', '-sb', '--one-file-system', tree], 300_000)).split(/\s/)[0]);
      const mib = Math.ceil((used * 1.1) / MiB) + recipe.freeSpaceMiB + 64;
      fsSize = mib * MiB;
      await sh(['mkfs.ext4', '-q', '-F', '-L', `lab-${suite}`, '-m', '0', '-d', tree, raw, `${mib}M`], 20 * 60_000);
      await removeBuildDir(tree, log);
    });
    await step(emit, target, 'qcow2', async () => {
      await sh(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, join(tmp, 'disk.qcow2')], 20 * 60_000);
      await removeBuildDir(raw, log);
    });

    const sha256 = await step(emit, target, 'checksum', () => sha256File(join(tmp, 'disk.qcow2')));
    const manifest: ImageManifest = {
      suite,
      kernel: kver,
      versions,
      recipeHash: recipeHash(recipe),
      hostKey: hostKey.publicKey,
      clientKey: opts.clientKey.publicKey,
      files: { disk: 'disk.qcow2', kernel: 'vmlinuz', initrd: 'initrd.img' },
      sha256,
      size: (await stat(join(tmp, 'disk.qcow2'))).size,
      fsSize,
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round((Date.now() - t0) / 100) / 10,
      packages: [...recipe.packages],
    };
    await writeFile(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    await moveIntoPlace(tmp, final.dir, images);
    return manifest;
  } catch (err) {
    // Keep the log of a failed build beside the cache for the report, then drop the rest.
    const failedLog = join(images, `${suite}.failed-build.log`);
    const interrupted = err instanceof LabError && err.kind === 'interrupted';
    if (!interrupted) await copyFile(log, failedLog).catch(() => {});
    await removeBuildDir(tmp).catch(() => {});
    if (err instanceof LabError && (err as { logFile?: string }).logFile) Object.assign(err, { logFile: failedLog });
    throw err;
  }
}

/** Replace dest by src (both in parent): the old image disappears only once the new one is in place. */
async function moveIntoPlace(src: string, dest: string, parent: string): Promise<void> {
  const old = join(parent, `.old-${randomBytes(4).toString('hex')}`);
  let hadOld = true;
  try {
    await rename(dest, old);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    hadOld = false;
  }
  await rename(src, dest);
  if (hadOld) await removeBuildDir(old);
}

async function kernelRelease(tree: string): Promise<string> {
  const kvers = (await readdir(join(tree, 'lib/modules')).catch(() => [] as string[])).filter((k) => !k.startsWith('.'));
  if (kvers.length !== 1) throw new LabError('build-failed', `expected one kernel in the image, found: ${kvers.join(', ') || 'none'}`);
  return kvers[0]!;
}

async function packageVersions(tree: string, log: string, signal: AbortSignal, env: NodeJS.ProcessEnv): Promise<Record<string, string>> {
  const pkgs = Object.values(VERSION_PACKAGES);
  const out = await runLogged(['dpkg-query', `--admindir=${join(tree, 'var/lib/dpkg')}`, '-W', '-f=${Package}\t${Version}\n', ...pkgs], {
    log,
    timeoutMs: 60_000,
    signal,
    env,
  });
  const byPkg = new Map(
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t') as [string, string]),
  );
  const versions: Record<string, string> = {};
  for (const [field, pkg] of Object.entries(VERSION_PACKAGES)) versions[field] = byPkg.get(pkg) ?? 'missing';
  return versions;
}
