// Trend between two runs: per cell, what changed (verdict flipped, status changed, rate moved
// outside the previous interval, cell new or gone); a regression is a verdict that was as expected
// and no longer is, or an ok cell that now fails. Pure: `compare.ts` reads and writes the files.
import { pct, type CellSummary } from '../analysis/cell.ts';
import type { Manifest } from './manifest.ts';
import { cellKey, intervalOf, sortCells, type Interval } from './view.ts';

/** What trend needs of a cell; summary.json entries and report.json cells both have it. */
export interface TrendCell {
  target: string;
  scenario: string;
  mode: string;
  variant: string;
  status: string;
  verdict: { pass: boolean | null };
  misattribution: number | null;
  wrong: number;
  captured: number;
  misattributionCI?: Interval | null;
}

export interface RunSummary {
  runId: string;
  startedAt: string;
  cells: TrendCell[];
  /** the report folder with the full run (cells and their files), when there is one */
  dir?: string;
  manifest?: Manifest;
  full?: CellSummary[];
  dirOf?: (c: CellSummary) => string;
}

export type ChangeKind = 'verdict-flipped' | 'status-changed' | 'rate-moved' | 'new' | 'gone';

export interface Change {
  key: string;
  kinds: ChangeKind[];
  regression: boolean;
  before: string;
  after: string;
}

export interface Trend {
  previous: { runId: string; startedAt: string };
  current: { runId: string; startedAt: string };
  cells: number;
  regressions: number;
  changes: Change[];
}

export interface History {
  runs: { runId: string; startedAt: string; cells: Record<string, { status: string; misattribution: number | null; pass: boolean | null }> }[];
}

const describe = (c: TrendCell | undefined) => {
  if (!c) return 'absent';
  const v = c.verdict.pass === null ? 'measured' : c.verdict.pass ? 'as expected' : 'NOT as expected';
  if (c.status !== 'ok') return `${c.status}, ${v}`;
  const i = intervalOf(c);
  return `${pct(c.misattribution)}${i ? ` [${pct(i.lo)}, ${pct(i.hi)}]` : ''} (${c.wrong} of ${c.captured}), ${v}`;
};

export function compareRuns(prev: Pick<RunSummary, 'runId' | 'startedAt' | 'cells'>, cur: Pick<RunSummary, 'runId' | 'startedAt' | 'cells'>): Trend {
  const before = new Map(prev.cells.map((c) => [cellKey(c), c]));
  const after = new Map(cur.cells.map((c) => [cellKey(c), c]));
  const keys = sortCells(
    [...new Set([...before.keys(), ...after.keys()])].map((k) => {
      const [target = '', scenario = '', mode = '', variant = ''] = k.split('/');
      return { target, scenario, mode, variant };
    }),
  ).map(cellKey);
  const changes: Change[] = [];
  for (const key of keys) {
    const a = before.get(key);
    const b = after.get(key);
    const kinds: ChangeKind[] = [];
    let regression = false;
    if (!a) kinds.push('new');
    else if (!b) kinds.push('gone');
    else {
      if (a.verdict.pass !== b.verdict.pass) kinds.push('verdict-flipped');
      if (a.status !== b.status) kinds.push('status-changed');
      const i = intervalOf(a);
      if (a.status === 'ok' && b.status === 'ok' && i && b.misattribution !== null && (b.misattribution < i.lo || b.misattribution > i.hi))
        kinds.push('rate-moved');
      regression = (a.verdict.pass === true && b.verdict.pass !== true) || (a.status === 'ok' && b.status !== 'ok');
    }
    if (kinds.length) changes.push({ key, kinds, regression, before: describe(a), after: describe(b) });
  }
  return {
    previous: { runId: prev.runId, startedAt: prev.startedAt },
    current: { runId: cur.runId, startedAt: cur.startedAt },
    cells: after.size,
    regressions: changes.filter((c) => c.regression).length,
    changes,
  };
}

export function renderTrendMd(t: Trend): string {
  const out = [`# Trend: ${t.current.runId} against ${t.previous.runId}`, ''];
  out.push(`${t.regressions} regression(s), ${t.changes.length} change(s) over ${t.cells} cell(s).`, '');
  if (t.changes.length) {
    out.push('| cell | change | before | after |', '|---|---|---|---|');
    for (const c of t.changes)
      out.push(`| ${c.key.replace(/\|/g, '\\|')} | ${c.regression ? '**regression**: ' : ''}${c.kinds.join(', ')} | ${c.before} | ${c.after} |`);
    out.push('');
  }
  return out.join('\n');
}

/** A report folder (a run, a shard or a merged run) or a summary.json file. */
