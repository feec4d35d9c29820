// summary.md's first sections: the failed cells, then the matrix (rows: targets with kernel and
// OpenSSL; columns: variant x mode; one table per scenario), then the detail table in report order.
import { pct } from '../analysis/cell.ts';
import { verdictWord } from './cell.ts';
import type { Manifest } from './manifest.ts';
import {
  cellKey,
  colOf,
  declaredCols,
  firstLine,
  rateWithInterval,
  rowOf,
  rowsPerRequest,
  sortCells,
  tellingLine,
  verdictMark,
  type CellView,
} from './view.ts';

/** A markdown table entry: no pipes, no newlines, no HTML (guest text lands here). */
export function mdCell(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\|/g, '\\|')
    .replace(/[\r\n]+/g, ' ');
}

/** Axis values in the manifest's order, then any the cells add. */
export function axis(declared: readonly string[] | undefined, seen: readonly string[]): string[] {
  const out = [...(declared ?? [])].filter((x) => seen.includes(x));
  for (const s of seen) if (!out.includes(s)) out.push(s);
  return out;
}

export function matrixEntry(c: CellView | undefined): string {
  if (!c) return '-';
  if (c.status !== 'ok') return `${verdictMark(c)} ${c.status}`;
  return `${verdictMark(c)} ${rateWithInterval(c)}, capture ${pct(c.capture)}`;
}

/** Failed cells, one row per cell, or one per target when all its cells failed alike (boot, build). */
export function failureRows(
  cells: readonly CellView[],
  tails: ReadonlyMap<string, string>,
): { what: string; first: CellView; kind: string; error: string; line: string }[] {
  const sorted = sortCells(cells);
  const failed = sorted.filter((c) => c.status !== 'ok');
  const rows: ReturnType<typeof failureRows> = [];
  const done = new Set<string>();
  for (const c of failed) {
    if (done.has(rowOf(c))) continue;
    const mine = sorted.filter((x) => rowOf(x) === rowOf(c));
    const whole = mine.length > 1 && mine.every((x) => x.status === c.status && x.error === c.error);
    const group = whole ? mine : [c];
    if (whole) done.add(rowOf(c));
    rows.push({
      what: whole ? `${rowOf(c)} (all ${mine.length} cells)` : cellKey(c),
      first: c,
      kind: c.status,
      error: firstLine(c.error),
      line: tellingLine(tails.get(cellKey(group[0]!))),
    });
  }
  return rows;
}

export function renderFailuresMd(cells: readonly CellView[], tails: ReadonlyMap<string, string>): string[] {
  const rows = failureRows(cells, tails);
  if (!rows.length) return [];
  const n = cells.filter((c) => c.status !== 'ok').length;
  const out = ['## Failures', '', `${n} cell(s) could not run.`, '', '| cell | kind | error | from the log tail |', '|---|---|---|---|'];
  for (const r of rows) out.push(`| ${mdCell(r.what)} | ${r.kind} | ${mdCell(r.error)} | ${mdCell(r.line)} |`);
  out.push('');
  return out;
}

export function renderMatrixMd(manifest: Pick<Manifest, 'variants' | 'modes' | 'scenarios' | 'reads' | 'servers'>, cells: readonly CellView[]): string[] {
  const sorted = sortCells(cells);
  const byKey = new Map(sorted.map((c) => [cellKey(c), c]));
  const uniq = (f: (c: CellView) => string) => [...new Set(sorted.map(f))];
  const scenarios = axis(
    manifest.scenarios,
    uniq((c) => c.scenario),
  );
  const modes = axis(
    manifest.modes,
    uniq((c) => c.mode),
  );
  const variants = axis(declaredCols(manifest), uniq(colOf));
  const targets = uniq(rowOf);
  const out = [
    '## Matrix',
    '',
    'Misattribution (wrong / captured rows) with its 95 % interval, capture; ✓ as expected, ✗ NOT as expected, · measured only, ⚠ the cell could not run.',
    '',
  ];
  for (const s of scenarios) {
    const cols = variants.flatMap((v) => modes.map((m) => ({ v, m }))).filter(({ v, m }) => targets.some((t) => byKey.has(`${t}/${s}/${m}/${v}`)));
    if (!cols.length) continue;
    out.push(`### ${s}`, '', `| target | ${cols.map(({ v, m }) => `${v} ${m}`).join(' | ')} |`, `|---|${cols.map(() => '---').join('|')}|`);
    for (const t of targets) {
      const any = sorted.find((c) => rowOf(c) === t);
      const label = `${t} (${any?.kernel ?? '?'}, OpenSSL ${any?.openssl ?? '?'})`;
      out.push(`| ${mdCell(label)} | ${cols.map(({ v, m }) => mdCell(matrixEntry(byKey.get(`${t}/${s}/${m}/${v}`)))).join(' | ')} |`);
    }
    out.push('');
  }
  return out;
}

export function renderDetailMd(cells: readonly CellView[]): string[] {
  const out = [
    '## Cells',
    '',
    "rows/req: rows per request sent (about 2 with full reads, about 1 with single reads). backend: rows naming a request of the run on a tuple of no client connection (a terminator's backend side); no tuple: buffers the tracer dropped for lack of a tuple.",
    '',
    '| target | vCPUs | kernel | OpenSSL | server | reads | scenario | mode | variant | expected | rows | rows/req | correct | wrong | lost | backend | no tuple | misattribution | capture | status | verdict |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const c of sortCells(cells)) {
    const rpr = rowsPerRequest(c)?.toFixed(2) ?? 'n/a';
    out.push(
      `| ${mdCell(c.target)} | ${c.cpus ?? 1} | ${mdCell(c.kernel)} | ${mdCell(c.openssl)} | ${c.server ?? 'python'} | ${c.reads ?? 'full'} | ${c.scenario} | ${c.mode} | ${c.variant} | ${c.expected} | ${c.captured} | ${rpr} | ${c.correct} | ${c.wrong} | ${c.lost} | ${c.backendRows ?? 0} | ${c.droppedNoTuple ?? 'n/a'} | ${rateWithInterval(c)} | ${pct(c.capture)} | ${c.status} | ${verdictWord(c.verdict.pass)} |`,
    );
  }
  out.push('');
  return out;
}
