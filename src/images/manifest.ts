// The image cache's layout and each image's manifest.json: what was built, from which recipe,
// and the checksum that proves the qcow2 is the one that was built.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Suite } from '../domain.ts';

/**
 * Cache root: --cache DIR, else $USM_LAB_CACHE, else ~/.cache/usm-race-lab (the same root the
 * matrix runner passes as BackendContext.cacheDir). Images live in ROOT/images.
 */
export function resolveCacheRoot(opts: { flag?: string; env?: NodeJS.ProcessEnv; cwd?: string; home?: string } = {}): string {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  return resolve(cwd, opts.flag ?? env.USM_LAB_CACHE ?? join(opts.home ?? env.HOME ?? homedir(), '.cache', 'usm-race-lab'));
}

export interface CachePaths {
  images: string;
  /** The client key pair authorised for root in every image of this cache. */
  clientKey: string;
  clientKeyPub: string;
  /** Tiny busybox initrd that prints a marker (KVM probe, boot floor). */
  floorInitrd: string;
}

export function cachePaths(cacheRoot: string): CachePaths {
  const images = join(cacheRoot, 'images');
  return { images, clientKey: join(images, 'id_ed25519'), clientKeyPub: join(images, 'id_ed25519.pub'), floorInitrd: join(images, 'floor-initrd.img') };
}

export interface ImagePaths {
  dir: string;
  manifest: string;
  disk: string;
  kernel: string;
  initrd: string;
  buildLog: string;
}

export function imagePaths(cacheRoot: string, suite: Suite): ImagePaths {
  const dir = join(cachePaths(cacheRoot).images, suite);
  return {
    dir,
    manifest: join(dir, 'manifest.json'),
    disk: join(dir, 'disk.qcow2'),
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.img'),
    buildLog: join(dir, 'build.log'),
  };
}

export interface ImageManifest {
  suite: Suite;
  /** uname -r of the image's kernel. */
  kernel: string;
  /** Debian package versions read from the built tree with dpkg-query. */
  versions: Record<string, string>;
  recipeHash: string;
  /** Public host key of the image ("ssh-ed25519 AAAA..."): clients pin it. */
  hostKey: string;
  /** Public client key authorised for root (must match the cache's key pair). */
  clientKey: string;
  /** Files beside manifest.json. */
  files: { disk: string; kernel: string; initrd: string };
  sha256: string;
  /** Bytes of the qcow2 file / of the file system inside it. */
  size: number;
  fsSize: number;
  builtAt: string;
  buildSeconds: number;
  packages: string[];
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** A manifest.json as read: the manifest, or null with the problem (null: there is none). */
export type ManifestFile = { manifest: ImageManifest; problem?: undefined } | { manifest: null; problem: string | null };

/** Fields every reader of a manifest relies on (the qemu backend, checkImage, resume, list). */
const MANIFEST_STRINGS = ['suite', 'kernel', 'recipeHash', 'hostKey', 'clientKey', 'sha256', 'builtAt'] as const;

/** What is wrong with a parsed manifest.json, or null: a truncated or hand-edited one must not reach a boot as undefined fields. */
export function manifestProblem(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'is not a JSON object';
  const o = v as Record<string, unknown>;
  const bad: string[] = MANIFEST_STRINGS.filter((k) => typeof o[k] !== 'string' || o[k] === '');
  if (typeof o.versions !== 'object' || o.versions === null || Array.isArray(o.versions)) bad.push('versions');
  if (typeof o.size !== 'number') bad.push('size');
  if (bad.length) return `lacks ${bad.join(', ')}`;
  if (!/^[0-9a-f]{64}$/.test(o.sha256 as string)) return 'has no sha256 checksum (64 hex digits)';
  return null;
}

export async function loadManifest(path: string): Promise<ManifestFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { manifest: null, problem: null };
    return { manifest: null, problem: `${path} cannot be read (${(err as Error).message})` };
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { manifest: null, problem: `${path} is not valid JSON (${(err as Error).message})` };
  }
  const bad = manifestProblem(v);
  return bad ? { manifest: null, problem: `${path} ${bad}` } : { manifest: v as ImageManifest };
}

/**
 * The manifest as parsed (a JSON object), or null: lenient, for what only compares a field or two
 * (resume's identity of a target). Whether the image can boot is checkImage's call, which reads it
 * with loadManifest: every field checked.
 */
export async function readManifest(path: string): Promise<ImageManifest | null> {
  try {
    const v: unknown = JSON.parse(await readFile(path, 'utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as ImageManifest) : null;
  } catch {
    return null;
  }
}

export type ImageState =
  | { ok: true; manifest: ImageManifest }
  /** absent: no manifest at all (a first build), as opposed to a stale, corrupt or damaged image (a rebuild). */
  | { ok: false; reason: string; manifest?: ImageManifest; absent?: true };

/**
 * Is the cached image usable for this recipe and client key? Checks, cheapest first: manifest
 * present and whole, recipe hash, client key, files present, then the qcow2's sha256 (a
 * truncated or damaged disk).
 */
export async function checkImage(p: ImagePaths, want: { recipeHash: string; clientKey: string; verifyChecksum?: boolean }): Promise<ImageState> {
  const f = await loadManifest(p.manifest);
  if (f.problem) return { ok: false, reason: `corrupt manifest: ${f.problem}` };
  const m = f.manifest;
  if (!m) return { ok: false, reason: 'not built', absent: true };
  if (m.recipeHash !== want.recipeHash)
    return { ok: false, reason: `recipe changed (${m.recipeHash.slice(0, 12)} -> ${want.recipeHash.slice(0, 12)})`, manifest: m };
  if (m.clientKey.trim() !== want.clientKey.trim()) return { ok: false, reason: 'the cache key pair changed since the image was built', manifest: m };
  for (const f of [p.disk, p.kernel, p.initrd]) {
    try {
      await stat(f);
    } catch {
      return { ok: false, reason: `${f} is missing`, manifest: m };
    }
  }
  if (want.verifyChecksum !== false) {
    const sum = await sha256File(p.disk);
    if (sum !== m.sha256)
      return { ok: false, reason: `checksum mismatch for ${p.disk} (manifest ${m.sha256.slice(0, 12)}, file ${sum.slice(0, 12)})`, manifest: m };
  }
  return { ok: true, manifest: m };
}
