// Events -> HTTP transactions -> rows of upstream's /network_tracer/debug/http_monitoring,
// rule by rule as upstream's HTTP layer (MODEL.md, "The HTTP layer, exactly").
//
// Two halves, as upstream:
// - the kernel side (http.h): one in-flight state per normalised key, fed by every TLS buffer
//   of that key, whichever process saw it; a flush or a termination enqueues a copy of the state;
// - user space (statkeeper.go, incomplete_stats.go): complete transactions become rows at once,
//   incomplete parts wait for the debug query, where they are joined per client endpoint.
// This join is where a request sent on the wrong socket meets that socket's response and becomes
// a complete, wrongly attributed row.
import { isTermination, type TlsEvent } from './events.ts';
import { clientKey, normalize, tupleKey, type NormTuple } from './normalize.ts';

/** Upstream's HTTP_BUFFER_SIZE (8 * 26): the bytes of a buffer it keeps and inspects. */
export const HTTP_BUFFER_SIZE = 208;
/** Former name, kept for callers. */
export const HTTP_INSPECT_BYTES = HTTP_BUFFER_SIZE;
/** Methods upstream recognises (http_parse_data). CONNECT is not one of them. */
export const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'TRACE'] as const;
export type HttpMethod = (typeof METHODS)[number];
/** StaticTags bit of a transaction seen through libssl (upstream's LIBSSL tag). */
export const STATIC_TAG_LIBSSL = 2;
/** Incomplete requests younger than this at a query are kept for the next one (defaultMinAge). */
export const INCOMPLETE_MIN_AGE_NS = 30e9;
/** Where a query time is not known: the investigation queries 2 s after the client exits. */
export const QUERY_SETTLE_NS = 2e9;
const HTTP_STATUS_OFFSET = 9;

type Packet = { type: 'request'; method: HttpMethod } | { type: 'response' } | { type: 'unknown' };

/** http_parse_data: only the first bytes decide. `HTTP` = response; `<METHOD> /` = request. */
export function parsePacket(fragment: string): Packet {
  if (fragment.startsWith('HTTP')) return { type: 'response' };
  for (const m of METHODS) {
    // upstream also takes `OPTIONS *` (the asterisk-form of RFC 9110), no other method with `*`
    if (fragment.startsWith(`${m} /`) || (m === 'OPTIONS' && fragment.startsWith('OPTIONS *'))) return { type: 'request', method: m };
  }
  return { type: 'unknown' };
}

/**
 * http_begin_response: the three bytes at offset 9 as digits, unchecked, in a u16 with C's signed
 * char arithmetic. "HTTP/1.0 200" and "HTTP/1.1 200" give 200; a short or odd buffer gives
 * what the kernel computes from its zero-padded copy (possibly 0, i.e. "no status").
 */
export function statusOf(fragment: string): number {
  const b = (i: number) => {
    const c = fragment.charCodeAt(HTTP_STATUS_OFFSET + i);
    const u = Number.isNaN(c) ? 0 : c & 0xff;
    return u >= 0x80 ? u - 0x100 : u;
  };
  const s = (b(0) - 48) * 100 + (b(1) - 48) * 10 + (b(2) - 48);
  return ((s % 0x10000) + 0x10000) % 0x10000;
}

/**
 * EbpfEvent.Path: up to the first NUL, after the first space, a path must begin with `/` or `*`;
 * it ends at a space or `?` (the query is ignored). fullPath: a terminator was found before the
 * end of the fragment.
 */
export function requestPath(fragment: string): { path: string; fullPath: boolean } | null {
  const nul = fragment.indexOf('\0');
  const b = nul === -1 ? fragment : fragment.slice(0, nul);
  const i = b.indexOf(' ') + 1;
  if (i === 0 || i === b.length || (b[i] !== '/' && b[i] !== '*')) return null;
  const rest = b.slice(i);
  let j = 0;
  while (j < rest.length && rest[j] !== ' ' && rest[j] !== '?') j++;
  return { path: rest.slice(0, j), fullPath: j < rest.length };
}

/** strconv.IsPrint(rune(b)) for each byte b, as pathIsMalformed: Latin-1 above 0xA0 is printable, except U+00AD. */
export function isPrintablePath(path: string): boolean {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (!((c >= 0x20 && c <= 0x7e) || (c >= 0xa1 && c <= 0xff && c !== 0xad))) return false;
  }
  return true;
}

/** A buffer as upstream classifies it (what the client-side truth also uses). */
export function classify(data: string): { kind: 'request'; method: HttpMethod; path: string | null } | { kind: 'response'; status: number } | null {
  const fragment = data.slice(0, HTTP_BUFFER_SIZE);
  const p = parsePacket(fragment);
  if (p.type === 'request') return { kind: 'request', method: p.method, path: requestPath(fragment)?.path ?? null };
  if (p.type === 'response') return { kind: 'response', status: statusOf(fragment) };
  return null;
}

/** http_transaction_t: one in-flight state, and what a flush or termination enqueues. */
export interface KernelTx {
  tuple: NormTuple;
  fragment: string;
  method: HttpMethod | null;
  requestStarted: number;
  responseLastSeen: number;
  status: number;
  tags: number;
  /** Ours, not upstream's: pid of the request's event (0 when none). */
  pid: number;
}

export interface HttpCounters {
  // kernel side
  requestBuffers: number;
  responseBuffers: number;
  /** Buffers neither request nor response (e.g. the body `OK`); of them, lastSeenRefreshes refreshed a responding state. */
  otherBuffers: number;
  lastSeenRefreshes: number;
  /** Termination events (SSL_shutdown, tcp_close) that found a state to enqueue. */
  terminations: number;
  enqueuedComplete: number;
  enqueuedRequestParts: number;
  enqueuedResponseParts: number;
  /** States never enqueued by the query (upstream lags one transaction per key); of them, complete ones. */
  inFlightAtQuery: number;
  inFlightCompleteAtQuery: number;
  // user space: the joiner at the query
  joined: number;
  joinDroppedEarlyResponse: number;
  joinLeftoverResponses: number;
  joinHeldRequests: number;
  joinDroppedOldRequests: number;
  // user space: StatKeeper.add, for complete and joined transactions
  droppedNoPath: number;
  droppedNonPrintable: number;
  droppedUnknownMethod: number;
  droppedLatency: number;
  /** Transactions that reached a row (the sum of the rows' Counts). */
  accepted: number;
}

export function zeroCounters(): HttpCounters {
  return {
    requestBuffers: 0,
    responseBuffers: 0,
    otherBuffers: 0,
    lastSeenRefreshes: 0,
    terminations: 0,
    enqueuedComplete: 0,
    enqueuedRequestParts: 0,
    enqueuedResponseParts: 0,
    inFlightAtQuery: 0,
    inFlightCompleteAtQuery: 0,
    joined: 0,
    joinDroppedEarlyResponse: 0,
    joinLeftoverResponses: 0,
    joinHeldRequests: 0,
    joinDroppedOldRequests: 0,
    droppedNoPath: 0,
    droppedNonPrintable: 0,
    droppedUnknownMethod: 0,
    droppedLatency: 0,
    accepted: 0,
  };
}

const incomplete = (tx: KernelTx) => tx.requestStarted === 0 || tx.status === 0;

/** The kernel side (http_process / tls termination) over all events, in ts order. */
export function runKernel(events: readonly TlsEvent[], counters: HttpCounters = zeroCounters()): { enqueued: KernelTx[]; inFlight: KernelTx[] } {
  const sorted = [...events].sort((a, b) => a.ts - b.ts); // stable: equal ts keep file order
  const states = new Map<string, KernelTx>();
  const enqueued: KernelTx[] = [];
  const enqueue = (tx: KernelTx) => {
    enqueued.push({ ...tx });
    if (!incomplete(tx)) counters.enqueuedComplete++;
    else if (tx.status === 0) counters.enqueuedRequestParts++;
    else counters.enqueuedResponseParts++;
  };
  for (const ev of sorted) {
    const tuple = normalize(ev);
    const key = tupleKey(tuple);
    if (isTermination(ev)) {
      const st = states.get(key);
      if (st) {
        counters.terminations++;
        enqueue(st);
        states.delete(key);
      }
      continue;
    }
    const fragment = (ev.data ?? '').slice(0, HTTP_BUFFER_SIZE);
    const p = parsePacket(fragment);
    const fresh = (): KernelTx => ({ tuple, fragment, method: null, requestStarted: 0, responseLastSeen: 0, status: 0, tags: 0, pid: 0 });
    let st = states.get(key);
    if (p.type === 'unknown') {
      counters.otherBuffers++;
      // never creates state; refreshes last_seen only of a state that is responding
      if (st && st.status !== 0) {
        st.responseLastSeen = ev.ts;
        st.tags |= STATIC_TAG_LIBSSL;
        counters.lastSeenRefreshes++;
      }
      continue;
    }
    if (!st) {
      st = fresh();
      states.set(key, st);
    }
    const flush = p.type === 'request' ? st.requestStarted !== 0 || st.status !== 0 : st.status !== 0;
    if (flush) {
      enqueue(st);
      st = fresh();
      states.set(key, st);
    }
    if (p.type === 'request') {
      counters.requestBuffers++;
      Object.assign(st, { method: p.method, requestStarted: ev.ts, responseLastSeen: 0, status: 0, fragment, pid: ev.pid });
    } else {
      counters.responseBuffers++;
      st.status = statusOf(fragment);
    }
    st.tags |= STATIC_TAG_LIBSSL;
    if (st.status !== 0) st.responseLastSeen = ev.ts;
  }
  const inFlight = [...states.values()].map((s) => ({ ...s }));
  counters.inFlightAtQuery += inFlight.length;
  counters.inFlightCompleteAtQuery += inFlight.filter((s) => !incomplete(s)).length;
  return { enqueued, inFlight };
}

/** One accepted transaction: what a row counts. */
export interface Transaction {
  tuple: NormTuple;
  method: string;
  path: string;
  status: number;
  requestTs: number;
  responseTs: number;
  /** pid that sent or saw the request line (client or server side). */
  pid: number;
  /** Made by the joiner from a request part and a response part. */
  joined: boolean;
  /** Part of upstream's row key; absent = true. */
  fullPath?: boolean;
}

/**
 * User space: StatKeeper.Process for each enqueued part in order, then, at the debug query
 * (queryTimeNs, same clock as the events), incompleteBuffer.Flush and StatKeeper.add of the joined.
 * Returns the accepted transactions and the requests held for a next query.
 */
export function runUserSpace(
  parts: readonly KernelTx[],
  queryTimeNs: number,
  counters: HttpCounters = zeroCounters(),
): { transactions: Transaction[]; held: KernelTx[] } {
  const transactions: Transaction[] = [];
  const add = (tx: KernelTx, joined: boolean) => {
    const p = requestPath(tx.fragment);
    if (!p) return void counters.droppedNoPath++;
    const q = p.path;
    if (!isPrintablePath(q)) return void counters.droppedNonPrintable++;
    if (tx.method === null) return void counters.droppedUnknownMethod++;
    if (tx.responseLastSeen - tx.requestStarted <= 0 || tx.requestStarted === 0 || tx.responseLastSeen === 0) return void counters.droppedLatency++;
    counters.accepted++;
    transactions.push({
      tuple: tx.tuple,
      method: tx.method,
      path: q,
      status: tx.status,
      requestTs: tx.requestStarted,
      responseTs: tx.responseLastSeen,
      pid: tx.pid,
      joined,
      fullPath: p.fullPath,
    });
  };
  // the incomplete buffer: per client endpoint, status 0 = request part, else response part
  const buffer = new Map<string, { requests: KernelTx[]; responses: KernelTx[] }>();
  for (const tx of parts) {
    if (!incomplete(tx)) {
      add(tx, false);
      continue;
    }
    const k = clientKey(tx.tuple);
    const b = buffer.get(k) ?? { requests: [], responses: [] };
    buffer.set(k, b);
    (tx.status === 0 ? b.requests : b.responses).push({ ...tx });
  }
  const held: KernelTx[] = [];
  for (const { requests, responses } of buffer.values()) {
    requests.sort((a, b) => a.requestStarted - b.requestStarted);
    responses.sort((a, b) => a.responseLastSeen - b.responseLastSeen);
    let i = 0;
    let j = 0;
    while (i < requests.length && j < responses.length) {
      const req = requests[i]!;
      const resp = responses[j]!;
      if (req.requestStarted > resp.responseLastSeen) {
        counters.joinDroppedEarlyResponse++;
        j++;
        continue;
      }
      counters.joined++;
      add({ ...req, status: resp.status, responseLastSeen: resp.responseLastSeen }, true);
      i++;
      j++;
    }
    counters.joinLeftoverResponses += responses.length - j;
    // the first request young enough is kept with all later ones; older ones are dropped
    for (; i < requests.length; i++) {
      if (queryTimeNs - requests[i]!.requestStarted < INCOMPLETE_MIN_AGE_NS) {
        held.push(...requests.slice(i));
        counters.joinHeldRequests += requests.length - i;
        break;
      }
      counters.joinDroppedOldRequests++;
    }
  }
  return { transactions, held };
}

export interface TransactionResult {
  transactions: Transaction[];
  counters: HttpCounters;
  /** The query time the joiner used (ns, the events' clock); null when there were no events. */
  queryTimeNs: number | null;
  /** Request parts that met no response (held + dropped as old), and response parts that met no request. */
  incompleteRequests: number;
  orphanResponses: number;
}

/** The whole HTTP layer over one trial's events, queried once at queryTimeNs (default: last event + 2 s). */
export function formTransactions(events: readonly TlsEvent[], opts: { queryTimeNs?: number } = {}): TransactionResult {
  const counters = zeroCounters();
  const lastTs = events.reduce((m, e) => Math.max(m, e.ts), -Infinity);
  const queryTimeNs = opts.queryTimeNs ?? (events.length ? lastTs + QUERY_SETTLE_NS : null);
  const { enqueued } = runKernel(events, counters);
  const { transactions } = runUserSpace(enqueued, queryTimeNs ?? 0, counters);
  transactions.sort((a, b) => a.requestTs - b.requestTs);
  return {
    transactions,
    counters,
    queryTimeNs,
    incompleteRequests: counters.joinHeldRequests + counters.joinDroppedOldRequests,
    orphanResponses: counters.joinDroppedEarlyResponse + counters.joinLeftoverResponses,
  };
}

/** Upstream's debug endpoint (system-probe's), as the investigation queried it. */
export const DEBUG_PATH = '/network_tracer/debug/http_monitoring';

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

/**
 * Rows keyed as upstream's http.Key: (connection, path, fullPath, method). Client is the
 * normalised source (the ephemeral side). FirstLatencySample is in ms here (upstream: ns).
 */
export function toHttpMonitoring(txs: readonly Transaction[]): HttpMonitoringRow[] {
  const rows = new Map<string, HttpMonitoringRow>();
  for (const tx of txs) {
    const key = `${tupleKey(tx.tuple)} ${tx.method} ${tx.fullPath ?? true} ${tx.path}`;
    let row = rows.get(key);
    if (!row) {
      row = {
        Client: { IP: tx.tuple.client.ip, Port: tx.tuple.client.port },
        Server: { IP: tx.tuple.server.ip, Port: tx.tuple.server.port },
        DNS: '',
        Path: tx.path,
        Method: tx.method,
        ByStatus: {},
        StaticTags: STATIC_TAG_LIBSSL,
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

/**
 * Upstream's debug endpoint over a growing event stream, queried any number of times: what the
 * model's look-alike (src/lookalike/) answers GET /network_tracer/debug/http_monitoring with. The
 * same rules as formTransactions (runKernel, runUserSpace, toHttpMonitoring): each query hands
 * user space the parts enqueued since the previous one, with the requests the previous join held,
 * and returns the rows of the transactions accepted now. Like upstream's (GetAndResetAllStats), a
 * query drains: the next one returns only newer rows.
 */
export class DebugEndpoint {
  private readonly events: TlsEvent[] = [];
  /** Enqueued parts already handed to user space. */
  private consumed = 0;
  private held: KernelTx[] = [];
  /** User space's counters over every query so far. */
  readonly counters: HttpCounters = zeroCounters();
  queries = 0;

  add(ev: TlsEvent): void {
    this.events.push(ev);
  }

  get eventCount(): number {
    return this.events.length;
  }

  /** The rows at queryTimeNs (the events' clock: CLOCK_MONOTONIC ns). */
  query(queryTimeNs: number): HttpMonitoringRow[] {
    const { enqueued } = runKernel(this.events);
    const fresh = enqueued.slice(this.consumed);
    this.consumed = enqueued.length;
    const { transactions, held } = runUserSpace([...this.held, ...fresh], queryTimeNs, this.counters);
    this.held = held;
    this.queries++;
    transactions.sort((a, b) => a.requestTs - b.requestTs);
    return toHttpMonitoring(transactions);
  }
}
