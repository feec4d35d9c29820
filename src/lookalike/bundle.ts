// The look-alike as one file a guest's node runs: src/lookalike/cli.ts and the HTTP layer it
// imports (src/analysis), bundled with esbuild (tsx's own bundler, a dependency already) for
// node 12, Debian 11's. Made from the sources at each run, so it never lags them; cached by their
// hash.
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabError } from '../errors.ts';

/** The oldest node of the images (bullseye's nodejs 12.22). */
export const BUNDLE_TARGET = 'node12';
export const BUNDLE_NAME = 'usm-lookalike.cjs';

const ENTRY = fileURLToPath(new URL('./cli.ts', import.meta.url));
/** What the bundle is made of: every file of src/lookalike and src/analysis (the cache key). */
const SOURCE_DIRS = ['../lookalike/', '../analysis/'].map((p) => fileURLToPath(new URL(p, import.meta.url)));

/** Bundle the look-alike into `outfile`. */
export async function buildBundle(outfile: string): Promise<void> {
  try {
    // loaded here, not with the module: a run without the look-alike never starts esbuild
    const { build } = await import('esbuild');
    const r = await build({
      entryPoints: [ENTRY],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: BUNDLE_TARGET,
      outfile,
      logLevel: 'silent',
      banner: { js: '#!/usr/bin/env node\n// usm-race-lab: the model debug-endpoint look-alike (generated from src/lookalike, src/analysis)' },
    });
    if (r.errors.length) throw new Error(r.errors.map((e) => e.text).join('; '));
  } catch (err) {
    throw new LabError('internal', `cannot bundle the look-alike (${ENTRY}): ${(err as Error).message}`);
  }
}

/** The bundle's path in `dir` (CACHE/lookalike), made when the sources changed since the last one. */
export async function lookalikeBundle(dir: string): Promise<{ file: string; sha256: string }> {
  const h = createHash('sha256').update(BUNDLE_TARGET);
  for (const d of SOURCE_DIRS)
    for (const f of (await readdir(d)).filter((n) => n.endsWith('.ts')).sort())
      h.update(f)
        .update('\0')
        .update(await readFile(join(d, f)))
        .update('\0');
  const key = h.digest('hex').slice(0, 16);
  const file = join(dir, `usm-lookalike-${key}.cjs`);
  if (!(await stat(file).catch(() => null))) {
    await mkdir(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await buildBundle(tmp);
    await rename(tmp, file);
  }
  const sha256 = createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
  return { file, sha256 };
}
