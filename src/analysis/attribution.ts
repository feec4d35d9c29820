// Attribution of one trial: the seed's row-based figures (as the investigation's one-line
// analysis computes them from http_monitoring.json) and the per-request truth taken from the
// client's own events.
import type { Conn, TlsEvent } from './events.ts';
import type { HttpMonitoringRow } from './transactions.ts';
import { classify } from './transactions.ts';

const PATH_RE = /conn(\d+)-iter(\d+)/;

export interface PathCounts {
  correct: number;
  wrong: number;
  lost: number;
}

export interface ConnAttribution {
  k: number;
  rport: number;
  /** Rows naming conn k in their path, by where they were put. */
  rightRows: number;
  wrongRows: number;
}

export interface TrialAttribution {
  expected: number;
  /** Rows of http_monitoring.json naming a connection of this run (seed's denominator). */
  captured: number;
  correct: number;
  wrong: number;
  /** Expected requests that appear in no row at all. */
  lost: number;
  /**
   * Rows naming a request of this run on a tuple of no client connection: with a TLS terminator,
   * its backend connections (the plain sends that took the slot). Neither correct nor wrong in the
   * investigation's formula (which names only the run's server ports). Absent in older results.
   */
  backendRows?: number;
  /** Expected requests with a correctly attributed row. */
  capturedRequests: number;
  byConn: ConnAttribution[];
  /** Per-request truth of the client's side: its request writes and response reads (see clientTruth). */
  truth: ClientTruth;
}

export function parsePath(path: string): { k: number; iter: number } | null {
  const m = PATH_RE.exec(path);
  return m ? { k: Number(m[1]), iter: Number(m[2]) } : null;
}

export function attributeTrial(input: {
  rows: readonly HttpMonitoringRow[];
  events: readonly TlsEvent[];
  conns: readonly Conn[];
  iterations: number;
  clientPid: number | null;
}): TrialAttribution {
  const { rows, events, conns, iterations, clientPid } = input;
  const byPort = new Map(conns.map((c) => [c.rport, c]));
  const byConn = conns.map((c) => ({ k: c.k, rport: c.rport, rightRows: 0, wrongRows: 0 }));
  const seenRight = new Set<string>();
  const seenAny = new Set<string>();
  let correct = 0;
  let wrong = 0;
  let backendRows = 0;
  for (const row of rows) {
    const p = parsePath(row.Path);
    if (!p || p.k < 1 || p.k > conns.length || p.iter >= iterations) continue;
    const put = byPort.get(row.Server.Port);
    const id = `${p.k}/${p.iter}`;
    if (!put) {
      // on a tuple of no client connection (a terminator's backend side)
      backendRows++;
      continue;
    }
    seenAny.add(id);
    const ca = byConn[p.k - 1]!;
    if (put.k === p.k) {
      correct++;
      ca.rightRows++;
      seenRight.add(id);
    } else {
      wrong++;
      ca.wrongRows++;
    }
  }
  const expected = iterations * conns.length;
  return {
    expected,
    captured: correct + wrong,
    correct,
    wrong,
    lost: expected - seenAny.size,
    backendRows,
    capturedRequests: seenRight.size,
    byConn,
    truth: clientTruth(events, conns, iterations, clientPid),
  };
}

export interface ClientTruth {
  writes: PathCounts;
  reads: PathCounts;
  /** Client reads the tracer reported that did not begin with a status line (e.g. a body `OK`). Optional for older results. */
  unclassifiedReads?: number;
}

/**
 * Which connection each client-side request write and response read was attributed to.
 *
 * Writes: the first write of each request line `conn<k>-iter<i>`; right when its tuple is conn k's.
 * Reads: only reads whose data begins with a status line count as response reads, one per such
 * read, right when its tuple is the connection of the read's SSL context (learned from that
 * context's request writes). A client that reads with one SSL_read per request (the
 * investigation's) gets back a status line of an earlier request or the previous response's body
 * `OK`: a body-only read is neither a status nor an error, it is counted in unclassifiedReads and
 * nowhere else. reads.lost = expected - status-line reads (floored at 0): with such a client it
 * also counts the status lines the client never read before closing, not only reads the tracer
 * missed; with a full-reading client it is the tracer's loss.
 */
export function clientTruth(events: readonly TlsEvent[], conns: readonly Conn[], iterations: number, clientPid: number | null): Required<ClientTruth> {
  const writes: PathCounts = { correct: 0, wrong: 0, lost: 0 };
  const reads: PathCounts = { correct: 0, wrong: 0, lost: 0 };
  let unclassifiedReads = 0;
  const expected = iterations * conns.length;
  if (clientPid === null) return { writes: { ...writes, lost: expected }, reads: { ...reads, lost: expected }, unclassifiedReads };
  const connOf = (ev: TlsEvent): Conn | undefined => conns.find((c) => c.lport === ev.sport && c.rport === ev.dport);
  const ctxConn = new Map<string, number>(); // ctx -> k, learned from request writes
  const seenWrites = new Set<string>();
  const mine = events.filter((e) => e.pid === clientPid);
  for (const ev of mine) {
    const c = classify(ev.data ?? '');
    if (c?.kind !== 'request' || !/write/i.test(ev.fn) || c.path === null) continue;
    const p = parsePath(c.path);
    if (!p || p.k < 1 || p.k > conns.length) continue;
    const id = `${p.k}/${p.iter}`;
    if (seenWrites.has(id)) continue;
    seenWrites.add(id);
    ctxConn.set(ev.ctx, p.k);
    if (connOf(ev)?.k === p.k) writes.correct++;
    else writes.wrong++;
  }
  writes.lost = expected - writes.correct - writes.wrong;
  for (const ev of mine) {
    if (!/read/i.test(ev.fn) || !ev.data) continue;
    const c = classify(ev.data);
    if (c?.kind !== 'response') {
      unclassifiedReads++;
      continue;
    }
    const k = ctxConn.get(ev.ctx);
    if (k === undefined) continue; // cannot tell which connection the read was for
    if (connOf(ev)?.k === k) reads.correct++;
    else reads.wrong++;
  }
  reads.lost = Math.max(0, expected - reads.correct - reads.wrong);
  return { writes, reads, unclassifiedReads };
}

/** min/max of the per-connection wrong rows: 1 = perfectly symmetric swap; null = no wrong rows. */
export function symmetry(byConn: readonly { wrongRows: number }[]): number | null {
  if (byConn.length < 2) return null;
  const w = byConn.map((c) => c.wrongRows);
  const max = Math.max(...w);
  return max === 0 ? null : Math.min(...w) / max;
}
