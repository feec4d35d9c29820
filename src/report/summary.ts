// Across the matrix: summary.json, summary.md, manifest.json, and the terminal table.
import { writeFile, mkdir, rename, rm, symlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pct, ruleOf, type CellSummary } from '../analysis/cell.ts';
import { verdictWord } from './cell.ts';
import { renderFeb5Md } from './feb5.ts';
import { renderDetailMd, renderFailuresMd, renderMatrixMd } from './matrix-md.ts';
import { rateWithInterval, rowOf, rowsPerRequest } from './view.ts';
import { loadArtifactsFor, tailsOf, writeHtmlAndJunit, type OutputOpts } from './outputs.ts';
import { INVESTIGATION, type Manifest, type TargetRecord } from './manifest.ts';

export function summaryEntries(cells: readonly CellSummary[]) {
  return cells.map((c) => ({
    target: c.target,
    cpus: c.cpus,
    ...(c.boot ? { boot: c.boot } : {}),
    server: c.server ?? 'python',
    reads: c.reads,
    kernel: c.kernel,
    openssl: c.openssl,
    variant: c.variant,
    mode: c.mode,
    scenario: c.scenario,
    trials: c.trials,
    expected: c.expected,
    captured: c.captured,
    correct: c.correct,
    wrong: c.wrong,
    lost: c.lost,
    backendRows: c.backendRows ?? 0,
    droppedNoTuple: c.droppedNoTuple ?? null,
    misattribution: c.misattribution,
    misattributionCI: c.misattributionCI,
    trialSpread: c.trialSpread,
    rowsPerRequest: rowsPerRequest(c),
    capture: c.capture,
    symmetry: c.symmetry,
    hook: c.hook,
    truth: c.truth,
    byConn: c.byConn,
    http: c.http,
    status: c.status,
    ...(c.error ? { error: c.error } : {}),
    ...(c.client ? { client: c.client } : {}),
    ...(c.external ? { external: c.external } : {}),
    verdict: c.verdict,
  }));
}

/** Failed cells first, then the matrix, then every cell in report order; `tails` are the log tails by cellKey. */
export function renderSummaryMd(manifest: Manifest, cells: readonly CellSummary[], tails: ReadonlyMap<string, string> = new Map()): string {
  const out: string[] = [`# USM TLS attribution matrix: run ${manifest.runId}`, ''];
  const perMode = Object.entries(manifest.iterationsByMode ?? {}).map(([m, n]) => `${m} ${n}`);
  out.push(
    `tool ${manifest.tool.commit}${manifest.tool.dirty ? ' (dirty)' : ''}, ${manifest.iterations} iterations${perMode.length ? ` (${perMode.join(', ')})` : ''} x ${manifest.trials} trial(s), seed ${manifest.seed}; client reads ${(manifest.reads ?? ['full']).join(', ')}; servers ${(manifest.servers ?? ['python']).join(', ')}${manifest.client ? `; client: yours, ${manifest.client.src} (sha256 ${manifest.client.sha256.slice(0, 12)})` : ''}${manifest.tracer ? `; tracer: yours, ${manifest.tracer.label} (${manifest.tracer.files.map((f) => f.name).join(', ') || 'no files'}; sha256 ${manifest.tracer.sha256.slice(0, 12)})` : ''}; servers' Nagle ${manifest.nagle ?? 'off'}; ${((manifest.settleMs ?? 0) / 1000).toFixed(1)} s at most for the servers to close the run's connections before the tracer's run closes.`,
    '',
  );
  if (manifest.resumedFrom) {
    const reused = manifest.targets.reduce((n, t) => n + (t.reused ?? 0), 0);
    out.push(
      `Resumed run ${manifest.resumedFrom.runId}: ${reused} of ${cells.length} cell(s) reused (inputs unchanged, report complete), the others ran again.`,
      '',
    );
  }
  out.push(...renderFailuresMd(cells, tails), ...renderMatrixMd(manifest, cells), ...renderDetailMd(cells));
  if (manifest.targets.length) {
    out.push(
      '',
      '## Targets',
      '',
      '| target | backend | status | kernel | OpenSSL | clang | libbpf | accel | boot s | peak MiB |',
      '|---|---|---|---|---|---|---|---|---|---|',
    );
    const f = (t: TargetRecord, k: string) => (t.facts[k] === undefined ? '-' : String(t.facts[k]));
    for (const t of manifest.targets) {
      out.push(
        `| ${t.name} | ${t.backend} | ${t.status} | ${f(t, 'kernel')} | ${f(t, 'openssl')} | ${f(t, 'clang')} | ${f(t, 'libbpf')} | ${f(t, 'accel')} | ${f(t, 'bootSeconds')} | ${f(t, 'peakRssMiB')} |`,
      );
    }
  }
  const failed = manifest.targets.filter((t) => t.status !== 'ok');
  if (failed.length) {
    out.push('', '## Targets that failed', '');
    for (const t of failed) {
      out.push(`- **${t.name}** (${t.backend}): ${t.status}${t.error ? `: ${t.error}` : ''}`);
      if (t.detail) out.push('', '```', t.detail.trimEnd(), '```', '');
    }
  }
  const feb5 = renderFeb5Md(cells);
  if (feb5) out.push('', feb5);
  out.push('', '## Beside the investigation (Vagrant VM, system-probe)', '');
  out.push('| investigation run | its misattribution | ours (same mode, upstream, preexisting) |', '|---|---|---|');
  for (const f of INVESTIGATION) {
    const ours = cells.filter(
      (c) =>
        ruleOf(c) === 'upstream' &&
        c.status === 'ok' &&
        (f.mode === 'baseline' ? c.scenario === 'baseline' : c.scenario === 'preexisting' && c.mode === f.mode),
    );
    const txt = ours.length ? ours.map((c) => `${c.target}: ${pct(c.misattribution)} (${c.wrong} of ${c.captured})`).join('; ') : 'not run';
    out.push(`| ${f.run} | ${pct(f.misattribution)} (${f.detail}) | ${txt} |`);
  }
  out.push('');
  return out.join('\n');
}

/** The terminal's final table: cell, misattribution, capture, status. */
export function renderTable(cells: readonly CellSummary[]): string {
  const rows = [['cell', 'kernel', 'misattribution', 'capture', 'status', 'verdict']];
  for (const c of cells) {
    rows.push([
      `${rowOf(c)} ${c.scenario}/${c.mode}/${c.variant}${c.reads === 'single' ? '/single' : ''}${c.server && c.server !== 'python' ? `/${c.server}` : ''}`,
      c.kernel,
      c.misattribution === null ? 'n/a' : `${rateWithInterval(c)} (${c.wrong}/${c.captured})`,
      pct(c.capture),
      c.status,
      verdictWord(c.verdict.pass),
    ]);
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r, j) => r.map((x, i) => x.padEnd(w[i]!)).join('  ') + (j === 0 ? `\n${w.map((n) => '-'.repeat(n)).join('  ')}` : '')).join('\n');
}

/** Whole or not at all: a run stopped mid-write (a forced exit, a full disk) leaves the previous file, never half of one. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, text);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export async function writeSummary(outDir: string, manifest: Manifest, cells: readonly CellSummary[], opts: OutputOpts = {}): Promise<void> {
  await mkdir(outDir, { recursive: true });
  await writeAtomic(join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  await writeAtomic(join(outDir, 'summary.json'), JSON.stringify(summaryEntries(cells), null, 2) + '\n');
  const artifacts = await loadArtifactsFor(outDir, manifest, cells, opts.dirOf);
  await writeFile(join(outDir, 'summary.md'), renderSummaryMd(manifest, cells, tailsOf(artifacts)));
  await writeHtmlAndJunit(outDir, manifest, cells, artifacts, opts);
}

/** reports/latest -> the newest run (relative link, replaced atomically enough for one user). */
export async function pointLatest(outDir: string): Promise<void> {
  const link = join(dirname(outDir), 'latest');
  await rm(link, { force: true });
  await symlink(basename(outDir), link);
}
