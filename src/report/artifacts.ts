// What a cell left on disk, for the reports that link to it or quote it: the trials of its
// report.json, its logs and http_monitoring.json per trial, the target's logs, and the tail of
// the log that says why it failed. Missing files are normal (a target that never booted has no
// cell folders): they are left out, never an error.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cellDir, type CellSummary, type TrialResult } from '../analysis/cell.ts';
import type { CellReport } from './cell.ts';
import { cellKey, rowOf } from './view.ts';

export interface ArtifactFile {
  /** trial number, or null for the target's own files (build.log, console.log). */
  trial: number | null;
  name: string;
  path: string;
}

export interface HttpRow {
  trial: number;
  path: string;
  clientPort: number;
  serverPort: number;
  statuses: string;
  count: number;
}

export interface CellArtifacts {
  /** the cell's folder (it may not exist) */
  dir: string;
  trials: TrialResult[];
  files: ArtifactFile[];
  /** the last lines of the log that says why the cell failed; '' for a cell that ran */
  logTail: string;
  /** rows of http_monitoring.json, the first `rowLimit` over the trials */
  rows: HttpRow[];
  rowsTotal: number;
}

const TAIL_LINES = 30;
const TAIL_CHARS = 4000;

export function tail(text: string, lines = TAIL_LINES): string {
  const all = text.replace(/\s+$/, '').split('\n');
  const out = all.slice(-lines).join('\n');
  return out.length > TAIL_CHARS ? out.slice(-TAIL_CHARS) : out;
}

/** The logs to quote for a failure kind, most telling first: trial files, then the target's. */
export function logCandidates(status: string): { trial: string[]; target: string[] } {
  switch (status) {
    case 'tracer-failed':
    case 'no-traffic':
      return { trial: ['tracer.log', 'tracer.out'], target: [] };
    case 'client-failed':
      return { trial: ['client.log', 'client.out'], target: [] };
    case 'server-failed':
      return { trial: ['servers.log', 'servers.out'], target: [] };
    case 'build-failed':
      return { trial: [], target: ['build-failed.txt', 'build.log'] };
    case 'boot-failed':
    case 'boot-timeout':
      return { trial: [], target: [`${status}.txt`, 'console.log'] };
    case 'vm-died':
      return { trial: ['vm-died.txt'], target: ['vm-died.txt', 'console.log'] };
    default:
      return { trial: ['tracer.log', 'client.log'], target: [`${status}.txt`, 'console.log'] };
  }
}

async function ls(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

const LINKED = (name: string) => name.endsWith('.log') || name === 'http_monitoring.json' || name === 'events.jsonl' || name.endsWith('.txt');

async function firstExisting(dir: string, patterns: readonly string[]): Promise<string | null> {
  const names = await ls(dir);
  for (const p of patterns) {
    const re = new RegExp(`^${p.replace(/[.]/g, '\\.').replace(/\*/g, '[^/]*')}$`);
    for (const n of names) {
      if (!re.test(n)) continue;
      const text = await readFile(join(dir, n), 'utf8').catch(() => '');
      if (text.trim()) return text;
    }
  }
  return null;
}

export async function loadCellArtifacts(cell: CellSummary, dir: string, opts: { rowLimit?: number; targetDetail?: string } = {}): Promise<CellArtifacts> {
  const rowLimit = opts.rowLimit ?? 100;
  const targetDir = join(dir, '..');
  const report = await readFile(join(dir, 'report.json'), 'utf8')
    .then((t) => JSON.parse(t) as CellReport)
    .catch(() => null);
  const trials = report?.trials ?? [];
  const files: ArtifactFile[] = [];
  for (const n of await ls(targetDir)) if (LINKED(n)) files.push({ trial: null, name: n, path: join(targetDir, n) });
  const trialDirs = (await ls(dir)).filter((n) => /^trial-\d+$/.test(n)).sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)));
  const rows: HttpRow[] = [];
  let rowsTotal = 0;
  for (const td of trialDirs) {
    const k = Number(td.slice(6));
    for (const n of await ls(join(dir, td))) if (LINKED(n)) files.push({ trial: k, name: n, path: join(dir, td, n) });
    const hm = await readFile(join(dir, td, 'http_monitoring.json'), 'utf8')
      .then((t) => JSON.parse(t) as unknown[])
      .catch(() => []);
    if (!Array.isArray(hm)) continue;
    rowsTotal += hm.length;
    for (const r of hm as Record<string, any>[]) {
      if (rows.length >= rowLimit) break;
      const by = (r.ByStatus ?? {}) as Record<string, { Count?: number }>;
      rows.push({
        trial: k,
        path: String(r.Path ?? ''),
        clientPort: Number(r.Client?.Port ?? 0),
        serverPort: Number(r.Server?.Port ?? 0),
        statuses: Object.keys(by).join(','),
        count: Object.values(by).reduce((s, v) => s + (v?.Count ?? 0), 0),
      });
    }
  }
  let logTail = '';
  if (cell.status !== 'ok') {
    const cand = logCandidates(cell.status);
    const failed = trials.find((t) => t.status !== 'ok')?.trial ?? 1;
    const text =
      (await firstExisting(join(dir, `trial-${failed}`), cand.trial)) ?? (await firstExisting(targetDir, cand.target)) ?? opts.targetDetail ?? cell.error ?? '';
    logTail = tail(text);
  }
  return { dir, trials, files, logTail, rows, rowsTotal };
}

/** Every cell's artifacts, by cellKey; `dirOf` says where a cell's folder is (merged runs). */
export async function loadAllArtifacts(
  cells: readonly CellSummary[],
  dirOf: (c: CellSummary) => string,
  targetDetail: (target: string) => string | undefined = () => undefined,
): Promise<Map<string, CellArtifacts>> {
  const out = new Map<string, CellArtifacts>();
  for (const c of cells) {
    const detail = targetDetail(rowOf(c));
    out.set(cellKey(c), await loadCellArtifacts(c, dirOf(c), detail ? { targetDetail: detail } : {}));
  }
  return out;
}

export function defaultCellDir(runDir: string): (c: CellSummary) => string {
  return (c) => join(runDir, rowOf(c), cellDir(c));
}
