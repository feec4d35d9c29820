// Trials -> one cell: sums over the trials that ran, a status that names what failed, and
// the verdict against what MODEL.md expects of the variant.
import type { FailureKind } from '../errors.ts';
import type { TrialAttribution, PathCounts } from './attribution.ts';
import { symmetry } from './attribution.ts';
import type { TracerMeta, TracerStats } from './events.ts';
import { trialSpread, wilson, type Interval, type Spread } from './interval.ts';
import { zeroCounters, type HttpCounters } from './transactions.ts';
import { VARIANTS, type CellId, type Phase, type Variant } from '../domain.ts';

export type Status = 'ok' | Exclude<FailureKind, 'config'>;

export interface TrialResult {
  trial: number;
  status: Status;
  error?: string;
  attribution?: TrialAttribution;
  incompleteRequests?: number;
  orphanResponses?: number;
  /** The HTTP layer's counters: what was enqueued, joined, dropped and why (transactions.ts). */
  http?: HttpCounters;
  /** The debug query time the joiner used. */
  queryTime?: QueryTime;
  tracerMeta?: TracerMeta | null;
  tracerStats?: TracerStats | null;
  clientOk?: number;
  clientFail?: number;
  durationMs?: number;
  /** Wall time of each step of the run protocol, analysis last (domain.ts PHASES). */
  phases?: Phase[];
  /** What the run protocol noticed without failing the trial (e.g. the target's servers restarted). */
  notes?: string[];
}

export interface QueryTime {
  ns: number | null;
  /** endpoint: an external tracer's debug endpoint chose it (its own clock, unknown here). */
  source: 'option' | 'stats.ktime_ns' | 'last-event+2s' | 'none' | 'endpoint';
}

export interface Verdict {
  /** true: as expected; false: not as expected; null: measured only (no expectation). */
  pass: boolean | null;
  expectation: string;
  reason: string;
}

export interface CellSummary extends CellId {
  kernel: string;
  openssl: string;
  hook: string;
  trials: number;
  trialsOk: number;
  expected: number;
  captured: number;
  correct: number;
  wrong: number;
  lost: number;
  /** Rows naming a request of the run on a tuple of no client connection (a terminator's backend side; attribution.ts). */
  backendRows: number;
  /** Buffers the tracer dropped for lack of a tuple (its dropped_no_tuple counter), summed; null when no trial reported it. */
  droppedNoTuple: number | null;
  /** wrong rows / rows naming a connection; null when no row named one. */
  misattribution: number | null;
  /** Wilson 95 % interval of the pooled rows (wrong of captured); null when no row. */
  misattributionCI: (Interval & { method: 'wilson' }) | null;
  /** t-based 95 % interval of the per-trial misattribution rates; null with fewer than 2 such trials. */
  trialSpread: Spread | null;
  /** expected requests with a correct row / expected; null when nothing ran. */
  capture: number | null;
  symmetry: number | null;
  truth: { writes: PathCounts; reads: PathCounts; unclassifiedReads: number };
  byConn: { k: number; rport: number; rightRows: number; wrongRows: number }[];
  /** The HTTP layer's counters summed over the trials that ran; null when none reported them. */
  http: HttpCounters | null;
  status: Status;
  error?: string;
  /** The user's own client (its file, --client-src) when it ran instead of ours: the client-side truth is then n/a. */
  client?: string;
  /**
   * An external tracer ran (matrix.yaml tracer:; the variant is its label): its rows are its debug
   * endpoint's, the client-side truth is n/a, and `expect` is the model variant whose verdict applies
   * (null: measured only).
   */
  external?: { expect: Variant | null };
  verdict: Verdict;
}

/** A cell's folder in its target's: scenario-mode-variant, with -single for single reads (full is the default) and -<server> for a terminator (python is the default). */
export function cellDir(c: Pick<CellId, 'scenario' | 'mode' | 'variant' | 'reads' | 'server'>): string {
  return `${c.scenario}-${c.mode}-${c.variant}${c.reads === 'single' ? '-single' : ''}${c.server && c.server !== 'python' ? `-${c.server}` : ''}`;
}

export function summarizeCell(
  id: CellId,
  facts: { kernel?: string; openssl?: string; client?: unknown; external?: CellSummary['external'] },
  trials: readonly TrialResult[],
): CellSummary {
  const ok = trials.filter((t) => t.status === 'ok' && t.attribution);
  const sum = (f: (a: TrialAttribution) => number) => ok.reduce((s, t) => s + f(t.attribution!), 0);
  const pc = (f: (a: TrialAttribution) => PathCounts): PathCounts => ({
    correct: sum((a) => f(a).correct),
    wrong: sum((a) => f(a).wrong),
    lost: sum((a) => f(a).lost),
  });
  const byConn = new Map<number, { k: number; rport: number; rightRows: number; wrongRows: number }>();
  for (const t of ok) {
    for (const c of t.attribution!.byConn) {
      const acc = byConn.get(c.k) ?? { k: c.k, rport: c.rport, rightRows: 0, wrongRows: 0 };
      acc.rightRows += c.rightRows;
      acc.wrongRows += c.wrongRows;
      byConn.set(c.k, acc);
    }
  }
  const expected = sum((a) => a.expected);
  const captured = sum((a) => a.captured);
  const correct = sum((a) => a.correct);
  const wrong = sum((a) => a.wrong);
  const withHttp = ok.filter((t) => t.http);
  let http: HttpCounters | null = null;
  if (withHttp.length) {
    http = zeroCounters();
    for (const t of withHttp) for (const k of Object.keys(http) as (keyof HttpCounters)[]) http[k] += t.http![k] ?? 0;
  }
  const ci = wilson(wrong, captured);
  const withStats = ok.filter((t) => typeof t.tracerStats?.dropped_no_tuple === 'number');
  const perTrial = ok.filter((t) => t.attribution!.captured > 0).map((t) => t.attribution!.wrong / t.attribution!.captured);
  const failed = trials.find((t) => t.status !== 'ok');
  const status: Status = trials.length === 0 ? 'internal' : failed ? failed.status : 'ok';
  const conns = [...byConn.values()].sort((a, b) => a.k - b.k);
  const cell: Omit<CellSummary, 'verdict'> = {
    ...id,
    kernel: facts.kernel ?? 'unknown',
    openssl: facts.openssl ?? 'unknown',
    hook: String(ok.find((t) => t.tracerMeta?.hook)?.tracerMeta?.hook ?? 'unknown'),
    trials: trials.length,
    trialsOk: ok.length,
    expected,
    captured,
    correct,
    wrong,
    lost: sum((a) => a.lost),
    backendRows: sum((a) => a.backendRows ?? 0),
    droppedNoTuple: withStats.length ? withStats.reduce((s, t) => s + t.tracerStats!.dropped_no_tuple!, 0) : null,
    misattribution: captured > 0 ? wrong / captured : null,
    misattributionCI: ci ? { ...ci, method: 'wilson' } : null,
    trialSpread: trialSpread(perTrial),
    capture: expected > 0 ? sum((a) => a.capturedRequests) / expected : null,
    symmetry: symmetry(conns),
    truth: { writes: pc((a) => a.truth.writes), reads: pc((a) => a.truth.reads), unclassifiedReads: sum((a) => a.truth.unclassifiedReads ?? 0) },
    byConn: conns,
    http,
    status,
    ...(failed?.error ? { error: failed.error } : {}),
    ...(typeof facts.client === 'string' ? { client: facts.client } : {}),
    ...(facts.external ? { external: facts.external } : {}),
  };
  return { ...cell, verdict: verdictFor(cell) };
}

/** The model variant whose expectation a cell is judged by: its variant, or an external tracer's `expect` (null: none). */
export function ruleOf(c: Pick<CellSummary, 'variant' | 'external'>): Variant | null {
  if (c.external) return c.external.expect;
  return (VARIANTS as readonly string[]).includes(c.variant) ? (c.variant as Variant) : null;
}

/** What MODEL.md expects of each variant, checked on the figures. */
export function verdictFor(c: Omit<CellSummary, 'verdict'>): Verdict {
  if (c.status !== 'ok') return { pass: false, expectation: 'cell runs', reason: `${c.status}${c.error ? `: ${c.error}` : ''}` };
  const clientSeen = c.truth.writes.correct + c.truth.writes.wrong;
  // Rows on a terminator's backend tuples are misplaced too: a fix must put none there.
  const backend = c.backendRows ?? 0;
  const onBackend = backend > 0 ? `, ${backend} on backend tuples` : '';
  if (c.scenario === 'baseline') {
    return c.wrong === 0 && backend === 0
      ? { pass: true, expectation: 'no wrong rows', reason: `0 wrong of ${c.captured} rows` }
      : { pass: false, expectation: 'no wrong rows', reason: `${c.wrong} wrong of ${c.captured} rows${onBackend}` };
  }
  const rule = ruleOf(c);
  if (rule === null)
    return { pass: null, expectation: `measured (tracer ${c.variant}: no expect given)`, reason: `${c.wrong} wrong of ${c.captured} rows${onBackend}` };
  if ((c.client || c.external) && rule !== 'upstream' && rule !== 'recv-hook') {
    // The user's own client or tracer: no client-side truth (its requests and reads are its own, or
    // no events of ours), so a fix is judged on the rows alone: none on a wrong tuple.
    const expectation = `no wrong rows (${c.external ? 'your tracer' : 'your client'}: rows only)`;
    return c.wrong === 0 && backend === 0
      ? { pass: true, expectation, reason: `0 wrong of ${c.captured} rows, capture ${pct(c.capture)}` }
      : { pass: false, expectation, reason: `${c.wrong} wrong of ${c.captured} rows${onBackend}` };
  }
  switch (rule) {
    case 'upstream':
      return c.wrong > 0 || backend > 0
        ? { pass: true, expectation: 'race reproduced (wrong rows)', reason: `${c.wrong} wrong of ${c.captured} rows${onBackend}` }
        : { pass: false, expectation: 'race reproduced (wrong rows)', reason: `no wrong rows (${c.captured} rows)` };
    case 'no-fallback':
      return c.wrong === 0 && backend === 0 && clientSeen === 0
        ? { pass: true, expectation: 'no wrong rows, client requests not captured', reason: `0 wrong, ${clientSeen} client writes seen` }
        : {
            pass: false,
            expectation: 'no wrong rows, client requests not captured',
            reason: `${c.wrong} wrong rows${onBackend}, ${clientSeen} client writes seen`,
          };
    case 'scoped': {
      if (c.reads === 'single') {
        // A single-read client falls behind and resets its connections with responses unread: the
        // servers never answer some requests, so rows cannot reach 95 %. What the fix must still do:
        // nothing wrong, and the client's own writes on pre-existing connections captured on their connection.
        const w = c.expected > 0 ? c.truth.writes.correct / c.expected : 0;
        const expectation = "no wrong rows, >= 95 % of the client's writes on their connection";
        return c.wrong === 0 && backend === 0 && w >= 0.95
          ? { pass: true, expectation, reason: `0 wrong, client writes ${pct(w)}, capture ${pct(c.capture)}` }
          : { pass: false, expectation, reason: `${c.wrong} wrong rows${onBackend}, client writes ${pct(w)}` };
      }
      const cap = c.capture ?? 0;
      return c.wrong === 0 && backend === 0 && cap >= 0.95
        ? { pass: true, expectation: 'no wrong rows, capture >= 95 %', reason: `0 wrong, capture ${pct(cap)}` }
        : { pass: false, expectation: 'no wrong rows, capture >= 95 %', reason: `${c.wrong} wrong rows${onBackend}, capture ${pct(cap)}` };
    }
    case 'recv-hook':
      return { pass: null, expectation: 'measured (the race extends to reads)', reason: `${c.wrong} wrong of ${c.captured} rows${onBackend}` };
  }
}

export function pct(x: number | null): string {
  return x === null ? 'n/a' : `${(x * 100).toFixed(1)} %`;
}
