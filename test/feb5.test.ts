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
