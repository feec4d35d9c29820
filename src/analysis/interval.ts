// 95 % intervals for a cell's misattribution rate. The quantiles come from jstat (a well-kept
// statistics library: normal and Student-t inverses); the Wilson interval is its closed form on
// top (tested against published values in test/interval.test.ts).
// - wilson(): the Wilson score interval of the pooled rows. It treats rows as independent
//   Bernoulli trials, which they are not (a permanent swap makes a trial's rows move together),
//   so it is the narrow, within-run view.
// - trialSpread(): a t interval of the per-trial rates, the honest view of run-to-run variation.
import jstat from 'jstat';

const { jStat } = jstat;

export interface Interval {
  lo: number;
  hi: number;
}

export interface Spread extends Interval {
  mean: number;
  n: number;
}

/** The 0.975 quantile of the standard normal. */
export const Z95 = jStat.normal.inv(0.975, 0, 1);

/** Wilson score interval for x successes of n; null when n is 0. */
export function wilson(x: number, n: number, z = Z95): Interval | null {
  if (!(n > 0)) return null;
  const p = x / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  // At x = 0 (x = n) the bound is 0 (1) exactly; the float sum left 8.7e-19 at 0 of 398, and a
  // rate of 0 then lay outside its own interval (report compare called two equal cells 'rate-moved').
  return { lo: x === 0 ? 0 : clamp01(center - half), hi: x === n ? 1 : clamp01(center + half) };
}

/** Student's t 0.975 quantile for df degrees of freedom. */
export function t975(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new RangeError(`t975: df must be a positive integer, got ${df}`);
  return jStat.studentt.inv(0.975, df);
}

/** Mean and t-based 95 % interval of per-trial rates (clamped to [0, 1]); null with fewer than 2. */
export function trialSpread(rates: readonly number[]): Spread | null {
  const n = rates.length;
  if (n < 2) return null;
  const mean = rates.reduce((s, r) => s + r, 0) / n;
  const sd = Math.sqrt(rates.reduce((s, r) => s + (r - mean) ** 2, 0) / (n - 1));
  const half = (t975(n - 1) * sd) / Math.sqrt(n);
  return { mean, lo: clamp01(mean - half), hi: clamp01(mean + half), n };
}

function clamp01(x: number): number {
  return Math.min(1, Math.max(0, x));
}
