// The race client (client/race_client.c) and the HTTPS test server (client/https_server.py) on
// real sockets with real OpenSSL: build, READY/SIGUSR1 protocol, the three modes and both APIs,
// both read patterns (--reads full|single), --record, usage errors, signals, a server that dies or
// hangs mid-run, the server's --nagle. A Node TLS "observer"
// server checks the order of writes and reads that each mode promises, and the response parser.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLIENT = join(ROOT, 'client/build/race_client');
const SERVER = join(ROOT, 'client/https_server.py');
// The real interpreter, not a pyenv-style shim that would put a second process in between.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const ITER = 20;
const MODES = ['sequential', 'interleaved', 'writes-only'] as const;
type Mode = (typeof MODES)[number];

const work = mkdtempSync(join(tmpdir(), 'client-test-'));
const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

// ---------------------------------------------------------------------------------------------
// Processes: each in its own process group, all killed by PID (group) after each test.

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

class Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  out = '';
  err = '';
  exit: Exit | null = null;

  constructor(
    cmd: string,
    args: readonly string[],
    private readonly bucket: Set<Proc>,
  ) {
    this.child = spawn(cmd, args, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    if (this.child.pid === undefined) throw new Error(`failed to start ${cmd}`);
    this.pid = this.child.pid;
    bucket.add(this);
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.err += d));
    this.child.on('close', (code, signal) => (this.exit = { code, signal }));
    this.child.on('error', (e) => (this.err += `\nspawn error: ${e.message}`));
  }

  /** Poll until pred() holds; throw with the outputs on timeout. */
  async until(pred: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}\nstdout:\n${this.out}\nstderr:\n${this.err.slice(-3000)}`);
      await sleep(10);
    }
  }

  /** First stdout line matching re (fails if the process ends first). */
  async line(re: RegExp, ms: number): Promise<string> {
    const find = () => this.out.split('\n').find((l) => re.test(l));
    await this.until(() => find() !== undefined || this.exit !== null, ms, `a line ${re}`);
    const l = find();
    if (l === undefined)
      throw new Error(`exited (${JSON.stringify(this.exit)}) before printing ${re}\nstdout:\n${this.out}\nstderr:\n${this.err.slice(-3000)}`);
    return l;
  }

  async waitExit(ms: number): Promise<Exit> {
    await this.until(() => this.exit !== null, ms, 'exit');
    return this.exit!;
  }

  signal(sig: NodeJS.Signals): void {
    process.kill(this.pid, sig);
  }

  /** SIGKILL the whole process group (the program and anything it forked). */
  killGroup(): void {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    this.bucket.delete(this);
  }
}

const perTest = new Set<Proc>();
const perFile = new Set<Proc>();
afterEach(() => {
  for (const p of [...perTest]) p.killGroup();
});
afterAll(() => {
  for (const p of [...perFile]) p.killGroup();
  rmSync(work, { recursive: true, force: true });
});

/** n distinct ports that were free a moment ago (bound to 0 together, then released). */
async function freePorts(n: number): Promise<number[]> {
  const servers: NetServer[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = createNetServer();
    await new Promise<void>((res, rej) => s.once('error', rej).listen(0, '127.0.0.1', () => res()));
    servers.push(s);
    const addr = s.address();
    if (addr === null || typeof addr === 'string') throw new Error('no port');
    ports.push(addr.port);
  }
  await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  return ports;
}

/** Start https_server.py on two free ports; resolves once both print LISTENING. */
async function startPyServers(bucket: Set<Proc>, extra: readonly string[] = []): Promise<{ proc: Proc; ports: number[] }> {
  for (let attempt = 1; ; attempt++) {
    const ports = await freePorts(2);
    const proc = new Proc(PYTHON, [SERVER, '--ports', ports.join(','), ...extra], bucket);
    try {
      for (const p of ports) await proc.line(new RegExp(`^LISTENING ${p}$`), 30_000);
      return { proc, ports };
    } catch (e) {
      proc.killGroup();
      if (attempt >= 3) throw e; // a port taken between freePorts and bind: try others
    }
  }
}

interface Ready {
  lports: number[];
  rports: number[];
}

function parseReady(line: string): Ready {
  const m = /^READY((?::\d+)+)$/.exec(line);
  if (!m?.[1]) throw new Error(`bad READY line ${JSON.stringify(line)}`);
  const nums = m[1].slice(1).split(':').map(Number);
  return { lports: nums.filter((_, i) => i % 2 === 0), rports: nums.filter((_, i) => i % 2 === 1) };
}

function startClient(args: readonly string[]): Proc {
  return new Proc(CLIENT, args, perTest);
}

/** Start the client, wait for READY, check it names our server ports, SIGUSR1, wait for the exit. */
async function runClient(args: readonly string[], ports: readonly number[], budgetMs = 20_000): Promise<{ proc: Proc; ready: Ready; exit: Exit }> {
  const proc = startClient(args);
  const readyLine = await proc.line(/^READY/, 15_000);
  expect(readyLine).toMatch(new RegExp(`^READY${':\\d+'.repeat(2 * ports.length)}$`));
  const ready = parseReady(readyLine);
  expect(ready.rports).toEqual([...ports]);
  for (const l of ready.lports) expect(l).toBeGreaterThan(0);
  expect(new Set(ready.lports).size).toBe(ports.length);
  await proc.until(() => /Waiting for SIGUSR1 \(PID=\d+\)/.test(proc.err), 5_000, 'the waiting line');
  expect(proc.err).toContain(`PID=${proc.pid}`);
  proc.signal('SIGUSR1');
  const exit = await proc.waitExit(budgetMs);
  return { proc, ready, exit };
}

interface RecordLine {
  conn: number;
  iter: number;
  path: string;
  lport: number;
  rport: number;
  status: number | null;
  ok: boolean;
  // --reads single only: what the one read in this request's slot returned.
  bytes?: number;
  chunk?: 'status' | 'body' | 'none' | 'skipped';
}

const readRecord = (file: string): RecordLine[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as RecordLine);

/** The stdout the client must print for a fully successful run, line by line. */
function expectedStdout(ready: Ready, iterations: number): string[] {
  const lines = [`READY${ready.lports.map((l, i) => `:${l}:${ready.rports[i]}`).join('')}`, 'DONE'];
  ready.lports.forEach((l, i) => lines.push(`conn${i + 1} ok=${iterations} fail=0 local=${l} remote=${ready.rports[i]}`));
  return lines;
}

/** Record lines in (iteration, connection) order, all ok. */
function expectedRecord(ready: Ready, iterations: number): RecordLine[] {
  const out: RecordLine[] = [];
  for (let i = 0; i < iterations; i++) {
    ready.lports.forEach((l, j) => {
      out.push({ conn: j + 1, iter: i, path: `/200/conn${j + 1}-iter${i}`, lport: l, rport: ready.rports[j]!, status: 200, ok: true });
    });
  }
  return out;
}

/** stdout's protocol lines; the timing line (checked on its own) is left out. */
const stdoutLines = (p: Proc) => p.out.split('\n').filter((l) => l !== '' && !l.startsWith('elapsed_ms='));

// ---------------------------------------------------------------------------------------------

beforeAll(() => {
  // -B with -Werror: the binary under test is a fresh, warning-free build.
  execFileSync('make', ['-C', 'client', '-B', 'CFLAGS=-O2 -g -Werror'], { cwd: ROOT, timeout: 120_000, stdio: 'pipe' });
}, 150_000);

describe('client/Makefile', () => {
  it('builds quietly into build/, V=1 shows the command, up to date stays quiet, clean removes build/', () => {
    // A private copy: the shared client/build/ stays untouched.
    const dir = mkdtempSync(join(work, 'make-'));
    for (const f of ['Makefile', 'race_client.c']) copyFileSync(join(ROOT, 'client', f), join(dir, f));
    const make = (...args: string[]) =>
      execFileSync('make', ['--no-print-directory', '-C', dir, ...args], { timeout: 120_000, encoding: 'utf8', stdio: 'pipe' });
    expect(make().trim()).toBe('CC      build/race_client');
    expect(statSync(join(dir, 'build/race_client')).mode & 0o111).not.toBe(0);
    expect(make().trim()).toMatch(/Nothing to be done|is up to date/);
    expect(make('-B', 'V=1')).toMatch(/-std=gnu11 -Wall -Wextra .*-o build\/race_client race_client\.c .*-lssl/);
    make('clean');
    expect(existsSync(join(dir, 'build'))).toBe(false);
  }, 300_000);
});

describe('race_client with https_server.py', () => {
  let ports: number[] = [];
  let server: Proc;

  beforeAll(async () => {
    ({ proc: server, ports } = await startPyServers(perFile));
  }, 60_000);

  const gets = () => server.err.split('\n').filter((l) => /"GET \/200\/conn\d+-iter\d+ HTTP\/1\.1" 200/.test(l));

  const cases: { mode: Mode; api: 'classic' | 'ex'; form: 'positional' | 'conn' }[] = [
    { mode: 'sequential', api: 'classic', form: 'positional' },
    { mode: 'interleaved', api: 'classic', form: 'conn' },
    { mode: 'writes-only', api: 'classic', form: 'conn' },
    { mode: 'interleaved', api: 'ex', form: 'positional' },
  ];
  for (const c of cases) {
    it(`${c.mode}, --api ${c.api}, ${c.form} connections: every request ok, READY/DONE/counts, record`, async () => {
      const record = join(work, `record-${c.mode}-${c.api}.jsonl`);
      const target =
        c.form === 'positional'
          ? ['127.0.0.1', String(ports[0]), '127.0.0.1', String(ports[1]), String(ITER)]
          : ['--conn', `127.0.0.1:${ports[0]}`, `--conn=127.0.0.1:${ports[1]}`, '--iterations', String(ITER)];
      const before = gets().length;
      const proc = startClient([...target, `--${c.mode}`, '--api', c.api, '--record', record, '--timeout', '5']);
      await proc.line(/^READY/, 15_000);
      await sleep(200);
      expect(gets().length, 'no request before SIGUSR1').toBe(before);
      expect(proc.exit).toBeNull();
      proc.signal('SIGUSR1');
      const exit = await proc.waitExit(20_000);
      const ready = parseReady(stdoutLines(proc)[0]!);

      expect(exit, proc.err).toEqual({ code: 0, signal: null });
      expect(ready.rports).toEqual(ports);
      expect(stdoutLines(proc)).toEqual(expectedStdout(ready, ITER));
      // The timing line benchmarks read: after the counts, requests = all ok requests.
      expect(proc.out.trimEnd().split('\n').at(-1)).toMatch(new RegExp(`^elapsed_ms=\\d+\\.\\d{3} requests=${ITER * ready.lports.length}$`));
      expect(proc.err).toMatch(/Establishing connection 1 to 127\.0\.0\.1:\d+/);
      expect(proc.err).toMatch(new RegExp(`Starting ${c.mode} run: ${ITER} iterations x 2 connections \\(api=${c.api}\\)`));
      expect(readRecord(record)).toEqual(expectedRecord(ready, ITER));
      // The servers saw every request exactly once.
      const seen = gets()
        .slice(before)
        .map((l) => /GET (\S+)/.exec(l)?.[1]);
      expect(seen.sort()).toEqual(
        expectedRecord(ready, ITER)
          .map((r) => r.path)
          .sort(),
      );
    }, 60_000);
  }

  it('--reads full is the default: the same counts and record, no single-read fields', async () => {
    const record = join(work, 'record-reads-full.jsonl');
    const { proc, ready, exit } = await runClient(
      [
        '--conn',
        `127.0.0.1:${ports[0]}`,
        '--conn',
        `127.0.0.1:${ports[1]}`,
        String(ITER),
        '--interleaved',
        '--reads',
        'full',
        '--record',
        record,
        '--timeout',
        '5',
      ],
      ports,
    );
    expect(exit, proc.err).toEqual({ code: 0, signal: null });
    expect(stdoutLines(proc)).toEqual(expectedStdout(ready, ITER));
    expect(proc.err).toMatch(new RegExp(`Starting interleaved run: ${ITER} iterations x 2 connections \\(api=classic\\)`));
    expect(readRecord(record)).toEqual(expectedRecord(ready, ITER));
  }, 60_000);

  // The server sends headers and the 2-byte body as two TLS records and one SSL_read returns at
  // most one record, so with one read per request read j on a connection returns record j of its
  // stream, H0 B0 H1 B1 ...: whatever the timing, even slots get a status line and odd slots the
  // body of the response to request (j-1)/2. The client ends with half the responses unread.
  const singleCases: { mode: Mode; api: 'classic' | 'ex' }[] = [
    { mode: 'interleaved', api: 'classic' },
    { mode: 'sequential', api: 'ex' },
    { mode: 'writes-only', api: 'classic' },
  ];
  for (const c of singleCases) {
    it(`--reads single, ${c.mode}, --api ${c.api}: one read per request, the reads fall behind (body-only chunks)`, async () => {
      const record = join(work, `record-single-${c.mode}-${c.api}.jsonl`);
      const before = gets().length;
      const { proc, ready, exit } = await runClient(
        [
          '127.0.0.1',
          String(ports[0]),
          '127.0.0.1',
          String(ports[1]),
          String(ITER),
          `--${c.mode}`,
          '--api',
          c.api,
          '--reads',
          'single',
          '--record',
          record,
          '--timeout',
          '5',
        ],
        ports,
      );
      expect(exit, proc.err).toEqual({ code: 0, signal: null });
      // ok counts reads that returned data: every one did.
      expect(stdoutLines(proc)).toEqual(expectedStdout(ready, ITER));
      expect(proc.err).toMatch(new RegExp(`Starting ${c.mode} run: ${ITER} iterations x 2 connections \\(api=${c.api}, reads=single\\)`));
      const rec = readRecord(record);
      // One record line per request, in the mode's order, each one read that returned data.
      expect(rec.map(({ conn, iter, path, lport, rport }) => ({ conn, iter, path, lport, rport }))).toEqual(
        expectedRecord(ready, ITER).map(({ conn, iter, path, lport, rport }) => ({ conn, iter, path, lport, rport })),
      );
      for (const r of rec) expect(r.ok && r.bytes! > 0, JSON.stringify(r)).toBe(true);
      // The mechanism: body-only chunks, so fewer status lines than requests.
      const bodies = rec.filter((r) => r.chunk === 'body');
      expect(bodies.length).toBeGreaterThan(0);
      for (const r of bodies) expect(r).toMatchObject({ bytes: 2, status: null });
      expect(rec.filter((r) => r.chunk === 'status').length).toBeLessThan(rec.length);
      // Exactly: record j of each connection's stream (see above).
      for (const r of rec) {
        const want = r.iter % 2 === 0 ? { chunk: 'status', status: 200 } : { chunk: 'body', status: null, bytes: 2 };
        expect(r, JSON.stringify(r)).toMatchObject(want);
      }
      // The server answered at least the ITER/2 responses whose records were read, in order, each
      // once; the rest may be cut off: the client leaves without waiting for them.
      const answered = (k: number) =>
        gets()
          .slice(before)
          .map((l) => /GET \/200\/conn(\d+)-iter(\d+) /.exec(l))
          .filter((m) => m?.[1] === String(k))
          .map((m) => Number(m![2]));
      await server.until(() => answered(1).length >= ITER / 2 && answered(2).length >= ITER / 2, 5_000, 'the access log of the responses read');
      for (const k of [1, 2]) expect(answered(k)).toEqual(Array.from({ length: answered(k).length }, (_, i) => i));
    }, 60_000);
  }

  it('the default server has Nagle off: TCP_NODELAY=1 on its connections', () => {
    expect(server.err).toMatch(/connection: Nagle's algorithm off \(TCP_NODELAY=1\)/);
    expect(server.err).not.toMatch(/TCP_NODELAY=0/);
  });

  it('SIGTERM while waiting for SIGUSR1: exits promptly, non-zero, no DONE', async () => {
    const proc = startClient(['127.0.0.1', String(ports[0]), '127.0.0.1', String(ports[1]), '5']);
    await proc.line(/^READY/, 15_000);
    proc.signal('SIGTERM');
    const exit = await proc.waitExit(3_000);
    expect(exit).toEqual({ code: 143, signal: null });
    expect(proc.err).toMatch(/terminated by SIGTERM/);
    expect(proc.out).not.toMatch(/DONE/);
  }, 30_000);

  it('SIGINT during a long run: exits promptly, non-zero', async () => {
    const proc = startClient(['127.0.0.1', String(ports[0]), '127.0.0.1', String(ports[1]), '100000000']);
    await proc.line(/^READY/, 15_000);
    const before = gets().length;
    proc.signal('SIGUSR1');
    await server.until(() => gets().length > before, 10_000, 'the first request');
    proc.signal('SIGINT');
    const exit = await proc.waitExit(3_000);
    expect(exit.code).toBe(130);
    expect(proc.out).not.toMatch(/DONE/);
  }, 30_000);
});

describe('race_client when the server fails mid-run', () => {
  it('servers SIGKILLed mid-run: the client finishes promptly with failures and exit 1', async () => {
    const { proc: srv, ports } = await startPyServers(perTest);
    const n = 1_000_000;
    const proc = startClient(['--conn', `127.0.0.1:${ports[0]}`, '--conn', `127.0.0.1:${ports[1]}`, String(n), '--timeout', '5']);
    await proc.line(/^READY/, 15_000);
    proc.signal('SIGUSR1');
    await srv.until(() => (srv.err.match(/"GET \/200\/conn2-iter/g) ?? []).length >= 3, 10_000, 'requests on both servers');
    srv.killGroup();
    const t0 = Date.now();
    const exit = await proc.waitExit(15_000);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(exit).toEqual({ code: 1, signal: null });
    const lines = stdoutLines(proc);
    expect(lines[1]).toBe('DONE');
    for (const k of [1, 2]) {
      const m = new RegExp(`^conn${k} ok=(\\d+) fail=(\\d+) local=\\d+ remote=${ports[k - 1]}$`).exec(lines[k + 1] ?? '');
      expect(m, lines.join('\n')).not.toBeNull();
      const ok = Number(m![1]);
      const fail = Number(m![2]);
      expect(ok).toBeGreaterThan(0); // it was mid-run
      expect(fail).toBeGreaterThan(0);
      expect(ok + fail).toBe(n);
    }
    expect(proc.err).toMatch(/failed to (read response|write request) on conn\d \(127\.0\.0\.1:\d+\): /);
  }, 60_000);

  it('servers stopped (SIGSTOP) mid-run: --timeout ends the run, exit 1 with "timed out"', async () => {
    const { proc: srv, ports } = await startPyServers(perTest, ['--quiet']);
    const record = join(work, 'record-stopped.jsonl');
    const proc = startClient(['127.0.0.1', String(ports[0]), '127.0.0.1', String(ports[1]), '50', '--timeout', '1', '--record', record]);
    await proc.line(/^READY/, 15_000);
    process.kill(-srv.pid, 'SIGSTOP');
    proc.signal('SIGUSR1');
    const t0 = Date.now();
    const exit = await proc.waitExit(10_000);
    expect(Date.now() - t0).toBeLessThan(8_000);
    expect(exit).toEqual({ code: 1, signal: null });
    expect(proc.err).toMatch(/failed to read response on conn1 \(127\.0\.0\.1:\d+\): timed out after 1 s/);
    expect(stdoutLines(proc).slice(1)).toEqual([
      'DONE',
      expect.stringMatching(/^conn1 ok=0 fail=50 /) as unknown as string,
      expect.stringMatching(/^conn2 ok=0 fail=50 /) as unknown as string,
    ]);
    const ready = parseReady(stdoutLines(proc)[0]!);
    expect(readRecord(record)).toEqual(expectedRecord(ready, 50).map((r) => ({ ...r, status: null, ok: false })));
  }, 60_000);

  it('--reads single, servers stopped (SIGSTOP): a read that times out fails and ends its connection; bounded, exit 1', async () => {
    const { proc: srv, ports } = await startPyServers(perTest, ['--quiet']);
    const record = join(work, 'record-stopped-single.jsonl');
    const proc = startClient([
      '127.0.0.1',
      String(ports[0]),
      '127.0.0.1',
      String(ports[1]),
      '50',
      '--interleaved',
      '--reads',
      'single',
      '--timeout',
      '1',
      '--record',
      record,
    ]);
    await proc.line(/^READY/, 15_000);
    process.kill(-srv.pid, 'SIGSTOP');
    proc.signal('SIGUSR1');
    const t0 = Date.now();
    const exit = await proc.waitExit(10_000);
    expect(Date.now() - t0).toBeLessThan(8_000); // one timeout per connection, not one per request
    expect(exit).toEqual({ code: 1, signal: null });
    expect(proc.err).toMatch(/failed to read response on conn2 \(127\.0\.0\.1:\d+\): timed out after 1 s/);
    expect(stdoutLines(proc).slice(1)).toEqual([
      'DONE',
      expect.stringMatching(/^conn1 ok=0 fail=50 /) as unknown as string,
      expect.stringMatching(/^conn2 ok=0 fail=50 /) as unknown as string,
    ]);
    const ready = parseReady(stdoutLines(proc)[0]!);
    // The first read on each connection was made and returned nothing; the rest were not made.
    expect(readRecord(record)).toEqual(
      expectedRecord(ready, 50).map((r) => ({ ...r, status: null, ok: false, bytes: 0, chunk: r.iter === 0 ? 'none' : 'skipped' })),
    );
  }, 60_000);

  it('no server listening: exit 1 before READY, naming the address', async () => {
    const [port] = await freePorts(1);
    const proc = startClient(['--conn', `127.0.0.1:${port}`]);
    const exit = await proc.waitExit(10_000);
    expect(exit.code).toBe(1);
    expect(proc.out).toBe('');
    expect(proc.err).toContain(`failed to connect to 127.0.0.1:${port}: Connection refused`);
  }, 30_000);
});

describe('race_client command line', () => {
  const bad: [string, string[], RegExp][] = [
    ['unknown flag', ['127.0.0.1', '1', '127.0.0.1', '2', '--bogus'], /unknown option '--bogus'/],
    ['bad port', ['127.0.0.1', '70000', '127.0.0.1', '2'], /bad port '70000'/],
    ['non-numeric port', ['--conn', '127.0.0.1:http'], /bad port 'http'/],
    ['zero iterations', ['127.0.0.1', '1', '127.0.0.1', '2', '0'], /iterations must be a positive integer/],
    ['text iterations', ['127.0.0.1', '1', '127.0.0.1', '2', '12x'], /iterations must be a positive integer/],
    ['negative iterations', ['--conn', '127.0.0.1:1', '--iterations', '-3'], /iterations must be a positive integer/],
    ['no connection', ['--interleaved'], /need at least one connection/],
    ['bad api', ['--conn', '127.0.0.1:1', '--api', 'fast'], /bad --api 'fast'/],
    ['bad reads', ['--conn', '127.0.0.1:1', '--reads', 'one'], /bad --reads 'one' \(want full or single\)/],
    ['empty reads', ['--conn', '127.0.0.1:1', '--reads='], /bad --reads '' \(want full or single\)/],
    ['bad timeout', ['--conn', '127.0.0.1:1', '--timeout', '0'], /bad --timeout '0'/],
    ['missing value', ['--conn', '127.0.0.1:1', '--record'], /option --record needs a value/],
  ];
  for (const [name, args, msg] of bad) {
    it(`${name}: usage on stderr, exit 2, nothing on stdout`, () => {
      let status: number | null = null;
      let stderr = '';
      let stdout = '';
      try {
        stdout = execFileSync(CLIENT, args, { timeout: 10_000, encoding: 'utf8', stdio: 'pipe' });
        status = 0;
      } catch (e) {
        const err = e as { status: number | null; stderr: string; stdout: string };
        status = err.status;
        stderr = err.stderr;
        stdout = err.stdout;
      }
      expect(status).toBe(2);
      expect(stdout).toBe('');
      expect(stderr).toMatch(msg);
      expect(stderr).toMatch(/^usage: race_client HOST1 PORT1 HOST2 PORT2 \[ITERATIONS\]/m);
    }, 15_000);
  }

  it('--help: usage on stdout, exit 0', () => {
    const out = execFileSync(CLIENT, ['--help'], { timeout: 10_000, encoding: 'utf8' });
    expect(out).toMatch(/^usage: race_client/);
    for (const f of ['--sequential', '--interleaved', '--writes-only', '--conn', '--api', '--reads full|single', '--record', '--timeout'])
      expect(out).toContain(f);
  }, 15_000);
});

// ---------------------------------------------------------------------------------------------
// Observer: a Node TLS server that logs, in one ordered list, when each request arrives and when
// its response leaves, and answers according to a policy that only a correct mode can satisfy.

type Policy =
  | 'delay' // answer each request 30 ms after it arrives, headers and body in separate writes
  | 'per-iteration' // answer iteration i only once iteration i arrived on every connection
  | 'all-first'; // answer nothing until every request arrived, then everything in one write

interface Ev {
  kind: 'recv' | 'send';
  conn: number;
  iter: number;
}

const REQ = /^GET \/200\/conn(\d+)-iter(\d+) HTTP\/1\.1\r\nHost: 127\.0\.0\.1:(\d+)\r\nConnection: keep-alive\r\n\r\n$/;

class Observer {
  events: Ev[] = [];
  bad: string[] = [];
  ports: number[] = [];
  private servers: TlsServer[] = [];
  private sockets = new Set<TLSSocket>();
  private pending: { sock: TLSSocket; ev: Ev }[] = [];

  constructor(
    private readonly policy: Policy,
    private readonly nconns: number,
    private readonly iterations: number,
    private readonly statusFor: (conn: number, iter: number) => number = () => 200,
  ) {}

  async start(key: Buffer, cert: Buffer): Promise<void> {
    for (let k = 0; k < this.nconns; k++) {
      const srv = createTlsServer({ key, cert }, (sock) => this.serve(sock));
      await new Promise<void>((res, rej) => srv.once('error', rej).listen(0, '127.0.0.1', () => res()));
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') throw new Error('no port');
      this.ports.push(addr.port);
      this.servers.push(srv);
    }
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  }

  /** Varied responses: header case, extra headers, empty and > 16 KiB bodies. */
  response(ev: Ev): Buffer {
    const sizes = [2, 0, 1, 17_000, 5, 40_000];
    const size = sizes[(ev.iter + ev.conn) % sizes.length]!;
    const cl = ['Content-Length', 'content-length', 'CONTENT-LENGTH'][ev.iter % 3]!;
    const status = this.statusFor(ev.conn, ev.iter);
    const head = `HTTP/1.1 ${status} X\r\nX-Req: conn${ev.conn}-iter${ev.iter}\r\n${cl}:  ${size}\r\nConnection: keep-alive\r\n\r\n`;
    return Buffer.concat([Buffer.from(head), Buffer.alloc(size, 0x41 + (ev.iter % 26))]);
  }

  private serve(sock: TLSSocket): void {
    let buf = '';
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => {});
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      buf += d;
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const req = buf.slice(0, end + 4);
        buf = buf.slice(end + 4);
        const m = REQ.exec(req);
        if (!m || Number(m[3]) !== sock.localPort) {
          this.bad.push(req);
          continue;
        }
        const ev: Ev = { kind: 'recv', conn: Number(m[1]), iter: Number(m[2]) };
        this.events.push(ev);
        this.pending.push({ sock, ev });
        this.answer();
      }
    });
  }

  private send(p: { sock: TLSSocket; ev: Ev }): void {
    this.events.push({ ...p.ev, kind: 'send' });
    const r = this.response(p.ev);
    if (this.policy === 'delay') {
      p.sock.write(r.subarray(0, 10)); // a partial status line first
      setTimeout(() => p.sock.write(r.subarray(10)), 5);
    } else {
      p.sock.write(r);
    }
  }

  private answer(): void {
    if (this.policy === 'delay') {
      for (const p of this.pending.splice(0)) setTimeout(() => this.send(p), 30);
    } else if (this.policy === 'per-iteration') {
      const iters = new Set(this.pending.map((p) => p.ev.iter));
      for (const i of iters) {
        const ready = this.pending.filter((p) => p.ev.iter === i);
        if (ready.length < this.nconns) continue;
        this.pending = this.pending.filter((p) => p.ev.iter !== i);
        for (const p of ready.sort((a, b) => a.ev.conn - b.ev.conn)) this.send(p);
      }
    } else if (this.pending.length === this.nconns * this.iterations) {
      // all-first: one write per connection carrying every response, pipelined.
      const all = this.pending.splice(0);
      for (const p of all) this.events.push({ ...p.ev, kind: 'send' });
      for (const sock of new Set(all.map((p) => p.sock))) {
        sock.write(Buffer.concat(all.filter((p) => p.sock === sock).map((p) => this.response(p.ev))));
      }
    }
  }
}

describe('race_client modes, seen from the server side (Node TLS observer)', () => {
  const N = 6;
  let key: Buffer;
  let cert: Buffer;
  const observers: Observer[] = [];

  beforeAll(() => {
    const dir = mkdtempSync(join(work, 'cert-'));
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=localhost'],
      {
        timeout: 60_000,
        stdio: 'pipe',
      },
    );
    key = readFileSync(join(dir, 'key.pem'));
    cert = readFileSync(join(dir, 'cert.pem'));
  }, 90_000);
  afterEach(async () => {
    await Promise.all(observers.splice(0).map((o) => o.stop()));
  });

  async function observe(
    policy: Policy,
    mode: Mode,
    api: 'classic' | 'ex',
    statusFor?: (conn: number, iter: number) => number,
    reads: 'full' | 'single' = 'full',
  ) {
    const obs = new Observer(policy, 2, N, statusFor);
    observers.push(obs);
    await obs.start(key, cert);
    const record = join(work, `observe-${policy}-${mode}-${api}-${reads}.jsonl`);
    const conns = obs.ports.flatMap((p) => ['--conn', `127.0.0.1:${p}`]);
    const run = await runClient([...conns, String(N), `--${mode}`, '--api', api, '--reads', reads, '--timeout', '3', '--record', record], obs.ports);
    expect(obs.bad).toEqual([]);
    return { obs, ...run, record: readRecord(record) };
  }

  const recvOrder = (evs: Ev[]) => evs.filter((e) => e.kind === 'recv').map((e) => `${e.conn}/${e.iter}`);
  const inOrder = Array.from({ length: N }, (_, i) => [`1/${i}`, `2/${i}`]).flat();

  it('sequential: each request is written only after the previous response was read', async () => {
    const { obs, exit, proc, ready } = await observe('delay', 'sequential', 'classic');
    expect(exit, proc.err).toEqual({ code: 0, signal: null });
    expect(stdoutLines(proc)).toEqual(expectedStdout(ready, N));
    expect(recvOrder(obs.events)).toEqual(inOrder);
    // Strict alternation: recv(x), send(x), recv(y), send(y), ...
    obs.events.forEach((e, j) => {
      expect(e.kind).toBe(j % 2 === 0 ? 'recv' : 'send');
      if (j % 2 === 1) expect({ conn: e.conn, iter: e.iter }).toEqual({ conn: obs.events[j - 1]!.conn, iter: obs.events[j - 1]!.iter });
    });
  }, 60_000);

  it('sequential --reads single: every request written, in order; each read takes at most 4095 bytes of what is there, unframed', async () => {
    const { obs, exit, proc, ready, record } = await observe('delay', 'sequential', 'classic', undefined, 'single');
    expect(exit, proc.err).toEqual({ code: 0, signal: null });
    expect(stdoutLines(proc)).toEqual(expectedStdout(ready, N));
    // Reads do not wait for the response to the request just written, so the client gets ahead
    // and no write/read alternation holds; but every request is written, in order per connection.
    for (const k of [1, 2]) {
      expect(recvOrder(obs.events.filter((e) => e.kind === 'recv' && e.conn === k))).toEqual(inOrder.filter((x) => x.startsWith(`${k}/`)));
    }
    for (const r of record) expect(r.ok && r.bytes! > 0 && r.bytes! <= 4095, JSON.stringify(r)).toBe(true);
    // One read takes from one TLS record: the first gets the 10-byte partial status line the
    // observer sends first (no complete status line: not "status"); a 17,000-byte body, sent in
    // 16 KiB records, is read 4095 bytes at a time.
    for (const k of [1, 2]) expect(record.find((r) => r.conn === k && r.iter === 0)).toMatchObject({ bytes: 10, chunk: 'body', status: null });
    expect(record.some((r) => r.bytes === 4095)).toBe(true);
  }, 60_000);

  for (const api of ['classic', 'ex'] as const) {
    it(`interleaved (--api ${api}): writes on all connections before reading, never ahead of the iteration`, async () => {
      const { obs, exit, proc, ready, record } = await observe('per-iteration', 'interleaved', api);
      expect(exit, proc.err).toEqual({ code: 0, signal: null }); // sequential would time out here
      expect(stdoutLines(proc)).toEqual(expectedStdout(ready, N));
      expect(record).toEqual(expectedRecord(ready, N));
      // Iteration by iteration (two writes microseconds apart reach the event loop in either order).
      const recvs = obs.events.filter((e) => e.kind === 'recv');
      expect(recvs.map((e) => e.iter)).toEqual(inOrder.map((x) => Number(x.split('/')[1])));
      expect(recvOrder(recvs).sort()).toEqual([...inOrder].sort());
      for (let i = 0; i + 1 < N; i++) {
        const lastSend = obs.events.reduce((at, e, j) => (e.kind === 'send' && e.iter === i ? j : at), -1);
        const firstNext = obs.events.findIndex((e) => e.kind === 'recv' && e.iter === i + 1);
        expect(lastSend).toBeLessThan(firstNext);
      }
    }, 60_000);
  }

  it('writes-only: every request of every iteration is written before any response is read', async () => {
    const { obs, exit, proc, ready, record } = await observe('all-first', 'writes-only', 'ex');
    expect(exit, proc.err).toEqual({ code: 0, signal: null }); // other modes would time out here
    expect(stdoutLines(proc)).toEqual(expectedStdout(ready, N));
    expect(record).toEqual(expectedRecord(ready, N));
    expect(obs.events.slice(0, 2 * N).every((e) => e.kind === 'recv')).toBe(true);
    // Bursts from two sockets reach the event loop in no causal order: compare per connection.
    for (const k of [1, 2]) {
      expect(recvOrder(obs.events.filter((e) => e.conn === k))).toEqual(inOrder.filter((x) => x.startsWith(`${k}/`)));
    }
  }, 60_000);

  it('a non-200 response fails that request only; the stream stays in sync; exit 1', async () => {
    const { exit, proc, ready, record } = await observe('delay', 'sequential', 'classic', (conn, iter) => (conn === 2 && iter === 3 ? 404 : 200));
    expect(exit.code).toBe(1);
    const lines = stdoutLines(proc);
    expect(lines.slice(1)).toEqual([
      'DONE',
      `conn1 ok=${N} fail=0 local=${ready.lports[0]} remote=${ready.rports[0]}`,
      `conn2 ok=${N - 1} fail=1 local=${ready.lports[1]} remote=${ready.rports[1]}`,
    ]);
    const want = expectedRecord(ready, N).map((r) => (r.conn === 2 && r.iter === 3 ? { ...r, status: 404, ok: false } : r));
    expect(record).toEqual(want);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------

describe('https_server.py', () => {
  function fetch(port: number, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
    return new Promise((res, rej) => {
      const req = httpsGet({ host: '127.0.0.1', port, path, rejectUnauthorized: false, agent: false, timeout: 10_000 }, (r) => {
        let body = '';
        r.setEncoding('utf8').on('data', (d: string) => (body += d));
        r.on('end', () => res({ status: r.statusCode ?? 0, headers: r.headers, body }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', rej);
    });
  }

  it('answers the status of the first path segment with Content-Length 2, keep-alive, body OK', async () => {
    const { ports } = await startPyServers(perTest, ['--quiet']);
    for (const [path, status] of [
      ['/200/conn1-iter0', 200],
      ['/404/x', 404],
      ['/503', 503],
      ['/abc/x', 400],
      ['/600/x', 400],
      ['/99/x', 400],
    ] as const) {
      const r = await fetch(ports[1]!, path);
      expect(r.status, path).toBe(status);
      expect(r.headers['content-length']).toBe('2');
      expect(r.headers.connection).toBe('keep-alive');
      expect(r.body).toBe('OK');
    }
  }, 60_000);

  it('--nagle on: serves, with Nagle left on (TCP_NODELAY=0 read back on every connection)', async () => {
    const { proc, ports } = await startPyServers(perTest, ['--nagle', 'on']);
    for (const port of ports) {
      const r = await fetch(port, '/200/nagle');
      expect(r.status).toBe(200);
      expect(r.body).toBe('OK');
    }
    await proc.until(() => (proc.err.match(/connection: Nagle's algorithm on \(TCP_NODELAY=0\)/g) ?? []).length >= 2, 5_000, 'two connection lines');
    expect(proc.err).not.toMatch(/TCP_NODELAY=1/);
    expect(proc.out.split('\n').filter((l) => l !== '')).toEqual(expect.arrayContaining(ports.map((p) => `LISTENING ${p}`)));
    // stdout: a LISTENING line per port, then a CLOSED line per connection once the server closed it
    await proc.until(() => ports.every((p) => new RegExp(`^CLOSED ${p} \\d+$`, 'm').test(proc.out)), 5_000, 'a CLOSED line per connection');
    expect(proc.out.split('\n').filter((l) => l !== '' && !/^CLOSED \d+ \d+$/.test(l))).toHaveLength(2);
  }, 60_000);

  it('--nagle off: TCP_NODELAY=1 on every connection', async () => {
    const { proc, ports } = await startPyServers(perTest, ['--nagle', 'off']);
    expect((await fetch(ports[0]!, '/200/x')).status).toBe(200);
    await proc.until(() => /connection: Nagle's algorithm off \(TCP_NODELAY=1\)/.test(proc.err), 5_000, 'the connection line');
    expect(proc.err).not.toMatch(/TCP_NODELAY=0/);
  }, 60_000);

  it('--nagle x: usage error naming on and off, exit 2, nothing served', async () => {
    const [port] = await freePorts(1);
    const proc = new Proc(PYTHON, [SERVER, '--ports', String(port), '--nagle', 'x'], perTest);
    const exit = await proc.waitExit(30_000);
    expect(exit.code).toBe(2);
    expect(proc.err).toMatch(/argument --nagle: invalid choice: '?x'?/);
    expect(proc.err).toMatch(/on.*off/);
    expect(proc.out).toBe('');
  }, 60_000);

  it('a port that cannot be bound: message naming the port, exit 1, no server left', async () => {
    const blocker = createNetServer();
    await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', () => res()));
    const taken = (blocker.address() as { port: number }).port;
    try {
      const [free] = await freePorts(1);
      const proc = new Proc(PYTHON, [SERVER, '--ports', `${free},${taken}`], perTest);
      const exit = await proc.waitExit(30_000);
      expect(exit.code).toBe(1);
      expect(proc.err).toMatch(new RegExp(`failed to bind 127\\.0\\.0\\.1:${taken}`));
      expect(proc.out).not.toMatch(/LISTENING/);
    } finally {
      await new Promise<void>((res) => blocker.close(() => res()));
    }
  }, 60_000);

  it('SIGTERM: the children stop and the server exits 0; --cert-dir keeps the generated P-256 certificate', async () => {
    const dir = join(work, 'certdir');
    const { proc, ports } = await startPyServers(perTest, ['--cert-dir', dir, '--quiet']);
    expect(readFileSync(join(dir, 'cert.pem'), 'utf8')).toMatch(/BEGIN CERTIFICATE/);
    // P-256, not RSA: RSA key generation costs seconds per server per trial in a TCG guest.
    const key = execFileSync('openssl', ['pkey', '-in', join(dir, 'key.pem'), '-noout', '-text'], { encoding: 'utf8', timeout: 10_000 });
    expect(key).toMatch(/ASN1 OID: prime256v1/);
    const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(proc.pid)], { encoding: 'utf8', timeout: 10_000 })
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
    expect(children).toHaveLength(ports.length);
    proc.signal('SIGTERM');
    const exit = await proc.waitExit(15_000);
    expect(exit).toEqual({ code: 0, signal: null });
    for (const pid of children) expect(() => process.kill(pid, 0)).toThrow();
  }, 60_000);
});
