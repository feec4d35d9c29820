// summary.html's page (src/report/html.ts) piece by piece: cell ids, the colour scale, history
// points, the investigation's figure per cell, the header counts, the heatmap's entries and head,
// the failures and the trend sections. Cells are written out by hand.
import { describe, expect, it } from 'vitest';
import { cellIds, historyPoints, investigationFor, rateColour, renderHtml } from '../src/report/html.ts';
import { INVESTIGATION, type Manifest } from '../src/report/manifest.ts';
import type { History, Trend } from '../src/report/trend.ts';
import type { CellView } from '../src/report/view.ts';

const view = (over: Partial<CellView>): CellView =>
  ({
    target: 'sid',
    cpus: 1,
    reads: 'full',
    variant: 'upstream',
    mode: 'interleaved',
    scenario: 'preexisting',
    kernel: '6.9',
    openssl: '3.2',
    hook: 'uprobe',
    trials: 1,
    trialsOk: 1,
    expected: 4,
    captured: 4,
    correct: 2,
    wrong: 2,
    lost: 0,
    misattribution: 0.5,
    misattributionCI: { lo: 0.25, hi: 0.75, method: 'x' },
    capture: 0.5,
    symmetry: 1,
    truth: { writes: { correct: 0, wrong: 0, lost: 0 }, reads: { correct: 0, wrong: 0, lost: 0 }, unclassifiedReads: 0 },
    byConn: [],
    status: 'ok',
    verdict: { pass: true, expectation: 'e', reason: 'r' },
    ...over,
  }) as CellView;

const manifest = (over: Partial<Manifest> = {}): Manifest => ({
  runId: 'r1',
  tool: { commit: 'abc', dirty: false, node: 'v20' },
  startedAt: 's',
  argv: [],
  seed: 7,
  iterations: 200,
  trials: 3,
  variants: ['upstream', 'scoped'],
  modes: ['interleaved', 'sequential'],
  scenarios: ['preexisting', 'baseline'],
  targets: [],
  ...over,
});

describe('html.ts pieces', () => {
  it('cellIds: "cell-" and the key with runs of other characters as one dash; a clash numbered from 2', () => {
    const ids = cellIds([view({ reads: 'single', server: 'haproxy' }), view({ target: 'a.b', boot: 'a b/c' }), view({ target: 'a-b', boot: 'a-b-c' })]);
    expect([...ids]).toEqual([
      ['sid/preexisting/interleaved/upstream single haproxy', 'cell-sid-preexisting-interleaved-upstream-single-haproxy'],
      ['a b/c/preexisting/interleaved/upstream', 'cell-a-b-c-preexisting-interleaved-upstream'],
      ['a-b-c/preexisting/interleaved/upstream', 'cell-a-b-c-preexisting-interleaved-upstream-2'],
    ]);
    // a run of two or more such characters is one dash too
    expect([...cellIds([view({ boot: 'x..y' }), view({ boot: 'x /y' })]).values()]).toEqual([
      'cell-x-y-preexisting-interleaved-upstream',
      'cell-x-y-preexisting-interleaved-upstream-2',
    ]);
    const three = cellIds([view({ boot: 'x y' }), view({ boot: 'x-y' }), view({ boot: 'x.y' })]);
    expect([...three.values()]).toEqual([
      'cell-x-y-preexisting-interleaved-upstream',
      'cell-x-y-preexisting-interleaved-upstream-2',
      'cell-x-y-preexisting-interleaved-upstream-3',
    ]);
  });

  it.each([
    [0, 'hsl(55 85% 94%)'],
    [0.5, 'hsl(28 85% 65%)'],
    [1, 'hsl(0 85% 36%)'],
    [-1, 'hsl(55 85% 94%)'],
    [2, 'hsl(0 85% 36%)'],
  ])('rateColour(%s) is %s', (r, hsl) => {
    expect(rateColour(r)).toBe(hsl);
  });

  it('historyPoints: per run the rate, failed, or null when the run had no such cell; none without a history', () => {
    const history: History = {
      runs: [
        { runId: 'a', startedAt: '1', cells: { k: { status: 'ok', misattribution: 0.5, pass: true } } },
        { runId: 'b', startedAt: '2', cells: { k: { status: 'timeout', misattribution: null, pass: false } } },
        { runId: 'c', startedAt: '3', cells: {} },
        { runId: 'd', startedAt: '4', cells: { k: { status: 'ok', misattribution: null, pass: null } } },
      ],
    };
    expect(historyPoints(history, 'k')).toEqual([0.5, 'failed', null, null]);
    expect(historyPoints(null, 'k')).toEqual([]);
    expect(historyPoints(undefined, 'k')).toEqual([]);
  });

  it.each([
    [{ variant: 'upstream', scenario: 'preexisting', mode: 'sequential' }, INVESTIGATION[0]],
    [{ variant: 'upstream', scenario: 'preexisting', mode: 'interleaved' }, INVESTIGATION[1]],
    [{ variant: 'upstream', scenario: 'baseline', mode: 'sequential' }, INVESTIGATION[2]],
    [{ variant: 'upstream', scenario: 'baseline', mode: 'interleaved' }, INVESTIGATION[2]],
    [{ variant: 'scoped', scenario: 'preexisting', mode: 'interleaved' }, undefined],
    [{ variant: 'upstream', scenario: 'preexisting', mode: 'writes-only' }, undefined], // the investigation ran no writes-only: not its baseline either
    [{ variant: 'sp', scenario: 'preexisting', mode: 'interleaved' }, undefined],
    [{ variant: 'sp', scenario: 'preexisting', mode: 'interleaved', external: { expect: 'upstream' } }, INVESTIGATION[1]],
  ])('investigationFor(%j)', (c, inv) => {
    expect(investigationFor(c as CellView)).toBe(inv);
  });
});

describe('renderHtml', () => {
  it('the title and header: run, tool, settings, start and finish, and the counts of fine, unexpected and failed cells', () => {
    const html = renderHtml({
      manifest: manifest({ tool: { commit: 'abc', dirty: true, node: 'v20' }, finishedAt: 'f' }),
      cells: [
        view({}),
        view({ mode: 'sequential', verdict: { pass: false } as CellView['verdict'] }),
        view({ variant: 'scoped', status: 'timeout', verdict: { pass: false } as CellView['verdict'] }),
      ],
      artifacts: new Map(),
      outDir: '/r',
    });
    expect(html).toContain('<title>USM TLS attribution matrix: r1</title>');
    expect(html).toContain(
      '<header id="top"><h1>USM TLS attribution matrix: run r1</h1>\n<p>tool abc (dirty), 200 iterations x 3 trial(s), seed 7; started s, finished f.\n<b>3</b> cells: 1 fine, <span class="bad">1 NOT as expected</span>, <span class="bad">1 could not run</span>.</p>\n<nav><a href="#heatmap">heatmap</a><a href="#failures">failures</a><a href="#manifest">manifest</a></nav></header>',
    );
    const plain = renderHtml({ manifest: manifest(), cells: [view({})], artifacts: new Map(), outDir: '/r' });
    expect(plain).toContain(
      '<p>tool abc, 200 iterations x 3 trial(s), seed 7; started s.\n<b>1</b> cells: 1 fine, <span class="">0 NOT as expected</span>, <span class="">0 could not run</span>.</p>\n<nav><a href="#heatmap">heatmap</a><a href="#manifest">manifest</a></nav></header>',
    );
    expect(plain).not.toContain('<section id="failures">');
    expect(plain).not.toContain('<section id="trend">');
    expect(plain).toContain('<section id="manifest"><h2>Manifest</h2><details><summary>manifest.json</summary><pre>{\n  &quot;runId&quot;: &quot;r1&quot;,');
  });

  it('the heatmap: grouped column heads, an entry per cell (rate, interval, colour, dark above 50 %, marks), "-" where no cell, the investigation row', () => {
    const html = renderHtml({
      manifest: manifest(),
      cells: [
        view({ misattribution: 0.75, wrong: 3 }),
        view({ mode: 'sequential', misattribution: 0.5, misattributionCI: null, verdict: { pass: false } as CellView['verdict'] }),
        view({ variant: 'scoped', misattribution: null, captured: 0, wrong: 0, capture: null, verdict: { pass: null } as CellView['verdict'] }),
        view({
          target: 'jammy',
          kernel: '5.15',
          openssl: '3.0',
          status: 'boot-failed',
          error: '\nno ssh\nmore',
          verdict: { pass: false } as CellView['verdict'],
        }),
      ],
      artifacts: new Map(),
      outDir: '/r',
    });
    const table = html.slice(html.indexOf('<table class="heatmap">'), html.indexOf('<p class="legend">'));
    expect(table).toBe(
      '<table class="heatmap"><thead>' +
        '<tr><th rowspan="3">target</th><th colspan="3">preexisting</th></tr>' +
        '<tr><th colspan="2">interleaved</th><th colspan="1">sequential</th></tr>' +
        '<tr><th>upstream</th><th>scoped</th><th>upstream</th></tr>' +
        '</thead><tbody>' +
        '<tr><th>jammy<br><small>5.15, OpenSSL 3.0</small></th>' +
        '<td class="hm-cell failed" data-cell="jammy/preexisting/interleaved/upstream" data-status="boot-failed" data-verdict="false"><a href="#cell-jammy-preexisting-interleaved-upstream" title="jammy/preexisting/interleaved/upstream: boot-failed: no ssh; verdict: NOT as expected"><span class="mark">⚠</span>boot-failed</a></td>' +
        '<td class="absent">-</td><td class="absent">-</td></tr>\n' +
        '<tr><th>sid<br><small>6.9, OpenSSL 3.2</small></th>' +
        '<td class="hm-cell dark" data-cell="sid/preexisting/interleaved/upstream" data-status="ok" data-verdict="true" style="background:hsl(14 85% 51%)"><a href="#cell-sid-preexisting-interleaved-upstream" title="sid/preexisting/interleaved/upstream: misattribution 75.0 % (3 of 4), capture 50.0 %; verdict: as expected"><span class="mark">✓</span>75.0 %<small>25-75 %</small></a></td>' +
        '<td class="hm-cell na" data-cell="sid/preexisting/interleaved/scoped" data-status="ok" data-verdict="measured"><a href="#cell-sid-preexisting-interleaved-scoped" title="sid/preexisting/interleaved/scoped: misattribution n/a (0 of 0), capture n/a; verdict: measured"><span class="mark">·</span>n/a</a></td>' +
        '<td class="hm-cell unexpected" data-cell="sid/preexisting/sequential/upstream" data-status="ok" data-verdict="false" style="background:hsl(28 85% 65%)"><a href="#cell-sid-preexisting-sequential-upstream" title="sid/preexisting/sequential/upstream: misattribution 50.0 % (2 of 4), capture 50.0 %; verdict: NOT as expected"><span class="mark">✗</span>50.0 %<small>15-85 %</small></a></td></tr>\n' +
        '<tr class="investigation"><th>investigation<br><small>Vagrant VM, system-probe</small></th>' +
        `<td class="inv" title="${INVESTIGATION[1].detail}">63.9 %<small>${INVESTIGATION[1].run}</small></td><td></td>` +
        `<td class="inv" title="${INVESTIGATION[0].detail}">73.8 %<small>${INVESTIGATION[0].run}</small></td></tr>` +
        '</tbody></table>',
    );
  });

  it('no investigation row without a column it ran; a sparkline per entry with a history', () => {
    const history: History = {
      runs: [
        { runId: 'a', startedAt: '1', cells: { 'sid/preexisting/interleaved/scoped': { status: 'ok', misattribution: 0.1, pass: true } } },
        { runId: 'b', startedAt: '2', cells: { 'sid/preexisting/interleaved/scoped': { status: 'ok', misattribution: 0.2, pass: true } } },
      ],
    };
    const html = renderHtml({ manifest: manifest(), cells: [view({ variant: 'scoped' })], artifacts: new Map(), outDir: '/r', history });
    expect(html).not.toContain('<tr class="investigation">');
    expect(html).toMatch(/<span class="mark">✓<\/span>50\.0 %<small>25-75 %<\/small><svg class="spark" width="60" height="14"[^]*?<\/svg><\/a><\/td>/);
    expect(html).toContain('<small>(a, b)</small>');
  });

  it('the failures section: each row linked to its cell view, kind, error and the telling line of the tail', () => {
    const html = renderHtml({
      manifest: manifest(),
      cells: [view({ status: 'tracer-failed', error: 'e <1>' })],
      artifacts: new Map([
        ['sid/preexisting/interleaved/upstream', { dir: '/r/x', trials: [], files: [], logTail: 'a\nload failed <x>\nb', rows: [], rowsTotal: 0 }],
      ]),
      outDir: '/r',
    });
    expect(html).toContain(
      '<section id="failures"><h2>Failures</h2><table><thead><tr><th>cell</th><th>kind</th><th>error</th><th>from the log tail</th></tr></thead><tbody><tr><td><a href="#cell-sid-preexisting-interleaved-upstream">sid/preexisting/interleaved/upstream</a></td><td class="bad">tracer-failed</td><td>e &lt;1&gt;</td><td><code>load failed &lt;x&gt;</code></td></tr></tbody></table></section>',
    );
  });

  it('the trend section: the previous run, the counts, a row per change with regressions marked; no table without changes', () => {
    const trend: Trend = {
      previous: { runId: 'r0', startedAt: '' },
      current: { runId: 'r1', startedAt: '' },
      cells: 2,
      regressions: 1,
      changes: [
        { key: 'k<1>', kinds: ['verdict-flipped', 'rate-moved'], regression: true, before: 'b1', after: 'a1' },
        { key: 'k2', kinds: ['new'], regression: false, before: 'absent', after: 'a2' },
      ],
    };
    const html = renderHtml({ manifest: manifest(), cells: [view({})], artifacts: new Map(), outDir: '/r', trend });
    expect(html).toContain('<a href="#trend">trend</a><a href="#manifest">manifest</a></nav>');
    expect(html).toContain(
      '<section id="trend"><h2>Trend against r0</h2><p>1 regression(s), 2 change(s) over 2 cell(s).</p><table><thead><tr><th>cell</th><th>change</th><th>before</th><th>after</th></tr></thead><tbody><tr><td>k&lt;1&gt;</td><td class="bad">verdict-flipped, rate-moved (regression)</td><td>b1</td><td>a1</td></tr><tr><td>k2</td><td class="">new</td><td>absent</td><td>a2</td></tr></tbody></table></section>',
    );
    const none = renderHtml({ manifest: manifest(), cells: [view({})], artifacts: new Map(), outDir: '/r', trend: { ...trend, regressions: 0, changes: [] } });
    expect(none).toContain('<section id="trend"><h2>Trend against r0</h2><p>0 regression(s), 0 change(s) over 2 cell(s).</p><p>No cell changed.</p></section>');
  });
});

describe('renderHtml: the parts around the sections', () => {
  const page = (cells: CellView[], over: Partial<Manifest> = {}) => renderHtml({ manifest: manifest(over), cells, artifacts: new Map(), outDir: '/r' });

  it('the legend: a gradient of the colour scale at 0, 25, 50, 75 and 100 %, then the marks', () => {
    const html = page([view({})]);
    const legend = html.slice(html.indexOf('<p class="legend">'), html.indexOf('</p>', html.indexOf('<p class="legend">')) + 4);
    expect(legend).toBe(
      '<p class="legend"><svg width="160" height="14" role="img" aria-label="colour scale from 0 % to 100 %"><defs><linearGradient id="scale">' +
        ['0%', '25%', '50%', '75%', '100%'].map((o, i) => `<stop offset="${o}" stop-color="${rateColour(i / 4)}"/>`).join('') +
        '</linearGradient></defs><rect width="160" height="14" fill="url(#scale)"/></svg> 0 % to 100 % misattribution; ✓ as expected, <b>✗</b> NOT as expected (outlined), · measured only, ⚠ could not run (hatched); n/a: no row named a connection.</p>',
    );
  });

  it('its style shows one cell view at a time (the one the address names) and marks the heatmap entries', () => {
    const html = page([view({})]);
    const css = html.slice(html.indexOf('<style>'), html.indexOf('</style>'));
    for (const rule of [
      '.cell-view{display:none;border-top:3px solid #06c;margin-top:2em}.cell-view:target{display:block}',
      'td.hm-cell.unexpected{box-shadow:inset 0 0 0 3px #000}',
      'td.hm-cell.failed{background:repeating-linear-gradient(',
      'td.hm-cell.dark{color:#fff}td.hm-cell.na{background:#e6e6e6}',
    ])
      expect(css).toContain(rule);
  });

  it('no failures and no trend: nothing between the heatmap and the manifest but the line breaks', () => {
    expect(page([view({})])).toContain('n/a: no row named a connection.</p></section>\n\n\n<section id="manifest">');
  });

  it('two scenarios head their columns side by side; a failed cell without an error is titled by its status', () => {
    const html = page([view({}), view({ scenario: 'baseline', status: 'timeout', verdict: { pass: false } as CellView['verdict'] })]);
    expect(html).toContain('<thead><tr><th rowspan="3">target</th><th colspan="1">preexisting</th><th colspan="1">baseline</th></tr>');
    expect(html).toContain('title="sid/baseline/interleaved/upstream: timeout; verdict: NOT as expected"');
  });

  it('the counts: a cell that could not run is never also counted NOT as expected; the failures table has a row each, the cell views a line each', () => {
    const failed = { status: 'timeout', error: 'slow', verdict: { pass: false } as CellView['verdict'] } as const;
    const html = page([
      view({}),
      view({ mode: 'sequential', verdict: { pass: false } as CellView['verdict'] }),
      view({ variant: 'scoped', ...failed }),
      view({ scenario: 'baseline', ...failed }),
    ]);
    expect(html).toContain('<b>4</b> cells: 1 fine, <span class="bad">1 NOT as expected</span>, <span class="bad">2 could not run</span>.</p>');
    expect(html).toContain(
      '<td>slow</td><td><code></code></td></tr><tr><td><a href="#cell-sid-preexisting-interleaved-scoped">sid/preexisting/interleaved/scoped</a></td>',
    );
    expect(html.match(/\n<section class="cell-view" id="/g)).toHaveLength(4);
  });
});
