// Merge report folders of several shards (or runs) into one summary: the cells come from each
// folder's <target>/<cell>/report.json, the targets from each manifest.json.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { cellDir, summarizeCell, type CellSummary, type Status } from '../analysis/cell.ts';
import type { CellId } from '../domain.ts';
import { ConfigError } from '../errors.ts';
import type { CellReport } from './cell.ts';
import type { Manifest } from './manifest.ts';
import { writeSummary } from './summary.ts';
import { rowOf } from './view.ts';

const STATUSES: readonly string[] = [
  'boot-failed',
  'boot-timeout',
  'build-failed',
  'tracer-failed',
  'client-failed',
  'server-failed',
  'timeout',
  'no-traffic',
  'vm-died',
  'interrupted',
  'output-failed',
  'internal',
];

export async function readRun(dir: string): Promise<{ manifest: Manifest; cells: CellSummary[] }> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  } catch (err) {
    throw new ConfigError(`${dir} is not a report folder (manifest.json: ${(err as Error).message})`);
  }
  const cells: CellSummary[] = [];
  for (const t of manifest.targets) {
    const tdir = join(dir, t.name);
    const entries = await readdir(tdir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const r = await readFile(join(tdir, e.name, 'report.json'), 'utf8').catch(() => null);
      if (r) cells.push((JSON.parse(r) as CellReport).cell);
    }
    // A target that never got to its cells (boot, build) wrote no report.json: its cells are
    // failed cells, as the run that wrote this folder counted them, not missing ones.
    if (t.status !== 'ok' && !cells.some((c) => rowOf(c) === t.name)) {
      const status = (STATUSES.includes(t.status) ? t.status : 'internal') as Status;
      for (const server of manifest.servers ?? ['python'])
        for (const reads of manifest.reads ?? ['full'])
          for (const scenario of manifest.scenarios)
            for (const mode of manifest.modes)
              for (const variant of manifest.variants) {
                const id = {
                  target: t.target ?? t.name,
                  boot: t.name,
                  cpus: t.cpus ?? (Number(t.facts.cpus) || 1),
                  server,
                  reads,
                  scenario,
                  mode,
                  variant,
                } as CellId;
                cells.push(summarizeCell(id, t.facts, [{ trial: 1, status, ...(t.error ? { error: t.error } : {}) }]));
              }
    }
  }
  return { manifest, cells };
}

export async function mergeRuns(dirs: readonly string[], outDir: string): Promise<{ manifest: Manifest; cells: CellSummary[] }> {
  if (dirs.length === 0) throw new ConfigError('merge: name at least one report folder');
  const runs = await Promise.all(dirs.map(readRun));
  const seen = new Set<string>();
  for (const r of runs) {
    for (const t of r.manifest.targets) {
      if (seen.has(t.name)) throw new ConfigError(`merge: target '${t.name}' appears in more than one folder`);
      seen.add(t.name);
    }
  }
  const first = runs[0]!.manifest;
  const manifest: Manifest = {
    ...first,
    runId: `merged-${runs.map((r) => r.manifest.runId).join('+')}`,
    startedAt: runs.map((r) => r.manifest.startedAt).sort()[0]!,
    finishedAt: runs
      .map((r) => r.manifest.finishedAt ?? '')
      .sort()
      .at(-1),
    targets: runs.flatMap((r) => r.manifest.targets),
  };
  const key = (c: CellSummary) =>
    `${c.target}/${String(c.cpus ?? 1).padStart(3, '0')}/${c.server ?? 'python'}/${c.reads ?? 'full'}/${c.scenario}/${c.mode}/${c.variant}`;
  const cells = runs.flatMap((r) => r.cells).sort((a, b) => key(a).localeCompare(key(b)));
  // Where each cell's files are (links in summary.html), and the shard folders for `compare`.
  const where = new Map<string, string>();
  runs.forEach((r, i) => r.cells.forEach((c) => where.set(`${rowOf(c)}/${cellDir(c)}`, join(dirs[i]!, rowOf(c), cellDir(c)))));
  await writeSummary(outDir, manifest, cells, { dirOf: (c) => where.get(`${rowOf(c)}/${cellDir(c)}`) ?? join(outDir, rowOf(c), cellDir(c)) });
  await writeFile(
    join(outDir, 'sources.json'),
    JSON.stringify(
      dirs.map((d) => relative(outDir, d) || '.'),
      null,
      2,
    ) + '\n',
  );
  return { manifest, cells };
}
