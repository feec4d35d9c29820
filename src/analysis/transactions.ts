// Events -> HTTP transactions -> rows of upstream's /network_tracer/debug/http_monitoring.
//
// As upstream: a transaction is keyed by the normalised tuple; a request line opens it, a status
// line completes it, a new request on the same key flushes the open one. Flushed requests and
// responses that found no open request are "incomplete parts"; like upstream's incomplete
// buffer they are joined per key in time order (a response goes to the earliest unpaired
// request that started before it). This join is where a request sent on the wrong socket meets
// that socket's response and becomes a complete, wrongly attributed row.
import type { TlsEvent } from './events.ts';
import { normalize, tupleKey, type NormTuple } from './normalize.ts';

/** Upstream inspects only the first bytes of each buffer. */
export const HTTP_INSPECT_BYTES = 160;

const REQUEST_RE = /^(GET|POST|PUT|DELETE|HEAD|OPTIONS|PATCH|CONNECT|TRACE) (\S+) HTTP\/1\.[01]/;
const RESPONSE_RE = /^HTTP\/1\.[01] (\d{3})/;

export interface Transaction {
  tuple: NormTuple;
  method: string;
  path: string;
  status: number;
  requestTs: number;
  responseTs: number;
  /** pid that sent or saw the request line (client or server side). */
  pid: number;
  joined: boolean;
}

export interface TransactionResult {
  transactions: Transaction[];
  /** Request parts that never met a response, and responses that never met a request. */
  incompleteRequests: number;
  orphanResponses: number;
}

interface ReqPart {
  tuple: NormTuple;
  method: string;
  path: string;
  ts: number;
  pid: number;
}

export function classify(data: string): { kind: 'request'; method: string; path: string } | { kind: 'response'; status: number } | null {
  const head = data.slice(0, HTTP_INSPECT_BYTES);
  const req = REQUEST_RE.exec(head);
  if (req) return { kind: 'request', method: req[1]!, path: req[2]! };
  const resp = RESPONSE_RE.exec(head);
  if (resp) return { kind: 'response', status: Number(resp[1]) };
  return null;
}

export function formTransactions(events: readonly TlsEvent[]): TransactionResult {
  const sorted = [...events].sort((a, b) => a.ts - b.ts);
  const open = new Map<string, ReqPart>();
  const pendingReq = new Map<string, ReqPart[]>();
  const pendingResp = new Map<string, { ts: number; status: number }[]>();
  const transactions: Transaction[] = [];
  const push = <T>(m: Map<string, T[]>, k: string, v: T) => {
    const arr = m.get(k);
    if (arr) arr.push(v);
    else m.set(k, [v]);
  };

  for (const ev of sorted) {
    const c = classify(ev.data ?? '');
    if (!c) continue;
    const tuple = normalize(ev);
    const key = tupleKey(tuple);
    if (c.kind === 'request') {
      const prev = open.get(key);
      if (prev) push(pendingReq, key, prev);
      open.set(key, { tuple, method: c.method, path: c.path, ts: ev.ts, pid: ev.pid });
    } else {
      const req = open.get(key);
      if (req) {
        open.delete(key);
        transactions.push({ tuple, method: req.method, path: req.path, status: c.status, requestTs: req.ts, responseTs: ev.ts, pid: req.pid, joined: false });
      } else {
        push(pendingResp, key, { ts: ev.ts, status: c.status });
      }
    }
  }
  for (const [key, req] of open) push(pendingReq, key, req);

  let incompleteRequests = 0;
  let orphanResponses = 0;
  for (const [key, reqs] of pendingReq) {
    const resps = (pendingResp.get(key) ?? []).sort((a, b) => a.ts - b.ts);
    reqs.sort((a, b) => a.ts - b.ts);
    let i = 0;
    let j = 0;
    while (i < reqs.length && j < resps.length) {
      const r = reqs[i]!;
      const s = resps[j]!;
      if (r.ts > s.ts) {
        j++;
        orphanResponses++;
        continue;
      }
      transactions.push({ tuple: r.tuple, method: r.method, path: r.path, status: s.status, requestTs: r.ts, responseTs: s.ts, pid: r.pid, joined: true });
      i++;
      j++;
    }
    incompleteRequests += reqs.length - i;
    orphanResponses += resps.length - j;
    pendingResp.delete(key);
  }
  for (const resps of pendingResp.values()) orphanResponses += resps.length;
  transactions.sort((a, b) => a.requestTs - b.requestTs);
  return { transactions, incompleteRequests, orphanResponses };
}

/** One row of upstream's debug endpoint. Status codes are keys of ByStatus. */
export interface HttpMonitoringRow {
  Client: { IP: string; Port: number };
  Server: { IP: string; Port: number };
  DNS: string;
  Path: string;
  Method: string;
  ByStatus: Record<string, { Count: number; FirstLatencySample: number }>;
  StaticTags: number;
  DynamicTags: string[] | null;
}

export function toHttpMonitoring(txs: readonly Transaction[]): HttpMonitoringRow[] {
  const rows = new Map<string, HttpMonitoringRow>();
  for (const tx of txs) {
    const key = `${tupleKey(tx.tuple)} ${tx.method} ${tx.path}`;
    let row = rows.get(key);
    if (!row) {
      row = {
        Client: { IP: tx.tuple.client.ip, Port: tx.tuple.client.port },
        Server: { IP: tx.tuple.server.ip, Port: tx.tuple.server.port },
        DNS: '',
        Path: tx.path,
        Method: tx.method,
        ByStatus: {},
        StaticTags: 0,
        DynamicTags: null,
      };
      rows.set(key, row);
    }
    const st = String(tx.status);
    const stat = row.ByStatus[st];
    const latencyMs = Math.max(0, (tx.responseTs - tx.requestTs) / 1e6);
    if (stat) stat.Count++;
    else row.ByStatus[st] = { Count: 1, FirstLatencySample: latencyMs };
  }
  return [...rows.values()];
}
