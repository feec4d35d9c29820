// The cross-matrix files besides summary.json/summary.md: summary.html and junit.xml. Written by
// every run (writeSummary) and by `report.mjs merge`; `report.mjs compare` writes the page again
// with the trend and the history.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CellSummary } from '../analysis/cell.ts';
import { defaultCellDir, loadAllArtifacts, type CellArtifacts } from './artifacts.ts';
import { renderHtml } from './html.ts';
import { renderJunit } from './junit.ts';
import type { Manifest } from './manifest.ts';
import type { History, Trend } from './trend.ts';

export interface OutputOpts {
  /** where each cell's folder is (a merged run points into its shards); default outDir/target/cell */
  dirOf?: (c: CellSummary) => string;
  trend?: Trend | null;
  history?: History | null;
}

export async function loadArtifactsFor(
  outDir: string,
  manifest: Manifest,
  cells: readonly CellSummary[],
  dirOf?: (c: CellSummary) => string,
): Promise<Map<string, CellArtifacts>> {
  // the target's error, then its detail on the next line (a detail without an error starts the tail)
  const detail = new Map(manifest.targets.map((t) => [t.name, t.detail && t.error ? `${t.error}\n${t.detail}` : t.detail || t.error]));
  return loadAllArtifacts(cells, dirOf ?? defaultCellDir(outDir), (t) => detail.get(t));
}

export function tailsOf(artifacts: ReadonlyMap<string, CellArtifacts>): Map<string, string> {
  return new Map([...artifacts].map(([k, a]) => [k, a.logTail]));
}

export async function writeHtmlAndJunit(
  outDir: string,
  manifest: Manifest,
  cells: readonly CellSummary[],
  artifacts: ReadonlyMap<string, CellArtifacts>,
  opts: OutputOpts = {},
): Promise<void> {
  await writeFile(join(outDir, 'summary.html'), renderHtml({ manifest, cells, artifacts, outDir, trend: opts.trend ?? null, history: opts.history ?? null }));
  await writeFile(join(outDir, 'junit.xml'), renderJunit(manifest, cells, artifacts));
}
