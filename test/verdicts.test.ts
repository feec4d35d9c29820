// verdictFor branch by branch, with its exact words (issue 14: the reasons and conditions that
// survived mutation), and the cell's per-connection order.
import { describe, expect, it } from 'vitest';
import { summarizeCell, type TrialResult } from '../src/analysis/cell.ts';
import type { CellId } from '../src/domain.ts';

type A = NonNullable<TrialResult['attribution']>;
const trial = (o: Partial<A> & { writes?: A['truth']['writes'] } = {}): TrialResult => ({
  trial: 1,
  status: 'ok',
  attribution: {
    expected: 100,
    captured: 100,
    correct: 100,
    wrong: 0,
    lost: 0,
    backendRows: 0,
    capturedRequests: 100,
    byConn: [],
    truth: { writes: o.writes ?? { correct: 0, wrong: 0, lost: 100 }, reads: { correct: 0, wrong: 0, lost: 100 } },
    ...o,
  },
});
const id = (variant: CellId['variant'], scenario: CellId['scenario'] = 'preexisting', reads: CellId['reads'] = 'full'): CellId => ({
  target: 't',
  cpus: 1,
  reads,
  variant,
  mode: 'interleaved',
  scenario,
});
const v = (i: CellId, t: TrialResult, facts: { client?: string } = {}) => summarizeCell(i, facts, [t]).verdict;

describe('verdicts, word for word', () => {
  it('a cell that did not run', () => {
    expect(summarizeCell(id('upstream'), {}, [{ trial: 1, status: 'boot-failed', error: 'no SSH' }]).verdict).toEqual({
      pass: false,
      expectation: 'cell runs',
      reason: 'boot-failed: no SSH',
    });
    expect(summarizeCell(id('upstream'), {}, [{ trial: 1, status: 'boot-failed' }]).verdict.reason).toBe('boot-failed');
  });
  it('baseline: nothing wrong, backend tuples included', () => {
    expect(v(id('upstream', 'baseline'), trial({ captured: 80 }))).toEqual({ pass: true, expectation: 'no wrong rows', reason: '0 wrong of 80 rows' });
    expect(v(id('upstream', 'baseline'), trial({ wrong: 2, backendRows: 3 }))).toEqual({
      pass: false,
      expectation: 'no wrong rows',
      reason: '2 wrong of 100 rows, 3 on backend tuples',
    });
    expect(v(id('scoped', 'baseline'), trial({ backendRows: 1 })).pass).toBe(false);
  });
  it('upstream: wrong rows or backend rows reproduce the race', () => {
    expect(v(id('upstream'), trial({ wrong: 4 }))).toEqual({ pass: true, expectation: 'race reproduced (wrong rows)', reason: '4 wrong of 100 rows' });
    expect(v(id('upstream'), trial({ backendRows: 5 }))).toEqual({
      pass: true,
      expectation: 'race reproduced (wrong rows)',
      reason: '0 wrong of 100 rows, 5 on backend tuples',
    });
    expect(v(id('upstream'), trial())).toEqual({ pass: false, expectation: 'race reproduced (wrong rows)', reason: 'no wrong rows (100 rows)' });
  });
  it("no-fallback: nothing wrong and none of the client's writes seen (right or wrong)", () => {
    expect(v(id('no-fallback'), trial())).toEqual({
      pass: true,
      expectation: 'no wrong rows, client requests not captured',
      reason: '0 wrong, 0 client writes seen',
    });
    expect(v(id('no-fallback'), trial({ writes: { correct: 1, wrong: 1, lost: 98 } }))).toEqual({
      pass: false,
      expectation: 'no wrong rows, client requests not captured',
      reason: '0 wrong rows, 2 client writes seen',
    });
    expect(v(id('no-fallback'), trial({ wrong: 1, backendRows: 2 })).reason).toBe('1 wrong rows, 2 on backend tuples, 0 client writes seen');
    expect(v(id('no-fallback'), trial({ wrong: 1 }))).toMatchObject({ pass: false, reason: '1 wrong rows, 0 client writes seen' });
    // rows on backend tuples alone fail it: a fix puts none there either
    expect(v(id('no-fallback'), trial({ backendRows: 2 }))).toMatchObject({ pass: false, reason: '0 wrong rows, 2 on backend tuples, 0 client writes seen' });
  });
  it('scoped, full reads: nothing wrong and capture >= 95 % (exactly 95 % passes); no capture counts as 0', () => {
    expect(v(id('scoped'), trial({ capturedRequests: 95 }))).toEqual({
      pass: true,
      expectation: 'no wrong rows, capture >= 95 %',
      reason: '0 wrong, capture 95.0 %',
    });
    expect(v(id('scoped'), trial({ capturedRequests: 94 }))).toEqual({
      pass: false,
      expectation: 'no wrong rows, capture >= 95 %',
      reason: '0 wrong rows, capture 94.0 %',
    });
    expect(v(id('scoped'), trial({ backendRows: 1 })).reason).toBe('0 wrong rows, 1 on backend tuples, capture 100.0 %');
    expect(v(id('scoped'), trial({ expected: 0, captured: 0, correct: 0, capturedRequests: 0 })).reason).toBe('0 wrong rows, capture 0.0 %');
  });
  it("scoped, single reads: nothing wrong and >= 95 % of the client's writes on their connection; none expected is 0 %", () => {
    const expectation = "no wrong rows, >= 95 % of the client's writes on their connection";
    expect(v(id('scoped', 'preexisting', 'single'), trial({ capturedRequests: 70, writes: { correct: 95, wrong: 0, lost: 5 } }))).toEqual({
      pass: true,
      expectation,
      reason: '0 wrong, client writes 95.0 %, capture 70.0 %',
    });
    expect(v(id('scoped', 'preexisting', 'single'), trial({ writes: { correct: 94, wrong: 0, lost: 6 } }))).toEqual({
      pass: false,
      expectation,
      reason: '0 wrong rows, client writes 94.0 %',
    });
    expect(v(id('scoped', 'preexisting', 'single'), trial({ expected: 0, writes: { correct: 0, wrong: 0, lost: 0 } })).reason).toBe(
      '0 wrong rows, client writes 0.0 %',
    );
    expect(v(id('scoped', 'preexisting', 'single'), trial({ backendRows: 1, writes: { correct: 100, wrong: 0, lost: 0 } }))).toMatchObject({
      pass: false,
      reason: '0 wrong rows, 1 on backend tuples, client writes 100.0 %',
    });
  });
  it('recv-hook: measured only', () => {
    expect(v(id('recv-hook'), trial({ wrong: 7, backendRows: 1 }))).toEqual({
      pass: null,
      expectation: 'measured (the race extends to reads)',
      reason: '7 wrong of 100 rows, 1 on backend tuples',
    });
  });
  it('your own client: a fix on the rows alone; upstream and recv-hook as for ours', () => {
    expect(v(id('scoped'), trial({ capturedRequests: 50 }), { client: 'c.c' })).toEqual({
      pass: true,
      expectation: 'no wrong rows (your client: rows only)',
      reason: '0 wrong of 100 rows, capture 50.0 %',
    });
    expect(v(id('no-fallback'), trial({ wrong: 1, backendRows: 2 }), { client: 'c.c' })).toEqual({
      pass: false,
      expectation: 'no wrong rows (your client: rows only)',
      reason: '1 wrong of 100 rows, 2 on backend tuples',
    });
    expect(v(id('scoped'), trial({ backendRows: 2 }), { client: 'c.c' })).toMatchObject({ pass: false, reason: '0 wrong of 100 rows, 2 on backend tuples' });
    expect(v(id('upstream'), trial({ wrong: 1 }), { client: 'c.c' }).expectation).toBe('race reproduced (wrong rows)');
    expect(v(id('recv-hook'), trial(), { client: 'c.c' }).pass).toBeNull();
  });
});

describe("a cell's connections", () => {
  it('are in connection order, summed over the trials, whatever order the trials list them in', () => {
    const t = (k1: number, k2: number): TrialResult =>
      trial({
        byConn: [
          { k: 2, rport: 18002, rightRows: k2, wrongRows: 1 },
          { k: 1, rport: 18001, rightRows: k1, wrongRows: 2 },
        ],
      });
    const c = summarizeCell(id('upstream'), {}, [t(3, 4), t(5, 6)]);
    expect(c.byConn).toEqual([
      { k: 1, rport: 18001, rightRows: 8, wrongRows: 4 },
      { k: 2, rport: 18002, rightRows: 10, wrongRows: 2 },
    ]);
  });
});
