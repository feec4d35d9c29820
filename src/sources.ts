// The project's guest-side sources (bpf/, client/, provision/): their hash and their upload to a
// Machine. Below the backends and the scenario, which both use them (vagrant build snapshots are
// keyed by the hash; the scenario uploads before it builds).
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { LabError } from './errors.ts';
import type { Machine } from './machine/types.ts';

export const SOURCE_DIRS = ['bpf', 'client', 'provision'] as const;

/** sha256 over bpf/, client/, provision/ (paths + contents, build/ output excluded). */
export async function sourcesHash(repoRoot: string): Promise<string> {
  const h = createHash('sha256');
  const files: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name === 'build' || e.name.startsWith('.')) continue;
        await walk(p);
      } else if (e.isFile()) files.push(p);
    }
  };
  for (const d of SOURCE_DIRS) await walk(join(repoRoot, d));
  files.sort();
  for (const f of files) {
    h.update(relative(repoRoot, f)).update('\0');
    h.update(await readFile(f)).update('\0');
  }
  return h.digest('hex');
}

/** Copy the project's guest-side sources to the machine, without build output. */
export async function uploadSources(m: Machine, repoRoot: string, timeoutMs: number): Promise<void> {
  if (m.workdir === repoRoot) return; // local: build in place
  const stage = await mkdtemp(join(tmpdir(), 'usm-lab-src-'));
  try {
    for (const d of SOURCE_DIRS) {
      await cp(join(repoRoot, d), join(stage, d), {
        recursive: true,
        filter: (src) => !src.split(sep).includes('build'),
      });
    }
    const mk = await m.exec(['mkdir', '-p', m.workdir], { timeoutMs: 30_000 });
    if (mk.code !== 0) throw new LabError('build-failed', `failed to create ${m.workdir}: ${mk.stderr.trim()}`);
    for (const d of SOURCE_DIRS) {
      await m.exec(['rm', '-rf', `${m.workdir}/${d}`], { timeoutMs: 30_000 });
      await m.put(join(stage, d), `${m.workdir}/${d}`, { timeoutMs });
    }
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
