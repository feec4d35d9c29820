// One cell's view in summary.html word for word (src/report/html-cell.ts): the heading and status
// lines, the log tail, the attribution table, the figures, the truth table (or n/a for the user's
// client), the trend, the trials and tracer stats, the rows per request with right/wrong, the files.
// The cell and its artifacts are written out by hand: every figure below is one put in.
import { describe, expect, it } from 'vitest';
import type { CellArtifacts } from '../src/report/artifacts.ts';
import { renderCellView, type CellViewOpts } from '../src/report/html-cell.ts';
import { INVESTIGATION } from '../src/report/manifest.ts';
import type { CellView } from '../src/report/view.ts';

function rich(): CellView {
  return {
    target: 'sid',
    boot: 'sid-2cpu',
    cpus: 2,
    server: 'haproxy',
    reads: 'single',
    variant: 'upstream',
    mode: 'interleaved',
    scenario: 'preexisting',
    kernel: '6.9',
    openssl: '3.2',
    hook: 'uprobe',
    trials: 2,
    trialsOk: 1,
    expected: 8,
    captured: 10,
    correct: 6,
    wrong: 4,
    lost: 1,
    backendRows: 3,
    droppedNoTuple: 5,
    misattribution: 0.4,
    misattributionCI: { lo: 0.125, hi: 0.75, method: 'wilson' },
    trialSpread: { n: 2, mean: 0.375, lo: 0.0625, hi: 0.6875 },
    capture: 0.625,
    symmetry: 0.333,
    truth: { writes: { correct: 7, wrong: 1, lost: 0 }, reads: { correct: 5, wrong: 2, lost: 1 }, unclassifiedReads: 0 },
    byConn: [
      { k: 1, rport: 18001, rightRows: 4, wrongRows: 3 },
      { k: 2, rport: 18002, rightRows: 2, wrongRows: 1 },
    ],
    http: null,
    status: 'ok',
    verdict: { pass: true, expectation: 'wrong rows', reason: '4 wrong rows' },
  } as CellView;
}

const artifacts = (): CellArtifacts => ({
  dir: '/r/sid-2cpu/x',
  trials: [
    {
      trial: 1,
      status: 'ok',
      attribution: { captured: 5, wrong: 2 } as never,
      clientOk: 4,
      clientFail: 0,
      incompleteRequests: 1,
      orphanResponses: 2,
      tracerStats: { slot_writes: 10, slot_overwrites: 3, slot_consumed: 7, attributed: 9, dropped_no_tuple: 1, ringbuf_drops: 0 },
      tracerMeta: { hook: 'uprobe' } as never,
      durationMs: 12345,
    },
    { trial: 2, status: 'client-failed', error: 'died <here>\nsecond', tracerStats: {}, durationMs: 0 },
  ],
  files: [
    { trial: null, name: 'console.log', path: '/r/sid-2cpu/console.log' },
    { trial: 2, name: 'a b.log', path: '/r/sid-2cpu/x/trial-2/a b.log' },
  ],
  logTail: 'tail <1>',
  rows: [
    { trial: 1, path: '/200/conn1-iter0', clientPort: 5000, serverPort: 18001, statuses: '200', count: 1 },
    { trial: 1, path: '/200/conn2-iter0', clientPort: 5001, serverPort: 18001, statuses: '200', count: 2 },
    { trial: 2, path: '/other', clientPort: 5002, serverPort: 18002, statuses: '', count: 0 },
    { trial: 2, path: '/200/conn3-iter1', clientPort: 5003, serverPort: 18003, statuses: '404', count: 1 },
  ],
  rowsTotal: 9,
});

const opts = (over: Partial<CellViewOpts> = {}): CellViewOpts => ({
  id: 'cell-x',
  artifacts: artifacts(),
  outDir: '/r',
  history: [0.5, 'failed', null, 0.25],
  historyRuns: ['n1', 'n2', 'n3', 'n4'],
  investigation: INVESTIGATION[1],
  ...over,
});

describe('renderCellView, word for word', () => {
  it('a cell with every figure, its artifacts, its trend and the investigation beside it', () => {
    const html = renderCellView(rich(), opts()).split('\n');
    expect(html.slice(0, 5)).toEqual([
      '<section class="cell-view" id="cell-x" data-cell="sid-2cpu/preexisting/interleaved/upstream single haproxy">',
      '<h2>sid-2cpu: preexisting / interleaved / upstream single haproxy</h2>',
      '<p>kernel 6.9, OpenSSL 3.2, kernel hooks: uprobe; 1 of 2 trial(s) ran.</p>',
      '<p><b class="">Status: ok</b>. Verdict: <b class="">as expected</b> (expected wrong rows: 4 wrong rows).</p>',
      '<h3>Log tail</h3><pre class="log-tail">tail &lt;1&gt;</pre>',
    ]);
    expect(html[6]).toBe(
      '<table><thead><tr><th>run</th><th>conn1 right</th><th>conn1 wrong</th><th>conn2 right</th><th>conn2 wrong</th><th>misattribution</th></tr></thead><tbody><tr><td>interleaved, 8 requests expected, 10 rows captured</td><td class="num">4</td><td class="num">3</td><td class="num">2</td><td class="num">1</td><td>40.0 % (4 of 10)</td></tr></tbody></table>',
    );
    expect(html[7]).toBe(
      '<ul>' +
        [
          'lost (in no row): 1 of 8; captured correctly: 62.5 %',
          '95 % interval of the misattribution: 12.5 % to 75.0 % (wilson)',
          'symmetry of the wrong rows (min/max over connections): 0.33',
          'over 2 trials: mean 37.5 %, 6.3 % to 68.8 %',
          'guest CPUs: 2',
          'client reads: single',
          'server: haproxy; rows on tuples of no client connection (a terminator&#39;s backend side): 3; buffers dropped for lack of a tuple: 5',
          'the investigation (interleaved (v2 client, 200 iterations, VM)): 63.9 %; 67 / 133 / 134 / 84; 418 captured of 400 expected',
        ]
          .map((x) => `<li>${x}</li>`)
          .join('') +
        '</ul>',
    );
    expect(html[9]).toBe(
      '<table><thead><tr><th>path</th><th>correct</th><th>wrong</th><th>lost</th></tr></thead><tbody><tr><td>request writes</td><td class="num">7</td><td class="num">1</td><td class="num">0</td></tr><tr><td>response reads</td><td class="num">5</td><td class="num">2</td><td class="num">1</td></tr></tbody></table>',
    );
    expect(html[10]).toMatch(/^<h3>Trend<\/h3><p><svg class="spark"[^]*<\/svg> 50\.0 %, failed, -, 25\.0 % <small>\(n1, n2, n3, n4\)<\/small><\/p>$/);
    expect(html[12]).toBe(
      '<table><thead><tr>' +
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
        ]
          .map((h) => `<th>${h}</th>`)
          .join('') +
        '</tr></thead><tbody>' +
        '<tr><td class="num">1</td><td class="">ok</td><td class="num">5</td><td class="num">2</td><td>4 / 0</td><td>1 / 2</td><td>10 / 3 / 7</td><td class="num">9</td><td class="num">1</td><td class="num">0</td><td>uprobe</td><td class="num">12.3</td></tr>' +
        '<tr><td class="num">2</td><td class="bad">client-failed: died &lt;here&gt;</td><td class="num">-</td><td class="num">-</td><td>- / -</td><td>- / -</td><td>- / - / -</td><td class="num">-</td><td class="num">-</td><td class="num">-</td><td>-</td><td class="num">0.0</td></tr>' +
        '</tbody></table>',
    );
    expect(html[14]).toBe(
      '<p>4 of 9 row(s).</p><table><thead><tr>' +
        ['trial', 'path', 'client port', 'server port', 'connection&#39;s port', 'row', 'status', 'count'].map((h) => `<th>${h}</th>`).join('') +
        '</tr></thead><tbody>' +
        '<tr><td class="num">1</td><td>/200/conn1-iter0</td><td class="num">5000</td><td class="num">18001</td><td class="num">18001</td><td class="good">right</td><td>200</td><td class="num">1</td></tr>' +
        '<tr><td class="num">1</td><td>/200/conn2-iter0</td><td class="num">5001</td><td class="num">18001</td><td class="num">18002</td><td class="bad">wrong</td><td>200</td><td class="num">2</td></tr>' +
        '<tr><td class="num">2</td><td>/other</td><td class="num">5002</td><td class="num">18002</td><td class="num">-</td><td class="">-</td><td></td><td class="num">0</td></tr>' +
        '<tr><td class="num">2</td><td>/200/conn3-iter1</td><td class="num">5003</td><td class="num">18003</td><td class="num">-</td><td class="">-</td><td>404</td><td class="num">1</td></tr>' +
        '</tbody></table>',
    );
    expect(html.slice(15)).toEqual([
      '<h3>Files</h3>',
      '<ul class="files"><li><a href="sid-2cpu/console.log">target: console.log</a></li><li><a href="sid-2cpu/x/trial-2/a%20b.log">trial 2: a b.log</a></li></ul>',
      '<p><a href="#heatmap">back to the heatmap</a></p>',
      '</section>',
    ]);
    expect([html[5], html[8], html[11], html[13]]).toEqual([
      '<h3>Attribution (rows of http_monitoring.json, as the investigation counts them)</h3>',
      "<h3>Per-request truth (the client's own writes and reads)</h3>",
      '<h3>Trials and tracer stats</h3>',
      '<h3>Rows per request</h3>',
    ]);
  });

  it('a failed cell of an older summary without artifacts, trend or investigation: n/a and "no ..." everywhere, the status and verdict marked bad', () => {
    const c = {
      ...rich(),
      status: 'boot-failed',
      error: 'no <ssh>',
      misattribution: null,
      misattributionCI: null,
      trialSpread: null,
      capture: null,
      symmetry: null,
      wrong: 0,
      captured: 0,
      byConn: [],
      droppedNoTuple: null,
      client: 'mine.c',
      verdict: { pass: false, expectation: 'cell runs', reason: 'boot-failed' },
    } as CellView;
    for (const k of ['boot', 'cpus', 'reads', 'server', 'backendRows'] as const) delete (c as Partial<CellView>)[k];
    const html = renderCellView(c, opts({ artifacts: undefined, history: [0.5], historyRuns: ['n1'], investigation: undefined })).split('\n');
    expect(html).toEqual([
      '<section class="cell-view" id="cell-x" data-cell="sid/preexisting/interleaved/upstream">',
      '<h2>sid: preexisting / interleaved / upstream</h2>',
      '<p>kernel 6.9, OpenSSL 3.2, kernel hooks: uprobe; 1 of 2 trial(s) ran.</p>',
      '<p><b class="bad">Status: boot-failed</b> (no &lt;ssh&gt;). Verdict: <b class="bad">NOT as expected</b> (expected cell runs: boot-failed).</p>',
      '',
      '<h3>Attribution (rows of http_monitoring.json, as the investigation counts them)</h3>',
      '<table><thead><tr><th>run</th><th>misattribution</th></tr></thead><tbody><tr><td>interleaved, 8 requests expected, 0 rows captured</td><td>n/a (no row names a connection)</td></tr></tbody></table>',
      '<ul><li>lost (in no row): 1 of 8; captured correctly: n/a</li><li>95 % interval of the misattribution: n/a</li><li>symmetry of the wrong rows (min/max over connections): n/a</li><li>server: python; rows on tuples of no client connection (a terminator&#39;s backend side): 0; buffers dropped for lack of a tuple: n/a</li></ul>',
      "<h3>Per-request truth (the client's own writes and reads)</h3>",
      '<p>n/a: your own client (mine.c) ran, whose requests and reads are its own.</p>',
      '',
      '<h3>Trials and tracer stats</h3>',
      '<p>No trial results on disk.</p>',
      '<h3>Rows per request</h3>',
      '<p>No http_monitoring.json rows.</p>',
      '<h3>Files</h3>',
      '<p>No files on disk.</p>',
      '<p><a href="#heatmap">back to the heatmap</a></p>',
      '</section>',
    ]);
  });

  it("a trial with no tracer stats and no time shows '-' for them; a row of connection 12 is judged by conn12's port", () => {
    const c = { ...rich(), byConn: [...rich().byConn, { k: 12, rport: 18012, rightRows: 1, wrongRows: 0 }] } as CellView;
    const a = {
      ...artifacts(),
      trials: [{ trial: 3, status: 'ok' }],
      rows: [{ trial: 1, path: '/200/conn12-iter0', clientPort: 5012, serverPort: 18012, statuses: '200', count: 1 }],
    };
    const html = renderCellView(c, opts({ artifacts: a as CellArtifacts }));
    expect(html).toContain(
      '<tr><td class="num">3</td><td class="">ok</td><td class="num">-</td><td class="num">-</td><td>- / -</td><td>- / -</td><td>-</td><td class="num">-</td><td class="num">-</td><td class="num">-</td><td>-</td><td class="num">-</td></tr>',
    );
    expect(html).toContain(
      '<tr><td class="num">1</td><td>/200/conn12-iter0</td><td class="num">5012</td><td class="num">18012</td><td class="num">18012</td><td class="good">right</td><td>200</td><td class="num">1</td></tr>',
    );
  });

  it('a measured-only verdict is not marked bad; empty artifacts say there is nothing', () => {
    const c = { ...rich(), verdict: { pass: null, expectation: 'nothing', reason: 'measured' } } as CellView;
    const html = renderCellView(c, opts({ artifacts: { ...artifacts(), trials: [], files: [], rows: [], logTail: '' } }));
    expect(html).toContain('Verdict: <b class="">measured</b> (expected nothing: measured).');
    expect(html).not.toContain('Log tail');
    for (const s of ['<p>No trial results on disk.</p>', '<p>No http_monitoring.json rows.</p>', '<p>No files on disk.</p>']) expect(html).toContain(s);
  });
});
