// Synthetic tracer events for the analysis tests: a client (pid 100) on two connections to two
// servers (pids 201, 202), each event on the tuple the tracer attributed it to.
import type { Conn, TlsEvent } from '../../src/analysis/events.ts';
import type { HttpMonitoringRow } from '../../src/analysis/transactions.ts';
import { rng } from '../../src/plan/plan.ts';

export const CLIENT = 100;
export const SRV = [0, 201, 202] as const;
export const conns: Conn[] = [
  { k: 1, lport: 40001, rport: 18001 },
  { k: 2, lport: 40002, rport: 18002 },
];
export const ctx = (k: number) => `0x${(0x1000 * k).toString(16)}`;
export const req = (k: number, i: number, q = '') => `GET /200/conn${k}-iter${i}${q} HTTP/1.1\r\nHost: 127.0.0.1:1800${k}\r\nConnection: keep-alive\r\n\r\n`;
/** The Python server's two TLS records: headers, then the 2-byte body. */
export const HEAD = 'HTTP/1.1 200 OK\r\nServer: BaseHTTP/0.6 Python/3.11\r\nContent-Length: 2\r\n\r\n';
export const BODY = 'OK';
export const RESP = HEAD + BODY;

export const ms = (x: number) => Math.round(x * 1e6);

/** A client event of context k put on connection `on` (its own socket, or the wrong one). */
export function cli(ts: number, fn: string, k: number, on: number, data: string): TlsEvent {
  const c = conns[on - 1]!;
  return {
    ts,
    pid: CLIENT,
    tid: CLIENT,
    comm: 'race_client',
    fn,
    ctx: ctx(k),
    len: data.length,
    family: 4,
    saddr: '127.0.0.1',
    sport: c.lport,
    daddr: '127.0.0.1',
    dport: c.rport,
    via: 'fallback-send',
    data,
  };
}

/** A server event on connection k (servers see their own socket: always right). */
export function srv(ts: number, fn: string, k: number, data: string): TlsEvent {
  const c = conns[k - 1]!;
  return {
    ts,
    pid: SRV[k]!,
    tid: 1,
    comm: 'python3',
    fn,
    ctx: `0x5${k}`,
    len: data.length,
    family: 4,
    saddr: '127.0.0.1',
    sport: c.rport,
    daddr: '127.0.0.1',
    dport: c.lport,
    via: 'cached',
    data,
  };
}

/** A termination line as the tracer emits it: len 0, data '', the connection's tuple. */
export function term(ts: number, fn: 'SSL_shutdown' | 'tcp_close', on: number, pid = CLIENT): TlsEvent {
  return { ...cli(ts, fn, on, on, ''), pid, tid: pid };
}

/** Any tuple, for normalisation cases. */
export function raw(ts: number, data: string, t: { saddr?: string; sport: number; daddr?: string; dport: number }, fn = 'SSL_write'): TlsEvent {
  return {
    ts,
    pid: 1,
    tid: 1,
    comm: 'x',
    fn,
    ctx: '0x1',
    len: data.length,
    family: 4,
    saddr: t.saddr ?? '127.0.0.1',
    sport: t.sport,
    daddr: t.daddr ?? '127.0.0.1',
    dport: t.dport,
    via: 'cached',
    data,
  };
}

/** A row in one line: "GET /p 40001>18001 200x1". */
export function rowLine(r: HttpMonitoringRow): string {
  const st = Object.entries(r.ByStatus)
    .map(([s, v]) => `${s}x${v.Count}`)
    .join(',');
  return `${r.Method} ${r.Path} ${r.Client.Port}>${r.Server.Port} ${st}`;
}

type Op = { actor: 0 | 1 | 2; ev: (ts: number) => TlsEvent; needs?: string; gives?: string };

/**
 * A permanently swapped pair (client context k's buffers on connection 3-k), servers traced on
 * their own tuples, a full-reading client (headers read, then body read). `order` is the client's
 * per-iteration program; the servers run concurrently, scheduled at random by `seed` (seed 0:
 * each actor as soon as it can, the client last). Ends with the client's SSL_shutdown and close.
 */
export function swappedRun(n: number, order: 'interleaved' | 'sequential', seed: number, swapped = true): TlsEvent[] {
  const on = (k: number) => (swapped ? 3 - k : k);
  const client: Op[] = [];
  const servers: Op[][] = [[], [], []];
  const w = (k: number, i: number): Op => ({ actor: 0, ev: (ts) => cli(ts, 'SSL_write', k, on(k), req(k, i)), gives: `req${k}.${i}` });
  const r = (k: number, i: number): Op[] => [
    { actor: 0, ev: (ts) => cli(ts, 'SSL_read', k, on(k), HEAD), needs: `head${k}.${i}` },
    { actor: 0, ev: (ts) => cli(ts, 'SSL_read', k, on(k), BODY), needs: `body${k}.${i}` },
  ];
  for (let i = 0; i < n; i++) {
    if (order === 'interleaved') client.push(w(1, i), w(2, i), ...r(1, i), ...r(2, i));
    else client.push(w(1, i), ...r(1, i), w(2, i), ...r(2, i));
    for (const k of [1, 2] as const) {
      servers[k]!.push(
        { actor: k, ev: (ts) => srv(ts, 'SSL_read_ex', k, req(k, i)), needs: `req${k}.${i}` },
        { actor: k, ev: (ts) => srv(ts, 'SSL_write_ex', k, HEAD), gives: `head${k}.${i}` },
        { actor: k, ev: (ts) => srv(ts, 'SSL_write_ex', k, BODY), gives: `body${k}.${i}` },
      );
    }
  }
  const queues = [client, servers[1]!, servers[2]!];
  const done = new Set<string>();
  const rnd = seed ? rng(seed) : null;
  const out: TlsEvent[] = [];
  let ts = ms(1000);
  while (queues.some((q) => q.length)) {
    const ready = queues.map((q, a) => ({ q, a })).filter(({ q }) => q.length && (!q[0]!.needs || done.has(q[0]!.needs)));
    const pick = rnd ? ready[Math.floor(rnd() * ready.length)]! : ready[ready.length > 1 ? ready.length - 1 : 0]!;
    const op = pick.q.shift()!;
    ts += rnd ? 1 + Math.floor(rnd() * ms(0.2)) : ms(0.01);
    out.push(op.ev(ts));
    if (op.gives) done.add(op.gives);
  }
  out.push(
    term(ts + ms(1), 'SSL_shutdown', on(1)),
    term(ts + ms(2), 'SSL_shutdown', on(2)),
    term(ts + ms(3), 'tcp_close', 1),
    term(ts + ms(4), 'tcp_close', 2),
  );
  return out;
}

/** A row of the debug endpoint naming `path`, put on the server port `server` (client port `client`). */
export function monitoringRow(path: string, server: number, client = 40000): HttpMonitoringRow {
  return {
    Client: { IP: '127.0.0.1', Port: client },
    Server: { IP: '127.0.0.1', Port: server },
    DNS: '',
    Path: path,
    Method: 'GET',
    ByStatus: { '200': { Count: 1, FirstLatencySample: 1 } },
    StaticTags: 2,
    DynamicTags: null,
  };
}
