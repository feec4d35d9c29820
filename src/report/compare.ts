// `report.mjs compare PREV CUR`: loads two runs (folders or merged summaries), writes trend.json
// and trend.md, exits 1 on a regression; `--history DIR` keeps the last K runs' summaries there,
// and summary.html is written again with a sparkline per cell.
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cellDir, type CellSummary } from '../analysis/cell.ts';
import { ConfigError } from '../errors.ts';
import type { Manifest } from './manifest.ts';
import { readRun } from './merge.ts';
import { loadArtifactsFor, writeHtmlAndJunit } from './outputs.ts';
import { compareRuns, renderTrendMd, type History, type RunSummary, type TrendCell } from './trend.ts';
import { cellKey, rowOf, sortCells } from './view.ts';

export async function loadSummary(path: string): Promise<RunSummary> {
  if (!existsSync(path)) throw new ConfigError(`${path}: no such report folder or summary file`);
  if (statSync(path).isDirectory()) {
    const manifest = JSON.parse(await readFile(join(path, 'manifest.json'), 'utf8').catch(() => '{}')) as Partial<Manifest>;
    const full = await loadFullRun(path).catch(() => null);
    const listed = await readCells(join(path, 'summary.json')).catch(() => null);
    // A merged folder without its shards has only its summary.json: take that, not a partial run.
    if (full && full.cells.length && (!listed || full.cells.length >= listed.length))
      return {
        runId: full.manifest.runId,
        startedAt: full.manifest.startedAt,
        cells: full.cells,
        dir: path,
        manifest: full.manifest,
        full: full.cells,
        dirOf: full.dirOf,
      };
    const cells = listed ?? (await readCells(join(path, 'summary.json')));
    return { runId: manifest.runId ?? basename(path), startedAt: manifest.startedAt ?? '', cells };
  }
  const manifestPath = join(dirname(path), 'manifest.json');
  const manifest = existsSync(manifestPath) ? (JSON.parse(await readFile(manifestPath, 'utf8')) as Partial<Manifest>) : {};
  return { runId: manifest.runId ?? basename(path), startedAt: manifest.startedAt ?? '', cells: await readCells(path) };
}

async function readCells(file: string): Promise<TrendCell[]> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${file}: not a summary (${(err as Error).message})`);
  }
  if (!Array.isArray(data)) throw new ConfigError(`${file}: not a summary (expected the array of summary.json)`);
  return data as TrendCell[];
}

/**
 * A run folder with its cells and where each cell's files are: the folder's own cells, or, for a
 * merged run (sources.json), the cells of the shard folders it was merged from.
 */
export async function loadFullRun(dir: string): Promise<{ manifest: Manifest; cells: CellSummary[]; dirOf: (c: CellSummary) => string }> {
  const own = await readRun(dir);
  const sources = await readFile(join(dir, 'sources.json'), 'utf8')
    .then((t) => JSON.parse(t) as string[])
    .catch(() => null);
  if (!sources) return { ...own, dirOf: (c) => join(dir, rowOf(c), cellFolder(c)) };
  const where = new Map<string, string>();
  const cells: CellSummary[] = [];
  for (const s of sources) {
    const src = resolve(dir, s);
    const r = await readRun(src);
    for (const c of r.cells) {
      where.set(cellKey(c), join(src, rowOf(c), cellFolder(c)));
      cells.push(c);
    }
  }
  return { manifest: own.manifest, cells: sortCells(cells), dirOf: (c) => where.get(cellKey(c)) ?? join(dir, rowOf(c), cellFolder(c)) };
}

const cellFolder = (c: Pick<CellSummary, 'scenario' | 'mode' | 'variant' | 'reads' | 'server'>) => cellDir(c);

/** Add a run to the history folder and keep the newest `keep` runs (by start time, then id). */
export async function saveHistory(dir: string, run: Pick<RunSummary, 'runId' | 'startedAt' | 'cells'>, keep: number): Promise<History> {
  await mkdir(dir, { recursive: true });
  const cells: History['runs'][number]['cells'] = {};
  for (const c of run.cells) cells[cellKey(c)] = { status: c.status, misattribution: c.misattribution, pass: c.verdict.pass };
  const safe = `${run.startedAt}-${run.runId}`.replace(/[^A-Za-z0-9_.+-]+/g, '_');
  await writeFile(join(dir, `${safe}.json`), JSON.stringify({ runId: run.runId, startedAt: run.startedAt, cells }, null, 2) + '\n');
  const history = await readHistory(dir);
  const drop = history.runs.length - keep;
  if (drop > 0) {
    const files = await historyFiles(dir);
    for (const f of files.slice(0, drop)) await rm(join(dir, f.file));
    history.runs.splice(0, drop);
  }
  return history;
}

async function historyFiles(dir: string): Promise<{ file: string; run: History['runs'][number] }[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
  const out: { file: string; run: History['runs'][number] }[] = [];
  for (const n of names) {
    const r = await readFile(join(dir, n), 'utf8')
      .then((t) => JSON.parse(t) as History['runs'][number])
      .catch(() => null);
    if (r && typeof r.runId === 'string' && r.cells) out.push({ file: n, run: r });
  }
  return out.sort((a, b) => (a.run.startedAt < b.run.startedAt ? -1 : a.run.startedAt > b.run.startedAt ? 1 : a.run.runId < b.run.runId ? -1 : 1));
}

export async function readHistory(dir: string): Promise<History> {
  return { runs: (await historyFiles(dir)).map((f) => f.run) };
}

export const COMPARE_HELP = `Usage: npx zx scripts/report.mjs compare PREV CUR [--history DIR] [--keep K] [--out DIR] [--allow-no-previous]
  PREV, CUR: report folders (a run, a shard, a merged run) or summary.json files.
  Writes trend.json and trend.md (to --out, default CUR's folder), prints trend.md; with --history,
  adds CUR to DIR, keeps the newest K runs (default 14) and redraws CUR's summary.html with a
  sparkline per cell. Exit 1 when a cell regressed (as expected -> not; ok -> failed), else 0;
  2 on bad arguments. --allow-no-previous: a missing PREV is the first night (every cell new).
`;

export interface CompareEnv {
  argv: string[];
  cwd: string;
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

/** `report.mjs compare`: returns the exit code. */
export async function compareMain(env: CompareEnv): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: env.argv,
      allowPositionals: true,
      strict: true,
      options: {
        history: { type: 'string' },
        keep: { type: 'string', default: '14' },
        out: { type: 'string' },
        'allow-no-previous': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    env.stderr.write(`error: ${(err as Error).message}\n${COMPARE_HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    env.stdout.write(COMPARE_HELP);
    return 0;
  }
  const keep = Number(values.keep);
  if (positionals.length !== 2 || !Number.isInteger(keep) || keep < 1) {
    env.stderr.write(
      `error: expected: compare PREV CUR (got ${positionals.length} path(s))${Number.isInteger(keep) && keep >= 1 ? '' : `; --keep must be a whole number >= 1, got '${values.keep}'`}\n${COMPARE_HELP}`,
    );
    return 2;
  }
  try {
    const [prevPath, curPath] = positionals.map((p) => resolve(env.cwd, p)) as [string, string];
    const cur = await loadSummary(curPath);
    const prev = !existsSync(prevPath) && values['allow-no-previous'] ? { runId: '(none)', startedAt: '', cells: [] } : await loadSummary(prevPath);
    const trend = compareRuns(prev, cur);
    const out = values.out ? resolve(env.cwd, values.out) : (cur.dir ?? dirname(curPath));
    await mkdir(out, { recursive: true });
    await writeFile(join(out, 'trend.json'), JSON.stringify(trend, null, 2) + '\n');
    const md = renderTrendMd(trend);
    await writeFile(join(out, 'trend.md'), md);
    const history = values.history ? await saveHistory(resolve(env.cwd, values.history), cur, keep) : null;
    if (cur.dir && cur.manifest && cur.full) {
      const artifacts = await loadArtifactsFor(cur.dir, cur.manifest, cur.full, cur.dirOf);
      await writeHtmlAndJunit(cur.dir, cur.manifest, cur.full, artifacts, { trend, history, ...(cur.dirOf ? { dirOf: cur.dirOf } : {}) });
    }
    env.stdout.write(`${md}\nwrote ${join(out, 'trend.md')}\n`);
    return trend.regressions > 0 ? 1 : 0;
  } catch (err) {
    env.stderr.write(`error: ${(err as Error).message}\n`);
    return 2;
  }
}
