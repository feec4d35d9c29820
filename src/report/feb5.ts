// The Feb 5 comparison: the investigation's attribution table beside ours, per mode, in its own
// layout (conn1 right / conn1 wrong / conn2 wrong / conn2 right, rows, rate), with our interval
// and whether our rate lands within 10 percentage points of its figure.
import { pct, ruleOf } from '../analysis/cell.ts';
import type { Variant } from '../domain.ts';
import { rowsPerRequest } from './view.ts';

/** The investigation's own rows (INVESTIGATION.md, "Results"): what the comparison is against. */
export const FEB5 = [
  { mode: 'sequential', run: 'sequential, v1 client, 500 iterations', iterations: 500, conn1Right: 138, conn1Wrong: 408, conn2Wrong: 402, conn2Right: 150 },
  {
    mode: 'interleaved',
    run: 'interleaved, v2 client, 200 iterations, Vagrant VM',
    iterations: 200,
    conn1Right: 67,
    conn1Wrong: 133,
    conn2Wrong: 134,
    conn2Right: 84,
  },
] as const;

/** How close counts as reproduced, in rate points (0.10 = 10 pp). */
export const WITHIN = 0.1;

/** What the comparison reads of a cell (CellSummary has all of it). */
export interface Feb5Cell {
  target: string;
  kernel: string;
  cpus?: number;
  reads?: string;
  /** The investigation's table is of its python servers: a terminator's cells are not compared with it. */
  server?: string;
  /** The user's own client (--client-src), named in the row. */
  client?: string;
  /** An external tracer's cell (its variant is its label): compared when it is expected to behave as upstream. */
  external?: { expect: Variant | null };
  variant: string;
  mode: string;
  scenario: string;
  status: string;
  expected: number;
  captured: number;
  wrong: number;
  trials: number;
  misattribution: number | null;
  misattributionCI?: { lo: number; hi: number } | null;
  byConn: readonly { k: number; rightRows: number; wrongRows: number }[];
}

export interface Feb5Row {
  who: string;
  conn1Right: number;
  conn1Wrong: number;
  conn2Wrong: number;
  conn2Right: number;
  rows: number;
  rowsPerRequest: number | null;
  rate: number | null;
  ci: { lo: number; hi: number } | null;
  /** |ours - theirs| <= WITHIN; null for the investigation's own row, fix variants and cells without a rate. */
  within: boolean | null;
}

function theirs(f: (typeof FEB5)[number]): Feb5Row {
  const rows = f.conn1Right + f.conn1Wrong + f.conn2Wrong + f.conn2Right;
  return {
    who: `the investigation (${f.run})`,
    conn1Right: f.conn1Right,
    conn1Wrong: f.conn1Wrong,
    conn2Wrong: f.conn2Wrong,
    conn2Right: f.conn2Right,
    rows,
    rowsPerRequest: rows / (2 * f.iterations),
    rate: (f.conn1Wrong + f.conn2Wrong) / rows,
    ci: null,
    within: null,
  };
}

function ours(c: Feb5Cell, target: number): Feb5Row {
  const conn = (k: number) => c.byConn.find((b) => b.k === k) ?? { rightRows: 0, wrongRows: 0 };
  const rate = c.status === 'ok' ? c.misattribution : null;
  return {
    who: `${c.target} ${c.kernel}, ${c.cpus ?? 1} vCPU, ${c.variant}, ${c.client ? `client ${c.client}` : `reads ${c.reads ?? 'full'}`}, ${c.trials} trial(s)${c.status === 'ok' ? '' : ` (${c.status})`}`,
    conn1Right: conn(1).rightRows,
    conn1Wrong: conn(1).wrongRows,
    // conn2 wrong: rows naming conn2 put on conn1 (the investigation's "conn2 -> 18001").
    conn2Wrong: conn(2).wrongRows,
    conn2Right: conn(2).rightRows,
    rows: c.captured,
    rowsPerRequest: rowsPerRequest(c),
    rate,
    ci: c.misattributionCI ?? null,
    // Only upstream reproduces the bug; a fix variant is not meant to land near it.
    within: rate === null || ruleOf(c) !== 'upstream' ? null : Math.abs(rate - target) <= WITHIN + 1e-12,
  };
}

/** Per mode: the investigation's row, then every matching pre-existing cell of ours (two connections). */
export function feb5Rows(cells: readonly Feb5Cell[]): { mode: string; rows: Feb5Row[] }[] {
  return FEB5.map((f) => {
    const t = theirs(f);
    const mine = cells
      .filter((c) => c.scenario === 'preexisting' && c.mode === f.mode && c.byConn.length === 2 && (c.server ?? 'python') === 'python')
      .sort((a, b) => `${a.variant}/${a.reads}/${a.target}/${a.cpus}`.localeCompare(`${b.variant}/${b.reads}/${b.target}/${b.cpus}`))
      .map((c) => ours(c, t.rate!));
    return { mode: f.mode, rows: [t, ...mine] };
  });
}

const ci = (r: Feb5Row) => (r.ci ? ` [${pct(r.ci.lo)}, ${pct(r.ci.hi)}]` : '');

/** The section of summary.md: one table per mode; empty when the run has no matching cell. */
export function renderFeb5Md(cells: readonly Feb5Cell[]): string {
  const per = feb5Rows(cells).filter((m) => m.rows.length > 1);
  if (per.length === 0) return '';
  const out = ["## The Feb 5 comparison (the investigation's table beside ours)", ''];
  out.push(
    `Rates are wrong rows / rows naming a connection, as the investigation's script counts them; the interval is 95 % Wilson over the pooled rows; "within 10 pp" compares our rate with the investigation's.`,
    '',
  );
  for (const m of per) {
    out.push(`### ${m.mode}`, '');
    out.push(
      '| run | conn1 right | conn1 wrong | conn2 wrong | conn2 right | rows | rows / request | misattribution | within 10 pp |',
      '|---|---|---|---|---|---|---|---|---|',
    );
    for (const r of m.rows) {
      const within = r.within === null ? '-' : r.within ? 'yes' : 'no';
      out.push(
        `| ${r.who} | ${r.conn1Right} | ${r.conn1Wrong} | ${r.conn2Wrong} | ${r.conn2Right} | ${r.rows} | ${r.rowsPerRequest === null ? 'n/a' : r.rowsPerRequest.toFixed(2)} | ${pct(r.rate)}${ci(r)} | ${within} |`,
      );
    }
    out.push('');
  }
  return out.join('\n');
}
