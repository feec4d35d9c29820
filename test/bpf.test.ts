// bpf/: real eBPF on this host. Builds the tracer with make, then drives real Python TLS clients
// and servers on 127.0.0.1 under it. Needs root, kernel BTF and the BPF toolchain; outside CI a
// missing one skips with its reason, under CI=true it FAILS with its reason.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTracerOutput, type TlsEvent } from '../src/analysis/events.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TRACER = join(ROOT, 'bpf', 'build', 'usm_tls');
const inCI = process.env.CI === 'true';
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

// The libssl python3's ssl module really uses (its _ssl extension's dependency), so the uprobes
// sit where the test's TLS traffic is; null: let the tracer find one itself.
function pythonLibssl(): string | null {
  const mod = spawnSync('python3', ['-c', 'import _ssl; print(_ssl.__file__)'], { encoding: 'utf8', timeout: 10_000 });
  if (mod.status !== 0) return null;
  const ldd = spawnSync('ldd', [mod.stdout.trim()], { encoding: 'utf8', timeout: 10_000 });
  return ldd.stdout.match(/libssl\.so[^\s]* => (\/\S+)/)?.[1] ?? null;
}

// ---- TLS peers: a threaded echo server and a client with two modes ----

const SERVER_PY = `
import socket, ssl, sys, threading
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
            s.sendall(b'echo:' + d)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

// client.py PORT NCONN ROUNDS pre|post: 'pre' connects, prints CONNECTED, then waits for a line
// on stdin; 'post' waits first. Then ROUNDS interleaved rounds from ONE thread: write on every
// connection, then read every echo. Prints CONNECTED <lport>... and DONE.
const CLIENT_PY = `
import socket, ssl, sys
port, nconn, rounds, order = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
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
for c in conns:
    c.close()
print('DONE', flush=True)
`;

// ---- processes: every one started here is killed by PID in afterEach ----

interface Proc {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<number | null>;
}

const started: Proc[] = [];

function start(cmd: string, args: string[]): Proc {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const p: Proc = { child, stdout: '', stderr: '', exit: Promise.resolve(null) };
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

afterEach(() => {
  for (const p of started.splice(0)) {
    if (p.child.pid !== undefined && p.child.exitCode === null && p.child.signalCode === null) {
      try {
        process.kill(p.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
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
}

interface Run {
  meta: { variant: string; hook: string; libssl: string; kernel: string; libbpf: string };
  events: TlsEvent[];
  stats: Stats;
}

/** The tracer's stdout through the analysis' own parser; meta must come first and stats last. */
function parseRun(stdout: string): Run {
  const out = parseTracerOutput(stdout);
  const lines = stdout.split('\n').filter((l) => l.length > 0);
  if (!out.meta || !('meta' in JSON.parse(lines[0] ?? '{}'))) throw new Error(`first line is not meta:\n${stdout.slice(0, 500)}`);
  if (!out.stats || !('stats' in JSON.parse(lines[lines.length - 1] ?? '{}'))) throw new Error(`last line is not stats:\n${stdout.slice(-500)}`);
  if (out.badLines.length) throw new Error(`lines ${out.badLines.join(', ')} are neither meta, stats nor an event:\n${stdout.slice(0, 500)}`);
  return { meta: out.meta as Run['meta'], events: out.events, stats: out.stats as Stats };
}

async function startTracer(args: string[]): Promise<Proc> {
  const t = start(TRACER, ['--hook', 'auto', ...args]);
  await waitFor(t, 'stderr', /^READY$/m, 'tracer', 30_000);
  return t;
}

async function stopTracer(t: Proc): Promise<Run> {
  await new Promise((r) => setTimeout(r, 300)); // let the last events reach the ring buffer
  t.child.kill('SIGINT');
  const code = await exited(t, 'tracer after SIGINT');
  expect(code, `tracer exit status; stderr:\n${t.stderr}`).toBe(0);
  return parseRun(t.stdout);
}

// conn number (1-based) named in a request or echo, or null
function connOf(data: string): number | null {
  const m = data.match(/GET \/conn(\d+)-iter/);
  return m?.[1] ? Number(m[1]) : null;
}

// ---- the suite ----

const missing = missingRequirement();

describe.skipIf(missing !== null && !inCI)(`bpf/ usm_tls on this kernel${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let build: { status: number | null; output: string } = { status: null, output: 'not built' };
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
    const dir = mkdtempSync(join(tmpdir(), 'bpf-test-'));
    cert = join(dir, 'cert.pem');
    key = join(dir, 'key.pem');
    const o = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-days', '2'], { encoding: 'utf8', timeout: 60_000 });
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

  function startClient(nconn: number, order: 'pre' | 'post'): Proc {
    return start('python3', [join(scripts, 'client.py'), String(serverPort), String(nconn), String(ROUNDS), order]);
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

  it.runIf(missing === null)('an unknown flag or a bad value prints usage and exits 2', () => {
    for (const args of [['--bogus'], ['--variant', 'nope'], ['--hook', 'fentry'], ['--pid', 'abc'], ['stray']]) {
      const r = spawnSync(TRACER, args, { encoding: 'utf8', timeout: 10_000 });
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/Usage: usm_tls/);
      expect(r.stdout).toBe('');
    }
  }, 30_000);

  it.runIf(missing === null)('--libssl /nonexistent exits non-zero naming the path', () => {
    const r = spawnSync(TRACER, ['--libssl', '/nonexistent/libssl.so.3'], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).not.toBe(0);
    expect(r.status).not.toBeNull();
    expect(r.stderr).toMatch(/\/nonexistent\/libssl\.so\.3/);
  }, 30_000);

  it.runIf(missing === null)(`--hook auto takes the ${expectedHook} path here; SIGINT writes the stats line and exits 0`, async () => {
    const t = await startTracer(['--pid', String(process.pid)]);
    expect(t.stderr).toMatch(/^libssl: \/.*libssl\.so/m);
    expect(t.stderr).toMatch(new RegExp(`kernel hooks: ${expectedHook === 'kprobe' ? 'kprobes' : 'raw tracepoints'}`));
    const run = await stopTracer(t);
    expect(run.meta.hook).toBe(expectedHook);
    expect(run.meta.variant).toBe('upstream');
    expect(run.meta.kernel).toBe(spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim());
    expect(run.meta.libbpf).toMatch(/^\d+\.\d+$/);
    expect(run.events).toHaveLength(0);
    expect(Object.keys(run.stats)).toEqual(['calls', 'attributed', 'dropped_no_tuple', 'slot_writes', 'slot_overwrites', 'slot_consumed', 'ringbuf_drops']);
    for (const k of ['SSL_read', 'SSL_read_ex', 'SSL_write', 'SSL_write_ex', 'tcp_sendmsg', 'tcp_recvmsg', 'tcp_close']) {
      expect(run.stats.calls[k], k).toBe(0);
    }
  }, 60_000);

  it.runIf(missing === null)('connections made after the tracer (scoped): every buffer via fd, on the right ports, both sides', async () => {
    const { run, lports } = await traced('scoped', 2, 'post');
    // client writes + server reads (requests), server writes + client reads (echoes): 2 conns x ROUNDS each
    expect(run.events.length, JSON.stringify(run.stats)).toBe(4 * 2 * ROUNDS);
    for (const e of run.events) {
      const k = connOf(e.data);
      expect(k, e.data).not.toBeNull();
      const lport = lports[(k ?? 1) - 1];
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
  }, 90_000);

  it.runIf(missing === null)('connections made after the tracer (upstream): right ports; the handshake slot binds them (fallback-send)', async () => {
    const { run, lports } = await traced('upstream', 2, 'post');
    expect(run.events.length).toBe(4 * 2 * ROUNDS);
    for (const e of run.events) {
      const lport = lports[(connOf(e.data) ?? 1) - 1];
      expect(e.sport === serverPort ? e.dport : e.sport).toBe(lport);
      expect(['fd', 'fallback-send']).toContain(e.via);
    }
    expect(run.stats.slot_writes).toBeGreaterThan(0); // SSL_do_handshake entry writes the slot
  }, 90_000);

  it.runIf(missing === null)('a connection made before the tracer, upstream: the slot attributes it (fallback-*)', async () => {
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
  }, 90_000);

  it.runIf(missing === null)('a connection made before the tracer, no-fallback: nothing of it is captured', async () => {
    const { run } = await traced('no-fallback', 1, 'pre');
    expect(run.events).toHaveLength(0);
    expect(run.stats.slot_writes).toBe(0);
    expect(run.stats.attributed).toBe(0);
    expect(run.stats.dropped_no_tuple).toBeGreaterThan(0);
    expect(run.stats.calls.SSL_write_ex).toBeGreaterThan(0);
  }, 90_000);

  // The race itself: two pre-existing connections, one client thread, write-write-read-read.
  it.runIf(missing === null)('two connections made before the tracer, interleaved: upstream swaps them, scoped does not', async () => {
    const clientRows = (run: Run, lports: number[]) =>
      run.events
        .filter((e) => e.sport !== serverPort && e.fn.startsWith('SSL_write'))
        .map((e) => ({ want: lports[(connOf(e.data) ?? 1) - 1], got: e.sport }));

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
    for (const e of reads) expect(e.sport).toBe(sc.lports[(connOf(e.data) ?? 1) - 1]);
    for (const e of sc.run.events) expect(e.via).toBe('scoped');
  }, 120_000);
});
