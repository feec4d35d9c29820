// summary.html: one self-contained page (inline CSS and SVG, no script, no network). A heatmap of
// misattribution over target x (scenario, mode, variant) whose entries link to per-cell views
// (html-cell.ts), the failures, the investigation's figures beside the matching cells, the trend
// against the previous night and the manifest. Everything that came from a guest is escaped.
import { pct, ruleOf } from '../analysis/cell.ts';
import type { CellArtifacts } from './artifacts.ts';
import { renderCellView } from './html-cell.ts';
import { esc, sparkline } from './html-parts.ts';
import { axis, failureRows } from './matrix-md.ts';
import { INVESTIGATION, type Manifest } from './manifest.ts';
import type { History, Trend } from './trend.ts';
import { cellKey, colOf, declaredCols, firstLine, intervalOf, rowOf, sortCells, verdictMark, type CellView } from './view.ts';

export interface HtmlInput {
  manifest: Manifest;
  cells: readonly CellView[];
  artifacts: ReadonlyMap<string, CellArtifacts>;
  /** the folder summary.html is written to (links are relative to it) */
  outDir: string;
  trend?: Trend | null;
  history?: History | null;
}

/** Stable, unique element ids for the cells: "cell-" + the key with only [A-Za-z0-9_-]. */
export function cellIds(cells: readonly CellView[]): Map<string, string> {
  const ids = new Map<string, string>();
  const used = new Set<string>();
  for (const c of cells) {
    let id = `cell-${cellKey(c).replace(/[^A-Za-z0-9_-]+/g, '-')}`;
    for (let n = 2; used.has(id); n++) id = `cell-${cellKey(c).replace(/[^A-Za-z0-9_-]+/g, '-')}-${n}`;
    used.add(id);
    ids.set(cellKey(c), id);
  }
  return ids;
}

/** Sequential scale: pale yellow (0 %) to dark red (100 %). */
export function rateColour(r: number): string {
  const t = Math.min(1, Math.max(0, r));
  const hue = 55 - 55 * t;
  const light = 94 - 58 * t;
  return `hsl(${hue.toFixed(0)} 85% ${light.toFixed(0)}%)`;
}

export function historyPoints(history: History | null | undefined, key: string): (number | null | 'failed')[] {
  if (!history) return [];
  return history.runs.map((r) => {
    const c = r.cells[key];
    if (!c) return null;
    return c.status !== 'ok' ? 'failed' : c.misattribution;
  });
}

/** The investigation's figure for a cell of ours, when the investigation ran that cell. */
export function investigationFor(c: Pick<CellView, 'variant' | 'scenario' | 'mode'>): (typeof INVESTIGATION)[number] | undefined {
  if (ruleOf(c) !== 'upstream') return undefined;
  return INVESTIGATION.find((f) => (f.mode === 'baseline' ? c.scenario === 'baseline' : c.scenario === 'preexisting' && c.mode === f.mode));
}

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.4em}h2{font-size:1.2em;margin-top:1.6em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right}
table.heatmap td.hm-cell{min-width:92px;text-align:center;padding:0}
table.heatmap td.hm-cell a{display:block;padding:4px 6px;color:inherit;text-decoration:none}
table.heatmap td.hm-cell a:hover,table.heatmap td.hm-cell a:focus{outline:2px solid #06c}
td.hm-cell.dark{color:#fff}td.hm-cell.na{background:#e6e6e6}
td.hm-cell.failed{background:repeating-linear-gradient(45deg,#fff,#fff 5px,#f2c4c4 5px,#f2c4c4 10px);color:#900;font-weight:600}
td.hm-cell.unexpected{box-shadow:inset 0 0 0 3px #000}
td.hm-cell .mark{font-weight:700;margin-right:.2em}td.hm-cell small{display:block;font-size:11px;opacity:.85}
tr.investigation td,tr.investigation th{background:#eef4fb;font-style:italic}td.inv small{display:block;font-size:11px}
.legend svg{vertical-align:middle}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;overflow:auto;max-height:24em;white-space:pre-wrap;word-break:break-all}
.cell-view{display:none;border-top:3px solid #06c;margin-top:2em}.cell-view:target{display:block}
.bad{color:#900;font-weight:600}.good{color:#060}
nav a{margin-right:1em}
`;

function legend(): string {
  const stops = [0, 0.25, 0.5, 0.75, 1].map((r, i) => `<stop offset="${i * 25}%" stop-color="${rateColour(r)}"/>`).join('');
  return `<p class="legend"><svg width="160" height="14" role="img" aria-label="colour scale from 0 % to 100 %"><defs><linearGradient id="scale">${stops}</linearGradient></defs><rect width="160" height="14" fill="url(#scale)"/></svg> 0 % to 100 % misattribution; ✓ as expected, <b>✗</b> NOT as expected (outlined), · measured only, ⚠ could not run (hatched); n/a: no row named a connection.</p>`;
}

function heatmap(inp: HtmlInput, ids: Map<string, string>): string {
  const cells = sortCells(inp.cells);
  const byKey = new Map(cells.map((c) => [cellKey(c), c]));
  const uniq = (f: (c: CellView) => string) => [...new Set(cells.map(f))];
  const scenarios = axis(
    inp.manifest.scenarios,
    uniq((c) => c.scenario),
  );
  const modes = axis(
    inp.manifest.modes,
    uniq((c) => c.mode),
  );
  const variants = axis(declaredCols(inp.manifest), uniq(colOf));
  const targets = uniq(rowOf);
  const cols = scenarios
    .flatMap((s) => modes.flatMap((m) => variants.map((v) => ({ s, m, v }))))
    .filter(({ s, m, v }) => targets.some((t) => byKey.has(`${t}/${s}/${m}/${v}`)));
  const span = (f: (c: { s: string; m: string; v: string }) => string) => {
    const out: { label: string; n: number }[] = [];
    for (const c of cols) {
      const l = f(c);
      if (out.at(-1)?.label === l) out.at(-1)!.n++;
      else out.push({ label: l, n: 1 });
    }
    return out;
  };
  const head = [
    `<tr><th rowspan="3">target</th>${span((c) => c.s)
      .map((g) => `<th colspan="${g.n}">${esc(g.label)}</th>`)
      .join('')}</tr>`,
    `<tr>${span((c) => `${c.s}/${c.m}`)
      .map((g) => `<th colspan="${g.n}">${esc(g.label.split('/')[1])}</th>`)
      .join('')}</tr>`,
    `<tr>${cols.map((c) => `<th>${esc(c.v)}</th>`).join('')}</tr>`,
  ];
  const rows = targets.map((t) => {
    const any = cells.find((c) => rowOf(c) === t)!;
    const tds = cols.map(({ s, m, v }) => {
      const c = byKey.get(`${t}/${s}/${m}/${v}`);
      if (!c) return '<td class="absent">-</td>';
      const key = cellKey(c);
      const cls = ['hm-cell'];
      let style = '';
      let body: string;
      const title = `${key}: ${c.status !== 'ok' ? `${c.status}${c.error ? `: ${firstLine(c.error)}` : ''}` : `misattribution ${pct(c.misattribution)} (${c.wrong} of ${c.captured}), capture ${pct(c.capture)}`}; verdict: ${c.verdict.pass === null ? 'measured' : c.verdict.pass ? 'as expected' : 'NOT as expected'}`;
      if (c.status !== 'ok') {
        cls.push('failed');
        body = `<span class="mark">⚠</span>${esc(c.status)}`;
      } else if (c.misattribution === null) {
        cls.push('na');
        body = `<span class="mark">${verdictMark(c)}</span>n/a`;
      } else {
        style = ` style="background:${rateColour(c.misattribution)}"`;
        if (c.misattribution > 0.5) cls.push('dark');
        const i = intervalOf(c);
        body = `<span class="mark">${verdictMark(c)}</span>${pct(c.misattribution)}${i ? `<small>${(i.lo * 100).toFixed(0)}-${(i.hi * 100).toFixed(0)} %</small>` : ''}`;
      }
      if (c.verdict.pass === false && c.status === 'ok') cls.push('unexpected');
      const spark = sparkline(historyPoints(inp.history, key), 60, 14);
      return `<td class="${cls.join(' ')}" data-cell="${esc(key)}" data-status="${esc(c.status)}" data-verdict="${c.verdict.pass === null ? 'measured' : String(c.verdict.pass)}"${style}><a href="#${ids.get(key)}" title="${esc(title)}">${body}${spark}</a></td>`;
    });
    return `<tr><th>${esc(t)}<br><small>${esc(any.kernel)}, OpenSSL ${esc(any.openssl)}</small></th>${tds.join('')}</tr>`;
  });
  const inv = cols.map((c) => investigationFor({ variant: c.v as CellView['variant'], scenario: c.s as CellView['scenario'], mode: c.m as CellView['mode'] }));
  if (inv.some(Boolean))
    rows.push(
      `<tr class="investigation"><th>investigation<br><small>Vagrant VM, system-probe</small></th>${inv.map((f) => (f ? `<td class="inv" title="${esc(f.detail)}">${pct(f.misattribution)}<small>${esc(f.run)}</small></td>` : '<td></td>')).join('')}</tr>`,
    );
  return `<table class="heatmap"><thead>${head.join('')}</thead><tbody>${rows.join('\n')}</tbody></table>${legend()}`;
}

function failures(inp: HtmlInput, ids: Map<string, string>): string {
  const rows = failureRows(inp.cells, new Map([...inp.artifacts].map(([k, a]) => [k, a.logTail])));
  if (!rows.length) return '';
  const trs = rows.map(
    (r) =>
      `<tr><td><a href="#${ids.get(cellKey(r.first))}">${esc(r.what)}</a></td><td class="bad">${esc(r.kind)}</td><td>${esc(r.error)}</td><td><code>${esc(r.line)}</code></td></tr>`,
  );
  return `<section id="failures"><h2>Failures</h2><table><thead><tr><th>cell</th><th>kind</th><th>error</th><th>from the log tail</th></tr></thead><tbody>${trs.join('')}</tbody></table></section>`;
}

function trendSection(t: Trend | null | undefined): string {
  if (!t) return '';
  const rows = t.changes.map(
    (c) =>
      `<tr><td>${esc(c.key)}</td><td class="${c.regression ? 'bad' : ''}">${esc(c.kinds.join(', '))}${c.regression ? ' (regression)' : ''}</td><td>${esc(c.before)}</td><td>${esc(c.after)}</td></tr>`,
  );
  return `<section id="trend"><h2>Trend against ${esc(t.previous.runId)}</h2><p>${t.regressions} regression(s), ${t.changes.length} change(s) over ${t.cells} cell(s).</p>${rows.length ? `<table><thead><tr><th>cell</th><th>change</th><th>before</th><th>after</th></tr></thead><tbody>${rows.join('')}</tbody></table>` : '<p>No cell changed.</p>'}</section>`;
}

export function renderHtml(inp: HtmlInput): string {
  const m = inp.manifest;
  const cells = sortCells(inp.cells);
  const ids = cellIds(cells);
  const views = cells.map((c) =>
    renderCellView(c, {
      id: ids.get(cellKey(c))!,
      artifacts: inp.artifacts.get(cellKey(c)),
      outDir: inp.outDir,
      history: historyPoints(inp.history, cellKey(c)),
      historyRuns: inp.history?.runs.map((r) => r.runId) ?? [],
      investigation: investigationFor(c),
    }),
  );
  const failedN = cells.filter((c) => c.status !== 'ok').length;
  const unexpectedN = cells.filter((c) => c.status === 'ok' && c.verdict.pass === false).length;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>USM TLS attribution matrix: ${esc(m.runId)}</title><style>${CSS}</style></head>
<body>
<header id="top"><h1>USM TLS attribution matrix: run ${esc(m.runId)}</h1>
<p>tool ${esc(m.tool.commit)}${m.tool.dirty ? ' (dirty)' : ''}, ${esc(m.iterations)} iterations x ${esc(m.trials)} trial(s), seed ${esc(m.seed)}; started ${esc(m.startedAt)}${m.finishedAt ? `, finished ${esc(m.finishedAt)}` : ''}.
<b>${cells.length}</b> cells: ${cells.length - failedN - unexpectedN} fine, <span class="${unexpectedN ? 'bad' : ''}">${unexpectedN} NOT as expected</span>, <span class="${failedN ? 'bad' : ''}">${failedN} could not run</span>.</p>
<nav><a href="#heatmap">heatmap</a>${failedN ? '<a href="#failures">failures</a>' : ''}${inp.trend ? '<a href="#trend">trend</a>' : ''}<a href="#manifest">manifest</a></nav></header>
<section id="heatmap"><h2>Misattribution</h2>${heatmap(inp, ids)}</section>
${failures(inp, ids)}
${trendSection(inp.trend)}
<section id="manifest"><h2>Manifest</h2><details><summary>manifest.json</summary><pre>${esc(JSON.stringify(m, null, 2))}</pre></details></section>
${views.join('\n')}
</body></html>
`;
}
