// A real run's report folder (test/fixtures/run-local, see its README) copied to a temporary
// folder, so tests can write summaries into it and edit cells without touching the fixture.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CellReport } from '../../src/report/cell.ts';

export const FIXTURE = new URL('../fixtures/run-local/', import.meta.url).pathname;

export function copyFixture(prefix = 'report-fixture-'): string {
  const dir = join(mkdtempSync(join(tmpdir(), prefix)), 'run');
  cpSync(FIXTURE, dir, { recursive: true });
  return dir;
}

/** Edit one cell's report.json in a copy (target/cellDir, e.g. 'local/preexisting-sequential-upstream'). */
export function editCell(runDir: string, cell: string, f: (r: CellReport) => void): void {
  const p = join(runDir, cell, 'report.json');
  const r = JSON.parse(readFileSync(p, 'utf8')) as CellReport;
  f(r);
  writeFileSync(p, JSON.stringify(r, null, 2) + '\n');
}
