// One cell's view in summary.html (shown when its #id is the URL's fragment): the attribution
// table in the investigation's layout, interval and trial spread, per-request truth, tracer stats
// per trial, the http_monitoring.json rows per request, the log tail and links to the files.
import { pct } from '../analysis/cell.ts';
import type { CellArtifacts } from './artifacts.ts';
import { verdictWord } from './cell.ts';
import { esc, href, sparkline } from './html-parts.ts';
import type { INVESTIGATION } from './manifest.ts';
import { cellKey, colOf, intervalOf, rowOf, type CellView } from './view.ts';

export interface CellViewOpts {
  id: string;
  artifacts: CellArtifacts | undefined;
  outDir: string;
  history: (number | null | 'failed')[];
  historyRuns: string[];
  investigation: (typeof INVESTIGATION)[number] | undefined;
}

const td = (x: unknown, num = false) => `<td${num ? ' class="num"' : ''}>${esc(x ?? '-')}</td>`;
const table = (head: string[], rows: string[]) =>
  `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;

function attribution(c: CellView): string {
  const head = ['run'];
  for (const k of c.byConn) head.push(`conn${k.k} right`, `conn${k.k} wrong`);
  head.push('misattribution');
  const row = [td(`${c.mode}, ${c.expected} requests expected, ${c.captured} rows captured`)];
  for (const k of c.byConn) row.push(td(k.rightRows, true), td(k.wrongRows, true));
  row.push(td(c.misattribution === null ? 'n/a (no row names a connection)' : `${pct(c.misattribution)} (${c.wrong} of ${c.captured})`));
  return table(head, [`<tr>${row.join('')}</tr>`]);
}

function figures(c: CellView, inv: CellViewOpts['investigation']): string {
  const i = intervalOf(c);
  const items = [
    `lost (in no row): ${c.lost} of ${c.expected}; captured correctly: ${pct(c.capture)}`,
    `95 % interval of the misattribution: ${i ? `${pct(i.lo)} to ${pct(i.hi)} (${i.method})` : 'n/a'}`,
    `symmetry of the wrong rows (min/max over connections): ${c.symmetry === null ? 'n/a' : c.symmetry.toFixed(2)}`,
  ];
  if (c.trialSpread) items.push(`over ${c.trialSpread.n} trials: mean ${pct(c.trialSpread.mean)}, ${pct(c.trialSpread.lo)} to ${pct(c.trialSpread.hi)}`);
  if (c.cpus !== undefined) items.push(`guest CPUs: ${c.cpus}`);
  if (c.reads) items.push(`client reads: ${c.reads}`);
  items.push(
    `server: ${c.server ?? 'python'}; rows on tuples of no client connection (a terminator's backend side): ${c.backendRows ?? 0}; buffers dropped for lack of a tuple: ${c.droppedNoTuple ?? 'n/a'}`,
  );
  if (inv) items.push(`the investigation (${inv.run}): ${pct(inv.misattribution)}; ${inv.detail}`);
  return `<ul>${items.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>`;
}

function trials(a: CellArtifacts | undefined): string {
  if (!a?.trials.length) return '<p>No trial results on disk.</p>';
  const rows = a.trials.map((t) => {
    const s = t.tracerStats;
    return `<tr>${[
      td(t.trial, true),
      `<td class="${t.status === 'ok' ? '' : 'bad'}">${esc(t.status)}${t.error ? `: ${esc(t.error.split('\n')[0])}` : ''}</td>`,
      td(t.attribution?.captured, true),
      td(t.attribution?.wrong, true),
      td(`${t.clientOk ?? '-'} / ${t.clientFail ?? '-'}`),
      td(`${t.incompleteRequests ?? '-'} / ${t.orphanResponses ?? '-'}`),
      td(s ? `${s.slot_writes ?? '-'} / ${s.slot_overwrites ?? '-'} / ${s.slot_consumed ?? '-'}` : '-'),
      td(s?.attributed, true),
      td(s?.dropped_no_tuple, true),
      td(s?.ringbuf_drops, true),
      td(t.tracerMeta?.hook),
      td(t.durationMs !== undefined ? (t.durationMs / 1000).toFixed(1) : '-', true),
    ].join('')}</tr>`;
  });
  return table(
    [
      'trial',
      'status',
      'rows',
      'wrong',
      'client ok / fail',
      'incomplete req / orphan resp',
      'slot writes / overwrites / consumed',
      'attributed',
      'dropped (no tuple)',
      'ringbuf drops',
      'hook',
      's',
    ],
    rows,
  );
}

function requestRows(c: CellView, a: CellArtifacts | undefined): string {
  if (!a?.rows.length) return '<p>No http_monitoring.json rows.</p>';
  const portOf = new Map(c.byConn.map((k) => [k.k, k.rport]));
  const rows = a.rows.map((r) => {
    const k = /conn(\d+)-iter/.exec(r.path)?.[1];
    const want = k ? portOf.get(Number(k)) : undefined;
    const verdict = want === undefined ? '-' : want === r.serverPort ? 'right' : 'wrong';
    return `<tr>${td(r.trial, true)}${td(r.path)}${td(r.clientPort, true)}${td(r.serverPort, true)}${td(want ?? '-', true)}<td class="${verdict === 'wrong' ? 'bad' : verdict === 'right' ? 'good' : ''}">${verdict}</td>${td(r.statuses)}${td(r.count, true)}</tr>`;
  });
  return `<p>${a.rows.length} of ${a.rowsTotal} row(s).</p>${table(['trial', 'path', 'client port', 'server port', "connection's port", 'row', 'status', 'count'], rows)}`;
}

function files(a: CellArtifacts | undefined, outDir: string): string {
  if (!a?.files.length) return '<p>No files on disk.</p>';
  const items = a.files.map(
    (f) => `<li><a href="${href(outDir, f.path)}">${esc(f.trial === null ? `target: ${f.name}` : `trial ${f.trial}: ${f.name}`)}</a></li>`,
  );
  return `<ul class="files">${items.join('')}</ul>`;
}

export function renderCellView(c: CellView, o: CellViewOpts): string {
  const a = o.artifacts;
  const spark = sparkline(o.history);
  const hist = spark
    ? `<h3>Trend</h3><p>${spark} ${esc(o.history.map((p) => (typeof p === 'number' ? pct(p) : (p ?? '-'))).join(', '))} <small>(${esc(o.historyRuns.join(', '))})</small></p>`
    : '';
  return `<section class="cell-view" id="${o.id}" data-cell="${esc(cellKey(c))}">
<h2>${esc(rowOf(c))}: ${esc(c.scenario)} / ${esc(c.mode)} / ${esc(colOf(c))}</h2>
<p>kernel ${esc(c.kernel)}, OpenSSL ${esc(c.openssl)}, kernel hooks: ${esc(c.hook)}; ${esc(c.trialsOk)} of ${esc(c.trials)} trial(s) ran.</p>
<p><b class="${c.status === 'ok' ? '' : 'bad'}">Status: ${esc(c.status)}</b>${c.error ? ` (${esc(c.error)})` : ''}. Verdict: <b class="${c.verdict.pass === false ? 'bad' : ''}">${esc(verdictWord(c.verdict.pass))}</b> (expected ${esc(c.verdict.expectation)}: ${esc(c.verdict.reason)}).</p>
${a?.logTail ? `<h3>Log tail</h3><pre class="log-tail">${esc(a.logTail)}</pre>` : ''}
<h3>Attribution (rows of http_monitoring.json, as the investigation counts them)</h3>
${attribution(c)}
${figures(c, o.investigation)}
<h3>Per-request truth (the client's own writes and reads)</h3>
${
  c.client
    ? `<p>n/a: your own client (${esc(c.client)}) ran, whose requests and reads are its own.</p>`
    : table(
        ['path', 'correct', 'wrong', 'lost'],
        [
          `<tr>${td('request writes')}${td(c.truth.writes.correct, true)}${td(c.truth.writes.wrong, true)}${td(c.truth.writes.lost, true)}</tr>`,
          `<tr>${td('response reads')}${td(c.truth.reads.correct, true)}${td(c.truth.reads.wrong, true)}${td(c.truth.reads.lost, true)}</tr>`,
        ],
      )
}
${hist}
<h3>Trials and tracer stats</h3>
${trials(a)}
<h3>Rows per request</h3>
${requestRows(c, a)}
<h3>Files</h3>
${files(a, o.outDir)}
<p><a href="#heatmap">back to the heatmap</a></p>
</section>`;
}
