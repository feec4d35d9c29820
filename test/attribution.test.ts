// attribution.ts case by case (issue 14: each case is a mutant that survived the earlier tables):
// which rows count, the per-connection counts, the client-side truth of writes and reads, symmetry.
import { describe, expect, it } from 'vitest';
import { attributeTrial, clientTruth, symmetry } from '../src/analysis/attribution.ts';
import type { TlsEvent } from '../src/analysis/events.ts';
import { monitoringRow } from './helpers/tls-events.ts';

const conns = [
  { k: 1, lport: 40001, rport: 18001 },
  { k: 2, lport: 40002, rport: 18002 },
];
const row = (path: string, server: number) => monitoringRow(path, server);
const CLIENT = 100;
let ts = 0;
const ev = (o: Partial<TlsEvent> & { fn: string; data: string; sport: number; dport: number; ctx: string }): TlsEvent => ({
  ts: ++ts,
  pid: CLIENT,
  tid: CLIENT,
  comm: 'race_client',
  len: o.data.length,
  family: 2,
  saddr: '127.0.0.1',
  daddr: '127.0.0.1',
  via: 'ctx',
  ...o,
});
const req = (k: number, i: number) => `GET /200/conn${k}-iter${i} HTTP/1.1\r\nHost: x\r\n\r\n`;

describe('attributeTrial: which rows count, and where', () => {
  it("a row whose iteration is the run's count or more, or whose connection is 0 or past the run's, names no request of the run", () => {
    const rows = [
      row('/200/conn1-iter2', 18001),
      row('/200/conn1-iter3', 18001),
      row('/200/conn0-iter0', 18001),
      row('/200/conn3-iter0', 18002),
      row('/x', 18001),
    ];
    const a = attributeTrial({ rows: rows as never, events: [], conns, iterations: 3, clientPid: null });
    expect(a).toMatchObject({ captured: 1, correct: 1, wrong: 0, backendRows: 0, expected: 6, lost: 5, capturedRequests: 1 });
  });

  it('per connection: its rows put right and wrong; a request with two right rows is one captured request', () => {
    const rows = [
      row('/200/conn1-iter0', 18001),
      row('/200/conn1-iter0', 18001),
      row('/200/conn1-iter1', 18002),
      row('/200/conn2-iter0', 18001),
      row('/200/conn2-iter0', 18002),
      row('/200/conn2-iter1', 18001),
    ];
    const a = attributeTrial({ rows: rows as never, events: [], conns, iterations: 2, clientPid: null });
    expect(a.byConn).toEqual([
      { k: 1, rport: 18001, rightRows: 2, wrongRows: 1 },
      { k: 2, rport: 18002, rightRows: 1, wrongRows: 2 },
    ]);
    expect(a).toMatchObject({ captured: 6, correct: 3, wrong: 3, capturedRequests: 2, lost: 0 });
  });
});

describe('attributeTrial: connections and iterations of several digits', () => {
  it('conn10-iter10, conn11 and conn12 are read whole (never as conn1 or iter1)', () => {
    // one server port a connection, as the client runs them: conn k on 18000 + k
    const twelve = Array.from({ length: 12 }, (_, i) => ({ k: i + 1, lport: 40001 + i, rport: 18001 + i }));
    const rows = [row('/200/conn12-iter0', 18012), row('/200/conn11-iter0', 18001), row('/200/conn10-iter10', 18010), row('/200/conn10-iter1', 18010)];
    const a = attributeTrial({ rows: rows as never, events: [], conns: twelve, iterations: 11, clientPid: null });
    expect(a).toMatchObject({ expected: 132, captured: 4, correct: 3, wrong: 1, capturedRequests: 3, lost: 128 });
    expect(a.byConn.filter((c) => c.rightRows + c.wrongRows > 0)).toEqual([
      { k: 10, rport: 18010, rightRows: 2, wrongRows: 0 },
      { k: 11, rport: 18011, rightRows: 0, wrongRows: 1 },
      { k: 12, rport: 18012, rightRows: 1, wrongRows: 0 },
    ]);
  });
});

describe("clientTruth: the client's own writes and reads", () => {
  it('a request write is right on its own tuple and wrong on any other (the local port and the remote port must both match); each request counts once', () => {
    const events = [
      ev({ fn: 'SSL_write', data: req(1, 0), sport: 40001, dport: 18001, ctx: 'a' }), // right
      ev({ fn: 'SSL_write', data: req(1, 0), sport: 40002, dport: 18002, ctx: 'a' }), // the same request again: not counted
      ev({ fn: 'SSL_write', data: req(2, 0), sport: 40001, dport: 18001, ctx: 'b' }), // wrong: conn 1's tuple
      ev({ fn: 'SSL_write', data: req(1, 1), sport: 40001, dport: 18002, ctx: 'a' }), // wrong: local port of 1, remote of 2
      ev({ fn: 'SSL_write', data: req(2, 1), sport: 40002, dport: 18001, ctx: 'b' }), // wrong: local port of 2, remote of 1
      ev({ fn: 'SSL_write', data: req(2, 2), sport: 40002, dport: 18002, ctx: 'b', pid: 7 }), // another process: not the client's
      ev({ fn: 'SSL_read', data: req(2, 2), sport: 40002, dport: 18002, ctx: 'b' }), // a request READ: not a write
      ev({ fn: 'SSL_write', data: 'OK', sport: 40002, dport: 18002, ctx: 'b' }), // not a request
      ev({ fn: 'SSL_write', data: req(3, 0), sport: 40002, dport: 18002, ctx: 'b' }), // no such connection
      ev({ fn: 'SSL_write', data: req(0, 0), sport: 40001, dport: 18001, ctx: 'a' }), // conn0: no such connection either
      ev({ fn: 'SSL_write', data: req(1, 2), sport: 40009, dport: 18001, ctx: 'c' }), // wrong: conn 1's server port from another socket
    ];
    const t = clientTruth(events, conns, 3, CLIENT);
    expect(t.writes).toEqual({ correct: 1, wrong: 4, lost: 1 });
  });

  it("a response read is right on the tuple of its context's connection (learned from that context's writes); a body read is unclassified; a read of an unknown context or with no data is not counted", () => {
    const events = [
      ev({ fn: 'SSL_write', data: req(1, 0), sport: 40001, dport: 18001, ctx: 'a' }),
      ev({ fn: 'SSL_write', data: req(2, 0), sport: 40002, dport: 18002, ctx: 'b' }),
      ev({ fn: 'SSL_read', data: 'HTTP/1.1 200 OK\r\n', sport: 40001, dport: 18001, ctx: 'a' }), // right
      ev({ fn: 'SSL_read', data: 'HTTP/1.1 200 OK\r\n', sport: 40001, dport: 18001, ctx: 'b' }), // wrong: b is conn 2
      ev({ fn: 'SSL_read', data: 'HTTP/1.1 200 OK\r\n', sport: 40002, dport: 18001, ctx: 'b' }), // wrong: half a tuple
      ev({ fn: 'SSL_read', data: 'OK', sport: 40002, dport: 18002, ctx: 'b' }), // the body: unclassified
      ev({ fn: 'SSL_read', data: 'HTTP/1.1 200 OK\r\n', sport: 40002, dport: 18002, ctx: 'z' }), // unknown context
      ev({ fn: 'SSL_read', data: '', sport: 40002, dport: 18002, ctx: 'b' }), // no data
      ev({ fn: 'SSL_read', data: 'HTTP/1.1 200 OK\r\n', sport: 40002, dport: 18002, ctx: 'b', pid: 7 }), // not the client
    ];
    const t = clientTruth(events, conns, 2, CLIENT);
    expect(t.reads).toEqual({ correct: 1, wrong: 2, lost: 1 });
    expect(t.unclassifiedReads).toBe(1);
    expect(t.writes).toEqual({ correct: 2, wrong: 0, lost: 2 });
  });

  it('reads.lost is never negative (more status lines than requests: a client that reads ahead)', () => {
    const events = [ev({ fn: 'SSL_write', data: req(1, 0), sport: 40001, dport: 18001, ctx: 'a' })];
    for (let i = 0; i < 4; i++) events.push(ev({ fn: 'SSL_read', data: 'HTTP/1.1 200 OK\r\n', sport: 40001, dport: 18001, ctx: 'a' }));
    expect(clientTruth(events, conns.slice(0, 1), 1, CLIENT).reads).toEqual({ correct: 4, wrong: 0, lost: 0 });
    expect(clientTruth(events, conns.slice(0, 1), 1, null).reads).toEqual({ correct: 0, wrong: 0, lost: 1 });
  });
});

describe('symmetry', () => {
  it('min over max of the wrong rows, whatever the order; null with one connection or no wrong row', () => {
    expect(symmetry([{ wrongRows: 3 }, { wrongRows: 6 }])).toBe(0.5);
    expect(symmetry([{ wrongRows: 6 }, { wrongRows: 3 }])).toBe(0.5);
    expect(symmetry([{ wrongRows: 2 }, { wrongRows: 8 }, { wrongRows: 4 }])).toBe(0.25);
    expect(symmetry([{ wrongRows: 0 }, { wrongRows: 4 }])).toBe(0);
    expect(symmetry([{ wrongRows: 0 }, { wrongRows: 0 }])).toBeNull();
    expect(symmetry([{ wrongRows: 5 }])).toBeNull();
  });
});
