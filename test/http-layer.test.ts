// Upstream's HTTP layer, one table per rule (MODEL.md, "The HTTP layer, exactly"): each case is an
// event sequence and the rows (and counters) upstream's debug endpoint would give.
import { describe, expect, it } from 'vitest';
import { normalize, tupleKey } from '../src/analysis/normalize.ts';
import {
  classify,
  formTransactions,
  HTTP_BUFFER_SIZE,
  INCOMPLETE_MIN_AGE_NS,
  isPrintablePath,
  requestPath,
  runUserSpace,
  statusOf,
  toHttpMonitoring,
  zeroCounters,
  type HttpCounters,
  type KernelTx,
} from '../src/analysis/transactions.ts';
import { attributeTrial } from '../src/analysis/attribution.ts';
import type { TlsEvent } from '../src/analysis/events.ts';
import { BODY, CLIENT, cli, conns, HEAD, ms, raw, req, RESP, rowLine, srv, swappedRun, term } from './helpers/tls-events.ts';

const P = '/200/conn1-iter0';
const GET = (path = P) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
/** Client (40001) and server (18001) of connection 1, on their own tuples. */
const c = (t: number, data: string, fn = data.startsWith('HTTP') || data === BODY ? 'SSL_read' : 'SSL_write') => cli(ms(t), fn, 1, 1, data);
const s = (t: number, data: string, fn = data.startsWith('HTTP') || data === BODY ? 'SSL_write_ex' : 'SSL_read_ex') => srv(ms(t), fn, 1, data);
const end = (t: number, fn: 'SSL_shutdown' | 'tcp_close' = 'SSL_shutdown') => term(ms(t), fn, 1);

/** The kernel + user-space invariants every case must keep. */
function checkBalance(k: HttpCounters) {
  const dropped = k.droppedNoPath + k.droppedNonPrintable + k.droppedUnknownMethod + k.droppedLatency;
  expect(k.enqueuedComplete + k.joined).toBe(k.accepted + dropped);
  expect(k.enqueuedRequestParts).toBe(k.joined + k.joinHeldRequests + k.joinDroppedOldRequests);
  expect(k.enqueuedResponseParts).toBe(k.joined + k.joinDroppedEarlyResponse + k.joinLeftoverResponses);
}

function run(events: TlsEvent[], queryTimeNs?: number) {
  const tx = formTransactions(events, queryTimeNs === undefined ? {} : { queryTimeNs });
  checkBalance(tx.counters);
  const rows = toHttpMonitoring(tx.transactions);
  return { tx, rows, lines: rows.map(rowLine) };
}

describe('classification: only the first bytes, as http_parse_data', () => {
  it.each([
    ['GET /x HTTP/1.1', 'request GET'],
    ['POST /x HTTP/1.0', 'request POST'],
    ['PUT /x HTTP/1.1', 'request PUT'],
    ['DELETE /x HTTP/1.1', 'request DELETE'],
    ['HEAD /x HTTP/1.1', 'request HEAD'],
    ['OPTIONS /x HTTP/1.1', 'request OPTIONS'],
    ['OPTIONS * HTTP/1.1', 'request OPTIONS'], // upstream takes the asterisk-form for OPTIONS only
    ['PATCH /x HTTP/1.1', 'request PATCH'],
    ['TRACE /x HTTP/1.1', 'request TRACE'],
    ['GET /x', 'request GET'], // no version needed: ` /` decides
    ['CONNECT example.com:443 HTTP/1.1', null], // not a method upstream knows
    ['CONNECT /x HTTP/1.1', null],
    ['GET x HTTP/1.1', null], // no ` /`
    ['GET * HTTP/1.1', null],
    ['GET  /x HTTP/1.1', null],
    ['get /x HTTP/1.1', null],
    [' GET /x HTTP/1.1', null],
    ['HTTP/1.1 200 OK', 'response 200'],
    ['HTTP/1.0 404 Not Found', 'response 404'], // HTTP/1.0 status
    ['HTTP/1.1 503', 'response 503'],
    ['HTTPS is not a status line', 'response 6898'], // starts with HTTP: a response, digits unchecked
    ['OK', null], // the body
    ['', null],
    [`${'x'.repeat(HTTP_BUFFER_SIZE)}HTTP/1.1 200 OK`, null],
  ])('%j -> %s', (data, want) => {
    const k = classify(data);
    const got = k === null ? null : k.kind === 'request' ? `request ${k.method}` : `response ${k.status}`;
    expect(got).toBe(want);
  });

  it.each([
    ['HTTP/1.1 200 OK', 200],
    ['HTTP/1.0 301 Moved', 301],
    ['HTTP/1.1 000', 0], // no status: the state stays "not responding"
    ['HTTP/2 200', 65008], // short: the kernel's zero padding, in a u16
  ])('status of %j is %i (the kernel arithmetic at offset 9)', (data, code) => {
    expect(statusOf(data)).toBe(code);
  });

  it.each([
    ['GET /a/b HTTP/1.1', '/a/b', true],
    ['GET /a/b?x=1&y=2 HTTP/1.1', '/a/b', true], // cut at ?
    ['OPTIONS * HTTP/1.1', '*', true],
    ['GET /a\0/b HTTP/1.1', '/a', false], // the fragment ends at a NUL
    ['GET /truncated', '/truncated', false], // fragment ended inside the path
    ['HTTP/1.1 200 OK', null, null], // a response fragment yields no path
    ['GET', null, null],
    ['GET ', null, null],
  ])('path of %j is %j', (fragment, path, full) => {
    const p = requestPath(fragment);
    expect(p?.path ?? null).toBe(path);
    expect(p?.fullPath ?? null).toBe(full);
  });

  it.each([
    ['/plain', true],
    ['/caf\u00e9', true], // strconv.IsPrint of a Latin-1 rune
    ['/a\u0001b', false],
    ['/a\u007fb', false],
    ['/a\u0085b', false],
    ['/a\u00a0b', false],
    ['/a\u00adb', false],
  ])('printable %j: %s', (p, ok) => expect(isPrintablePath(p)).toBe(ok));
});

// Each case: events (ms), the rows as "METHOD path client>server status x count", and counters.
const cases: [string, TlsEvent[], string[], Partial<HttpCounters>][] = [
  [
    "one-transaction lag: the client's read stays in flight, so its request part is held, Count 1 not 2",
    [c(1, GET()), s(2, GET()), s(3, HEAD), c(4, HEAD)],
    [`GET ${P} 40001>18001 200x1`],
    { enqueuedComplete: 1, joinHeldRequests: 1, inFlightAtQuery: 1 },
  ],
  ['lag of a single complete transaction: no row at all', [c(1, GET()), c(2, RESP)], [], { inFlightAtQuery: 1, inFlightCompleteAtQuery: 1, accepted: 0 }],
  [
    'termination by SSL_shutdown enqueues the state',
    [c(1, GET()), c(2, RESP), end(3)],
    [`GET ${P} 40001>18001 200x1`],
    { terminations: 1, enqueuedComplete: 1, inFlightAtQuery: 0 },
  ],
  [
    'termination by tcp_close enqueues the state',
    [c(1, GET()), c(2, RESP), end(3, 'tcp_close')],
    [`GET ${P} 40001>18001 200x1`],
    { terminations: 1, enqueuedComplete: 1 },
  ],
  ['a second termination finds no state', [c(1, GET()), c(2, RESP), end(3), end(4, 'tcp_close')], [`GET ${P} 40001>18001 200x1`], { terminations: 1 }],
  ['a termination of an unknown key does nothing', [end(1)], [], { terminations: 0, enqueuedComplete: 0 }],
  [
    'a request after a complete transaction flushes it',
    [c(1, GET()), c(2, RESP), c(3, GET('/next')), c(4, RESP)],
    [`GET ${P} 40001>18001 200x1`],
    { enqueuedComplete: 1, inFlightCompleteAtQuery: 1 },
  ],
  [
    'a request after a request flushes it as a request part',
    [c(1, GET('/a')), c(2, GET('/b')), c(3, RESP), end(4)],
    ['GET /b 40001>18001 200x1'],
    { enqueuedRequestParts: 1, joinHeldRequests: 1 },
  ],
  [
    'a response after a response leaves a response-only part, not a second row',
    [c(1, GET()), s(2, HEAD), c(3, HEAD), end(4)],
    [`GET ${P} 40001>18001 200x1`],
    { enqueuedComplete: 1, enqueuedResponseParts: 1, joinLeftoverResponses: 1 },
  ],
  [
    'a response creates state; a request after it flushes it as a response part',
    [c(1, HEAD), c(2, GET()), end(3)],
    [],
    { enqueuedResponseParts: 1, enqueuedRequestParts: 1, joinDroppedEarlyResponse: 1, joinHeldRequests: 1 },
  ],
  [
    'the body refreshes last_seen of a responding state',
    [c(1, GET()), c(2, HEAD), c(5, BODY), end(6)],
    [`GET ${P} 40001>18001 200x1`],
    { lastSeenRefreshes: 1, otherBuffers: 1 },
  ],
  [
    'the body before any status refreshes nothing',
    [c(1, GET()), c(3, BODY), c(4, HEAD), end(6)],
    [`GET ${P} 40001>18001 200x1`],
    { lastSeenRefreshes: 0, otherBuffers: 1 },
  ],
  ['the body never creates state', [c(1, BODY), end(2)], [], { otherBuffers: 1, inFlightAtQuery: 0, terminations: 0 }],
  [
    'CONNECT is not a request: its response stays a response part',
    [c(1, 'CONNECT example.com:443 HTTP/1.1\r\n\r\n'), c(2, HEAD), end(3)],
    [],
    { requestBuffers: 0, otherBuffers: 1, enqueuedResponseParts: 1, joinLeftoverResponses: 1 },
  ],
  ['`GET x` (no ` /`) is not a request', [c(1, 'GET x HTTP/1.1\r\n\r\n'), c(2, HEAD), end(3)], [], { requestBuffers: 0, joinLeftoverResponses: 1 }],
  [
    'an HTTP/1.0 status line completes a transaction',
    [c(1, GET()), c(2, 'HTTP/1.0 404 Not Found\r\n\r\n'), end(3)],
    [`GET ${P} 40001>18001 404x1`],
    { accepted: 1 },
  ],
  [
    'the path is cut at ?: two queries, one row',
    [c(1, GET('/p?a=1')), c(2, RESP), c(3, GET('/p?a=2')), c(4, RESP), end(5)],
    ['GET /p 40001>18001 200x2'],
    { accepted: 2 },
  ],
  ['dropped: non-printable path', [c(1, GET('/a\u0001b')), c(2, RESP), end(3)], [], { droppedNonPrintable: 1, accepted: 0 }],
  [
    'kept: a Latin-1 path is printable for upstream',
    [c(1, GET('/caf\u00e9')), c(2, RESP), end(3)],
    ['GET /caf\u00e9 40001>18001 200x1'],
    { droppedNonPrintable: 0 },
  ],
  ['dropped: latency 0 (request and response at the same ns)', [c(1, GET()), c(1, RESP), end(2)], [], { droppedLatency: 1 }],
  [
    'client and server of one connection share one state: two rows of one key, Count 2',
    [c(1, GET()), s(2, GET()), s(3, HEAD), c(4, HEAD), end(5)],
    [`GET ${P} 40001>18001 200x2`],
    { enqueuedComplete: 1, joined: 1 },
  ],
  [
    "a wrong-socket request joins that socket's response",
    [cli(ms(1), 'SSL_write', 2, 1, req(2, 0)), s(2, GET()), s(3, HEAD), cli(ms(4), 'SSL_read', 2, 1, HEAD), end(5)],
    [`GET ${P} 40001>18001 200x1`, 'GET /200/conn2-iter0 40001>18001 200x1'],
    { joined: 1 },
  ],
];

describe('kernel state and user space, rule by rule', () => {
  it.each(cases)('%s', (_name, events, lines, counters) => {
    const { tx, lines: got } = run(events);
    expect(got.sort()).toEqual([...lines].sort());
    expect(tx.counters).toMatchObject(counters);
  });

  it("rows are the debug endpoint's: client = ephemeral side, StaticTags 2 (LIBSSL), latency of the last seen byte", () => {
    const { rows } = run([s(1, GET()), s(2, HEAD), s(5, BODY), end(6)]);
    expect(rows).toEqual([
      {
        Client: { IP: '127.0.0.1', Port: 40001 },
        Server: { IP: '127.0.0.1', Port: 18001 },
        DNS: '',
        Path: P,
        Method: 'GET',
        ByStatus: { '200': { Count: 1, FirstLatencySample: 4 } },
        StaticTags: 2,
        DynamicTags: null,
      },
    ]);
  });
});

// Tuples as normalize() makes them, written out: calling it while the file is collected would make
// every normalize mutant static for mutation testing (run against all tests).
const TUPLE_1 = { client: { ip: '127.0.0.1', port: 40001 }, server: { ip: '127.0.0.1', port: 18001 } };
const TUPLE_2 = { client: { ip: '127.0.0.1', port: 40001 }, server: { ip: '127.0.0.1', port: 18002 } };

it('the written-out tuples are what normalize makes of either side', () => {
  expect(normalize({ saddr: '127.0.0.1', sport: 40001, daddr: '127.0.0.1', dport: 18001 })).toEqual(TUPLE_1);
  expect(normalize({ saddr: '127.0.0.1', sport: 18002, daddr: '127.0.0.1', dport: 40001 })).toEqual(TUPLE_2);
});

describe('user space drops that events cannot reach (StatKeeper.add on a complete transaction)', () => {
  const tuple = TUPLE_1;
  const tx = (over: Partial<KernelTx>): KernelTx => ({
    tuple,
    fragment: GET(),
    method: 'GET',
    requestStarted: ms(1),
    responseLastSeen: ms(2),
    status: 200,
    tags: 2,
    pid: 1,
    ...over,
  });
  it.each([
    ['a fragment without a path (HTTP/1.1 200)', tx({ fragment: 'HTTP/1.1 200 OK' }), 'droppedNoPath'],
    ['an unknown method', tx({ method: null }), 'droppedUnknownMethod'],
    ['a negative latency', tx({ responseLastSeen: ms(0.5) }), 'droppedLatency'],
  ] as const)('%s', (_n, t, counter) => {
    const k = zeroCounters();
    const { transactions } = runUserSpace([t], ms(100), k);
    expect(transactions).toEqual([]);
    expect(k[counter]).toBe(1);
  });
});

describe('the joiner at the query', () => {
  const tuple = TUPLE_1;
  const other = TUPLE_2;
  const rq = (t: number, path = P, on = tuple): KernelTx => ({
    tuple: on,
    fragment: GET(path),
    method: 'GET',
    requestStarted: t,
    responseLastSeen: 0,
    status: 0,
    tags: 2,
    pid: 1,
  });
  const rs = (t: number, status = 200, on = tuple): KernelTx => ({
    tuple: on,
    fragment: HEAD,
    method: null,
    requestStarted: 0,
    responseLastSeen: t,
    status,
    tags: 2,
    pid: 0,
  });
  const Q = 100e9;
  it.each([
    [
      'pairs greedily in time order, whatever the arrival order',
      [rs(ms(4), 202), rq(ms(3), '/b'), rq(ms(1), '/a'), rs(ms(2), 201)],
      ['/a 201', '/b 202'],
      { joined: 2 },
    ],
    ['drops a response earlier than the request', [rs(ms(1)), rq(ms(2)), rs(ms(3), 204)], [`${P} 204`], { joinDroppedEarlyResponse: 1, joined: 1 }],
    ['discards leftover responses', [rq(ms(1)), rs(ms(2)), rs(ms(3))], [`${P} 200`], { joinLeftoverResponses: 1 }],
    ['holds a leftover request younger than 30 s', [rq(Q - INCOMPLETE_MIN_AGE_NS + 1)], [], { joinHeldRequests: 1, joinDroppedOldRequests: 0 }],
    ['drops a leftover request exactly 30 s old', [rq(Q - INCOMPLETE_MIN_AGE_NS)], [], { joinHeldRequests: 0, joinDroppedOldRequests: 1 }],
    [
      'drops old leftovers, holds the first young one and all after it',
      [rq(Q - 40e9, '/a'), rq(Q - 31e9, '/b'), rq(Q - 29e9, '/c'), rq(Q - 1e9, '/d')],
      [],
      { joinDroppedOldRequests: 2, joinHeldRequests: 2 },
    ],
    [
      "groups by the client endpoint only (upstream: SrcIP, SrcPort): the row is the request's tuple",
      [rq(ms(1), P, tuple), rs(ms(2), 200, other)],
      [`${P} 200`],
      { joined: 1 },
    ],
  ] as const)('%s', (_n, parts, want, counters) => {
    const k = zeroCounters();
    const { transactions, held } = runUserSpace(parts, Q, k);
    expect(transactions.map((t) => `${t.path} ${t.status}`)).toEqual(want);
    expect(transactions.every((t) => t.joined && t.tuple === tuple)).toBe(true);
    expect(k).toMatchObject(counters);
    expect(held).toHaveLength(k.joinHeldRequests);
  });

  it('the query time comes from the option, else the last event + 2 s', () => {
    const evs = [c(1, GET()), end(2)];
    expect(formTransactions(evs).queryTimeNs).toBe(ms(2) + 2e9);
    expect(formTransactions(evs, { queryTimeNs: ms(2) + 31e9 }).counters).toMatchObject({ joinDroppedOldRequests: 1, joinHeldRequests: 0 });
    expect(formTransactions(evs).counters).toMatchObject({ joinDroppedOldRequests: 0, joinHeldRequests: 1 });
    expect(formTransactions([]).queryTimeNs).toBeNull();
  });
});

describe("normalisation at the ephemeral range's edges (32768-60999)", () => {
  it.each([
    [32767, 61000, 61000], // neither ephemeral: the lower port is the server
    [32768, 61000, 32768], // ephemeral beats the higher port
    [60999, 61000, 60999],
    [61000, 65000, 65000],
    [61000, 443, 61000],
    [32767, 32768, 32768],
    [40000, 50000, 50000], // both ephemeral: the lower port is the server
    [443, 8080, 8080],
  ])('%i <-> %i: client %i, one key from both sides', (a, b, client) => {
    const x = normalize({ saddr: '10.0.0.1', sport: a, daddr: '10.0.0.2', dport: b });
    const y = normalize({ saddr: '10.0.0.2', sport: b, daddr: '10.0.0.1', dport: a });
    expect(x.client.port).toBe(client);
    expect(tupleKey(x)).toBe(tupleKey(y));
  });

  it.each([5000, 40000])('equal ports (%i): no flip, no address tie-break, so the two sides are two keys', (port) => {
    const x = normalize({ saddr: '10.0.0.1', sport: port, daddr: '10.0.0.2', dport: port });
    const y = normalize({ saddr: '10.0.0.2', sport: port, daddr: '10.0.0.1', dport: port });
    expect(x.client.ip).toBe('10.0.0.1');
    expect(y.client.ip).toBe('10.0.0.2');
    expect(tupleKey(x)).not.toBe(tupleKey(y));
  });

  it('both sides of a 32768 <-> 61000 connection share one in-flight state', () => {
    const evs = [
      raw(ms(1), GET(), { sport: 61000, dport: 32768 }),
      raw(ms(2), HEAD, { sport: 32768, dport: 61000 }),
      raw(ms(3), '', { sport: 61000, dport: 32768 }, 'tcp_close'),
    ];
    expect(run(evs).lines).toEqual([`GET ${P} 32768>61000 200x1`]);
  });
});

describe("MODEL.md's consequence: a permanently swapped pair, full reads", () => {
  const n = 20;
  const check = (events: TlsEvent[]) => {
    const { tx, rows } = run(events);
    const a = attributeTrial({ rows, events, conns, iterations: n, clientPid: CLIENT });
    expect(a.wrong / a.captured).toBe(0.5);
    expect(a.captured / a.expected).toBe(2);
    expect(a.capturedRequests).toBe(a.expected);
    expect(a.lost).toBe(0);
    // the client side's rows are all wrong, the servers' all right
    const put = (t: (typeof tx.transactions)[number]) => (t.tuple.server.port === 18001 ? 1 : 2);
    for (const t of tx.transactions) expect(put(t) === Number(/conn(\d)/.exec(t.path)![1])).toBe(t.pid !== CLIENT);
    return { tx, a };
  };
  it.each(['interleaved', 'sequential'] as const)('%s, servers answering at once: exactly 50 %%, 2 rows per request', (order) => {
    check(swappedRun(n, order, 0));
  });
  it.each(Array.from({ length: 40 }, (_, i) => i + 1))('random timing, seed %i: still exactly 50 %%, 2 rows per request', (seed) => {
    check(swappedRun(n, seed % 2 ? 'interleaved' : 'sequential', seed));
  });
  it('not swapped: every row right, one row per request (the client and server halves collapse, Count 2)', () => {
    const events = swappedRun(n, 'interleaved', 7, false);
    const { rows } = run(events);
    const a = attributeTrial({ rows, events, conns, iterations: n, clientPid: CLIENT });
    expect(a.wrong).toBe(0);
    expect(a.captured).toBe(a.expected);
    expect(rows.every((r) => r.ByStatus['200']!.Count === 2)).toBe(true);
  });
  it('without the final termination, the last transaction of each key is missing (the lag)', () => {
    const events = swappedRun(n, 'interleaved', 0).filter((e) => e.len > 0);
    const { tx } = run(events);
    expect(tx.counters.inFlightAtQuery).toBe(2);
    expect(tx.transactions.length).toBeLessThan(4 * n);
  });
});
