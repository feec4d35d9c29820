// One fetched trial folder -> http_monitoring.json + TrialResult. Pure file in, file out.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { attributeTrial } from './attribution.ts';
import type { TrialResult } from './cell.ts';
import { parseClientOutput, parseTracerOutput, type Conn } from './events.ts';
import { formTransactions, toHttpMonitoring } from './transactions.ts';

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
}): Promise<TrialResult> {
  const { dir, trial, iterations, clientPid } = opts;
  const tracer = parseTracerOutput(await readOr(join(dir, 'events.jsonl')));
  const client = parseClientOutput(await readOr(join(dir, 'client.out')));
  const conns = opts.conns.length ? opts.conns : client.conns;
  const tx = formTransactions(tracer.events);
  const rows = toHttpMonitoring(tx.transactions);
  await writeFile(join(dir, 'http_monitoring.json'), JSON.stringify(rows, null, 2) + '\n');
  const attribution = attributeTrial({ rows, events: tracer.events, conns, iterations, clientPid });
  const base: TrialResult = {
    trial,
    status: 'ok',
    attribution,
    incompleteRequests: tx.incompleteRequests,
    orphanResponses: tx.orphanResponses,
    tracerMeta: tracer.meta,
    tracerStats: tracer.stats,
    clientOk: client.ok.reduce((a, b) => a + (b ?? 0), 0),
    clientFail: client.fail.reduce((a, b) => a + (b ?? 0), 0),
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
