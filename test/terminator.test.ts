// client/tls_terminator.py with Debian's real nginx and HAProxy (installed by
// provision/host-deps.sh servers): TLS on the run's ports in front of plain backends, the
// LISTENING/CLOSED protocol the run protocol waits on, status codes and markers unchanged, the
// race client's requests through it, and what it says when the terminator fails or dies.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ensureHostPackages } from '../src/hostdeps.ts';
import { inCI } from './helpers/requirements.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const TERMINATOR = join(ROOT, 'client/tls_terminator.py');
const CLIENT = join(ROOT, 'client/build/race_client');
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const KINDS = ['nginx', 'haproxy'] as const;
const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));
const missing = process.platform !== 'linux' ? 'needs Linux' : process.getuid?.() !== 0 ? 'needs root (installs nginx and haproxy)' : null;

class Proc {
  readonly child: ChildProcess;
  out = '';
  err = '';
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  constructor(cmd: string, args: readonly string[]) {
    this.child = spawn(cmd, args, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.err += d));
    this.child.on('close', (code, signal) => (this.exit = { code, signal }));
    procs.add(this);
  }
  get pid(): number {
    return this.child.pid!;
  }
  async until(pred: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nstdout:\n${this.out}\nstderr:\n${this.err.slice(-3000)}`);
      await sleep(20);
    }
  }
  kill(sig: NodeJS.Signals = 'SIGKILL'): void {
    if (this.exit) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      /* gone */
    }
  }
}
const procs = new Set<Proc>();

/** Two free ports on 127.0.0.1 (bound and released: the kernel picked them). */
async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = createServer();
    await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
    servers.push(s);
    ports.push((s.address() as { port: number }).port);
  }
  for (const s of servers) await new Promise<void>((res) => s.close(() => res()));
  return ports;
}

/** The pids of a process's children (from /proc), to find the terminator's master and the backend. */
function children(pid: number): { pid: number; comm: string }[] {
  const out: { pid: number; comm: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push({ pid: Number(d), comm: readFileSync(`/proc/${d}/comm`, 'utf8').trim() });
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Every process below pid (children, their children...). */
function descendants(pid: number): { pid: number; comm: string }[] {
  const out: { pid: number; comm: string }[] = [];
  for (let todo = [pid]; todo.length;) {
    const next = children(todo.pop()!);
    out.push(...next);
    todo.push(...next.map((k) => k.pid));
  }
  return out;
}

const isAlive = (k: { pid: number }): boolean => {
  try {
    return !readFileSync(`/proc/${k.pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
};

/** One keep-alive TLS connection: each request's raw response (headers and body), in order. */
async function requests(port: number, paths: readonly string[]): Promise<{ responses: string[]; localPort: number }> {
  const sock = connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  await new Promise<void>((res, rej) => sock.once('secureConnect', res).once('error', rej));
  const localPort = sock.localPort!;
  let buf = '';
  sock.setEncoding('utf8').on('data', (d: string) => (buf += d));
  const responses: string[] = [];
  for (const p of paths) {
    buf = '';
    sock.write(`GET ${p} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n`);
    const deadline = Date.now() + 10_000;
    // a whole response: headers, then Content-Length bytes (none for 204)
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const len = Number(/content-length: *(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
        if (buf.length >= end + 4 + len) break;
      }
      if (Date.now() > deadline) throw new Error(`no whole response to ${p} on ${port}: ${JSON.stringify(buf)}`);
      await sleep(10);
    }
    responses.push(buf);
  }
  // open longer than the terminator's 20 ms poll of /proc/net/tcp (a shorter one may get no CLOSED line)
  await sleep(100);
  sock.end();
  await new Promise<void>((res) => sock.once('close', () => res()));
  return { responses, localPort };
}

describe.skipIf(missing !== null && !inCI)(`tls_terminator.py with nginx and HAProxy${missing ? ` (skipped: ${missing})` : ''}`, () => {
  const work = mkdtempSync(join(tmpdir(), 'terminator-test-'));
  beforeAll(async () => {
    expect(missing, `the terminator test cannot run here: ${missing}`).toBeNull();
    await ensureHostPackages(ROOT, ['servers'], { kind: 'server-failed' });
    if (!existsSync(CLIENT)) expect(spawnSync('make', ['-C', join(ROOT, 'client')], { encoding: 'utf8', timeout: 120_000 }).status).toBe(0);
  }, 900_000);
  afterEach(() => {
    for (const p of procs) p.kill();
    procs.clear();
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const start = async (kind: string, ports: number[], extra: string[] = []) => {
    const p = new Proc(PYTHON, [TERMINATOR, '--server', kind, '--ports', ports.join(','), '--dir', join(work, `${kind}-${ports[0]}`), ...extra]);
    await p.until(() => ports.every((port) => p.out.includes(`LISTENING ${port}\n`)) || p.exit !== null, 60_000, `${kind} LISTENING`);
    return p;
  };

  it.each(KINDS)(
    '%s: TLS on each port, the status asked for and the body OK from the plain backend; a CLOSED line per connection it closed; SIGTERM stops all of it',
    async (kind) => {
      const ports = await freePorts(2);
      const t = await start(kind, ports);
      expect(t.exit, t.err).toBeNull();
      const kids = children(t.pid);
      expect(kids.map((k) => k.comm).sort()).toEqual([kind, 'python3'].sort());
      const a = await requests(ports[0]!, ['/200/conn1-iter0', '/404/conn1-iter1', '/200/conn1-iter2']);
      expect(a.responses.map((r) => r.split('\r\n')[0])).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 404 Not Found', 'HTTP/1.1 200 OK']);
      for (const r of a.responses) expect(r.endsWith('\r\n\r\nOK')).toBe(true);
      const b = await requests(ports[1]!, ['/204/conn2-iter0']);
      expect(b.responses[0]!.split('\r\n')[0]).toBe('HTTP/1.1 204 No Content');
      await t.until(
        () => t.out.includes(`CLOSED ${ports[0]} ${a.localPort}\n`) && t.out.includes(`CLOSED ${ports[1]} ${b.localPort}\n`),
        10_000,
        'CLOSED lines',
      );
      // only the run's connections: no line for a backend connection
      expect(
        t.out
          .split('\n')
          .filter((l) => l.startsWith('CLOSED'))
          .every((l) => ports.includes(Number(l.split(' ')[1]))),
      ).toBe(true);
      t.kill('SIGTERM');
      await t.until(() => t.exit !== null, 15_000, 'exit after SIGTERM');
      expect(t.exit).toEqual({ code: 0, signal: null });
      await sleep(200);
      for (const k of kids)
        expect(existsSync(`/proc/${k.pid}`) && !readFileSync(`/proc/${k.pid}/stat`, 'utf8').includes(') Z '), `${k.comm} left running`).toBe(false);
    },
    120_000,
  );

  it.each(KINDS)(
    "%s: the race client's pre-existing keep-alive connections through it, interleaved, every request answered 200",
    async (kind) => {
      const ports = await freePorts(2);
      const t = await start(kind, ports);
      const c = new Proc(CLIENT, [...ports.flatMap((p) => ['--conn', `127.0.0.1:${p}`]), '--iterations', '50', '--interleaved', '--reads', 'full']);
      await c.until(() => /^READY(:\d+)+$/m.test(c.out), 30_000, 'READY');
      const ready = /^READY:(\d+):(\d+):(\d+):(\d+)$/m.exec(c.out)!;
      await sleep(300); // the connections idle before traffic, as while a tracer loads
      process.kill(c.pid, 'SIGUSR1');
      await c.until(() => c.exit !== null, 60_000, 'client exit');
      expect(c.exit, c.err).toEqual({ code: 0, signal: null });
      expect(c.out).toMatch(/^conn1 ok=50 fail=0 /m);
      expect(c.out).toMatch(/^conn2 ok=50 fail=0 /m);
      await t.until(() => t.out.includes(`CLOSED ${ready[2]} ${ready[1]}\n`) && t.out.includes(`CLOSED ${ready[4]} ${ready[3]}\n`), 10_000, 'CLOSED lines');
    },
    120_000,
  );

  it.each(KINDS)(
    '%s: a port already taken: exit 1, and the terminator says which address it could not bind',
    async (kind) => {
      const [free, taken] = await freePorts(2);
      const holder = createServer();
      await new Promise<void>((res) => holder.listen(taken, '127.0.0.1', res));
      try {
        const t = await start(kind, [free!, taken!]);
        await t.until(() => t.exit !== null, 60_000, 'exit');
        expect(t.exit!.code).toBe(1);
        expect(t.err).toMatch(new RegExp(`${taken}`));
        expect(t.err).toMatch(/bind|Address already in use|cannot/i);
        expect(t.out).not.toMatch(/LISTENING/);
      } finally {
        await new Promise<void>((res) => holder.close(() => res()));
      }
    },
    90_000,
  );

  it.each(KINDS)(
    '%s killed under it: exit 1 naming it; the backend, and an orphaned worker, stopped with it',
    async (kind) => {
      const ports = await freePorts(2);
      const t = await start(kind, ports);
      const tree = descendants(t.pid);
      const term = tree.find((k) => k.comm === kind)!;
      process.kill(term.pid, 'SIGKILL');
      await t.until(() => t.exit !== null, 15_000, 'exit');
      expect(t.exit!.code).toBe(1);
      expect(t.err).toContain(`tls_terminator: ${kind} was killed by signal 9; stopping the others`);
      await sleep(200);
      // nginx's worker, orphaned by its master's death, would serve on
      expect(tree.filter(isAlive), 'processes left').toEqual([]);
    },
    90_000,
  );

  it.each(KINDS)(
    "%s: tls_terminator.py SIGKILLed itself (the run protocol's last resort): the terminator and the backend stop with it",
    async (kind) => {
      const ports = await freePorts(2);
      const t = await start(kind, ports);
      const tree = descendants(t.pid);
      expect(tree.map((k) => k.comm)).toContain(kind);
      // the backend and its 2 forks, the terminator, and nginx's worker
      expect(tree.length).toBeGreaterThanOrEqual(kind === 'nginx' ? 5 : 4);
      process.kill(t.pid, 'SIGKILL');
      const deadline = Date.now() + 10_000;
      while (tree.some(isAlive) && Date.now() < deadline) await sleep(50);
      expect(tree.filter(isAlive), 'processes left after tls_terminator.py was killed').toEqual([]);
    },
    60_000,
  );

  it('bad usage: an unknown server and a port 0 are refused (exit 2) before anything starts', () => {
    const a = spawnSync(PYTHON, [TERMINATOR, '--server', 'apache'], { encoding: 'utf8', timeout: 30_000 });
    expect(a.status).toBe(2);
    expect(a.stderr).toMatch(/invalid choice: 'apache'/);
    const b = spawnSync(PYTHON, [TERMINATOR, '--server', 'nginx', '--ports', '0,18001'], { encoding: 'utf8', timeout: 30_000 });
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/no 0/);
  });
});
