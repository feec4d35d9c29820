// 95 % intervals for a cell's misattribution rate.
//
// Hand-written on purpose: neither jstat nor simple-statistics is in the shared node_modules, and
// both formulas are short closed forms (tested against published values in test/interval.test.ts).
// - wilson(): the Wilson score interval of the pooled rows. It treats rows as independent
//   Bernoulli trials, which they are not (a permanent swap makes a trial's rows move together),
//   so it is the narrow, within-run view.
// - trialSpread(): a t interval of the per-trial rates, the honest view of run-to-run variation.

export interface Interval {
  lo: number;
  hi: number;
}

export interface Spread extends Interval {
  mean: number;
  n: number;
}

/** The 0.975 quantile of the standard normal. */
export const Z95 = 1.959963984540054;

/** Wilson score interval for x successes of n; null when n is 0. */
export function wilson(x: number, n: number, z = Z95): Interval | null {
  if (!(n > 0)) return null;
  const p = x / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return { lo: clamp01(center - half), hi: clamp01(center + half) };
}

/** Student's t 0.975 quantiles for df 1..30. */
const T975 = [
  12.706204736, 4.30265273, 3.182446305, 2.776445105, 2.570581836, 2.446911851, 2.364624252, 2.306004135, 2.262157163, 2.228138852, 2.20098516, 2.17881283,
  2.160368656, 2.144786688, 2.131449546, 2.119905299, 2.109815578, 2.10092204, 2.093024054, 2.085963447, 2.079613845, 2.073873068, 2.06865761, 2.063898562,
  2.059538553, 2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456,
];

/** t(0.975, df): the table up to 30, then the Cornish-Fisher expansion around the normal (error < 1e-7 there). */
export function t975(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new RangeError(`t975: df must be a positive integer, got ${df}`);
  if (df <= T975.length) return T975[df - 1]!;
  const z = Z95;
  const g1 = (z ** 3 + z) / 4;
  const g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96;
  const g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384;
  const g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160;
  return z + g1 / df + g2 / df ** 2 + g3 / df ** 3 + g4 / df ** 4;
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
