// One trial's folder -> its result (src/analysis/trial.ts) and the parsers it reads with
// (src/analysis/events.ts), case by case: which file is missing or says what, the query time's
// source, the counts of the client's own lines, and the lines a parser must refuse. Aimed at what
// mutation run 7 found unguarded (README, "Mutation testing").
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeTrial, parseEndpointRows, pickQueryTime } from '../src/analysis/trial.ts';
import { parseClientOutput, parseTracerOutput } from '../src/analysis/events.ts';
import { cli, conns, req, srv, HEAD, BODY, ms, monitoringRow } from './helpers/tls-events.ts';

const root = mkdtempSync(join(tmpdir(), 'trial-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A trial folder: the tracer's lines (meta, events, stats) and the client's stdout. */
function folder(o: { events?: object[]; stats?: object | null; client?: string | null }): string {
  const dir = join(root, `t${++n}`);
  mkdirSync(dir, { recursive: true });
  const lines = [JSON.stringify({ meta: { variant: 'upstream', hook: 'raw_tp' } }), ...(o.events ?? []).map((e) => JSON.stringify(e))];
  if (o.stats !== null) lines.push(JSON.stringify({ stats: o.stats ?? { calls: { SSL_write: 2, SSL_read: 2 }, ktime_ns: ms(10_000) } }));
  writeFileSync(join(dir, 'events.jsonl'), lines.join('\n') + '\n');
  if (o.client !== null) writeFileSync(join(dir, 'client.out'), o.client ?? 'READY:40001:18001:40002:18002\nDONE\nconn1 ok=3 fail=1\nconn2 ok=2 fail=0\n');
  return dir;
}

/** analyzeTrial on a folder as the model's runs give it (iterations 1, the helper's conns, the client pid 100). */
const analyze = (dir: string, over: Partial<Parameters<typeof analyzeTrial>[0]> = {}) =>
  analyzeTrial({ dir, trial: 1, iterations: 1, conns, clientPid: 100, ...over });

/** One complete transaction on conn 1 (client and server sides). */
const oneTx = () => [
  cli(ms(1), 'SSL_write', 1, 1, req(1, 0)),
  srv(ms(2), 'SSL_read', 1, req(1, 0)),
  srv(ms(3), 'SSL_write', 1, HEAD),
  srv(ms(4), 'SSL_write', 1, BODY),
];

describe('analyzeTrial: what each file of the trial says', () => {
  it('writes http_monitoring.json as upstream rows, two-space JSON with a final newline; the client lines add up', async () => {
    const dir = folder({ events: oneTx() });
    const r = await analyze(dir, { durationMs: 1234 });
    expect(r.status).toBe('ok');
    const text = readFileSync(join(dir, 'http_monitoring.json'), 'utf8');
    expect(text).toBe(JSON.stringify(JSON.parse(text), null, 2) + '\n');
    expect(r.clientOk).toBe(5);
    expect(r.clientFail).toBe(1);
    expect(r.durationMs).toBe(1234);
    const without = await analyze(dir);
    expect('durationMs' in without).toBe(false);
  });

  it('the query time is the stats line ktime_ns: a request part older than 30 s by then is dropped, younger is held', async () => {
    // one request with no response: a request-only part at the termination
    const events = [cli(ms(1), 'SSL_write', 1, 1, req(1, 0)), { ...cli(ms(2), 'tcp_close', 1, 1, ''), len: 0 }];
    const late = await analyze(folder({ events, stats: { calls: { SSL_write: 1 }, ktime_ns: ms(1) + 31e9 } }));
    expect(late.queryTime).toEqual({ ns: ms(1) + 31e9, source: 'stats.ktime_ns' });
    expect(late.http!.joinDroppedOldRequests).toBe(1);
    expect(late.http!.joinHeldRequests).toBe(0);
    const soon = await analyze(folder({ events, stats: { calls: { SSL_write: 1 }, ktime_ns: ms(1) + 29e9 } }));
    expect(soon.http!.joinHeldRequests).toBe(1);
    expect(soon.http!.joinDroppedOldRequests).toBe(0);
  });

  it('no client DONE: client-failed; no stats line: tracer-failed; no SSL call counted: no-traffic; each with its words', async () => {
    const noDone = await analyze(folder({ events: oneTx(), client: 'READY:40001:18001:40002:18002\n' }));
    expect([noDone.status, noDone.error]).toEqual(['client-failed', 'client never printed DONE']);
    const noClient = await analyze(folder({ events: oneTx(), client: null }));
    expect([noClient.status, noClient.error]).toEqual(['client-failed', 'client never printed DONE']);
    const noStats = await analyze(folder({ events: oneTx(), stats: null }));
    expect([noStats.status, noStats.error]).toEqual(['tracer-failed', 'tracer wrote no stats line (did it flush on SIGINT?)']);
    for (const calls of [{}, { tcp_sendmsg: 9, tcp_recvmsg: 9 }, { x_SSL_read: 3 }, { x_SSL_write: 3 }, { SSL_read: 0, SSL_write: 'none' }]) {
      const r = await analyze(folder({ events: oneTx(), stats: { calls, ktime_ns: ms(9000) } }));
      expect([r.status, r.error], JSON.stringify(calls)).toEqual(['no-traffic', 'the tracer saw no SSL_read/SSL_write call: probes did not fire']);
    }
    for (const calls of [{ SSL_read_ex: 1 }, { SSL_write_ex: 1 }, { SSL_write: '2' }, { SSL_read: 1, tcp_sendmsg: -1 }]) {
      const r = await analyze(folder({ events: oneTx(), stats: { calls, ktime_ns: ms(9000) } }));
      expect(r.status, JSON.stringify(calls)).toBe('ok');
    }
    // the protocol's failure wins over what the files say
    const failed = await analyze(folder({ events: oneTx() }), { failure: { kind: 'server-failed', message: 'gone' } });
    expect([failed.status, failed.error]).toEqual(['server-failed', 'gone']);
  });

  it('pickQueryTime: an explicit time, else a positive finite ktime_ns, else the last event + 2 s, else none', () => {
    const ev = [{ ts: 5 }, { ts: 9 }];
    expect(pickQueryTime(7, 100, ev)).toEqual({ ns: 7, source: 'option' });
    expect(pickQueryTime(undefined, 100, ev)).toEqual({ ns: 100, source: 'stats.ktime_ns' });
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '100', null])
      expect(pickQueryTime(undefined, bad, ev), String(bad)).toEqual({ ns: 9 + 2e9, source: 'last-event+2s' });
    expect(pickQueryTime(undefined, undefined, [])).toEqual({ ns: null, source: 'none' });
  });
});

describe('the parsers refuse what is not theirs', () => {
  it('tracer lines: blank lines skipped, a meta or stats that is not an object is a bad line', () => {
    const out = parseTracerOutput(['   ', '{"meta":"v1"}', '{"stats":3}', '{"meta":{"variant":"scoped"}}', '\t', '{"stats":{"ktime_ns":5}}'].join('\n'));
    expect(out.badLines).toEqual([2, 3]);
    expect(out.meta).toEqual({ variant: 'scoped' });
    expect(out.stats).toEqual({ ktime_ns: 5 });
  });

  it('client lines: trimmed; READY and DONE whole-line only, in pairs; conn counts whole numbers, only after DONE', () => {
    expect(parseClientOutput('  READY:40001:18001:40002:18002  \r\n DONE \n').conns).toHaveLength(2);
    expect(parseClientOutput(' DONE \r\n').done).toBe(true);
    for (const bad of ['xREADY:1:2', 'READY:1:2x', 'READY:1:2 junk']) expect(parseClientOutput(bad).conns, bad).toEqual([]);
    expect(parseClientOutput('READY:1:2:3').conns).toEqual([{ k: 1, lport: 1, rport: 2 }]);
    for (const bad of ['xDONE:1:2', 'DONE:1:2x']) expect(parseClientOutput(bad).done, bad).toBe(false);
    expect(parseClientOutput('DONE:5:1:7').ok).toEqual([5]);
    const counts = parseClientOutput('conn1 ok=9 fail=9\nDONE\nconn1 ok=3 fail=12\nconn12 ok=4 fail=0\nxconn2 ok=8 fail=8\n');
    expect(counts.ok[0]).toBe(3);
    expect(counts.fail[0]).toBe(12);
    expect(counts.ok[11]).toBe(4);
    expect(counts.ok[1]).toBeUndefined();
  });
});

describe("an external tracer's trial: the rows its endpoint answered (rowsFrom: 'endpoint')", () => {
  /** A trial folder of an external tracer: its answer as http_monitoring.json (as returned), the client's stdout. */
  function endpointFolder(body: string | null, client: string | null = 'READY:40001:18001:40002:18002\nDONE\nconn1 ok=2 fail=0\nconn2 ok=1 fail=1\n'): string {
    const dir = join(root, `e${++n}`);
    mkdirSync(dir, { recursive: true });
    if (body !== null) writeFileSync(join(dir, 'http_monitoring.json'), body);
    if (client !== null) writeFileSync(join(dir, 'client.out'), client);
    return dir;
  }
  const rows = [
    monitoringRow('/200/conn1-iter0', 18001, 40001), // right
    monitoringRow('/200/conn1-iter1', 18002, 40002), // wrong: conn 1's request on conn 2's tuple
    monitoringRow('/200/conn2-iter0', 18002, 40002), // right
    monitoringRow('/200/elsewhere', 18001, 40001), // names no request of the run
  ];
  const endpoint = (dir: string, over: Partial<Parameters<typeof analyzeTrial>[0]> = {}) =>
    analyzeTrial({ dir, trial: 3, iterations: 2, conns, clientPid: 100, rowsFrom: 'endpoint', ...over });

  it("the rows are attributed as the model's are; no events, so no HTTP counters, no query time, no tracer meta; the client lines add up", async () => {
    const dir = endpointFolder(JSON.stringify(rows));
    const r = await endpoint(dir, { durationMs: 77 });
    expect(r.status).toBe('ok');
    expect(r.trial).toBe(3);
    expect(r.attribution).toMatchObject({ expected: 4, captured: 3, correct: 2, wrong: 1, lost: 1, capturedRequests: 2 });
    expect(r.attribution!.byConn).toEqual([
      { k: 1, rport: 18001, rightRows: 1, wrongRows: 1 },
      { k: 2, rport: 18002, rightRows: 1, wrongRows: 0 },
    ]);
    expect([r.incompleteRequests, r.orphanResponses, r.queryTime, r.tracerMeta, r.tracerStats]).toEqual([0, 0, { ns: null, source: 'endpoint' }, null, null]);
    expect('http' in r).toBe(false);
    expect([r.clientOk, r.clientFail, r.durationMs]).toEqual([3, 1, 77]);
    expect('durationMs' in (await endpoint(dir))).toBe(false);
    // the answer is kept as the tracer gave it: the analysis does not rewrite it
    expect(readFileSync(join(dir, 'http_monitoring.json'), 'utf8')).toBe(JSON.stringify(rows));
    // the client's own truth is not ours to take: no request is judged by our events
    expect(r.attribution!.truth).toEqual((await endpoint(endpointFolder('[]'))).attribution!.truth);
  });

  it("without the protocol's connections, the client's READY line names them", async () => {
    const r = await endpoint(endpointFolder(JSON.stringify(rows)), { conns: [] });
    expect(r.attribution).toMatchObject({ correct: 2, wrong: 1 });
    const none = await endpoint(endpointFolder(JSON.stringify(rows), 'DONE\n'), { conns: [] });
    expect(none.attribution).toMatchObject({ captured: 0, correct: 0, wrong: 0 });
  });

  it("the protocol's failure wins, then a client without DONE, then an answer that is not rows, each with its words", async () => {
    const failed = await endpoint(endpointFolder('not json'), { failure: { kind: 'tracer-failed', message: 'endpoint answered HTTP 500' } });
    expect([failed.status, failed.error]).toEqual(['tracer-failed', 'endpoint answered HTTP 500']);
    const noDone = await endpoint(endpointFolder('not json', 'READY:40001:18001:40002:18002\n'));
    expect([noDone.status, noDone.error]).toEqual(['client-failed', 'client never printed DONE']);
    const cases: [string | null, string][] = [
      [null, 'is empty'],
      ['  \n', 'is empty'],
      ['{"a":', 'is not JSON: '],
      ['{"rows":[]}', 'is not a JSON array of rows (it is object)'],
      ['null', 'is not a JSON array of rows (it is null)'],
      [
        '[{"Path":"/x","Server":{"Port":18001}}, {"Path":"/y","Server":{"Port":"18002"}}]',
        'row 1 has no Path string or Server.Port number: {"Path":"/y","Server":{"Port":"18002"}}',
      ],
    ];
    for (const [body, words] of cases) {
      const r = await endpoint(endpointFolder(body));
      expect(r.status, String(body)).toBe('tracer-failed');
      expect(r.error, String(body)).toContain(`the debug endpoint's answer (http_monitoring.json) ${words}`);
      expect(r.attribution, String(body)).toMatchObject({ captured: 0, correct: 0, wrong: 0, expected: 4 });
    }
  });

  it('parseEndpointRows: every row needs a Path string and a Server.Port number; other fields as they come', () => {
    expect(parseEndpointRows('[]')).toEqual([]);
    expect(parseEndpointRows('[{"Path":"/a","Server":{"Port":1},"Extra":true}]')).toEqual([{ Path: '/a', Server: { Port: 1 }, Extra: true }]);
    for (const [row, i] of [
      ['null', 0],
      ['3', 0],
      ['{"Server":{"Port":1}}', 0],
      ['{"Path":5,"Server":{"Port":1}}', 0],
      ['{"Path":"/a"}', 0],
      ['{"Path":"/a","Server":null}', 0],
    ] as const) {
      const got = parseEndpointRows(`[${row}]`);
      expect(got, row).toEqual({ error: `row ${i} has no Path string or Server.Port number: ${row.replace(/\s/g, '')}` });
    }
    expect(parseEndpointRows('"rows"')).toEqual({ error: 'is not a JSON array of rows (it is string)' });
    const long = parseEndpointRows(`[{"Path":"${'x'.repeat(400)}"}]`) as { error: string };
    expect(long.error.length).toBe('row 0 has no Path string or Server.Port number: '.length + 200);
  });
});
