// Which cells of a plan need to run: a cell whose inputs are unchanged and whose report in the
// folder is complete is reused. Everything here is decided from files on disk, before any boot:
// a target whose identity (image, box, host) cannot be known without a build or a boot has no
// reusable cell.
import { createHash } from 'node:crypto';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { release } from 'node:os';
import { dirname, join } from 'node:path';
import { cellDir } from '../analysis/cell.ts';
import type { TargetSpec } from '../backends/types.ts';
import { boxDir } from '../backends/vagrant/box.ts';
import type { CellId } from '../domain.ts';
import { ConfigError } from '../errors.ts';
import { imagePaths, readManifest } from '../images/manifest.ts';
import { parseSuite, readGuestScripts, recipeFor, recipeHash } from '../images/recipe.ts';
import type { CellInputs, CellReport } from '../report/cell.ts';
import type { Manifest } from '../report/manifest.ts';

/** Bump when the host-side analysis, the run protocol or the shape of report.json changes what a cell's report says (2: servers and tracers per target session). */
export const INPUTS_VERSION = 2;

/** The run's settings that shape one cell (iterations already resolved for its mode). */
export interface CellSettings {
  iterations: number;
  trials: number;
  ports: readonly number[];
  trace: string;
  api: string;
  hook: string;
  nagle: string;
  settleMs: number;
  /** sha256 of the user's own client (--client-src); absent for ours. */
  client?: string;
  /** sha256 of the external tracer's settings and files (matrix.yaml tracer:); absent for the model. */
  tracer?: string;
}

/** What a target runs on, as far as files on disk tell before a boot; null when they cannot. */
export type TargetIdentity = Record<string, unknown>;

/** JSON with every object's keys sorted: one value, one text. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** The fingerprint of one cell: sha256 over the canonical JSON of everything that shapes it. */
export function cellInputs(cell: CellId, settings: CellSettings, sources: string, target: TargetIdentity): CellInputs {
  const parts = {
    version: INPUTS_VERSION,
    // server only when a terminator (undefined keys are left out): a python cell's inputs are those it had before servers were a dimension
    cell: {
      target: cell.target,
      cpus: cell.cpus,
      server: cell.server && cell.server !== 'python' ? cell.server : undefined,
      reads: cell.reads,
      scenario: cell.scenario,
      mode: cell.mode,
      variant: cell.variant,
    },
    ...settings,
    ports: [...settings.ports],
    sources,
    target,
  };
  return { hash: createHash('sha256').update(canonicalJson(parts)).digest('hex'), parts };
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/**
 * The image a qemu target (or a Vagrant box built from a suite) boots, from the cache's
 * manifest.json: null when there is none, or when its recipe is not the current one (the boot
 * would build a new image), or with --rebuild. The qcow2's checksum is the manifest's: hashing
 * gigabytes to decide a reuse would cost more than some cells.
 */
async function imageIdentity(suite: string, cacheDir: string, rebuild: boolean): Promise<TargetIdentity | null> {
  if (rebuild) return null;
  const s = parseSuite(suite);
  const m = await readManifest(imagePaths(cacheDir, s).manifest);
  if (!m || m.recipeHash !== recipeHash(recipeFor(s, readGuestScripts()))) return null;
  return { suite: s, recipeHash: m.recipeHash, sha256: m.sha256, kernel: m.kernel };
}

/** The libssl a client built on this host links (the dev symlink), by path, size and time; null when none. */
async function hostLibssl(): Promise<TargetIdentity | null> {
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib64', '/lib']) {
    const path = await realpath(join(dir, 'libssl.so')).catch(() => null);
    const st = path && (await stat(path).catch(() => null));
    if (path && st) return { path, size: st.size, mtimeMs: Math.trunc(st.mtimeMs) };
  }
  return null;
}

/**
 * What a target boots, known without booting it: qemu, the suite's image manifest; vagrant, that
 * image (suite) or the installed versions of the box, and the Vagrantfile; local, the kernel
 * release and the libssl. Null when it cannot be known yet (the cells are rerun).
 */
export async function targetIdentity(t: TargetSpec, o: { cacheDir: string; repoRoot: string; rebuild: boolean }): Promise<TargetIdentity | null> {
  const base = { backend: t.backend, memoryMiB: t.memoryMiB ?? null };
  if (t.backend === 'local') {
    const libssl = await hostLibssl();
    return libssl && { backend: 'local', kernel: release(), libssl };
  }
  if (t.backend === 'qemu') {
    const image = t.suite ? await imageIdentity(t.suite, o.cacheDir, o.rebuild) : null;
    return image && { ...base, image };
  }
  const vagrantfile = await readFile(join(o.repoRoot, 'Vagrantfile')).catch(() => null);
  if (!vagrantfile) return null;
  if (t.suite) {
    const image = await imageIdentity(t.suite, o.cacheDir, o.rebuild);
    return image && { ...base, image, vagrantfile: sha256(vagrantfile) };
  }
  if (!t.box) return null;
  // The versions of the box Vagrant has (it boots the newest); none: the boot would download one.
  const versions = (await readdir(dirname(dirname(boxDir(join(o.cacheDir, 'vagrant.d'), t.box, '0')))).catch(() => [] as string[])).sort();
  return versions.length ? { ...base, box: t.box, versions, vagrantfile: sha256(vagrantfile) } : null;
}

/** A cell's report in the folder, when it is complete (ok, every trial ok) and its inputs are `hash`. */
export async function reusableReport(dir: string, hash: string, trials: number): Promise<CellReport | null> {
  const text = await readFile(join(dir, 'report.json'), 'utf8').catch(() => null);
  if (!text) return null;
  let r: CellReport | null;
  try {
    r = JSON.parse(text) as CellReport | null;
  } catch {
    return null;
  }
  // JSON null (a damaged file) is not reusable either, and has no fields to read
  if (!r) return null;
  const complete = r.cell?.status === 'ok' && r.trials?.length === trials && r.trials.every((t) => t.status === 'ok');
  return complete && r.inputs?.hash === hash ? r : null;
}

/** The reusable reports of a target's cells, by cell folder name. */
export async function reusableCells(
  targetDir: string,
  cells: readonly CellId[],
  inputsOf: (c: CellId) => CellInputs,
  trials: number,
): Promise<Map<string, CellReport>> {
  const out = new Map<string, CellReport>();
  for (const c of cells) {
    const r = await reusableReport(join(targetDir, cellDir(c)), inputsOf(c).hash, trials);
    if (r) out.set(cellDir(c), r);
  }
  return out;
}

/**
 * The run a folder holds (its manifest.json), or null when there is none. `required` (--resume
 * DIR): a folder that is not a report folder is a ConfigError.
 */
export async function readPreviousRun(dir: string, required: boolean): Promise<Manifest | null> {
  const text = await readFile(join(dir, 'manifest.json'), 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (required) throw new ConfigError(`--resume ${dir}: not a report folder (no manifest.json: ${err.code ?? err.message})`);
    return null;
  });
  if (text === null) return null;
  try {
    const m = JSON.parse(text) as Manifest;
    if (typeof m.runId === 'string' && Array.isArray(m.targets)) return m;
  } catch {
    /* below */
  }
  if (required) throw new ConfigError(`--resume ${dir}: not a report folder (manifest.json is not a run's manifest)`);
  return null;
}
