// The 95 % intervals against published values (scipy.stats: binomtest(...).proportion_ci(method='wilson'), t.ppf(0.975, df)).
import { describe, expect, it } from 'vitest';
import { t975, trialSpread, wilson, Z95 } from '../src/analysis/interval.ts';

describe('wilson', () => {
  it.each([
    [5, 10, 0.236593, 0.763407],
    [0, 10, 0, 0.277533],
    [10, 10, 0.722467, 1],
    [267, 418, 0.591635, 0.683349], // the investigation's interleaved figure, 63.9 %
    [810, 1098, 0.71089, 0.762863], // its sequential figure, 73.8 %
    [1, 1, 0.206549, 1],
  ])('%i of %i -> [%f, %f]', (x, n, lo, hi) => {
    const ci = wilson(x, n)!;
    expect(ci.lo).toBeCloseTo(lo, 5);
    expect(ci.hi).toBeCloseTo(hi, 5);
  });

  it('no trials: null, not [0, 1]', () => {
    expect(wilson(0, 0)).toBeNull();
  });

  it('z is the normal 0.975 quantile', () => {
    expect(Z95).toBeCloseTo(1.959964, 6);
  });
});

describe('t975', () => {
  it.each([
    [1, 12.706205],
    [2, 4.302653],
    [3, 3.182446],
    [5, 2.570582],
    [10, 2.228139],
    [29, 2.04523],
    [30, 2.042272],
    [31, 2.039513],
    [40, 2.021075],
    [60, 2.000298],
    [120, 1.97993],
    [1000, 1.962339],
  ])('df %i -> %f', (df, q) => {
    expect(t975(df)).toBeCloseTo(q, 5);
  });

  it.each([0, -1, 1.5])('rejects df %d', (df) => {
    expect(() => t975(df)).toThrow(RangeError);
  });
});

describe('trialSpread', () => {
  it.each([
    [[0.5, 0.6, 0.55], 0.55, 0.425793, 0.674207],
    [[0.5, 0.5, 0.5, 0.5], 0.5, 0.5, 0.5],
    [[0.5, 0.6], 0.55, 0, 1], // 12.7 * sd: clamped to [0, 1]
  ])('%j -> mean %f [%f, %f]', (rates, mean, lo, hi) => {
    const s = trialSpread(rates)!;
    expect(s.n).toBe(rates.length);
    expect(s.mean).toBeCloseTo(mean, 9);
    expect(s.lo).toBeCloseTo(lo, 5);
    expect(s.hi).toBeCloseTo(hi, 5);
  });

  it.each([[[]], [[0.5]]])('fewer than 2 trials (%j): null', (rates) => {
    expect(trialSpread(rates)).toBeNull();
  });
});

describe('wilson at the edges', () => {
  it('0 of n and n of n: the bound is exactly 0 or 1, so the rate lies inside its own interval (compare saw 0 % outside [8.7e-19, 1 %])', () => {
    for (const n of [1, 7, 398, 400, 1098]) {
      expect(wilson(0, n)!.lo).toBe(0);
      expect(wilson(n, n)!.hi).toBe(1);
    }
  });
});
