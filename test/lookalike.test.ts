// The model's debug-endpoint look-alike (issue 9, part 2): the stateful endpoint over the one HTTP
// layer, the look-alike's command line, and its bundle run by node as a guest runs it, against a
// loader stand-in (a python script that prints recorded events as the model's loader does; the
// real loader runs in test/e2e-tracer.test.ts).
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEBUG_PATH, DebugEndpoint, formTransactions, toHttpMonitoring } from '../src/analysis/transactions.ts';
import { parseLookalikeArgs } from '../src/lookalike/main.ts';
import { buildBundle, lookalikeBundle } from '../src/lookalike/bundle.ts';
import { cli, HEAD, BODY, req, srv, swappedRun, term, ms, rowLine } from './helpers/tls-events.ts';

const tmp = mkdtempSync(join(tmpdir(), 'lookalike-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('DebugEndpoint: upstream endpoint over a growing stream, the same rules as the analysis', () => {
  it('one query after the whole run gives the rows formTransactions gives at the same time', () => {
    for (const order of ['interleaved', 'sequential'] as const) {
      const events = swappedRun(40, order, 7);
      const at = Math.max(...events.map((e) => e.ts)) + 2e9;
      const ep = new DebugEndpoint();
      for (const e of events) ep.add(e);
      const rows = ep.query(at);
      expect(rows.length).toBeGreaterThan(40);
      expect(rows.map(rowLine)).toEqual(toHttpMonitoring(formTransactions(events, { queryTimeNs: at }).transactions).map(rowLine));
    }
  });

  it('a query drains: a second one returns only the transactions completed since', () => {
    const events = swappedRun(20, 'interleaved', 3);
    const half = Math.floor(events.length / 2);
    const ep = new DebugEndpoint();
    for (const e of events.slice(0, half)) ep.add(e);
    const first = ep.query(events[half - 1]!.ts + 1);
    for (const e of events.slice(half)) ep.add(e);
    const second = ep.query(Math.max(...events.map((e) => e.ts)) + 2e9);
    expect(first.length).toBeGreaterThan(0);
    expect(second.length).toBeGreaterThan(0);
    const all = toHttpMonitoring(formTransactions(events).transactions).map(rowLine).sort();
    // together they are the whole run's rows, none twice
    expect([...first, ...second].map(rowLine).sort()).toEqual(all);
    expect(ep.query(Math.max(...events.map((e) => e.ts)) + 3e9)).toEqual([]);
    expect(ep.queries).toBe(3);
  });

  it('a request part held by one query (younger than 30 s) is joined with its response part at the next', () => {
    // One key: the client's first request is flushed by its second before any response (a
    // request-only part); the server's second status line flushes the completed second request and
    // leaves a response-only part, which the termination enqueues.
    const ep = new DebugEndpoint();
    const e = [cli(ms(1), 'SSL_write', 1, 1, req(1, 0)), cli(ms(2), 'SSL_write', 1, 1, req(1, 1))];
    for (const x of e) ep.add(x);
    // nothing complete yet: req(1,0) was flushed as a request-only part, held (young)
    expect(ep.query(ms(3))).toEqual([]);
    expect(ep.counters.joinHeldRequests).toBe(1);
    // its response: a status on the key (completes req(1,1) in flight), then a second status flushes that
    // and starts a response-only part; termination enqueues it
    for (const x of [srv(ms(4), 'SSL_write', 1, HEAD), srv(ms(5), 'SSL_write', 1, BODY), srv(ms(6), 'SSL_write', 1, HEAD), term(ms(7), 'tcp_close', 1)])
      ep.add(x);
    const rows = ep.query(ms(8));
    expect(rows.map((r) => r.Path).sort()).toEqual(['/200/conn1-iter0', '/200/conn1-iter1']);
    expect(ep.counters.joined).toBe(1);
  });
});

describe('the look-alike command line', () => {
  it('takes a socket or a port, a path, and the loader after --', () => {
    expect(parseLookalikeArgs(['--socket', '/run/x.sock', '--', '/b/usm_tls', '--variant', 'upstream'])).toEqual({
      socket: '/run/x.sock',
      path: DEBUG_PATH,
      loader: ['/b/usm_tls', '--variant', 'upstream'],
    });
    expect(parseLookalikeArgs(['--port', '5555', '--path', '/x', '--', 'l'])).toEqual({ port: 5555, path: '/x', loader: ['l'] });
    expect(parseLookalikeArgs(['--help'])).toBe('help');
  });

  it.each([
    [['--', 'l'], /one of --socket PATH or --port N/],
    [['--socket', 's', '--port', '1', '--', 'l'], /one of --socket PATH or --port N/],
    [['--socket', 's'], /give the loader to run after --/],
    [['--port', '70000', '--', 'l'], /--port 70000: a port number/],
    [['--port', 'x', '--', 'l'], /--port x: a port number/],
    [['--path', 'nope', '--socket', 's', '--', 'l'], /an absolute HTTP path/],
    [['--socket'], /--socket needs a value/],
    [['--variant', 'upstream'], /unknown argument '--variant' \(the loader's command line goes after --\)/],
  ])('refuses %j', (argv, msg) => {
    expect(() => parseLookalikeArgs(argv)).toThrow(msg);
  });
});

/** GET over a unix socket; resolves with status and body. */
function get(socket: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = request({ socketPath: socket, path, method: 'GET', timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    r.on('error', reject);
    r.end();
  });
}

function waitFor(p: ChildProcess, re: RegExp, ms = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const t = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms; stderr: ${seen}`)), ms);
    p.stderr!.on('data', (c: Buffer) => {
      seen += c.toString();
      if (re.test(seen)) {
        clearTimeout(t);
        resolve(seen);
      }
    });
    p.on('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`exited ${code} before ${re}; stderr: ${seen}`));
    });
  });
}

function exitOf(p: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (p.exitCode !== null ? resolve(p.exitCode) : p.on('exit', (c) => resolve(c))));
}

describe('the bundle, as a guest runs it', () => {
  it('one file for node 12: no node: module names, and it answers --help', async () => {
    const out = join(tmp, 'b.cjs');
    await buildBundle(out);
    const text = readFileSync(out, 'utf8');
    expect(text).not.toMatch(/require\("node:/);
    expect(text).toContain("'/network_tracer/debug/http_monitoring'".replace(/'/g, '"'));
    const p = spawn(process.execPath, [out, '--help']);
    let stdout = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    expect(await exitOf(p)).toBe(0);
    expect(stdout).toMatch(/^Usage: node usm-lookalike\.cjs/);
  });

  it('the cached bundle is remade when the sources change, kept when they do not', async () => {
    const dir = join(tmp, 'cache');
    const a = await lookalikeBundle(dir);
    const b = await lookalikeBundle(dir);
    expect(b).toEqual(a);
    expect(existsSync(a.file)).toBe(true);
    expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("serves the loader stand-in's events as upstream rows on GET, 404 elsewhere; SIGINT stops the loader, removes the socket", async () => {
    const bundle = join(tmp, 'serve.cjs');
    await buildBundle(bundle);
    const events = swappedRun(10, 'interleaved', 5);
    const evFile = join(tmp, 'events.jsonl');
    writeFileSync(evFile, [JSON.stringify({ meta: { variant: 'upstream' } }), ...events.map((e) => JSON.stringify(e))].join('\n') + '\n');
    // Loader stand-in: prints the recorded events on stdout, READY on stderr, and on SIGINT a stats line then exits 0.
    const standIn = join(tmp, 'loader-standin.py');
    writeFileSync(
      standIn,
      [
        'import signal, sys, time',
        'def stop(*_):',
        '    sys.stdout.write(\'{"stats":{"calls":{}}}\\n\'); sys.stdout.flush(); sys.exit(0)',
        'signal.signal(signal.SIGINT, stop)',
        'sys.stdout.write(open(sys.argv[1]).read()); sys.stdout.flush()',
        "sys.stderr.write('variant upstream: stand-in\\nREADY\\n'); sys.stderr.flush()",
        'while True: time.sleep(0.1)',
      ].join('\n'),
    );
    const sock = join(tmp, 'run', 'sysprobe.sock');
    const p = spawn(process.execPath, [bundle, '--socket', sock, '--', 'python3', standIn, evFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const log = await waitFor(p, /^READY$/m);
      expect(log).toMatch(/^loader: READY$/m);
      // the query time is now (CLOCK_MONOTONIC): the recorded ts are far older than 30 s or not; either way
      // the rows are formTransactions' at the same query time
      const r = await get(sock, DEBUG_PATH);
      expect(r.status).toBe(200);
      const rows = JSON.parse(r.body) as ReturnType<typeof toHttpMonitoring>;
      const want = toHttpMonitoring(formTransactions(events, { queryTimeNs: Number(process.hrtime.bigint()) }).transactions);
      expect(rows.map(rowLine).sort()).toEqual(want.map(rowLine).sort());
      expect(rows.length).toBeGreaterThan(10);
      expect((await get(sock, DEBUG_PATH)).body).toBe('[]');
      const nf = await get(sock, '/debug/other');
      expect(nf.status).toBe(404);
      p.kill('SIGINT');
      expect(await exitOf(p)).toBe(0);
      expect(existsSync(sock)).toBe(false);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  });

  it('a loader that exits on its own ends the look-alike with code 1, its words in the log', async () => {
    const bundle = join(tmp, 'dies.cjs');
    await buildBundle(bundle);
    const p = spawn(process.execPath, [bundle, '--socket', join(tmp, 'd.sock'), '--', 'sh', '-c', 'echo "failed to load BPF object: boom" >&2; exit 4'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    p.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    expect(await exitOf(p)).toBe(1);
    expect(err).toMatch(/loader: failed to load BPF object: boom/);
    expect(err).toMatch(/the loader exited on its own \(code 4\)/);
  });
});
