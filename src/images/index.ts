// The image cache's public API: ensureImage (build on demand, reuse when the recipe is
// unchanged and the checksum matches), listImages, cleanImages, and the floor initrd.
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { silent, step, type Emit } from '../progress/events.ts';
import { buildImage, removeBuildDir } from './build.ts';
import { buildFloorInitrd } from './initrd.ts';
import { pidLock } from './lock.ts';
import { ensureClientKey, type KeyPair } from './keys.ts';
import { cachePaths, checkImage, imagePaths, loadManifest, type ImageManifest, type ImagePaths, type ImageState } from './manifest.ts';
import { SUITES, type Suite } from '../domain.ts';
import { INITRD_APPLETS, recipeFor, recipeHash, readGuestScripts } from './recipe.ts';

export { parseSuite, recipeFor, recipeHash, type Recipe } from './recipe.ts';
export { resolveCacheRoot, cachePaths, imagePaths, type ImageManifest, type ImagePaths } from './manifest.ts';
export { FLOOR_MARKER } from './initrd.ts';

export interface EnsureOptions {
  /** Cache root (BackendContext.cacheDir; images live in ROOT/images). */
  cacheDir: string;
  emit?: Emit;
  signal?: AbortSignal;
  /** Build even when a valid image is cached. */
  rebuild?: boolean;
  /** Name used in progress events (default: the suite). */
  target?: string;
  env?: NodeJS.ProcessEnv;
}

export interface Image {
  suite: Suite;
  paths: ImagePaths;
  manifest: ImageManifest;
  /** Client key pair authorised in the image. */
  key: KeyPair;
  keyPath: string;
  /** Whether this call built the image. */
  built: boolean;
  /** Why a cached image was rebuilt (stale recipe, corrupt manifest, checksum mismatch, --rebuild); unset for a first build or a reuse. */
  rebuiltBecause?: string;
}

// One build per (cache, suite) at a time inside this process; a lock file across processes.
// --rebuild means once per process: targets sharing a suite do not rebuild it twice.
const inFlight = new Map<string, Promise<Image>>();
const rebuilt = new Set<string>();

export function ensureImage(suite: Suite, opts: EnsureOptions): Promise<Image> {
  const key = `${opts.cacheDir}\0${suite}`;
  const running = inFlight.get(key);
  if (running) return running;
  const rebuild = Boolean(opts.rebuild) && !rebuilt.has(key);
  const p = ensureImageOnce(suite, { ...opts, rebuild })
    .then((img) => {
      if (img.built) rebuilt.add(key);
      return img;
    })
    .finally(() => inFlight.delete(key));
  inFlight.set(key, p);
  return p;
}

async function ensureImageOnce(suite: Suite, opts: EnsureOptions): Promise<Image> {
  const emit = opts.emit ?? silent;
  const signal = opts.signal ?? new AbortController().signal;
  const target = opts.target ?? suite;
  const cp = cachePaths(opts.cacheDir);
  const paths = imagePaths(opts.cacheDir, suite);
  const recipe = recipeFor(suite, readGuestScripts());
  const hash = recipeHash(recipe);
  const key = await ensureClientKey(cp.clientKey);

  const cached = async (): Promise<ImageState> =>
    opts.rebuild ? { ok: false, reason: '--rebuild' } : checkImage(paths, { recipeHash: hash, clientKey: key.publicKey });
  let state = await step(emit, target, 'image-check', cached, suite);
  if (state.ok) return { suite, paths, manifest: state.manifest, key, keyPath: cp.clientKey, built: false };

  const release = await pidLock(join(cp.images, `.lock-${suite}`), {
    signal,
    pollMs: 2_000,
    waitingFor: `the ${suite} image`,
    onWait: (holder) => emit({ type: 'info', target, message: `waiting for process ${holder} to finish building the ${suite} image` }),
  });
  try {
    // Another process may have built it while we waited for the lock.
    if (!opts.rebuild) {
      state = await checkImage(paths, { recipeHash: hash, clientKey: key.publicKey });
      if (state.ok) return { suite, paths, manifest: state.manifest, key, keyPath: cp.clientKey, built: false };
    }
    const why = state.ok ? '' : state.reason;
    const rebuilding = !state.ok && (!state.absent || Boolean(opts.rebuild));
    if (rebuilding) emit({ type: 'info', target, message: `rebuilding the ${suite} image: ${why}` });
    else emit({ type: 'info', target, message: `building the ${suite} image (first use; a few minutes)` });
    await removeStaleBuilds(cp.images, suite);
    const manifest = await step(
      emit,
      target,
      'image-build',
      () => buildImage({ cacheRoot: opts.cacheDir, recipe, clientKey: key, emit, signal, target, ...(opts.env ? { env: opts.env } : {}) }),
      suite,
    );
    return { suite, paths, manifest, key, keyPath: cp.clientKey, built: true, ...(rebuilding ? { rebuiltBecause: why } : {}) };
  } finally {
    await release();
  }
}

/** Temporary folders of builds that were killed hard (SIGKILL, power loss). Call with the lock held. */
async function removeStaleBuilds(images: string, suite?: Suite): Promise<void> {
  for (const e of await readdir(images).catch(() => [] as string[])) {
    if ((suite ? e.startsWith(`.build-${suite}-`) : e.startsWith('.build-')) || e.startsWith('.old-')) await removeBuildDir(join(images, e));
  }
}

export interface CachedImage {
  suite: Suite;
  dir: string;
  manifest: ImageManifest | null;
  /** Is the manifest's recipe the current one? (Checksum not verified: see ensureImage.) */
  current: boolean;
  /** Bytes on disk for the folder (qcow2 + kernel + initrd + log). */
  bytes: number;
  /** What is wrong with its manifest.json (not JSON, fields missing): the next use rebuilds it. */
  problem?: string;
}

export async function listImages(cacheDir: string): Promise<CachedImage[]> {
  const scripts = readGuestScripts();
  const out: CachedImage[] = [];
  for (const suite of SUITES) {
    const p = imagePaths(cacheDir, suite);
    const { manifest, problem } = await loadManifest(p.manifest);
    let bytes = 0;
    for (const f of await readdir(p.dir).catch(() => [] as string[])) bytes += (await stat(join(p.dir, f)).catch(() => ({ size: 0 }))).size;
    if (!manifest && bytes === 0) continue;
    out.push({ suite, dir: p.dir, manifest, current: manifest?.recipeHash === recipeHash(recipeFor(suite, scripts)), bytes, ...(problem ? { problem } : {}) });
  }
  return out;
}

/** Remove cached images (one suite, or all; the client key pair stays). Returns what was removed. */
export async function cleanImages(cacheDir: string, suite?: Suite): Promise<string[]> {
  const images = cachePaths(cacheDir).images;
  const removed: string[] = [];
  for (const s of suite ? [suite] : SUITES) {
    const p = imagePaths(cacheDir, s);
    if (await stat(p.dir).catch(() => null)) {
      await removeBuildDir(p.dir);
      removed.push(p.dir);
    }
    await rm(join(images, `${s}.failed-build.log`), { force: true });
  }
  await removeStaleBuilds(images, suite);
  if (!suite) await rm(cachePaths(cacheDir).floorInitrd, { force: true });
  return removed;
}

// The floor initrd, like the client key: one build per cache at a time in this process (every
// target of a run asks for it after its image), a lock file across processes.
const floorInFlight = new Map<string, Promise<string>>();

/** The floor initrd of this cache (busybox + marker init), built on first use (no root needed). */
export function ensureFloorInitrd(cacheDir: string): Promise<string> {
  const path = resolve(cachePaths(cacheDir).floorInitrd);
  const running = floorInFlight.get(path);
  if (running) return running;
  const p = ensureFloorInitrdOnce(path).finally(() => floorInFlight.delete(path));
  floorInFlight.set(path, p);
  return p;
}

async function ensureFloorInitrdOnce(path: string): Promise<string> {
  const scripts = readGuestScripts();
  const want = `${scripts['floor-init.sh'] ?? ''}\n# applets: ${INITRD_APPLETS.join(' ')}\n`;
  const stamp = `${path}.src`;
  const current = async () => (await readFile(stamp, 'utf8').catch(() => null)) === want && (await stat(path).catch(() => null)) !== null;
  if (await current()) return path;
  const release = await pidLock(join(dirname(path), '.lock-floor-initrd'), { pollMs: 200, waitingFor: 'the floor initrd' });
  try {
    // Another process may have built it while we waited for the lock.
    if (await current()) return path;
    const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await buildFloorInitrd({ out: tmp, initScript: scripts['floor-init.sh'] ?? '', applets: INITRD_APPLETS });
      await rename(tmp, path);
    } finally {
      await rm(tmp, { force: true });
    }
    await writeFile(stamp, want);
    return path;
  } finally {
    await release();
  }
}
