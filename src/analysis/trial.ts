// One fetched trial folder -> http_monitoring.json + TrialResult. Pure file in, file out.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { attributeTrial } from './attribution.ts';
import type { QueryTime, TrialResult } from './cell.ts';
import { parseClientOutput, parseTracerOutput, type ClientOutput, type Conn } from './events.ts';
import { formTransactions, QUERY_SETTLE_NS, toHttpMonitoring, type HttpMonitoringRow } from './transactions.ts';

/** The client's own ok and fail counts, over its connections. */
function clientCounts(client: Pick<ClientOutput, 'ok' | 'fail'>): { clientOk: number; clientFail: number } {
  // sparse: a connection the client printed no line for is a hole
  const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + (b ?? 0), 0);
  return { clientOk: sum(client.ok), clientFail: sum(client.fail) };
}

async function readOr(path: string, fallback = ''): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return fallback;
  }
}

export async function analyzeTrial(opts: {
  dir: string;
  trial: number;
  iterations: number;
  conns: Conn[];
  clientPid: number | null;
  /** The protocol's failure, if any: it wins over what the files say. */
  failure?: { kind: TrialResult['status']; message: string };
  durationMs?: number;
  /**
   * The debug query's time (ns, bpf_ktime_get_ns like the events' ts). Default: the stats line's
   * ktime_ns (the tracer's flush, 2 s after the client exits), else the last event + 2 s.
   */
  queryTimeNs?: number;
  /**
   * Where the rows come from: 'events' (the model: events.jsonl through the HTTP layer, written as
   * http_monitoring.json) or 'endpoint' (an external tracer: http_monitoring.json as its debug
   * endpoint returned it; no events, so no client-side truth).
   */
  rowsFrom?: 'events' | 'endpoint';
}): Promise<TrialResult> {
  const { dir, trial, iterations, clientPid } = opts;
  if (opts.rowsFrom === 'endpoint') return analyzeEndpointTrial(opts);
  const tracer = parseTracerOutput(await readOr(join(dir, 'events.jsonl')));
  const client = parseClientOutput(await readOr(join(dir, 'client.out')));
  const conns = opts.conns.length ? opts.conns : client.conns;
  const queryTime = pickQueryTime(opts.queryTimeNs, tracer.stats?.ktime_ns, tracer.events);
  const tx = formTransactions(tracer.events, queryTime.ns === null ? {} : { queryTimeNs: queryTime.ns });
  const rows = toHttpMonitoring(tx.transactions);
  await writeFile(join(dir, 'http_monitoring.json'), JSON.stringify(rows, null, 2) + '\n');
  const attribution = attributeTrial({ rows, events: tracer.events, conns, iterations, clientPid });
  const base: TrialResult = {
    trial,
    status: 'ok',
    attribution,
    incompleteRequests: tx.incompleteRequests,
    orphanResponses: tx.orphanResponses,
    http: tx.counters,
    queryTime,
    tracerMeta: tracer.meta,
    tracerStats: tracer.stats,
    ...clientCounts(client),
    ...(opts.durationMs !== undefined ? { durationMs: opts.durationMs } : {}),
  };
  if (opts.failure) return { ...base, status: opts.failure.kind, error: opts.failure.message };
  if (!client.done) return { ...base, status: 'client-failed', error: 'client never printed DONE' };
  if (!tracer.stats) return { ...base, status: 'tracer-failed', error: 'tracer wrote no stats line (did it flush on SIGINT?)' };
  const sslCalls = Object.entries(tracer.stats.calls ?? {})
    .filter(([k]) => k.startsWith('SSL_read') || k.startsWith('SSL_write'))
    .reduce((s, [, v]) => s + (Number(v) || 0), 0);
  if (sslCalls === 0) return { ...base, status: 'no-traffic', error: 'the tracer saw no SSL_read/SSL_write call: probes did not fire' };
  return base;
}

/** Which query time the joiner used, and where it came from (recorded in the trial's result). */
export function pickQueryTime(explicit: number | undefined, statsKtime: unknown, events: readonly { ts: number }[]): QueryTime {
  if (explicit !== undefined) return { ns: explicit, source: 'option' };
  if (typeof statsKtime === 'number' && Number.isFinite(statsKtime) && statsKtime > 0) return { ns: statsKtime, source: 'stats.ktime_ns' };
  if (events.length) return { ns: events.reduce((m, e) => Math.max(m, e.ts), -Infinity) + QUERY_SETTLE_NS, source: 'last-event+2s' };
  return { ns: null, source: 'none' };
}

/** An external tracer's trial: the rows its endpoint returned, analysed as the model's are. */
async function analyzeEndpointTrial(opts: Parameters<typeof analyzeTrial>[0]): Promise<TrialResult> {
  const { dir, trial, iterations } = opts;
  const client = parseClientOutput(await readOr(join(dir, 'client.out')));
  const conns = opts.conns.length ? opts.conns : client.conns;
  const body = await readOr(join(dir, 'http_monitoring.json'), '');
  const parsed = parseEndpointRows(body);
  const rows = Array.isArray(parsed) ? parsed : [];
  const base: TrialResult = {
    trial,
    status: 'ok',
    attribution: attributeTrial({ rows, events: [], conns, iterations, clientPid: null }),
    incompleteRequests: 0,
    orphanResponses: 0,
    queryTime: { ns: null, source: 'endpoint' },
    tracerMeta: null,
    tracerStats: null,
    ...clientCounts(client),
    ...(opts.durationMs !== undefined ? { durationMs: opts.durationMs } : {}),
  };
  if (opts.failure) return { ...base, status: opts.failure.kind, error: opts.failure.message };
  if (!client.done) return { ...base, status: 'client-failed', error: 'client never printed DONE' };
  if (!Array.isArray(parsed)) return { ...base, status: 'tracer-failed', error: `the debug endpoint's answer (http_monitoring.json) ${parsed.error}` };
  return base;
}

/**
 * The body of a debug query: a JSON array of rows with Path and Server.Port (upstream's shape; other
 * fields as they come). Else why not.
 */
export function parseEndpointRows(body: string): HttpMonitoringRow[] | { error: string } {
  if (body.trim() === '') return { error: 'is empty' };
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch (err) {
    return { error: `is not JSON: ${(err as Error).message}` };
  }
  if (!Array.isArray(v)) return { error: `is not a JSON array of rows (it is ${v === null ? 'null' : typeof v})` };
  const bad = v.findIndex((r) => {
    const o = r as { Path?: unknown; Server?: { Port?: unknown } } | null;
    return !o || typeof o !== 'object' || typeof o.Path !== 'string' || typeof o.Server?.Port !== 'number';
  });
  if (bad !== -1) return { error: `row ${bad} has no Path string or Server.Port number: ${JSON.stringify(v[bad]).slice(0, 200)}` };
  return v as HttpMonitoringRow[];
}
