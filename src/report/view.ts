// What every cross-matrix report (summary.md's matrix, summary.html, junit.xml, trend) needs of a
// cell: its key, the report order, its interval and its mark. The analysis stage is adding fields
// to CellSummary (misattributionCI, trialSpread, cpus, reads); they are optional here so these
// reports read summaries written before and after that change.
import { pct, type CellSummary } from '../analysis/cell.ts';

export interface Interval {
  lo: number;
  hi: number;
  method: string;
}

/** CellSummary with the analysis stage's newer fields, each optional. */
export type CellView = CellSummary & {
  misattributionCI?: Interval | null;
  trialSpread?: { mean: number; lo: number; hi: number; n: number } | null;
  cpus?: number;
  reads?: 'full' | 'single';
};

/** The four names that say which cell (as strings: a summary read back from disk has strings). */
export interface CellName {
  target: string;
  scenario: string;
  mode: string;
  variant: string;
}

/** target/scenario/mode/variant: one cell across runs. */
export function cellKey(c: CellName): string {
  return `${c.target}/${c.scenario}/${c.mode}/${c.variant}`;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The report order (target, scenario, mode, variant), not the seeded run order. */
export function sortCells<T extends CellName>(cells: readonly T[]): T[] {
  return [...cells].sort((a, b) => cmp(a.target, b.target) || cmp(a.scenario, b.scenario) || cmp(a.mode, b.mode) || cmp(a.variant, b.variant));
}

/**
 * The misattribution interval: the analysis stage's misattributionCI when the cell has one; else
 * a Wilson 95 % interval on wrong/captured rows, so summaries written before the CI landed still
 * get one (rows of a swapped pair are not independent: read it as a floor on the uncertainty).
 */
export function intervalOf(c: Pick<CellView, 'wrong' | 'captured'> & { misattributionCI?: Interval | null }): Interval | null {
  if (c.misattributionCI) return c.misattributionCI;
  if (!c.captured) return null;
  return { ...wilson(c.wrong, c.captured), method: 'wilson-rows' };
}

export function wilson(k: number, n: number, z = 1.959964): { lo: number; hi: number } {
  const p = k / n;
  const d = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / d;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return { lo: Math.max(0, centre - half), hi: Math.min(1, centre + half) };
}

/** ✓ as expected, ✗ not as expected, · measured only; a failed cell is marked by its status. */
export function verdictMark(c: Pick<CellSummary, 'status' | 'verdict'>): string {
  if (c.status !== 'ok') return '⚠';
  return c.verdict.pass === null ? '·' : c.verdict.pass ? '✓' : '✗';
}

/** "50.0 % [43.6-56.4]" */
export function rateWithInterval(c: CellView): string {
  if (c.misattribution === null) return 'n/a';
  const i = intervalOf(c);
  return i ? `${pct(c.misattribution)} [${(i.lo * 100).toFixed(1)}-${(i.hi * 100).toFixed(1)}]` : pct(c.misattribution);
}

/** The first non-empty line of a text (a log tail, an error). */
export function firstLine(s: string | undefined): string {
  return (s ?? '').split('\n').map((l) => l.trim()).find((l) => l !== '') ?? '';
}

const TELLING = /\b(fail\w*|error|denied|refused|timed? ?out|panic|cannot|unable|no such|not found|killed|oops)\b/i;

/**
 * The line of a log tail to quote in one line: the first one that says what went wrong, else the
 * tail's last line (the tail's literal first line is wherever the cut fell: rarely the cause).
 */
export function tellingLine(tail: string | undefined): string {
  const lines = (tail ?? '').split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines.find((l) => TELLING.test(l)) ?? lines.at(-1) ?? '';
}
