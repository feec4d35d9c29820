// `npm run bench`: on this host, in one run, (1) TLS round trips/s without a tracer and with
// each variant, (2) misattribution and capture of every cell of the local matrix, beside the
// investigation's 81 % and 63.9 %. Prints figures and ratios; writes JSON.
import { execFileSync } from 'node:child_process';
import { writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { pct } from '../analysis/cell.ts';
import { backendLoader } from '../backends/index.ts';
import { loadMatrix } from '../config/matrix.ts';
import { int, parseMatrixFlags } from '../cli/flags.ts';
import { resolveRun } from '../cli/run.ts';
import { runMatrix } from '../matrix.ts';
import { createReporter } from '../progress/reporter.ts';
import { INVESTIGATION } from '../report/manifest.ts';
import { renderTable } from '../report/summary.ts';
import { measureThroughput } from './throughput.ts';

export const BENCH_HELP = `Usage: npm run bench -- [--iterations N] [--repeats N] [--matrix-iterations N] [--out FILE]
  --iterations N         requests per connection per throughput run (default 2000)
  --repeats N            throughput runs per configuration; medians are reported (default 5)
  --matrix-iterations N  iterations of the local matrix part (default 200; 0 skips it)
  --out FILE             JSON output (default reports/bench-local.json)
`;

export async function benchMain(argv: string[], repoRoot: string, signal: AbortSignal): Promise<number> {
  let v;
  try {
    ({ values: v } = parseArgs({
      args: argv,
      options: {
        iterations: { type: 'string' },
        repeats: { type: 'string' },
        'matrix-iterations': { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean' },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n${BENCH_HELP}`);
    return 2;
  }
  if (v.help) {
    process.stdout.write(BENCH_HELP);
    return 0;
  }
  let iterations: number, repeats: number, matrixIterations: number;
  try {
    iterations = int('iterations', v.iterations, 1, 1_000_000) ?? 2000;
    repeats = int('repeats', v.repeats, 1, 1000) ?? 5;
    matrixIterations = int('matrix-iterations', v['matrix-iterations'], 0, 100_000) ?? 200;
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n${BENCH_HELP}`);
    return 2;
  }
  const out = v.out ?? join(repoRoot, 'reports', 'bench-local.json');

  for (const d of ['bpf', 'client']) execFileSync('make', ['-C', join(repoRoot, d)], { stdio: 'inherit', timeout: 600_000 });
  const cpu = 0;
  process.stdout.write(
    `Throughput: race_client --sequential, ${iterations} iterations x 2 connections, client and servers on CPU ${cpu}, ${repeats} runs each (round-robin)\n`,
  );
  const tp = await measureThroughput({ repoRoot, iterations, repeats, cpu, ports: [18101, 18102], log: (s) => process.stdout.write(s + '\n') });
  process.stdout.write('\n| tracer | median round trips/s | ratio to no tracer | runs |\n|---|---|---|---|\n');
  for (const r of tp)
    process.stdout.write(`| ${r.tracer} | ${r.median.toFixed(0)} | ${r.ratio.toFixed(3)} | ${r.rtPerSec.map((x) => x.toFixed(0)).join(', ')} |\n`);

  let matrix = null;
  if (matrixIterations > 0 && !signal.aborted) {
    const cfg = await loadMatrix(join(repoRoot, 'matrix.yaml'));
    const flags = parseMatrixFlags([
      '--backend',
      'local',
      '--variants',
      'upstream,no-fallback,recv-hook,scoped',
      '--modes',
      'sequential,interleaved,writes-only',
      '--scenarios',
      'preexisting,baseline',
      '--iterations',
      String(matrixIterations),
    ]);
    const run = resolveRun(cfg, flags, { cwd: repoRoot, home: process.env.HOME ?? '/root' });
    const reporter = createReporter();
    try {
      matrix = await runMatrix(run, { repoRoot, backends: backendLoader(repoRoot), emit: reporter.emit, signal, argv: ['bench'] });
    } finally {
      reporter.stop();
    }
    process.stdout.write(`\nLocal matrix (${matrixIterations} iterations per cell), report ${matrix.outDir}\n\n${renderTable(matrix.cells)}\n\n`);
    process.stdout.write('Beside the investigation (upstream, pre-existing connections):\n');
    for (const f of INVESTIGATION) {
      const ours = matrix.cells.filter(
        (c) => c.variant === 'upstream' && (f.mode === 'baseline' ? c.scenario === 'baseline' : c.scenario === 'preexisting' && c.mode === f.mode),
      );
      process.stdout.write(
        `  ${f.run}: investigation ${pct(f.misattribution)}; here ${ours.map((c) => `${c.mode}: ${pct(c.misattribution)} (${c.wrong}/${c.captured} rows, capture ${pct(c.capture)})`).join('; ') || 'not run'}\n`,
      );
    }
  }
  await mkdir(dirname(out), { recursive: true });
  await writeFile(
    out,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        throughput: { iterations, repeats, cpu, rows: tp },
        matrix: matrix ? { outDir: matrix.outDir, cells: matrix.cells } : null,
      },
      null,
      2,
    ) + '\n',
  );
  process.stdout.write(`\nwrote ${out}\n`);
  return 0;
}
