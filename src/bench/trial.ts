// `npm run bench:trial`: where every second of a trial goes. Runs one cell with N trials on each
// target named (default: this host and one qemu target) through the real orchestrator, reads the
// per-phase wall times every trial records (report.json trials[].phases), and prints per phase the
// median and max, the trial's total and its overhead (trial - traffic). With --matrix it also
// times the default matrix (matrix.yaml, warm cache) in the same run. Table on stdout, JSON to --out.
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { cellDir, type TrialResult } from '../analysis/cell.ts';
import { backendLoader } from '../backends/index.ts';
import { loadMatrix } from '../config/matrix.ts';
import { int, one, parseMatrixFlags } from '../cli/flags.ts';
import { matrixFile, resolveRun } from '../cli/run.ts';
import { MODES, PHASES, READS, SCENARIOS, VARIANTS, type Phase, type PhaseName } from '../domain.ts';
import { runMatrix } from '../matrix.ts';
import { createReporter } from '../progress/reporter.ts';
import type { CellReport } from '../report/cell.ts';
import { formatLoad, measured, type Load } from './load.ts';
import { median } from './stats.ts';

export const TRIAL_HELP = `Usage: npm run bench:trial -- [flags]
  --targets T,...   targets of matrix.yaml (default local,bookworm: this host and one qemu guest)
  --trials N        trials of the one cell per target; medians over them (default 5)
  --iterations N    requests per connection (default 200)
  --variant V       ${VARIANTS.join(' | ')} (default upstream)
  --mode M          ${MODES.join(' | ')} (default interleaved)
  --scenario S      ${SCENARIOS.join(' | ')} (default preexisting)
  --reads R         ${READS.join(' | ')} (default full)
  --matrix          also run the default matrix (matrix.yaml's default targets and cells) and time it
  --config FILE     matrix file (default matrix.yaml)
  --cache DIR       image cache (default $USM_LAB_CACHE or ~/.cache/usm-race-lab)
  --out FILE        JSON output (default reports/bench-trial.json)
  -h, --help
`;

/** The rows of the table: every phase, then the trial (sum of the phases) and its overhead (trial - traffic). */
export type Row = PhaseName | 'trial' | 'overhead';
export interface RowStats {
  row: Row;
  n: number;
  medianMs: number;
  maxMs: number;
}

/** Per phase over the trials that recorded it; a phase a failed trial never reached is not counted as 0. */
export function phaseStats(trials: readonly (readonly Phase[])[]): RowStats[] {
  const byRow = new Map<Row, number[]>();
  const add = (row: Row, ms: number) => byRow.set(row, [...(byRow.get(row) ?? []), ms]);
  for (const phases of trials) {
    const sums = new Map<PhaseName, number>();
    for (const p of phases) sums.set(p.name, (sums.get(p.name) ?? 0) + p.ms);
    for (const [name, ms] of sums) add(name, ms);
    const total = [...sums.values()].reduce((a, b) => a + b, 0);
    add('trial', total);
    if (sums.has('traffic')) add('overhead', total - sums.get('traffic')!);
  }
  const order: Row[] = [...PHASES, 'trial', 'overhead'];
  return order
    .filter((r) => byRow.has(r))
    .map((row) => ({ row, n: byRow.get(row)!.length, medianMs: median(byRow.get(row)!), maxMs: Math.max(...byRow.get(row)!) }));
}

export interface TargetBench {
  target: string;
  cell: string;
  trials: number;
  ok: number;
  statuses: string[];
  /** The whole run of this target: boot, build, the trials, stop. */
  wallMs: number;
  rows: RowStats[];
  /** How busy the machine was meanwhile (src/bench/load.ts). */
  load?: Load;
}

/** The default matrix's run in the same benchmark. */
export interface MatrixBench {
  wallMs: number;
  cells: number;
  ok: number;
  exitCode: number;
  load?: Load;
}

export function formatTrialBench(targets: readonly TargetBench[], matrix: MatrixBench | null): string {
  const s = (ms: number) => (ms / 1000).toFixed(2);
  let out = '';
  for (const t of targets) {
    out += `\n${t.target}: ${t.cell}, ${t.ok}/${t.trials} trials ok (${t.statuses.join(', ')}), whole target run ${s(t.wallMs)} s\n`;
    if (t.load) out += `${formatLoad(t.load)}\n`;
    out += '\n';
    out += '| phase | median s | max s | trials |\n|---|---|---|---|\n';
    for (const r of t.rows) out += `| ${r.row} | ${s(r.medianMs)} | ${s(r.maxMs)} | ${r.n} |\n`;
  }
  if (targets.length > 1) {
    out += '\nSide by side (median s):\n\n| phase | ' + targets.map((t) => t.target).join(' | ') + ' |\n|---|' + targets.map(() => '---|').join('') + '\n';
    const rows: Row[] = [...PHASES, 'trial', 'overhead'];
    for (const row of rows) {
      const cols = targets.map((t) => t.rows.find((r) => r.row === row));
      if (cols.every((c) => !c)) continue;
      out += `| ${row} | ${cols.map((c) => (c ? s(c.medianMs) : '-')).join(' | ')} |\n`;
    }
  }
  if (matrix)
    out += `\nDefault matrix: ${matrix.ok}/${matrix.cells} cells ok, exit ${matrix.exitCode}, wall ${s(matrix.wallMs)} s (${(matrix.wallMs / 60_000).toFixed(1)} min)\n${
      matrix.load ? `${formatLoad(matrix.load)}\n` : ''
    }`;
  return out;
}

export async function benchTrial(argv: string[], repoRoot: string, signal: AbortSignal, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let v;
  try {
    ({ values: v } = parseArgs({
      args: argv,
      options: {
        targets: { type: 'string', default: 'local,bookworm' },
        trials: { type: 'string' },
        iterations: { type: 'string' },
        variant: { type: 'string' },
        mode: { type: 'string' },
        scenario: { type: 'string' },
        reads: { type: 'string' },
        matrix: { type: 'boolean', default: false },
        config: { type: 'string' },
        cache: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n${TRIAL_HELP}`);
    return 2;
  }
  if (v.help) {
    process.stdout.write(TRIAL_HELP);
    return 0;
  }
  let trials: number, iterations: number, variant: string, mode: string, scenario: string, reads: string, cfg;
  const names = v.targets.split(',').map((x) => x.trim());
  try {
    trials = int('trials', v.trials, 1, 1000) ?? 5;
    iterations = int('iterations', v.iterations, 1, 100_000) ?? 200;
    variant = one('variant', v.variant, VARIANTS) ?? 'upstream';
    mode = one('mode', v.mode, MODES) ?? 'interleaved';
    scenario = one('scenario', v.scenario, SCENARIOS) ?? 'preexisting';
    reads = one('reads', v.reads, READS) ?? 'full';
    cfg = await loadMatrix(matrixFile(v, { cwd: process.cwd(), repoRoot }));
    for (const n of names) if (!cfg.targets.some((t) => t.name === n)) throw new Error(`--targets: unknown target '${n}'`);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n${TRIAL_HELP}`);
    return 2;
  }
  const out = v.out ?? join(repoRoot, 'reports', 'bench-trial.json');
  const scratch = await mkdtemp(join(tmpdir(), 'bench-trial-'));
  const reporter = createReporter(process.stderr);
  const common = { cwd: process.cwd(), home: env.HOME ?? '/root', ...(env.USM_LAB_CACHE ? { cacheEnv: env.USM_LAB_CACHE } : {}) };
  const cache = v.cache ? ['--cache', v.cache] : [];
  const results: TargetBench[] = [];
  let matrix: (MatrixBench & { outDir: string }) | null = null;
  try {
    for (const name of names) {
      if (signal.aborted) break;
      const flags = parseMatrixFlags([
        ...['--targets', name, '--variants', variant, '--modes', mode, '--scenarios', scenario, '--reads', reads],
        ...['--trials', String(trials), '--iterations', String(iterations), '--out', join(scratch, name), ...cache],
      ]);
      const run = resolveRun(cfg, flags, common);
      const {
        result: res,
        wallMs,
        load,
      } = await measured(() => runMatrix(run, { repoRoot, backends: backendLoader(repoRoot), emit: reporter.emit, signal, argv: ['bench:trial'] }));
      const cell = res.cells[0]!;
      const dir = join(res.outDir, res.manifest.targets[0]?.name ?? name, cellDir(cell));
      let trialResults: TrialResult[] = [];
      try {
        trialResults = (JSON.parse(await readFile(join(dir, 'report.json'), 'utf8')) as CellReport).trials;
      } catch {
        // the target failed before its cell ran: no report, no phases; its status says why
      }
      results.push({
        target: name,
        cell: cellDir(cell),
        trials,
        ok: trialResults.filter((t) => t.status === 'ok').length,
        statuses: trialResults.length ? [...new Set(trialResults.map((t) => t.status))] : [cell.status],
        wallMs,
        rows: phaseStats(trialResults.map((t) => t.phases ?? [])),
        load,
      });
    }
    if (v.matrix && !signal.aborted) {
      const run = resolveRun(cfg, parseMatrixFlags(['--out', join(scratch, 'matrix'), ...cache]), common);
      const {
        result: res,
        wallMs,
        load,
      } = await measured(() => runMatrix(run, { repoRoot, backends: backendLoader(repoRoot), emit: reporter.emit, signal, argv: ['bench:trial', '--matrix'] }));
      matrix = {
        wallMs,
        load,
        cells: res.cells.length,
        ok: res.cells.filter((c) => c.status === 'ok').length,
        exitCode: res.exitCode,
        outDir: res.outDir,
      };
    }
  } finally {
    reporter.stop();
  }
  process.stdout.write(formatTrialBench(results, matrix));
  await mkdir(dirname(out), { recursive: true });
  await writeFile(
    out,
    JSON.stringify({ date: new Date().toISOString(), iterations, trials, variant, mode, scenario, reads, targets: results, matrix }, null, 2) + '\n',
  );
  process.stdout.write(`\nwrote ${out}${matrix ? `; the matrix's report: ${matrix.outDir}` : ''}\n`);
  // The per-target runs are scratch; the matrix's report is kept for a before/after compare (report.mjs compare).
  for (const name of names) await rm(join(scratch, name), { recursive: true, force: true });
  if (signal.aborted) return 130;
  return results.every((r) => r.ok === r.trials) && (!matrix || matrix.exitCode <= 1) ? 0 : 3;
}
