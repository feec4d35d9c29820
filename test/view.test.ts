// src/report/view.ts (what every cross-matrix report needs of a cell) and html-parts.ts (escaping,
// links, the sparkline) value by value.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { esc, href, sparkline } from '../src/report/html-parts.ts';
import {
  cellKey,
  colOf,
  declaredCols,
  firstLine,
  intervalOf,
  rateWithInterval,
  rowOf,
  rowsPerRequest,
  sortCells,
  tellingLine,
  verdictMark,
  type CellView,
} from '../src/report/view.ts';

describe('view.ts', () => {
  it.each([
    [{ target: 'sid' }, 'sid'],
    [{ target: 'sid', boot: 'sid-2cpu' }, 'sid-2cpu'],
  ])('rowOf(%j) is %s', (c, row) => {
    expect(rowOf(c)).toBe(row);
  });

  it.each([
    [{ variant: 'upstream' }, 'upstream'],
    [{ variant: 'upstream', reads: 'full', server: 'python' }, 'upstream'],
    [{ variant: 'upstream', reads: 'single' }, 'upstream single'],
    [{ variant: 'scoped', server: 'nginx' }, 'scoped nginx'],
    [{ variant: 'scoped', reads: 'single', server: 'haproxy' }, 'scoped single haproxy'],
  ])('colOf(%j) is %s', (c, col) => {
    expect(colOf(c)).toBe(col);
  });

  it('declaredCols: per server (python when none), per reads (full when none), the variants', () => {
    expect(declaredCols({ variants: ['upstream', 'scoped'] })).toEqual(['upstream', 'scoped']);
    expect(declaredCols({ variants: ['upstream', 'scoped'], reads: ['single', 'full'], servers: ['python', 'nginx'] })).toEqual([
      'upstream single',
      'scoped single',
      'upstream',
      'scoped',
      'upstream single nginx',
      'scoped single nginx',
      'upstream nginx',
      'scoped nginx',
    ]);
  });

  it('cellKey: boot/scenario/mode/column', () => {
    expect(cellKey({ target: 'sid', boot: 'sid-4cpu', scenario: 'baseline', mode: 'sequential', variant: 'scoped', reads: 'single', server: 'nginx' })).toBe(
      'sid-4cpu/baseline/sequential/scoped single nginx',
    );
  });

  it('sortCells: by boot, scenario, mode, then column; a copy, equal keys kept in order', () => {
    const c = (boot: string, scenario: string, mode: string, variant: string, n: number) => ({ target: 't', boot, scenario, mode, variant, n });
    const given = [
      c('b', 'a', 'a', 'a', 1),
      c('a', 'b', 'a', 'a', 2),
      c('a', 'a', 'b', 'a', 3),
      c('a', 'a', 'a', 'b', 4),
      c('a', 'a', 'a', 'a', 5),
      c('a', 'a', 'a', 'a', 6),
      c('a', 'a', 'a', 'a b', 7),
    ];
    const sorted = sortCells(given);
    expect(sorted.map((x) => x.n)).toEqual([5, 6, 7, 4, 3, 2, 1]);
    expect(given.map((x) => x.n)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(sortCells([c('b', 'a', 'a', 'a', 1), c('a', 'a', 'a', 'a', 2)]).map((x) => x.n)).toEqual([2, 1]);
  });

  it("intervalOf: the cell's own interval, else Wilson on the rows (marked so), none without rows", () => {
    expect(intervalOf({ wrong: 1, captured: 4, misattributionCI: { lo: 0.1, hi: 0.2, method: 'x' } })).toEqual({ lo: 0.1, hi: 0.2, method: 'x' });
    const w = intervalOf({ wrong: 2, captured: 4, misattributionCI: null })!;
    expect(w.method).toBe('wilson-rows');
    expect([w.lo, w.hi].map((x) => x.toFixed(3))).toEqual(['0.150', '0.850']);
    expect(intervalOf({ wrong: 0, captured: 0 })).toBeNull();
  });

  it.each([
    [{ misattribution: null, wrong: 0, captured: 0 }, 'n/a'],
    [{ misattribution: 0.5, wrong: 2, captured: 4, misattributionCI: { lo: 0.125, hi: 0.875, method: 'x' } }, '50.0 % [12.5-87.5]'],
    [{ misattribution: 0.5, wrong: 2, captured: 4 }, '50.0 % [15.0-85.0]'],
    [{ misattribution: 0.25, wrong: 0, captured: 0 }, '25.0 %'],
  ])('rateWithInterval(%j) is %s', (c, s) => {
    expect(rateWithInterval(c as CellView)).toBe(s);
  });

  it.each([
    ['ok', true, '✓'],
    ['ok', false, '✗'],
    ['ok', null, '·'],
    ['timeout', true, '⚠'],
    ['boot-failed', null, '⚠'],
  ] as const)('verdictMark(%s, %s) is %s', (status, pass, mark) => {
    expect(verdictMark({ status, verdict: { pass } } as Parameters<typeof verdictMark>[0])).toBe(mark);
  });

  it.each([
    [undefined, ''],
    ['', ''],
    ['\n  \n  second  \nthird', 'second'],
    ['only', 'only'],
  ])('firstLine(%j) is %j', (s, line) => {
    expect(firstLine(s)).toBe(line);
  });

  it.each([
    [undefined, ''],
    ['\n \n', ''],
    ['a\nb\n  c  \n\n', 'c'],
    ['start\n  libbpf: failed to load  \nError again', 'libbpf: failed to load'],
    ...[
      'fail',
      'FAILED',
      'error',
      'permission denied',
      'connection refused',
      'timeout',
      'timed out',
      'time out',
      'kernel panic',
      'cannot open',
      'unable to',
      'no such file',
      'not found',
      'Killed',
      'Oops',
    ].map((w) => [`x\n${w} here\ny`, `${w} here`] as [string, string]),
    ['errors\nterror\nnotfailing', 'notfailing'],
  ])('tellingLine(%j) is %j', (s, line) => {
    expect(tellingLine(s)).toBe(line);
  });

  it.each([
    [6, 4, 1.5],
    [3, 0, null],
    [0, 2, 0],
  ])('rowsPerRequest(%i rows, %i expected) is %s', (captured, expected, r) => {
    expect(rowsPerRequest({ captured, expected })).toBe(r);
  });
});

describe('html-parts.ts', () => {
  it.each([
    [`<a href='x' title="y">&`, '&lt;a href=&#39;x&#39; title=&quot;y&quot;&gt;&amp;'],
    [null, ''],
    [undefined, ''],
    [0, '0'],
    [false, 'false'],
  ])('esc(%j) is %j', (s, out) => {
    expect(esc(s)).toBe(out);
  });

  it('href: relative, each segment percent-encoded, then escaped', () => {
    expect(href('/r/run', join('/r/run', 'sid', 'a b#?', 'x&y.log'))).toBe('sid/a%20b%23%3F/x%26y.log');
    expect(href('/r/run/sub', '/r/other/"q".log')).toBe('../../other/%22q%22.log');
  });

  it('sparkline: nothing for fewer than two runs; a line per run of rates, a dot alone, a cross per failed run, the last rate dotted', () => {
    expect(sparkline([])).toBe('');
    expect(sparkline([0.5])).toBe('');
    expect(sparkline([0, 1])).toBe(
      '<svg class="spark" width="72" height="18" viewBox="0 0 72 18" role="img" aria-label="misattribution over the last 2 runs"><polyline points="2.0,16.0 70.0,2.0" fill="none" stroke="#333" stroke-width="1"/><circle cx="70.0" cy="2.0" r="2" fill="#b00"/></svg>',
    );
    expect(sparkline([0.5, 'failed', 0.25, null, 0.5, 1], 42, 10)).toBe(
      '<svg class="spark" width="42" height="10" viewBox="0 0 42 10" role="img" aria-label="misattribution over the last 6 runs">' +
        '<circle cx="2.0" cy="5.0" r="1.2" fill="#333"/>' +
        '<circle cx="17.2" cy="6.5" r="1.2" fill="#333"/>' +
        '<polyline points="32.4,5.0 40.0,2.0" fill="none" stroke="#333" stroke-width="1"/>' +
        '<path d="M7.6,6 l4,4 m0,-4 l-4,4" stroke="#b00" stroke-width="1"/>' +
        '<circle cx="40.0" cy="2.0" r="2" fill="#b00"/></svg>',
    );
    // a last run that failed has no dot
    expect(sparkline([0.5, 'failed'])).not.toContain('r="2"');
    // runs that did not measure a rate side by side, first and last: no empty line, a cross each, no dot
    expect(sparkline(['failed', null, 0.5, 0.25, 'failed', 'failed'], 42, 10)).toBe(
      '<svg class="spark" width="42" height="10" viewBox="0 0 42 10" role="img" aria-label="misattribution over the last 6 runs">' +
        '<polyline points="17.2,5.0 24.8,6.5" fill="none" stroke="#333" stroke-width="1"/>' +
        '<path d="M0.0,6 l4,4 m0,-4 l-4,4" stroke="#b00" stroke-width="1"/>' +
        '<path d="M30.4,6 l4,4 m0,-4 l-4,4" stroke="#b00" stroke-width="1"/>' +
        '<path d="M38.0,6 l4,4 m0,-4 l-4,4" stroke="#b00" stroke-width="1"/></svg>',
    );
  });
});
