// What every cross-matrix report (summary.md's matrix, summary.html, junit.xml, trend) needs of a
// cell: its key, the report order, its interval and its mark. The analysis stage is adding fields
// to CellSummary (misattributionCI, trialSpread, cpus, reads); they are optional here so these
// reports read summaries written before and after that change.
import { pct, type CellSummary } from '../analysis/cell.ts';
import { wilson } from '../analysis/interval.ts';

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
  server?: CellSummary['server'];
};

/** The names that say which cell (as strings: a summary read back from disk has strings). */
export interface CellName {
  target: string;
  /** The boot (`<target>` or `<target>-<N>cpu`); absent in reports written before vCPUs were a dimension. */
  boot?: string;
  scenario: string;
  mode: string;
  variant: string;
  reads?: string;
  /** The traced TLS server; absent (python) in reports written before it was a dimension. */
  server?: string;
}

/** A report row: the boot the cell ran in (a target at one vCPU count). */
export function rowOf(c: Pick<CellName, 'target' | 'boot'>): string {
  return c.boot ?? c.target;
}

/** A report column's variant: the variant, with " single" for the investigation's single reads and the server when it is a terminator ("upstream nginx-proxy"). */
export function colOf(c: Pick<CellName, 'variant' | 'reads' | 'server'>): string {
  const server = c.server && c.server !== 'python' ? ` ${c.server}` : '';
  return `${c.variant}${c.reads === 'single' ? ' single' : ''}${server}`;
}

/**
 * The report columns a run declares, in its order: per server (python first, as given), per
 * reads, the variants; a column seen in the cells but not declared goes after these (axis()).
 */
export function declaredCols(m: { variants: readonly string[]; reads?: readonly string[]; servers?: readonly string[] }): string[] {
  return (m.servers ?? ['python']).flatMap((server) =>
    (m.reads ?? ['full']).flatMap((reads) => m.variants.map((variant) => colOf({ variant, reads, server }))),
  );
}

/** boot/scenario/mode/variant[ single][ server]: one cell across runs. */
export function cellKey(c: CellName): string {
  return `${rowOf(c)}/${c.scenario}/${c.mode}/${colOf(c)}`;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The report order (boot, scenario, mode, variant, reads), not the seeded run order. */
export function sortCells<T extends CellName>(cells: readonly T[]): T[] {
  return [...cells].sort((a, b) => cmp(rowOf(a), rowOf(b)) || cmp(a.scenario, b.scenario) || cmp(a.mode, b.mode) || cmp(colOf(a), colOf(b)));
}

/**
 * The misattribution interval: the analysis stage's misattributionCI when the cell has one; else
 * a Wilson 95 % interval on wrong/captured rows, so summaries written before the CI landed still
 * get one (rows of a swapped pair are not independent: read it as a floor on the uncertainty).
 */
export function intervalOf(c: Pick<CellView, 'wrong' | 'captured'> & { misattributionCI?: Interval | null }): Interval | null {
  if (c.misattributionCI) return c.misattributionCI;
  const w = wilson(c.wrong, c.captured);
  return w ? { lo: w.lo, hi: w.hi, method: 'wilson-rows' } : null;
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
  return (
    (s ?? '')
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '') ?? ''
  );
}

const TELLING = /\b(fail\w*|error|denied|refused|timed? ?out|panic|cannot|unable|no such|not found|killed|oops)\b/i;

/**
 * The line of a log tail to quote in one line: the first one that says what went wrong, else the
 * tail's last line (the tail's literal first line is wherever the cut fell: rarely the cause).
 */
export function tellingLine(tail: string | undefined): string {
  const lines = (tail ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return lines.find((l) => TELLING.test(l)) ?? lines.at(-1) ?? '';
}

/** Rows of http_monitoring.json per request sent (about 2 with full reads, about 1 with the investigation's single reads). */
export function rowsPerRequest(c: Pick<CellSummary, 'captured' | 'expected'>): number | null {
  return c.expected > 0 ? c.captured / c.expected : null;
}
