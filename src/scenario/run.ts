// The run protocol of DESIGN.md on any Machine: servers, client, tracer (order by scenario),
// SIGUSR1, DONE, stop, fetch. Every step has a timeout; every process started is stopped on
// success, failure and abort.
import { mkdir, rm } from 'node:fs/promises';
import { LabError, asLabError } from '../errors.ts';
import type { Machine } from '../machine/types.ts';
import type { Api, Hook, Mode, Nagle, Reads, Scenario, TraceScope, Variant } from '../domain.ts';
import { parseClientOutput, type Conn } from '../analysis/events.ts';
import type { Emit } from '../progress/events.ts';
import { DEFAULT_EXEC_MS, startProc, stopProc, signalProc, waitExit, waitForLine, readProc, type BgProc } from './procs.ts';

export interface Tools {
  /** Absolute paths on the machine. */
  tracer: string;
  client: string;
  server: string;
  python: string;
  libssl: string;
}

export interface TrialSpec {
  variant: Variant;
  mode: Mode;
  scenario: Scenario;
  iterations: number;
  trial: number;
  ports: readonly number[];
  /** 'all' traces every process using libssl (as upstream, servers too); 'client' only the client. */
  trace: TraceScope;
  api: Api;
  hook: Hook;
  /** full: the client reads each response whole; single: ONE SSL_read of up to 4095 bytes per request. */
  reads: Reads;
  /** Nagle's algorithm on the servers' sockets. */
  nagle: Nagle;
  /** Wait after the client's exit before the tracer is stopped (the investigation sleeps 2 s before its query). */
  settleMs: number;
}

export interface Timeouts {
  serverMs: number;
  clientReadyMs: number;
  tracerReadyMs: number;
  /** Per request (scaled by iterations x connections), plus clientBaseMs. */
  perRequestMs: number;
  clientBaseMs: number;
  tracerStopMs: number;
  /** One control exec on the machine (start, read, wait slice, signal, kill). */
  execMs: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  serverMs: 30_000,
  clientReadyMs: 30_000,
  tracerReadyMs: 120_000,
  perRequestMs: 100,
  clientBaseMs: 60_000,
  tracerStopMs: 30_000,
  execMs: DEFAULT_EXEC_MS,
};

/** Scale every timeout (TCG guests are 5-20x slower than this host). */
export function scaleTimeouts(t: Timeouts, factor: number): Timeouts {
  const out = { ...t };
  for (const k of Object.keys(out) as (keyof Timeouts)[]) out[k] = Math.round(out[k] * factor);
  return out;
}

export interface TrialRun {
  /** Local folder holding the fetched files: events.jsonl, client.out, client.log, tracer.log, server-<port>.log */
  localDir: string;
  conns: Conn[];
  clientPid: number | null;
  clientRc: number | null;
  tracerRc: number | null;
  /** Set when the protocol failed; the files fetched so far are kept. */
  error?: LabError;
  durationMs: number;
}

export async function runTrial(opts: {
  machine: Machine;
  tools: Tools;
  spec: TrialSpec;
  /** Scratch folder on the machine for this trial (created, removed after fetch). */
  remoteDir: string;
  localDir: string;
  timeouts?: Timeouts;
  emit: Emit;
  signal: AbortSignal;
}): Promise<TrialRun> {
  const { machine: m, tools, spec, remoteDir, localDir, signal } = opts;
  const to = opts.timeouts ?? DEFAULT_TIMEOUTS;
  const t0 = Date.now();
  const procs: BgProc[] = [];
  const run: TrialRun = { localDir, conns: [], clientPid: null, clientRc: null, tracerRc: null, durationMs: 0 };
  let tracer: BgProc | undefined;
  let client: BgProc | undefined;

  const mk = await m.exec(['mkdir', '-p', remoteDir], { timeoutMs: 15_000 });
  if (mk.code !== 0) throw new LabError('internal', `failed to create ${remoteDir} on ${m.target}: ${mk.stderr.trim()}`);

  const startServers = async () => {
    for (const port of spec.ports) {
      const p = await startProc(m, {
        name: `server-${port}`,
        dir: remoteDir,
        kind: 'server-failed',
        execMs: to.execMs,
        argv: [tools.python, tools.server, '--ports', String(port), '--nagle', spec.nagle, '--quiet'],
      });
      procs.push(p);
    }
    for (const p of procs.filter((x) => x.name.startsWith('server-'))) {
      await waitForLine(m, p, new RegExp(`^LISTENING ${p.name.slice('server-'.length)}$`), to.serverMs, signal);
    }
  };
  const startClient = async () => {
    const conns = spec.ports.flatMap((port) => ['--conn', `127.0.0.1:${port}`]);
    client = await startProc(m, {
      name: 'client',
      dir: remoteDir,
      kind: 'client-failed',
      execMs: to.execMs,
      argv: [
        tools.client,
        ...conns,
        '--iterations',
        String(spec.iterations),
        `--${spec.mode}`,
        '--api',
        spec.api,
        '--reads',
        spec.reads,
        '--record',
        `${remoteDir}/client-record.jsonl`,
      ],
    });
    procs.push(client);
    run.clientPid = client.pid;
    const st = await waitForLine(m, client, /^READY(:\d+)+$/, to.clientReadyMs, signal);
    run.conns = parseClientOutput(st.out).conns;
    if (run.conns.length !== spec.ports.length)
      throw new LabError('client-failed', `client READY line names ${run.conns.length} connections, expected ${spec.ports.length}`);
  };
  const startTracer = async () => {
    const filter = spec.trace === 'client' ? ['--comm', basename(tools.client)] : [];
    tracer = await startProc(m, {
      name: 'tracer',
      dir: remoteDir,
      kind: 'tracer-failed',
      execMs: to.execMs,
      argv: [
        tools.tracer,
        '--variant',
        spec.variant,
        '--libssl',
        tools.libssl,
        '--hook',
        spec.hook,
        '--out',
        `${remoteDir}/events.jsonl`,
        '--verifier-log',
        `${remoteDir}/verifier.log`,
        ...filter,
      ],
    });
    procs.push(tracer);
    await waitForLine(m, tracer, /^READY$/, to.tracerReadyMs, signal);
  };

  try {
    await startServers();
    if (spec.scenario === 'preexisting') {
      await startClient();
      await startTracer();
    } else {
      await startTracer();
      await startClient();
    }
    await signalProc(m, client!, 'USR1');
    const budget = to.clientBaseMs + to.perRequestMs * spec.iterations * spec.ports.length;
    const cst = await waitExit(m, client!, budget, signal);
    run.clientRc = cst.rc;
    // Let the servers see the client's closes (their tcp_close ends each connection's transaction) before the "query".
    if (spec.settleMs > 0) await sleep(spec.settleMs, signal);
    // Stop the tracer (SIGINT: it drains the ring buffer and writes its stats line).
    await signalProc(m, tracer!, 'INT');
    const tst = await waitExit(m, tracer!, to.tracerStopMs, signal);
    run.tracerRc = tst.rc;
    if (cst.rc !== 0) throw new LabError('client-failed', `client exited with code ${cst.rc}`, cst.err.slice(-4000));
    if (tst.rc !== 0) throw new LabError('tracer-failed', `tracer exited with code ${tst.rc}`, tst.err.slice(-4000));
  } catch (err) {
    run.error = asLabError(err);
    // A client that failed because a server went away: the server failed (its own log says why).
    if (run.error.kind === 'client-failed') run.error = (await serverThatDied(m, procs)) ?? run.error;
  } finally {
    // Stop everything still running: tracer first (it must flush), then client, then servers.
    const order = [...procs].sort((a, b) => rank(a) - rank(b));
    for (const p of order) {
      const st = await stopProc(m, p, { signal: p === tracer ? 'INT' : 'TERM' });
      if (p === tracer && run.tracerRc === null) run.tracerRc = st?.rc ?? null;
      if (p === client && run.clientRc === null) run.clientRc = st?.rc ?? null;
    }
    // Fetch whatever exists, even after a failure.
    await rm(localDir, { recursive: true, force: true });
    await mkdir(localDir, { recursive: true });
    try {
      await m.get(remoteDir, localDir, { timeoutMs: 120_000 });
      await m.exec(['rm', '-rf', remoteDir], { timeoutMs: 30_000 });
    } catch (err) {
      run.error ??= new LabError('internal', `failed to fetch ${remoteDir} from ${m.target}: ${asLabError(err).message}`);
    }
    run.durationMs = Date.now() - t0;
  }
  return run;
}

/** setTimeout as a promise that an abort ends early (the protocol then stops everything as on any failure). */
/** A server of the trial that has already exited (before the protocol stopped it), as a server-failed error; else null. */
async function serverThatDied(m: Machine, procs: readonly BgProc[]): Promise<LabError | null> {
  for (const p of procs.filter((x) => x.kind === 'server-failed')) {
    const st = await readProc(m, p).catch(() => null);
    if (st?.rc !== null && st?.rc !== undefined)
      return new LabError('server-failed', `${p.name} exited with code ${st.rc} while the client ran (the client failed after it)`, st.err.slice(-4000));
  }
  return null;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new LabError('interrupted', 'interrupted'));
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new LabError('interrupted', 'interrupted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function rank(p: BgProc): number {
  return p.name === 'tracer' ? 0 : p.name === 'client' ? 1 : 2;
}

function basename(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

export { readProc };
