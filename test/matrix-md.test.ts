// summary.md's first sections word for word (src/report/matrix-md.ts): the failures (one row per
// cell, or one per target when all its cells failed alike), the matrix per scenario (only the
// columns that have a cell), the detail table with its defaults; mdCell, axis and matrixEntry.
// The cells are written out by hand: every figure below is one put in.
import { describe, expect, it } from 'vitest';
import { axis, failureRows, matrixEntry, mdCell, renderDetailMd, renderFailuresMd, renderMatrixMd } from '../src/report/matrix-md.ts';
import type { CellView } from '../src/report/view.ts';

const view = (over: Partial<CellView>): CellView =>
  ({
    target: 'bookworm',
    cpus: 1,
    reads: 'full',
    variant: 'upstream',
    mode: 'interleaved',
    scenario: 'preexisting',
    kernel: '6.1',
    openssl: '3.0',
    status: 'ok',
    expected: 4,
    captured: 6,
    correct: 2,
    wrong: 3,
    lost: 1,
    backendRows: 2,
    droppedNoTuple: 7,
    misattribution: 0.5,
    misattributionCI: { lo: 0.25, hi: 0.75 },
    capture: 0.5,
    verdict: { pass: true, expectation: 'wrong rows', reason: '3 wrong rows' },
    ...over,
  }) as CellView;

const failed = (over: Partial<CellView>) =>
  view({ status: 'boot-failed', error: 'no ssh', misattribution: null, capture: null, captured: 0, wrong: 0, ...over });

describe('mdCell, axis, matrixEntry', () => {
  it.each([
    ['a & b', 'a &amp; b'],
    ['&lt;', '&amp;lt;'],
    ['<b>x</b>', '&lt;b&gt;x&lt;/b&gt;'],
    ['a|b|c', 'a\\|b\\|c'],
    ['a\r\n\nb\nc', 'a b c'],
  ])('mdCell(%j) is %j', (s, md) => {
    expect(mdCell(s)).toBe(md);
  });

  it.each([
    [
      ['b', 'a'],
      ['a', 'b', 'c'],
      ['b', 'a', 'c'],
    ],
    [
      ['b', 'x', 'a'],
      ['a', 'b'],
      ['b', 'a'],
    ],
    [undefined, ['c', 'a'], ['c', 'a']],
    [['a'], [], []],
  ])('axis(%j, %j) is %j', (declared, seen, out) => {
    expect(axis(declared, seen)).toEqual(out);
  });

  it.each([
    [undefined, '-'],
    [failed({}), '⚠ boot-failed'],
    [view({}), '✓ 50.0 % [25.0-75.0], capture 50.0 %'],
    [view({ verdict: { pass: false } as CellView['verdict'], capture: null }), '✗ 50.0 % [25.0-75.0], capture n/a'],
    [view({ verdict: { pass: null } as CellView['verdict'] }), '· 50.0 % [25.0-75.0], capture 50.0 %'],
  ])('matrixEntry of %# is %j', (c, entry) => {
    expect(matrixEntry(c)).toBe(entry);
  });
});

describe('the failures', () => {
  it('a target whose cells all failed alike is one row; cells that failed otherwise are one row each, in report order, with the telling line of their tail', () => {
    const cells = [
      view({ target: 'local' }),
      failed({ target: 'local', mode: 'sequential', status: 'tracer-failed', error: '\n  tracer exited 1\nsee log' }),
      failed({ target: 'sid', variant: 'scoped' }),
      failed({ target: 'sid' }),
      failed({ target: 'trixie', error: 'a' }),
      failed({ target: 'trixie', variant: 'scoped', error: 'b' }),
      failed({ target: 'jammy' }),
    ];
    const tails = new Map([
      ['sid/preexisting/interleaved/scoped', 'booting\nerror: no|route <here>\nlast'],
      ['local/preexisting/sequential/upstream', 'loading\nstill loading'],
      ['trixie/preexisting/interleaved/upstream', 'x'],
    ]);
    expect(failureRows(cells, tails).map(({ first, ...r }) => [first.target, r])).toEqual([
      ['jammy', { what: 'jammy/preexisting/interleaved/upstream', kind: 'boot-failed', error: 'no ssh', line: '' }],
      ['local', { what: 'local/preexisting/sequential/upstream', kind: 'tracer-failed', error: 'tracer exited 1', line: 'still loading' }],
      ['sid', { what: 'sid (all 2 cells)', kind: 'boot-failed', error: 'no ssh', line: 'error: no|route <here>' }],
      ['trixie', { what: 'trixie/preexisting/interleaved/scoped', kind: 'boot-failed', error: 'b', line: '' }],
      ['trixie', { what: 'trixie/preexisting/interleaved/upstream', kind: 'boot-failed', error: 'a', line: 'x' }],
    ]);
    expect(renderFailuresMd(cells, tails)).toEqual([
      '## Failures',
      '',
      '6 cell(s) could not run.',
      '',
      '| cell | kind | error | from the log tail |',
      '|---|---|---|---|',
      '| jammy/preexisting/interleaved/upstream | boot-failed | no ssh |  |',
      '| local/preexisting/sequential/upstream | tracer-failed | tracer exited 1 | still loading |',
      '| sid (all 2 cells) | boot-failed | no ssh | error: no\\|route &lt;here&gt; |',
      '| trixie/preexisting/interleaved/scoped | boot-failed | b |  |',
      '| trixie/preexisting/interleaved/upstream | boot-failed | a | x |',
      '',
    ]);
  });

  it('cells of one target that failed with other statuses are rows of their own', () => {
    const rows = failureRows([failed({ target: 'sid' }), failed({ target: 'sid', variant: 'scoped', status: 'boot-timeout' })], new Map());
    expect(rows.map((r) => r.what)).toEqual(['sid/preexisting/interleaved/scoped', 'sid/preexisting/interleaved/upstream']);
  });

  it('no failed cell, no section', () => {
    expect(renderFailuresMd([view({})], new Map())).toEqual([]);
  });
});

describe('the matrix', () => {
  it('one table per scenario in the declared order, the columns that have a cell (variant x mode), a row per boot with its kernel and OpenSSL', () => {
    const cells = [
      view({ target: 'sid', kernel: '6.9|x', openssl: '3.1' }),
      view({ target: 'sid', variant: 'scoped', mode: 'sequential', verdict: { pass: false } as CellView['verdict'] }),
      view({ target: 'bookworm', boot: 'bookworm-2cpu', cpus: 2, reads: 'single', server: 'haproxy' }),
      failed({ target: 'bookworm', boot: 'bookworm-2cpu', scenario: 'baseline', variant: 'extra' }),
    ];
    const md = renderMatrixMd(
      {
        variants: ['scoped', 'upstream', 'unused'],
        modes: ['sequential', 'interleaved'],
        scenarios: ['preexisting', 'baseline', 'none'],
        reads: ['full', 'single'],
        servers: ['python', 'haproxy'],
      },
      cells,
    );
    expect(md).toEqual([
      '## Matrix',
      '',
      'Misattribution (wrong / captured rows) with its 95 % interval, capture; ✓ as expected, ✗ NOT as expected, · measured only, ⚠ the cell could not run.',
      '',
      '### preexisting',
      '',
      '| target | scoped sequential | upstream interleaved | upstream single haproxy interleaved |',
      '|---|---|---|---|',
      '| bookworm-2cpu (6.1, OpenSSL 3.0) | - | - | ✓ 50.0 % [25.0-75.0], capture 50.0 % |',
      '| sid (6.9\\|x, OpenSSL 3.1) | ✗ 50.0 % [25.0-75.0], capture 50.0 % | ✓ 50.0 % [25.0-75.0], capture 50.0 % | - |',
      '',
      '### baseline',
      '',
      '| target | extra interleaved |',
      '|---|---|',
      '| bookworm-2cpu (6.1, OpenSSL 3.0) | ⚠ boot-failed |',
      '| sid (6.9\\|x, OpenSSL 3.1) | - |',
      '',
    ]);
  });

  it('without a declared axis: the cells give the scenarios, modes and columns, python and full reads assumed', () => {
    const md = renderMatrixMd({ variants: [], modes: [], scenarios: [] }, [view({ mode: 'sequential' }), view({ scenario: 'baseline', variant: 'scoped' })]);
    expect(md.slice(4)).toEqual([
      '### baseline',
      '',
      '| target | scoped interleaved |',
      '|---|---|',
      '| bookworm (6.1, OpenSSL 3.0) | ✓ 50.0 % [25.0-75.0], capture 50.0 % |',
      '',
      '### preexisting',
      '',
      '| target | upstream sequential |',
      '|---|---|',
      '| bookworm (6.1, OpenSSL 3.0) | ✓ 50.0 % [25.0-75.0], capture 50.0 % |',
      '',
    ]);
  });
});

describe('the matrix of a summary without kernel or OpenSSL', () => {
  it('puts ? for them', () => {
    const c = view({});
    delete (c as Partial<CellView>).kernel;
    delete (c as Partial<CellView>).openssl;
    expect(renderMatrixMd({ variants: ['upstream'], modes: ['interleaved'], scenarios: ['preexisting'] }, [c])).toContain(
      '| bookworm (?, OpenSSL ?) | ✓ 50.0 % [25.0-75.0], capture 50.0 % |',
    );
  });
});

describe('the detail table', () => {
  it('a row per cell in report order, with the defaults of an older cell (1 vCPU, python, full, no backend rows)', () => {
    const old = view({
      target: 'a<b>',
      mode: 'sequential',
      expected: 0,
      droppedNoTuple: null,
      status: 'timeout',
      verdict: { pass: null } as CellView['verdict'],
    });
    for (const k of ['cpus', 'server', 'reads', 'backendRows'] as const) delete (old as Partial<CellView>)[k];
    const md = renderDetailMd([view({ server: 'haproxy', reads: 'single', cpus: 4, openssl: 'x|y' }), old]);
    expect(md).toEqual([
      '## Cells',
      '',
      "rows/req: rows per request sent (about 2 with full reads, about 1 with single reads). backend: rows naming a request of the run on a tuple of no client connection (a terminator's backend side); no tuple: buffers the tracer dropped for lack of a tuple.",
      '',
      '| target | vCPUs | kernel | OpenSSL | server | reads | scenario | mode | variant | expected | rows | rows/req | correct | wrong | lost | backend | no tuple | misattribution | capture | status | verdict |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
      '| a&lt;b&gt; | 1 | 6.1 | 3.0 | python | full | preexisting | sequential | upstream | 0 | 6 | n/a | 2 | 3 | 1 | 0 | n/a | 50.0 % [25.0-75.0] | 50.0 % | timeout | measured |',
      '| bookworm | 4 | 6.1 | x\\|y | haproxy | single | preexisting | interleaved | upstream | 4 | 6 | 1.50 | 2 | 3 | 1 | 2 | 7 | 50.0 % [25.0-75.0] | 50.0 % | ok | as expected |',
      '',
    ]);
  });
});
