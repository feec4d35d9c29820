// The Feb 5 comparison table: the investigation's figures as its own script computes them, ours
// beside them, and the 10-pp test on both sides of the edge.
import { describe, expect, it } from 'vitest';
import { FEB5, feb5Rows, renderFeb5Md, type Feb5Cell } from '../src/report/feb5.ts';

function cell(over: Partial<Feb5Cell> & { rights: [number, number]; wrongs: [number, number] }): Feb5Cell {
  const { rights, wrongs, ...rest } = over;
  const captured = rights[0] + rights[1] + wrongs[0] + wrongs[1];
  return {
    target: 'bookworm',
    kernel: '6.1.0',
    cpus: 1,
    reads: 'single',
    variant: 'upstream',
    mode: 'interleaved',
    scenario: 'preexisting',
    status: 'ok',
    expected: 400,
    captured,
    wrong: wrongs[0] + wrongs[1],
    trials: 5,
    misattribution: (wrongs[0] + wrongs[1]) / captured,
    misattributionCI: { lo: 0.5, hi: 0.7 },
    byConn: [
      { k: 1, rightRows: rights[0], wrongRows: wrongs[0] },
      { k: 2, rightRows: rights[1], wrongRows: wrongs[1] },
    ],
    ...rest,
  };
}

describe('feb5Rows', () => {
  it("computes the investigation's own rates per row, as its script does (73.8 % and 63.9 %, not 81 %)", () => {
    const [seq, inter] = feb5Rows([]);
    expect(seq!.rows[0]!.rows).toBe(1098);
    expect(seq!.rows[0]!.rate).toBeCloseTo(810 / 1098, 6);
    expect(seq!.rows[0]!.rowsPerRequest).toBeCloseTo(1.098, 6);
    expect(inter!.rows[0]!.rows).toBe(418);
    expect(inter!.rows[0]!.rate).toBeCloseTo(267 / 418, 6);
    expect(inter!.rows[0]!.within).toBeNull();
  });

  it('puts conn<k> wrong where the investigation does: rows naming conn k on the other port', () => {
    const [, inter] = feb5Rows([cell({ rights: [60, 80], wrongs: [130, 140] })]);
    const r = inter!.rows[1]!;
    expect([r.conn1Right, r.conn1Wrong, r.conn2Wrong, r.conn2Right]).toEqual([60, 130, 140, 80]);
    expect(r.rows).toBe(410);
    expect(r.rowsPerRequest).toBeCloseTo(410 / 400, 6);
  });

  it('says within 10 pp on both sides of the edge', () => {
    const target = 267 / 418;
    // 1000 rows: wrong = round((target -+ x) * 1000)
    const mk = (wrong: number) => cell({ rights: [(1000 - wrong) / 2, (1000 - wrong) / 2], wrongs: [wrong / 2, wrong / 2] });
    const near = Math.round(((target - 0.09) * 1000) / 2) * 2;
    const far = Math.round(((target - 0.12) * 1000) / 2) * 2;
    const [, inter] = feb5Rows([mk(near), mk(far)]);
    const within = inter!.rows.slice(1).map((r) => [Math.round(r.rate! * 1000), r.within]);
    expect(within).toContainEqual([near, true]);
    expect(within).toContainEqual([far, false]);
  });

  it("does not hold a fix variant to the bug's figure", () => {
    const [, inter] = feb5Rows([cell({ rights: [200, 200], wrongs: [0, 0], variant: 'scoped' })]);
    expect(inter!.rows[1]!.rate).toBe(0);
    expect(inter!.rows[1]!.within).toBeNull();
  });

  it('matches only pre-existing cells of its mode, and a failed cell has no rate', () => {
    const rows = feb5Rows([
      cell({ rights: [1, 1], wrongs: [1, 1], scenario: 'baseline' }),
      cell({ rights: [1, 1], wrongs: [1, 1], mode: 'sequential', status: 'tracer-failed' }),
    ]);
    expect(rows[1]!.rows).toHaveLength(1); // interleaved: only the investigation's row
    expect(rows[0]!.rows).toHaveLength(2);
    expect(rows[0]!.rows[1]!.rate).toBeNull();
    expect(rows[0]!.rows[1]!.within).toBeNull();
  });
});

describe('renderFeb5Md', () => {
  it('is empty without a matching cell, and a table per mode with one', () => {
    expect(renderFeb5Md([])).toBe('');
    const md = renderFeb5Md([cell({ rights: [67, 84], wrongs: [133, 134] })]);
    expect(md).toContain('### interleaved');
    expect(md).not.toContain('### sequential');
    expect(md).toContain('| the investigation (interleaved, v2 client, 200 iterations, Vagrant VM) | 67 | 133 | 134 | 84 | 418 | 1.04 | 63.9 % | - |');
    expect(md).toMatch(
      /\| bookworm 6\.1\.0, 1 vCPU, upstream, reads single, 5 trial\(s\) \| 67 \| 133 \| 134 \| 84 \| 418 \| 1\.04 \| 63\.9 % \[50\.0 %, 70\.0 %\] \| yes \|/,
    );
  });

  it('keeps the figures it quotes equal to the investigation document', () => {
    expect(FEB5.map((f) => f.conn1Right + f.conn1Wrong + f.conn2Wrong + f.conn2Right)).toEqual([1098, 418]);
  });
});

describe('feb5Rows: which cells, in which order, named how', () => {
  it.each([
    ['three connections', { byConn: [1, 2, 3].map((k) => ({ k, rightRows: 1, wrongRows: 1 })) }],
    ['a terminator (nginx)', { server: 'nginx' }],
    ['a baseline cell', { scenario: 'baseline' }],
    ['another mode', { mode: 'sequential' }],
  ] as const)('leaves out %s', (_, over) => {
    const [, inter] = feb5Rows([cell({ rights: [1, 1], wrongs: [1, 1], ...over })]);
    expect(inter!.rows).toHaveLength(1);
  });

  it('keeps a python cell named as such, and one with no server named', () => {
    const [, inter] = feb5Rows([cell({ rights: [1, 1], wrongs: [1, 1], server: 'python' }), cell({ rights: [1, 1], wrongs: [1, 1] })]);
    expect(inter!.rows).toHaveLength(3);
  });

  it('orders our rows by variant, reads, target and vCPUs, whatever the order of the cells', () => {
    const mk = (variant: string, reads: string, target: string, cpus: number) => cell({ rights: [1, 1], wrongs: [1, 1], variant, reads, target, cpus });
    const given = [
      mk('upstream', 'single', 'jammy', 2),
      mk('scoped', 'single', 'jammy', 1),
      mk('upstream', 'full', 'jammy', 1),
      mk('upstream', 'single', 'bookworm', 4),
      mk('upstream', 'single', 'jammy', 1),
    ];
    const [, inter] = feb5Rows(given);
    expect(inter!.rows.slice(1).map((r) => r.who.split(',').slice(0, 4).join(','))).toEqual([
      'jammy 6.1.0, 1 vCPU, scoped, reads single',
      'jammy 6.1.0, 1 vCPU, upstream, reads full',
      'bookworm 6.1.0, 4 vCPU, upstream, reads single',
      'jammy 6.1.0, 1 vCPU, upstream, reads single',
      'jammy 6.1.0, 2 vCPU, upstream, reads single',
    ]);
  });

  it.each([
    [{}, 'bookworm 6.1.0, 1 vCPU, upstream, reads single, 5 trial(s)'],
    [{ cpus: 2 }, 'bookworm 6.1.0, 2 vCPU, upstream, reads single, 5 trial(s)'],
    [{ cpus: undefined }, 'bookworm 6.1.0, 1 vCPU, upstream, reads single, 5 trial(s)'],
    [{ reads: undefined }, 'bookworm 6.1.0, 1 vCPU, upstream, reads full, 5 trial(s)'],
    [{ client: 'race.c' }, 'bookworm 6.1.0, 1 vCPU, upstream, client race.c, 5 trial(s)'],
    [{ status: 'tracer-failed', trials: 0 }, 'bookworm 6.1.0, 1 vCPU, upstream, reads single, 0 trial(s) (tracer-failed)'],
  ] as const)('names the cell %o as %s', (over, who) => {
    const [, inter] = feb5Rows([cell({ rights: [1, 1], wrongs: [1, 1], ...over })]);
    expect(inter!.rows[1]!.who).toBe(who);
  });

  it('counts a rate exactly 10 pp off as within, however the subtraction rounds', () => {
    // the investigation's interleaved rate plus 0.1 comes back 0.09999999999999998 off; one
    // 1e-12 less slack and it would still be within, but not without the slack's sign
    const target = 267 / 418;
    for (const rate of [target + 0.1, target - 0.1]) {
      const [, inter] = feb5Rows([cell({ rights: [1, 1], wrongs: [1, 1], misattribution: rate })]);
      expect(inter!.rows[1]!.within).toBe(true);
    }
    const [, inter] = feb5Rows([cell({ rights: [1, 1], wrongs: [1, 1], misattribution: target + 0.1 + 2e-12 })]);
    expect(inter!.rows[1]!.within).toBe(false);
  });

  it('takes a missing connection as no rows, and an external tracer by what it is expected to behave as', () => {
    const c = cell({ rights: [1, 1], wrongs: [1, 1], misattribution: 267 / 418 });
    const [, inter] = feb5Rows([
      {
        ...c,
        byConn: [
          { k: 1, rightRows: 3, wrongRows: 4 },
          { k: 3, rightRows: 9, wrongRows: 9 },
        ],
      },
      { ...c, variant: 'ebpf-thing', external: { expect: 'upstream' } },
      { ...c, variant: 'ebpf-other', external: { expect: null } },
    ]);
    const rows = inter!.rows.slice(1);
    expect(rows.map((r) => [r.who.split(', ')[2], r.conn1Right, r.conn1Wrong, r.conn2Wrong, r.conn2Right, r.within])).toEqual([
      ['ebpf-other', 1, 1, 1, 1, null],
      ['ebpf-thing', 1, 1, 1, 1, true],
      ['upstream', 3, 4, 0, 0, true],
    ]);
  });
});

describe('renderFeb5Md: the whole section', () => {
  it('writes its heading, its note, a table per mode and a blank line after each, word for word', () => {
    const md = renderFeb5Md([
      cell({ rights: [60, 80], wrongs: [130, 140] }),
      cell({ rights: [1, 1], wrongs: [1, 1], mode: 'sequential', status: 'timeout', misattribution: null, misattributionCI: null, expected: 0, trials: 2 }),
      cell({ rights: [100, 100], wrongs: [0, 0], misattribution: 0.9, misattributionCI: null, variant: 'zz' }),
    ]);
    const head = '| run | conn1 right | conn1 wrong | conn2 wrong | conn2 right | rows | rows / request | misattribution | within 10 pp |';
    expect(md).toBe(
      [
        "## The Feb 5 comparison (the investigation's table beside ours)",
        '',
        `Rates are wrong rows / rows naming a connection, as the investigation's script counts them; the interval is 95 % Wilson over the pooled rows; "within 10 pp" compares our rate with the investigation's.`,
        '',
        '### sequential',
        '',
        head,
        '|---|---|---|---|---|---|---|---|---|',
        '| the investigation (sequential, v1 client, 500 iterations) | 138 | 408 | 402 | 150 | 1098 | 1.10 | 73.8 % | - |',
        '| bookworm 6.1.0, 1 vCPU, upstream, reads single, 2 trial(s) (timeout) | 1 | 1 | 1 | 1 | 4 | n/a | n/a | - |',
        '',
        '### interleaved',
        '',
        head,
        '|---|---|---|---|---|---|---|---|---|',
        '| the investigation (interleaved, v2 client, 200 iterations, Vagrant VM) | 67 | 133 | 134 | 84 | 418 | 1.04 | 63.9 % | - |',
        '| bookworm 6.1.0, 1 vCPU, upstream, reads single, 5 trial(s) | 60 | 130 | 140 | 80 | 410 | 1.02 | 65.9 % [50.0 %, 70.0 %] | yes |',
        '| bookworm 6.1.0, 1 vCPU, zz, reads single, 5 trial(s) | 100 | 0 | 0 | 100 | 200 | 0.50 | 90.0 % | - |',
        '',
      ].join('\n'),
    );
  });

  it("says no when our upstream rate is more than 10 pp from the investigation's", () => {
    const md = renderFeb5Md([cell({ rights: [100, 100], wrongs: [0, 0], misattributionCI: null })]);
    expect(md).toContain('| bookworm 6.1.0, 1 vCPU, upstream, reads single, 5 trial(s) | 100 | 0 | 0 | 100 | 200 | 0.50 | 0.0 % | no |\n');
  });
});
