// Upstream's HTTP layer at its edges, as tables (MODEL.md: each rule wants a table test): C's
// signed chars in the status, where a path may begin and what is printable, the kernel side's
// order, tags and counters, the joiner's equal timestamps, and the row key's fullPath. Aimed at
// what mutation run 7 left alive in transactions.ts (README, "Mutation testing").
import { describe, expect, it } from 'vitest';
import {
  isPrintablePath,
  requestPath,
  runKernel,
  runUserSpace,
  statusOf,
  toHttpMonitoring,
  formTransactions,
  zeroCounters,
  type KernelTx,
  type Transaction,
} from '../src/analysis/transactions.ts';
import { clientKey, normalize } from '../src/analysis/normalize.ts';
import { t975 } from '../src/analysis/interval.ts';
import { cli, srv, raw, req, HEAD, BODY, ms } from './helpers/tls-events.ts';

describe('statusOf: the three bytes at offset 9, as C computes them from signed chars', () => {
  it.each([
    ['HTTP/1.1 200 OK', 200],
    ['HTTP/1.0 404 Not Found', 404],
    // 0x80 is -128 as a signed char: (-128 - 48) * 100 = -17600, kept in a u16
    ['HTTP/1.1 \x8000', 65536 - 17600],
    ['HTTP/1.1 \xff00', 65536 - 4900],
    ['HTTP/1.1 \x7f00', (0x7f - 48) * 100],
    ['HTTP/1.1 2', (2 * 100 - 48 * 10 - 48 + 65536) % 65536],
  ])('%j -> %i', (fragment, status) => {
    expect(statusOf(fragment)).toBe(status);
  });
});

describe('requestPath and isPrintablePath', () => {
  it.each([
    ['GET /a HTTP/1.1', { path: '/a', fullPath: true }],
    ['GET /a?x=1 HTTP/1.1', { path: '/a', fullPath: true }],
    ['GET /abc', { path: '/abc', fullPath: false }],
    ['OPTIONS * HTTP/1.1', { path: '*', fullPath: true }],
    ['GET x/a HTTP/1.1', null],
    ['GET', null],
    ['GET ', null],
    ['HTTP/1.1 200 OK', null],
    ['GET /a\0 junk', { path: '/a', fullPath: false }],
  ])('%j -> %j', (fragment, want) => {
    expect(requestPath(fragment)).toEqual(want);
  });

  it('printable: 0x20-0x7e and 0xa1-0xff but 0xad, nothing else', () => {
    const ok = [0x20, 0x21, 0x7d, 0x7e, 0xa1, 0xa2, 0xac, 0xae, 0xfe, 0xff];
    const bad = [0x00, 0x1f, 0x7f, 0x80, 0xa0, 0xad, 0x100, 0x2028];
    for (const c of ok) expect(isPrintablePath(`/${String.fromCharCode(c)}`), c.toString(16)).toBe(true);
    for (const c of bad) expect(isPrintablePath(`/${String.fromCharCode(c)}`), c.toString(16)).toBe(false);
  });
});

describe('the kernel side: order, tags, counters', () => {
  const tx = () => [
    cli(ms(1), 'SSL_write', 1, 1, req(1, 0)),
    srv(ms(2), 'SSL_read', 1, req(1, 0)),
    srv(ms(3), 'SSL_write', 1, HEAD),
    srv(ms(4), 'SSL_write', 1, BODY),
    cli(ms(5), 'SSL_write', 1, 1, req(1, 1)),
  ];

  it("events are taken in ts order, whatever the file's order, and the caller's array is left as it was", () => {
    const events = tx();
    const shuffled = [events[3]!, events[0]!, events[4]!, events[2]!, events[1]!];
    const copy = [...shuffled];
    const a = runKernel(events);
    const b = runKernel(shuffled);
    expect(b.enqueued).toEqual(a.enqueued);
    expect(b.inFlight).toEqual(a.inFlight);
    expect(shuffled).toEqual(copy);
  });

  it('counts request and response buffers; every state carries the LIBSSL tag; a request alone sets no last_seen', () => {
    const c = zeroCounters();
    const { enqueued, inFlight } = runKernel(tx(), c);
    expect(c.requestBuffers).toBe(3);
    expect(c.responseBuffers).toBe(1);
    expect(c.otherBuffers).toBe(1);
    // the server's read of the request flushes the client's copy (a request-only part), then the whole one leaves
    expect(enqueued.map((t) => [t.tags, t.status])).toEqual([
      [2, 0],
      [2, 200],
    ]);
    expect(inFlight).toHaveLength(1);
    expect(inFlight[0]).toMatchObject({ tags: 2, responseLastSeen: 0, status: 0, requestStarted: ms(5) });
    // one state in flight, not complete
    expect(c.inFlightAtQuery).toBe(1);
    expect(c.inFlightCompleteAtQuery).toBe(0);
  });

  it('a complete state still in flight at the query is counted as such', () => {
    const c = zeroCounters();
    runKernel(tx().slice(0, 4), c);
    expect([c.inFlightAtQuery, c.inFlightCompleteAtQuery]).toEqual([1, 1]);
  });
});

describe('the joiner and the rows', () => {
  const tuple = normalize({ saddr: '127.0.0.1', sport: 40001, daddr: '127.0.0.1', dport: 18001 });
  const part = (o: Partial<KernelTx>): KernelTx => ({
    tuple,
    fragment: '',
    method: null,
    requestStarted: 0,
    responseLastSeen: 0,
    status: 0,
    tags: 2,
    pid: 0,
    ...o,
  });

  it('a response part seen at the very nanosecond the request started is joined (only an earlier one is dropped)', () => {
    const c = zeroCounters();
    const request = part({ fragment: 'GET /x HTTP/1.1', method: 'GET', requestStarted: 1000 });
    const { transactions } = runUserSpace([request, part({ fragment: 'HTTP/1.1 200 OK', status: 200, responseLastSeen: 1000 })], 5000, c);
    // joined, then refused by StatKeeper for a latency of 0, as upstream
    expect([c.joined, c.joinDroppedEarlyResponse, c.droppedLatency, transactions.length]).toEqual([1, 0, 1, 0]);
    const c2 = zeroCounters();
    runUserSpace([request, part({ fragment: 'HTTP/1.1 200 OK', status: 200, responseLastSeen: 999 })], 5000, c2);
    expect([c2.joined, c2.joinDroppedEarlyResponse]).toEqual([0, 1]);
  });

  it('incompleteRequests and orphanResponses add up both of their counters (each non-zero)', () => {
    const on = (k: number) => ({ sport: 40000 + k, dport: 18000 + k });
    const s = 1e9;
    const events = [
      // A: a request part, old by the query: dropped
      raw(0.001 * s, req(1, 0), on(1)),
      raw(0.002 * s, '', on(1), 'tcp_close'),
      // B: a request part, young: held
      raw(35 * s, req(1, 1), on(2)),
      raw(35.001 * s, '', on(2), 'tcp_close'),
      // C: a response part before the request part: the response dropped early, the request old
      raw(0.001 * s, HEAD, on(3)),
      raw(0.002 * s, '', on(3), 'tcp_close'),
      raw(0.01 * s, req(1, 2), on(3)),
      raw(0.011 * s, '', on(3), 'tcp_close'),
      // D: two response parts and no request: both left over
      raw(0.001 * s, HEAD, on(4)),
      raw(0.002 * s, '', on(4), 'tcp_close'),
      raw(0.003 * s, HEAD, on(4)),
      raw(0.004 * s, '', on(4), 'tcp_close'),
    ];
    const r = formTransactions(events, { queryTimeNs: 40 * s });
    expect([r.counters.joinDroppedOldRequests, r.counters.joinHeldRequests, r.counters.joinDroppedEarlyResponse, r.counters.joinLeftoverResponses]).toEqual([
      2, 1, 1, 2,
    ]);
    expect(r.incompleteRequests).toBe(3);
    expect(r.orphanResponses).toBe(3);
  });

  it('the row key holds fullPath: absent counts as true (one row), false is a row of its own', () => {
    const t = (fullPath?: boolean): Transaction => ({
      tuple,
      method: 'GET',
      path: '/x',
      status: 200,
      requestTs: 1,
      responseTs: 2,
      pid: 1,
      joined: false,
      ...(fullPath === undefined ? {} : { fullPath }),
    });
    expect(toHttpMonitoring([t(), t(true)])).toHaveLength(1);
    expect(toHttpMonitoring([t(), t(true)])[0]!.ByStatus['200']!.Count).toBe(2);
    expect(toHttpMonitoring([t(false), t(true)])).toHaveLength(2);
    expect(toHttpMonitoring([t(false), t()])).toHaveLength(2);
  });

  it('clientKey is the client endpoint; t975 names a bad df', () => {
    expect(clientKey(tuple)).toBe('127.0.0.1:40001');
    expect(() => t975(0)).toThrow('t975: df must be a positive integer, got 0');
  });
});
