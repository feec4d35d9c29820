// Consecutive trials on one target share its servers and its loaded tracers (scenario/run.ts
// TargetSession): real servers, real race client, real usm_tls --control on this host's kernel.
// What must hold is what a fresh tracer per trial gave: each run starts from empty tracer maps,
// sees none of the previous run's connections or events, and the servers see each run's
// connections as new ones. Needs root + BPF; under CI=true their absence FAILS this file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseTracerOutput } from '../src/analysis/events.ts';
import { LocalMachine } from '../src/machine/local.ts';
import type { Machine } from '../src/machine/types.ts';
import type { ProgressEvent } from '../src/progress/events.ts';
import { prepareMachine, type Prepared } from '../src/scenario/prepare.ts';
import { closeSession, newSession, runTrial, type TrialRun, type TrialSpec } from '../src/scenario/run.ts';
import { readProc, signalProc, startAndWait, stopProc, waitForLine } from '../src/scenario/procs.ts';
import { inCI, missingForBpf } from './helpers/requirements.ts';

const missing = missingForBpf();
const ROOT = resolve(import.meta.dirname, '..');
const m = new LocalMachine({ workdir: ROOT });
const scratch = mkdtempSync(join(tmpdir(), 'session-test-'));
const events: ProgressEvent[] = [];
const session = newSession(join(scratch, 'remote', 'session'));
let prepared: Prepared;

const spec = (over: Partial<TrialSpec> = {}): TrialSpec => ({
  variant: 'upstream',
  mode: 'interleaved',
  scenario: 'preexisting',
  iterations: 20,
  trial: 1,
  ports: [18001, 18002],
  trace: 'all',
  api: 'classic',
  hook: 'auto',
  reads: 'full',
  server: 'python',
  nagle: 'off',
  settleMs: 2000,
  ...over,
});

async function trial(k: number, over: Partial<TrialSpec> = {}): Promise<TrialRun> {
  return runTrial({
    machine: m,
    tools: prepared.tools,
    spec: spec({ trial: k, ...over }),
    remoteDir: join(scratch, 'remote', `trial-${k}`),
    localDir: join(scratch, 'local', `trial-${k}`),
    session,
    emit: (e) => events.push(e),
    signal: new AbortController().signal,
  });
}

function tracerOut(r: TrialRun) {
  return parseTracerOutput(readFileSync(join(r.localDir, 'events.jsonl'), 'utf8'));
}

/** The client-side ports of a trial's connections, as its READY line named them. */
const lports = (r: TrialRun) => r.conns.map((c) => c.lport);

describe.skipIf(missing !== null && !inCI)(`a target's trials share servers and tracers${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root and BPF are available', () => {
    expect(missing, `this test cannot run here: ${missing}`).toBeNull();
  });

  beforeAll(async () => {
    if (missing) return;
    prepared = await prepareMachine({ machine: m, repoRoot: ROOT, logDir: join(scratch, 'logs'), emit: () => {}, buildTimeoutMs: 600_000 });
  }, 600_000);

  afterAll(async () => {
    await closeSession(m, session);
    rmSync(scratch, { recursive: true, force: true });
  });

  let first: TrialRun;
  let second: TrialRun;

  it.runIf(missing === null)(
    'two consecutive runs: the second starts from empty maps and sees none of the first one’s connections or events',
    async () => {
      first = await trial(1);
      expect(first.error, first.error?.message).toBeUndefined();
      const serversPid = session.servers!.proc.pid;
      const tracerPid = [...session.tracers.values()][0]!.proc.pid;
      second = await trial(2);
      expect(second.error, second.error?.message).toBeUndefined();
      // the same servers and the same loaded tracer served both trials
      expect(session.servers!.proc.pid).toBe(serversPid);
      expect([...session.tracers.values()].map((t) => t.proc.pid)).toEqual([tracerPid]);
      // the second trial's connections are new ones
      expect(lports(second).some((p) => lports(first).includes(p))).toBe(false);

      const a = tracerOut(first);
      const b = tracerOut(second);
      expect(a.meta).toMatchObject({ run: 1, map_entries_at_start: 0 });
      expect(b.meta).toMatchObject({ run: 2, map_entries_at_start: 0 });
      expect(readFileSync(join(first.localDir, 'tracer.log'), 'utf8')).toMatch(/^run 1: \d+ map entries emptied$/m);
      // no event of the second run is on a connection of the first one (either side of the tuple)
      const ports = (e: { sport: number; dport: number }) => [e.sport, e.dport];
      expect(a.events.some((e) => ports(e).some((p) => lports(first).includes(p)))).toBe(true);
      expect(b.events.filter((e) => ports(e).some((p) => lports(first).includes(p)))).toEqual([]);
      // each run's counters start at zero: the same traffic gives the same call counts
      expect(b.stats?.calls?.SSL_write).toBe(a.stats?.calls?.SSL_write);
      expect(a.stats?.calls?.SSL_write).toBeGreaterThanOrEqual(2 * 20);
      // pre-existing: the handshakes ran behind the closed gate, so the tracer never saw SSL_set_fd
      expect(a.stats?.calls?.SSL_set_fd).toBe(0);
      expect(b.stats?.calls?.SSL_set_fd).toBe(0);
      // the settle ended on the servers' CLOSED lines, not on the 2 s deadline
      expect(second.notes).toEqual([]);
      const settle = second.phases.find((p) => p.name === 'settle')!;
      expect(settle.ms).toBeLessThan(2000);
      const out2 = readFileSync(join(second.localDir, 'servers.out'), 'utf8');
      for (const c of second.conns) expect(out2).toContain(`CLOSED ${c.rport} ${c.lport}`);
      expect(out2).not.toContain(`CLOSED 18001 ${first.conns[0]!.lport}`);
    },
    120_000,
  );

  it.runIf(missing === null)(
    'a warm trial is two round trips (the client with the gate and the traffic after its READY; one close that settles, flushes and brings the folder back): no sftp; a baseline three',
    async () => {
      const calls: string[] = [];
      const counting: Machine = {
        target: m.target,
        workdir: m.workdir,
        exec: (argv, o) => (calls.push('exec'), m.exec(argv, o)),
        put: (a, b) => (calls.push('put'), m.put(a, b)),
        get: (a, b) => (calls.push('get'), m.get(a, b)),
        close: () => m.close(),
      };
      const k = 8;
      const r = await runTrial({
        machine: counting,
        tools: prepared.tools,
        spec: spec({ trial: k }),
        remoteDir: join(scratch, 'remote', `trial-${k}`),
        localDir: join(scratch, 'local', `trial-${k}`),
        session,
        emit: (e) => events.push(e),
        signal: new AbortController().signal,
      });
      expect(r.error, r.error?.message).toBeUndefined();
      expect(calls).toEqual(['exec', 'exec']);
      // what came back in the tar is the whole folder: the tracer's events and stats, the client's and servers' outputs
      const t = tracerOut(r);
      expect(t.meta).toMatchObject({ map_entries_at_start: 0 });
      expect(t.stats?.calls?.SSL_write).toBeGreaterThanOrEqual(2 * 20);
      for (const f of ['client.out', 'client.log', 'client-record.jsonl', 'servers.out', 'tracer.log']) expect(existsSync(join(r.localDir, f)), f).toBe(true);
      for (const c of r.conns) expect(readFileSync(join(r.localDir, 'servers.out'), 'utf8')).toContain(`CLOSED ${c.rport} ${c.lport}`);
      // each exec's time is split by the machine's clock into the protocol's steps
      const names = r.phases.map((p) => p.name);
      expect(names).toEqual(expect.arrayContaining(['client-ready', 'tracer-ready', 'traffic', 'settle', 'tracer-exit', 'fetch']));
      expect(names.indexOf('client-ready')).toBeLessThan(names.indexOf('tracer-ready'));
      expect(names.indexOf('tracer-ready')).toBeLessThan(names.indexOf('traffic'));
      expect(r.phases.every((p) => Number.isInteger(p.ms) && p.ms >= 0)).toBe(true);
      // a baseline: the gate opens first (its own exec), then the client and its traffic, then the close
      calls.length = 0;
      const b = await runTrial({
        machine: counting,
        tools: prepared.tools,
        spec: spec({ trial: k + 1, scenario: 'baseline' }),
        remoteDir: join(scratch, 'remote', `trial-${k + 1}`),
        localDir: join(scratch, 'local', `trial-${k + 1}`),
        session,
        emit: (e) => events.push(e),
        signal: new AbortController().signal,
      });
      expect(b.error, b.error?.message).toBeUndefined();
      expect(calls).toEqual(['exec', 'exec', 'exec']);
      expect(tracerOut(b).stats?.calls?.SSL_set_fd).toBeGreaterThanOrEqual(2);
    },
    120_000,
  );

  it.runIf(missing === null)(
    'a run closed while the client still runs: its map entries are emptied, and the next run knows none of those live connections',
    async () => {
      const t = [...session.tracers.values()][0]!;
      const dir = join(scratch, 'remote', 'live');
      await m.exec(['mkdir', '-p', dir], { timeoutMs: 10_000 });
      const conns = [18001, 18002].flatMap((p) => ['--conn', `127.0.0.1:${p}`]);
      const { proc: client } = await startAndWait(
        m,
        { name: 'client', dir, kind: 'client-failed', argv: [prepared.tools.client, ...conns, '--iterations', '100000', '--interleaved'] },
        /^READY(:\d+)+$/,
        30_000,
      );
      const open = async (file: string) => {
        const n = t.runs + 1;
        await waitForLine(m, t.proc, new RegExp(`^ENABLED ${n}$`), 30_000, undefined, null, { write: { file: t.control, line: file }, kill: 'USR1' });
        t.runs = n;
      };
      const close = () => waitForLine(m, t.proc, new RegExp(`^FLUSHED ${t.runs}$`), 30_000, undefined, null, { kill: 'USR2' });
      try {
        await open(join(dir, 'a.jsonl'));
        await signalProc(m, client, 'USR1');
        await new Promise((r) => setTimeout(r, 500));
        const st = await close();
        const emptied = Number(new RegExp(`^run ${t.runs}: (\\d+) map entries emptied$`, 'm').exec(st.err)?.[1] ?? NaN);
        expect(emptied, st.err).toBeGreaterThan(0);
        const a = parseTracerOutput(readFileSync(join(dir, 'a.jsonl'), 'utf8'));
        // pre-existing connections: upstream bound each of them through the slot
        expect(a.stats?.slot_consumed).toBeGreaterThanOrEqual(2);
        // the same live connections, a new run: as for a tracer attached now, none is known, so
        // each is bound through the slot again (with run A's entries left, none would be)
        await open(join(dir, 'b.jsonl'));
        await new Promise((r) => setTimeout(r, 500));
        await close();
        const b = parseTracerOutput(readFileSync(join(dir, 'b.jsonl'), 'utf8'));
        expect(b.meta).toMatchObject({ map_entries_at_start: 0 });
        expect(b.events.filter((e) => e.comm === 'race_client' && e.fn.startsWith('SSL_')).length).toBeGreaterThan(0);
        expect(b.stats?.slot_consumed).toBeGreaterThanOrEqual(2);
      } finally {
        await stopProc(m, client);
      }
    },
    120_000,
  );

  it.runIf(missing === null)(
    'baseline on the same loaded tracer: the gate opens before the client, so its handshakes are seen',
    async () => {
      const r = await trial(3, { scenario: 'baseline' });
      expect(r.error, r.error?.message).toBeUndefined();
      const t = tracerOut(r);
      expect(t.meta).toMatchObject({ run: [...session.tracers.values()][0]!.runs, map_entries_at_start: 0 });
      expect(t.stats?.calls?.SSL_set_fd).toBeGreaterThanOrEqual(2);
    },
    120_000,
  );

  it.runIf(missing === null)(
    "servers killed during a run: that trial is server-failed (not the client's fault), the next one gets new servers",
    async () => {
      const pid = session.servers!.proc.pid;
      // one port's server (a child of the supervisor): the others are stopped, the set exits 1
      const child = Number((await m.exec(['pgrep', '-o', '-P', String(pid)], { timeoutMs: 10_000 })).stdout.trim());
      expect(child).toBeGreaterThan(0);
      const killer = setTimeout(() => void m.exec(['kill', '-s', 'KILL', String(child)], { timeoutMs: 10_000 }), 1500);
      const r = await trial(5, { iterations: 50_000 });
      clearTimeout(killer);
      expect(r.error?.kind, r.error?.message).toBe('server-failed');
      expect(r.error?.message).toMatch(/the servers exited with code 1 during the run: https_server: server on port 1800[12] was killed by signal 9/);
      const next = await trial(6);
      expect(next.error, next.error?.message).toBeUndefined();
      expect(session.servers!.proc.pid).not.toBe(pid);
      expect(next.notes.join('\n')).toMatch(/servers had exited/);
    },
    180_000,
  );

  it.runIf(missing === null)(
    'servers that died between trials are started again, and the trial says so',
    async () => {
      const old = session.servers!.proc;
      await m.exec(['kill', '-s', 'KILL', '--', `-${old.pid}`], { timeoutMs: 10_000 });
      for (let i = 0; i < 50 && (await readProc(m, old)).rc === null; i++) await new Promise((r) => setTimeout(r, 100));
      const r = await trial(4);
      expect(r.error, r.error?.message).toBeUndefined();
      expect(session.servers!.proc.pid).not.toBe(old.pid);
      expect(r.notes.join('\n')).toMatch(/servers had exited .*restarted/);
      expect(events.some((e) => e.type === 'warn' && /servers had exited/.test(e.message))).toBe(true);
      expect(tracerOut(r).meta).toMatchObject({ run: [...session.tracers.values()][0]!.runs, map_entries_at_start: 0 });
    },
    120_000,
  );

  it.runIf(missing === null)(
    'a loaded tracer that died between trials is loaded again, and the trial says so',
    async () => {
      const old = [...session.tracers.values()][0]!;
      await m.exec(['kill', '-s', 'KILL', String(old.proc.pid)], { timeoutMs: 10_000 });
      for (let i = 0; i < 50 && (await readProc(m, old.proc)).rc === null; i++) await new Promise((r) => setTimeout(r, 100));
      const r = await trial(7);
      expect(r.error, r.error?.message).toBeUndefined();
      const now = [...session.tracers.values()];
      expect(now).toHaveLength(1);
      expect(now[0]!.proc.pid).not.toBe(old.proc.pid);
      expect(r.notes.join('\n')).toMatch(/upstream tracer had exited \(exited 137\) since its last run: loaded again/);
      expect(r.phases.map((p) => p.name)).toContain('tracer-load');
      expect(tracerOut(r).meta).toMatchObject({ run: 1, map_entries_at_start: 0 });
    },
    120_000,
  );
});
