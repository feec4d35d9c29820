// bpf/: real eBPF on this host. Builds the tracer with make, then drives real Python TLS clients
// and servers, and the race client with its HTTPS server, on 127.0.0.1 under it. Needs root, kernel BTF and the BPF toolchain; outside CI a
// missing one skips with its reason, under CI=true it FAILS with its reason.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTracerOutput, type TlsEvent } from '../src/analysis/events.ts';
import { inCI } from './helpers/requirements.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TRACER = join(ROOT, 'bpf', 'build', 'usm_tls');
const RACE_CLIENT = join(ROOT, 'client', 'build', 'race_client');
const HTTPS_SERVER = join(ROOT, 'client', 'https_server.py');
const VARIANTS = ['upstream', 'no-fallback', 'recv-hook', 'scoped'] as const;
const TERMINATIONS = ['SSL_shutdown', 'tcp_close'];
const ROUNDS = 4;

// ---- requirements ----

function missingRequirement(): string | null {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (BPF programs and uprobes)';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'needs kernel BTF (/sys/kernel/btf/vmlinux)';
  for (const tool of ['make', 'clang', 'bpftool', 'cc', 'python3', 'openssl']) {
    const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8', timeout: 5_000 });
    if (r.status !== 0) return `needs ${tool} on PATH (provision/host-deps.sh installs the toolchain)`;
  }
  if (!existsSync('/usr/include/bpf/libbpf.h')) return 'needs libbpf headers (libbpf-dev)';
  return null;
}

// The kernel can take kprobes when the kprobe PMU exists; otherwise --hook auto must fall back.
const expectedHook = existsSync('/sys/bus/event_source/devices/kprobe') ? 'kprobe' : 'tracepoint';

// The libssl a binary really loads, so the uprobes sit where the test's TLS traffic is; null: let
// the tracer find one itself.
function libsslOf(binary: string): string | null {
  const ldd = spawnSync('ldd', [binary], { encoding: 'utf8', timeout: 10_000 });
  return ldd.stdout.match(/libssl\.so[^\s]* => (\/\S+)/)?.[1] ?? null;
}

// python3's: its ssl module's _ssl extension's dependency.
function pythonLibssl(): string | null {
  const mod = spawnSync('python3', ['-c', 'import _ssl; print(_ssl.__file__)'], { encoding: 'utf8', timeout: 10_000 });
  return mod.status === 0 ? libsslOf(mod.stdout.trim()) : null;
}

// ---- TLS peers: a threaded echo server and a client with two modes ----

const SERVER_PY = `
import socket, ssl, struct, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ls = socket.socket()
ls.bind(('127.0.0.1', 0))
ls.listen(16)
print('LISTENING', ls.getsockname()[1], flush=True)
def serve(c):
    with ctx.wrap_socket(c, server_side=True) as s:
        while True:
            d = s.recv(4096)
            if not d:
                break
            if d == b'RST\\n':  # abortive close: the peer gets a RST
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                break
            s.sendall(b'echo:' + d)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

// client.py PORT NCONN ROUNDS pre|post [close|rst|unwrap]: 'pre' connects, prints CONNECTED, then
// waits for a line on stdin; 'post' waits first. Then ROUNDS interleaved rounds from ONE thread:
// write on every connection, then read every echo. Then close() (no SSL_shutdown); 'unwrap' calls
// SSL_shutdown first; 'rst' asks the server to reset every connection and waits for it in
// select(), so the RST is handled in the server's context, never under this process's socket
// lock. Prints CONNECTED <lport>..., RESET with 'rst', and DONE.
const CLIENT_PY = `
import select, socket, ssl, sys
port, nconn, rounds, order = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
end = sys.argv[5] if len(sys.argv) > 5 else 'close'
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def connect():
    conns = [ctx.wrap_socket(socket.create_connection(('127.0.0.1', port))) for _ in range(nconn)]
    print('CONNECTED', ' '.join(str(c.getsockname()[1]) for c in conns), flush=True)
    return conns
conns = connect() if order == 'pre' else None
sys.stdin.readline()
conns = conns or connect()
for i in range(rounds):
    for k, c in enumerate(conns):
        c.sendall(f'GET /conn{k + 1}-iter{i} HTTP/1.1\\r\\n\\r\\n'.encode())
    for k, c in enumerate(conns):
        want = len(f'echo:GET /conn{k + 1}-iter{i} HTTP/1.1\\r\\n\\r\\n')
        got = b''
        while len(got) < want:
            got += c.recv(4096)
if end == 'rst':
    for c in conns:
        c.sendall(b'RST\\n')
    for c in conns:
        select.select([c], [], [], 10)
    print('RESET', flush=True)
for c in conns:
    if end == 'unwrap':
        try:
            c = c.unwrap()  # SSL_shutdown; a second one waits for the peer's close_notify
        except OSError:
            pass
    c.close()
print('DONE', flush=True)
`;

// ---- processes: every one started here is killed by PID in afterEach ----

interface Proc {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<number | null>;
  group: boolean; // its own process group, killed as a whole (a server that forks)
}

const started: Proc[] = [];

function start(cmd: string, args: string[], group = false): Proc {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: group });
  const p: Proc = { child, stdout: '', stderr: '', exit: Promise.resolve(null), group };
  child.stdout?.on('data', (d: Buffer) => (p.stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (p.stderr += d.toString()));
  p.exit = new Promise((res) => {
    child.on('exit', (code) => res(code));
    child.on('error', () => res(null));
  });
  started.push(p);
  return p;
}

async function waitFor(p: Proc, stream: 'stdout' | 'stderr', re: RegExp, what: string, ms = 20_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = p[stream].match(re);
    if (m) return m;
    if (p.child.exitCode !== null || p.child.signalCode !== null) {
      throw new Error(`${what}: process exited (${p.child.exitCode ?? p.child.signalCode}) before ${re}\nstdout:\n${p.stdout}\nstderr:\n${p.stderr}`);
    }
    if (Date.now() > deadline) throw new Error(`${what}: no ${re} within ${ms} ms\nstdout:\n${p.stdout}\nstderr:\n${p.stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function exited(p: Proc, what: string, ms = 15_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what}: did not exit within ${ms} ms\nstderr:\n${p.stderr}`)), ms);
  });
  try {
    return await Promise.race([p.exit, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function kill(p: Proc): void {
  if (p.child.pid === undefined) return;
  if (!p.group && (p.child.exitCode !== null || p.child.signalCode !== null)) return;
  try {
    process.kill(p.group ? -p.child.pid : p.child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

afterEach(() => {
  for (const p of started.splice(0)) kill(p);
});

// ---- tracer output ----

interface Stats {
  calls: Record<string, number>;
  attributed: number;
  dropped_no_tuple: number;
  slot_writes: number;
  slot_overwrites: number;
  slot_consumed: number;
  ringbuf_drops: number;
  shutdown_no_tuple: number;
  ktime_ns: number;
}

interface Run {
  meta: { variant: string; hook: string; libssl: string; kernel: string; libbpf: string };
  events: TlsEvent[]; // data: SSL_read/SSL_write(_ex)
  ends: TlsEvent[]; // terminations: SSL_shutdown, tcp_close
  stats: Stats;
  sigintAt: number; // CLOCK_MONOTONIC ns (process.hrtime), just before SIGINT
  exitedAt: number; // and once the tracer has exited
}

/** The tracer's stdout through the analysis' own parser; meta must come first and stats last. */
function parseRun(stdout: string): Pick<Run, 'meta' | 'events' | 'ends' | 'stats'> {
  const out = parseTracerOutput(stdout);
  const lines = stdout.split('\n').filter((l) => l.length > 0);
  if (!out.meta || !('meta' in JSON.parse(lines[0] ?? '{}'))) throw new Error(`first line is not meta:\n${stdout.slice(0, 500)}`);
  if (!out.stats || !('stats' in JSON.parse(lines[lines.length - 1] ?? '{}'))) throw new Error(`last line is not stats:\n${stdout.slice(-500)}`);
  if (out.badLines.length) throw new Error(`lines ${out.badLines.join(', ')} are neither meta, stats nor an event:\n${stdout.slice(0, 500)}`);
  const events = out.events.filter((e) => !TERMINATIONS.includes(e.fn));
  const ends = out.events.filter((e) => TERMINATIONS.includes(e.fn));
  return { meta: out.meta as Run['meta'], events, ends, stats: out.stats as unknown as Stats };
}

async function startTracer(args: string[]): Promise<Proc> {
  const t = start(TRACER, ['--hook', 'auto', ...args]);
  await waitFor(t, 'stderr', /^READY$/m, 'tracer', 30_000);
  return t;
}

const monotonicNs = () => Number(process.hrtime.bigint()); // Linux: CLOCK_MONOTONIC, as bpf_ktime_get_ns

async function stopTracer(t: Proc): Promise<Run> {
  await new Promise((r) => setTimeout(r, 300)); // let the last events reach the ring buffer
  const sigintAt = monotonicNs();
  t.child.kill('SIGINT');
  const code = await exited(t, 'tracer after SIGINT');
  const exitedAt = monotonicNs();
  expect(code, `tracer exit status; stderr:\n${t.stderr}`).toBe(0);
  return { ...parseRun(t.stdout), sigintAt, exitedAt };
}

// The stats line's ktime_ns is the flush moment on the events' clock: after every event, and
// between SIGINT and the exit as this process's CLOCK_MONOTONIC sees it.
function expectFlushClock(run: Run): void {
  const lastTs = Math.max(0, ...[...run.events, ...run.ends].map((e) => e.ts));
  expect(run.stats.ktime_ns, 'ktime_ns >= the last event ts').toBeGreaterThanOrEqual(lastTs);
  expect(run.stats.ktime_ns, 'ktime_ns after SIGINT').toBeGreaterThanOrEqual(run.sigintAt);
  expect(run.stats.ktime_ns, 'ktime_ns before the exit').toBeLessThanOrEqual(run.exitedAt);
}

// conn number (1-based) named in a request or echo, or null
function connOf(data: string): number | null {
  const m = data.match(/GET \/conn(\d+)-iter/);
  return m?.[1] ? Number(m[1]) : null;
}

// the local port of the connection a buffer names; a buffer that names none fails the test (it
// must not count as conn 1)
function lportNamed(lports: readonly number[], data: string): number {
  const k = connOf(data);
  const lport = k === null ? undefined : lports[k - 1];
  if (lport === undefined) throw new Error(`buffer names no connection of the run: ${JSON.stringify(data.slice(0, 60))}`);
  return lport;
}

// ---- the suite ----

const missing = missingRequirement();

describe.skipIf(missing !== null && !inCI)(`bpf/ usm_tls on this kernel${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let build: { status: number | null; output: string } = { status: null, output: 'not built' };
  let clientBuild: { status: number | null; output: string } = { status: null, output: 'not built' };
  let raceLibssl: string[] = [];
  let scripts = '';
  let libssl: string[] = [];
  let cert = '';
  let key = '';
  let server: Proc | undefined;
  let serverPort = 0;

  beforeAll(() => {
    if (missing !== null) return;
    const r = spawnSync('make', ['-C', join(ROOT, 'bpf')], { encoding: 'utf8', timeout: 300_000 });
    build = { status: r.status, output: `${r.stdout}\n${r.stderr}` };
    const c = spawnSync('make', ['-C', join(ROOT, 'client')], { encoding: 'utf8', timeout: 120_000 });
    clientBuild = { status: c.status, output: `${c.stdout}\n${c.stderr}` };
    const raceLib = c.status === 0 ? libsslOf(RACE_CLIENT) : null;
    raceLibssl = raceLib ? ['--libssl', raceLib] : [];
    const dir = mkdtempSync(join(tmpdir(), 'bpf-test-'));
    cert = join(dir, 'cert.pem');
    key = join(dir, 'key.pem');
    const o = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-days', '2'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (o.status !== 0) throw new Error(`openssl req failed: ${o.stderr}`);
    writeFileSync(join(dir, 'server.py'), SERVER_PY);
    writeFileSync(join(dir, 'client.py'), CLIENT_PY);
    scripts = dir;
    const lib = pythonLibssl();
    libssl = lib ? ['--libssl', lib] : [];
  }, 360_000);

  // A fresh server per test (afterEach kills it), listening on an ephemeral port.
  async function startServer(): Promise<Proc> {
    server = start('python3', [join(scripts, 'server.py'), cert, key]);
    const m = await waitFor(server, 'stdout', /LISTENING (\d+)/, 'server');
    serverPort = Number(m[1]);
    return server;
  }

  function startClient(nconn: number, order: 'pre' | 'post', end: 'close' | 'rst' | 'unwrap' = 'close', rounds = ROUNDS): Proc {
    return start('python3', [join(scripts, 'client.py'), String(serverPort), String(nconn), String(rounds), order, end]);
  }

  // client/https_server.py on two ephemeral ports: one forked server process per port.
  async function startHttpsServers(): Promise<number[]> {
    const p = start('python3', [HTTPS_SERVER, '--ports', '0,0', '--cert', cert, '--key', key, '--quiet'], true);
    await waitFor(p, 'stdout', /^LISTENING \d+\n[^]*^LISTENING \d+$/m, 'https_server.py');
    return [...p.stdout.matchAll(/^LISTENING (\d+)$/gm)].map((m) => Number(m[1]));
  }

  // Run a client against a traced server; the tracer traces exactly these two processes.
  async function traced(variant: string, nconn: number, order: 'pre' | 'post'): Promise<{ run: Run; lports: number[] }> {
    const srv = await startServer();
    const client = startClient(nconn, order);
    if (order === 'pre') await waitFor(client, 'stdout', /CONNECTED/, 'client');
    const tracer = await startTracer([...libssl, '--variant', variant, '--pid', String(client.child.pid), '--pid', String(srv.child.pid)]);
    client.child.stdin?.write('go\n');
    await waitFor(client, 'stdout', /DONE/, 'client', 30_000);
    expect(await exited(client, 'client'), `client stderr:\n${client.stderr}`).toBe(0);
    const run = await stopTracer(tracer);
    const lports = (client.stdout.match(/CONNECTED ([\d ]+)/)?.[1] ?? '').trim().split(' ').map(Number);
    expect(lports).toHaveLength(nconn);
    return { run, lports };
  }

  it('requirements: root, BTF and the BPF toolchain are available', () => {
    expect(missing, `bpf tests cannot run here: ${missing}`).toBeNull();
  });

  it.runIf(missing === null)('make -C bpf builds the object, skeleton and loader into bpf/build', () => {
    expect(build.status, build.output).toBe(0);
    for (const f of ['vmlinux.h', 'usm_tls.bpf.o', 'usm_tls.skel.h', 'usm_tls']) {
      expect(existsSync(join(ROOT, 'bpf', 'build', f)), f).toBe(true);
    }
  });

  // Regression (sid 7.2): kernels >= 6.14 give a big kprobe-type program a per-CPU private stack,
  // which preemptible uprobes share across tasks: one server's events carried the other's tuple.
  it('every uprobe/uretprobe program opts out of the per-CPU private stack (no_private_stack)', () => {
    const src = readFileSync(join(ROOT, 'bpf', 'usm_tls.bpf.c'), 'utf8');
    const progs = [...src.matchAll(/SEC\("(uprobe|uretprobe)\/(\w+)"\)\n[^\n]*\n\{\n([\s\S]*?)\n\}/g)];
    expect(progs.length).toBeGreaterThanOrEqual(17);
    for (const m of progs) expect(m[3], `${m[1]}/${m[2]}`).toMatch(/\bno_private_stack\(ctx\);/);
  });

  it.runIf(missing === null)(
    'an unknown flag or a bad value prints usage and exits 2',
    () => {
      for (const args of [['--bogus'], ['--variant', 'nope'], ['--hook', 'fentry'], ['--pid', 'abc'], ['stray']]) {
        const r = spawnSync(TRACER, args, { encoding: 'utf8', timeout: 10_000 });
        expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(/Usage: usm_tls/);
        expect(r.stdout).toBe('');
      }
    },
    30_000,
  );

  it.runIf(missing === null)(
    '--libssl /nonexistent exits non-zero naming the path',
    () => {
      const r = spawnSync(TRACER, ['--libssl', '/nonexistent/libssl.so.3'], { encoding: 'utf8', timeout: 10_000 });
      expect(r.status).not.toBe(0);
      expect(r.status).not.toBeNull();
      expect(r.stderr).toMatch(/\/nonexistent\/libssl\.so\.3/);
    },
    30_000,
  );

  it.runIf(missing === null)(
    `--hook auto takes the ${expectedHook} path here; SIGINT writes the stats line and exits 0`,
    async () => {
      const t = await startTracer(['--pid', String(process.pid)]);
      expect(t.stderr).toMatch(/^libssl: \/.*libssl\.so/m);
      expect(t.stderr).toMatch(new RegExp(`kernel hooks: ${expectedHook === 'kprobe' ? 'kprobes' : 'raw tracepoints'}`));
      const run = await stopTracer(t);
      expect(run.meta.hook).toBe(expectedHook);
      expect(run.meta.variant).toBe('upstream');
      expect(run.meta.kernel).toBe(spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim());
      expect(run.meta.libbpf).toMatch(/^\d+\.\d+$/);
      expect(run.events).toHaveLength(0);
      // a softirq may close some other process's connection while this process is current: only
      // tcp_close can show up here
      for (const e of run.ends) expect(e.fn).toBe('tcp_close');
      expect(Object.keys(run.stats)).toEqual([
        'calls',
        'attributed',
        'dropped_no_tuple',
        'slot_writes',
        'slot_overwrites',
        'slot_consumed',
        'ringbuf_drops',
        'shutdown_no_tuple',
        'ktime_ns',
      ]);
      for (const k of ['SSL_read', 'SSL_read_ex', 'SSL_write', 'SSL_write_ex', 'SSL_shutdown', 'tcp_sendmsg', 'tcp_recvmsg', 'tcp_close']) {
        expect(run.stats.calls[k], k).toBe(0);
      }
      expect(run.stats.shutdown_no_tuple).toBe(0);
      expectFlushClock(run);
    },
    60_000,
  );

  it.runIf(missing === null)(
    'connections made after the tracer (scoped): every buffer via fd, on the right ports, both sides',
    async () => {
      const { run, lports } = await traced('scoped', 2, 'post');
      // client writes + server reads (requests), server writes + client reads (echoes): 2 conns x ROUNDS each
      expect(run.events.length, JSON.stringify(run.stats)).toBe(4 * 2 * ROUNDS);
      for (const e of run.events) {
        const lport = lportNamed(lports, e.data);
        const clientSide = e.sport !== serverPort;
        expect(e.via).toBe('fd');
        expect(e.family).toBe(4);
        expect([e.saddr, e.daddr]).toEqual(['127.0.0.1', '127.0.0.1']);
        expect(clientSide ? [e.sport, e.dport] : [e.dport, e.sport], `${e.fn} ${e.data}`).toEqual([lport, serverPort]);
        expect(['SSL_read_ex', 'SSL_write_ex']).toContain(e.fn); // python's ssl module
        expect(e.data.length).toBe(e.len);
        expect(e.truncated).toBe(false);
      }
      expect(run.stats.slot_writes).toBe(0);
      expect(run.stats.calls.SSL_set_fd).toBe(4);
    },
    90_000,
  );

  it.runIf(missing === null)(
    'connections made after the tracer (upstream): right ports; the handshake slot binds them (fallback-send)',
    async () => {
      const { run, lports } = await traced('upstream', 2, 'post');
      expect(run.events.length).toBe(4 * 2 * ROUNDS);
      for (const e of run.events) {
        const lport = lportNamed(lports, e.data);
        expect(e.sport === serverPort ? e.dport : e.sport).toBe(lport);
        expect(['fd', 'fallback-send']).toContain(e.via);
      }
      expect(run.stats.slot_writes).toBeGreaterThan(0); // SSL_do_handshake entry writes the slot
    },
    90_000,
  );

  it.runIf(missing === null)(
    'a connection made before the tracer, upstream: the slot attributes it (fallback-*)',
    async () => {
      const { run, lports } = await traced('upstream', 1, 'pre');
      expect(run.stats.slot_writes).toBeGreaterThan(0);
      expect(run.stats.slot_consumed).toBeGreaterThan(0);
      const client = run.events.filter((e) => e.sport !== serverPort);
      expect(client.length, JSON.stringify(run.stats)).toBeGreaterThan(0);
      for (const e of run.events) {
        expect(e.via).toMatch(/^fallback-(send|recv)$/);
        // one connection per thread: the slot cannot pick a wrong one here
        expect(e.sport === serverPort ? e.dport : e.sport).toBe(lports[0]);
      }
    },
    90_000,
  );

  it.runIf(missing === null)(
    'a connection made before the tracer, no-fallback: nothing of it is captured',
    async () => {
      const { run } = await traced('no-fallback', 1, 'pre');
      expect(run.events).toHaveLength(0);
      expect(run.stats.slot_writes).toBe(0);
      expect(run.stats.attributed).toBe(0);
      expect(run.stats.dropped_no_tuple).toBeGreaterThan(0);
      expect(run.stats.calls.SSL_write_ex).toBeGreaterThan(0);
    },
    90_000,
  );

  // The race itself: two pre-existing connections, one client thread, write-write-read-read.
  it.runIf(missing === null)(
    'two connections made before the tracer, interleaved: upstream swaps them, scoped does not',
    async () => {
      const clientRows = (run: Run, lports: number[]) =>
        run.events.filter((e) => e.sport !== serverPort && e.fn.startsWith('SSL_write')).map((e) => ({ want: lportNamed(lports, e.data), got: e.sport }));

      const up = await traced('upstream', 2, 'pre');
      const upRows = clientRows(up.run, up.lports);
      expect(upRows.length, JSON.stringify(up.run.stats)).toBeGreaterThan(0);
      expect(upRows.filter((r) => r.want !== r.got).length / upRows.length).toBeGreaterThanOrEqual(0.9);

      for (const p of started.splice(0)) if (p.child.pid !== undefined && p.child.exitCode === null) process.kill(p.child.pid, 'SIGKILL');

      const sc = await traced('scoped', 2, 'pre');
      const scRows = clientRows(sc.run, sc.lports);
      expect(scRows).toHaveLength(2 * ROUNDS);
      expect(scRows.filter((r) => r.want !== r.got)).toHaveLength(0);
      // the read path too: every client read lands on the connection its echo names
      const reads = sc.run.events.filter((e) => e.sport !== serverPort && e.fn.startsWith('SSL_read'));
      expect(reads).toHaveLength(2 * ROUNDS);
      for (const e of reads) expect(e.sport).toBe(lportNamed(sc.lports, e.data));
      for (const e of sc.run.events) expect(e.via).toBe('scoped');
    },
    120_000,
  );

  // Termination events, for user space to flush a connection's in-flight transaction as upstream
  // does on SSL_shutdown and tcp_close. race_client ends every connection with SSL_shutdown, then
  // close(). Everything is traced (no filter, as upstream): events are picked by pid and tuple.
  it.runIf(missing === null).each(VARIANTS)(
    'race_client + https_server.py (%s): per connection an SSL_shutdown, then a tcp_close of each side, with its tuple',
    async (variant) => {
      expect(clientBuild.status, clientBuild.output).toBe(0);
      const [p1, p2] = await startHttpsServers();
      const tracer = await startTracer([...raceLibssl, '--variant', variant]);
      const client = start(RACE_CLIENT, ['127.0.0.1', String(p1), '127.0.0.1', String(p2), '3', '--interleaved']);
      const ready = await waitFor(client, 'stdout', /^READY:(\d+):(\d+):(\d+):(\d+)$/m, 'race_client');
      await waitFor(client, 'stderr', /Waiting for SIGUSR1/, 'race_client');
      client.child.kill('SIGUSR1');
      expect(await exited(client, 'race_client'), `race_client stderr:\n${client.stderr}`).toBe(0);
      const run = await stopTracer(tracer);
      const pid = client.child.pid;
      const conns = [
        { l: Number(ready[1]), r: Number(ready[2]) },
        { l: Number(ready[3]), r: Number(ready[4]) },
      ];
      expect(conns.map((c) => c.r)).toEqual([p1, p2]);
      const on = (es: TlsEvent[], fn: string, sport: number, dport: number) =>
        es.filter((e) => e.fn === fn && e.sport === sport && e.dport === dport && e.saddr === '127.0.0.1' && e.daddr === '127.0.0.1');

      expect(
        run.ends.filter((e) => e.fn === 'SSL_shutdown' && e.pid === pid),
        JSON.stringify(run.ends),
      ).toHaveLength(2);
      for (const { l, r } of conns) {
        const shut = on(run.ends, 'SSL_shutdown', l, r);
        expect(shut, `SSL_shutdown ${l}->${r}: ${JSON.stringify(run.ends)}`).toHaveLength(1);
        const s = shut[0]!;
        expect([s.pid, s.tid, s.comm, s.family, s.len, s.data]).toEqual([pid, pid, 'race_client', 4, 0, '']);
        // the SSL * of the connection: the one its data events carry
        const writes = on(run.events, 'SSL_write', l, r).filter((e) => e.pid === pid);
        expect(writes.length).toBe(3);
        expect(s.ctx).not.toBe('0x0');
        for (const w of writes) expect(w.ctx).toBe(s.ctx);
        // every key an SSL event has, in its order
        expect(Object.keys(s)).toEqual(Object.keys(writes[0]!));

        const mine = on(run.ends, 'tcp_close', l, r);
        const theirs = on(run.ends, 'tcp_close', r, l);
        expect(mine, `tcp_close ${l}->${r}: ${JSON.stringify(run.ends)}`).toHaveLength(1);
        expect(theirs, `tcp_close ${r}->${l} (server side): ${JSON.stringify(run.ends)}`).toHaveLength(1);
        for (const c of [mine[0]!, theirs[0]!]) {
          expect([c.family, c.len, c.data]).toEqual([4, 0, '']);
          expect(Object.keys(c)).toEqual(Object.keys(s));
          expect(c.ts).toBeGreaterThan(s.ts); // close() comes after SSL_shutdown
        }
      }
      expect(run.stats.calls.SSL_shutdown).toBeGreaterThanOrEqual(2);
      expectFlushClock(run);
    },
    90_000,
  );

  // In tracepoint mode TCP_CLOSE often runs in softirq on behalf of another task. Here the traced
  // client's sockets are reset by the untraced server: the close runs in the server's context,
  // and is reported only because the maps know the client's tuples.
  it.runIf(missing === null)(
    'a close run by an untraced task is reported when the maps know the tuple (the server resets the traced client)',
    async () => {
      const srv = await startServer();
      const client = startClient(2, 'post', 'rst');
      const tracer = await startTracer([...libssl, '--variant', 'scoped', '--pid', String(client.child.pid)]);
      client.child.stdin?.write('go\n');
      await waitFor(client, 'stdout', /RESET\nDONE/, 'client', 30_000);
      expect(await exited(client, 'client'), `client stderr:\n${client.stderr}`).toBe(0);
      const run = await stopTracer(tracer);
      const lports = (client.stdout.match(/CONNECTED ([\d ]+)/)?.[1] ?? '').trim().split(' ').map(Number);
      expect(lports).toHaveLength(2);
      for (const lport of lports) {
        const closes = run.ends.filter((e) => e.fn === 'tcp_close' && e.sport === lport && e.dport === serverPort);
        expect(closes, `tcp_close ${lport}->${serverPort}: ${JSON.stringify(run.ends)}`).toHaveLength(1);
        expect(closes[0]!.pid, 'run by the task that sent the RST, not the client').not.toBe(client.child.pid);
        const writes = run.events.filter((e) => e.fn === 'SSL_write_ex' && e.sport === lport);
        expect(writes.length).toBeGreaterThan(0);
        expect(closes[0]!.ctx, 'ctx from ssl_ctx_by_tuple').toBe(writes[0]!.ctx);
        // the server's side: neither traced nor known
        expect(run.ends.filter((e) => e.sport === serverPort && e.dport === lport)).toHaveLength(0);
      }
      expect(srv.child.exitCode).toBeNull();
      expect(run.ends.filter((e) => e.fn === 'SSL_shutdown')).toHaveLength(0); // Python's close() sends no close_notify
      expect(run.stats.calls.SSL_shutdown).toBe(0);
      expectFlushClock(run);
    },
    90_000,
  );

  // SSL_shutdown with no SSL_read/SSL_write before it: no-fallback has never resolved the SSL_set_fd
  // entry's tuple, so SSL_shutdown resolves it from the fd table; a connection the maps do not know
  // (made before the tracer) is only counted, and SSL_shutdown never writes the fallback slot.
  it.runIf(missing === null)(
    'SSL_shutdown first thing: resolved from the fd table if the entry is new, else counted; never a slot write',
    async () => {
      await startServer();
      let client = startClient(1, 'post', 'unwrap', 0);
      let tracer = await startTracer([...libssl, '--variant', 'no-fallback', '--pid', String(client.child.pid)]);
      client.child.stdin?.write('go\n');
      await waitFor(client, 'stdout', /DONE/, 'client', 30_000);
      const post = await stopTracer(tracer);
      const lport = Number(client.stdout.match(/CONNECTED (\d+)/)?.[1]);
      const shut = post.ends.filter((e) => e.fn === 'SSL_shutdown');
      expect(shut, JSON.stringify(post)).toHaveLength(1);
      expect([shut[0]!.pid, shut[0]!.sport, shut[0]!.dport, shut[0]!.via]).toEqual([client.child.pid, lport, serverPort, 'fd']);
      expect(post.stats.calls.SSL_shutdown).toBeGreaterThanOrEqual(1);
      expect(post.stats.shutdown_no_tuple).toBe((post.stats.calls.SSL_shutdown ?? 0) - 1); // Python's second call finds no entry
      expect(post.events).toHaveLength(0);

      client = startClient(1, 'pre', 'unwrap', 0);
      await waitFor(client, 'stdout', /CONNECTED/, 'client');
      tracer = await startTracer([...libssl, '--variant', 'upstream', '--pid', String(client.child.pid)]);
      client.child.stdin?.write('go\n');
      await waitFor(client, 'stdout', /DONE/, 'client', 30_000);
      const pre = await stopTracer(tracer);
      expect(pre.ends.filter((e) => e.fn === 'SSL_shutdown')).toHaveLength(0);
      expect(pre.stats.calls.SSL_shutdown).toBeGreaterThanOrEqual(1);
      expect(pre.stats.shutdown_no_tuple).toBe(pre.stats.calls.SSL_shutdown);
      expect([pre.stats.slot_writes, pre.stats.slot_consumed]).toEqual([0, 0]);
    },
    90_000,
  );
});
