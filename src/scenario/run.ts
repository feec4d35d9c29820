// The run protocol of DESIGN.md on any Machine: servers, client, tracer (order by scenario),
// SIGUSR1, DONE, stop, fetch. Every step has a timeout; every process started is stopped on
// success, failure and abort.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { LabError, asLabError } from '../errors.ts';
import type { Machine } from '../machine/types.ts';
import type { Api, Hook, Mode, Nagle, Phase, PhaseName, Reads, Scenario, Server, TraceScope, Variant } from '../domain.ts';
import { parseClientOutput, type Conn } from '../analysis/events.ts';
import type { Emit } from '../progress/events.ts';
import { DEFAULT_EXEC_MS, startAndWait, startProc, stopProc, waitExit, waitForLine, readProc, tail, type BgProc } from './procs.ts';

export interface Tools {
  /** Absolute paths on the machine. */
  tracer: string;
  client: string;
  server: string;
  /** client/tls_terminator.py: nginx or HAProxy in front of plain backends. */
  terminator: string;
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
  /** 'all' traces every process using libssl (as upstream, servers too); 'client' only the client; 'server' only the TLS server. */
  trace: TraceScope;
  /** The TLS server the client talks to: ours (python) or a terminator (nginx-proxy, haproxy). */
  server: Server;
  api: Api;
  hook: Hook;
  /** full: the client reads each response whole; single: ONE SSL_read of up to 4095 bytes per request. */
  reads: Reads;
  /** Nagle's algorithm on the servers' sockets. */
  nagle: Nagle;
  /** Wait after the client's exit before the tracer is stopped (the investigation sleeps 2 s before its query). */
  settleMs: number;
  /** How the client is run: ours (race_client's flags), or the user's own with the investigation's CLI (tools.client is then theirs). */
  clientCli?: 'race_client' | 'investigation';
  /** An external tracer in place of the model (its query's answer is the trial's http_monitoring.json). */
  external?: ExternalTracerRun;
}

/** An external tracer as one target runs it: matrix.yaml's tracer: with its placeholders filled in. */
export interface ExternalTracerRun {
  label: string;
  argv: string[];
  /** Ready when a line of its stdout/stderr matches `log` (a JavaScript regex), or when its query answers 200. */
  ready: { log: string } | { socket: true };
  /** null: the run's tracer-ready timeout. */
  readyTimeoutMs: number | null;
  /** Where it answers: a unix socket path or a port on 127.0.0.1, and the HTTP path. */
  query: ({ socket: string } | { port: number }) & { path: string; timeoutMs: number };
  /** After the client's exit, before the query (the investigation sleeps 2 s). */
  settleMs: number;
  /** How it is stopped: this signal, then SIGKILL to its process group after timeoutMs. */
  stop: { signal: 'INT' | 'TERM'; timeoutMs: number };
}

/** The query's URL and curl's arguments for it. */
export function queryArgs(q: ExternalTracerRun['query']): string[] {
  return 'socket' in q ? ['--unix-socket', q.socket, `http://unix${q.path}`] : [`http://127.0.0.1:${q.port}${q.path}`];
}

// $1 the tracer's rc file, $2 checks (5 a second), then curl's arguments: until the endpoint
// answers 200 (a module not loaded yet answers 404), the tracer exits, or the checks run out: UP, EXITED or WAIT.
const POLL_QUERY = [
  'rc=$1; n=$2; shift 2; i=0',
  'while [ "$i" -lt "$n" ]; do',
  '  [ -s "$rc" ] && { echo EXITED; exit 0; }',
  '  curl -s -f -o /dev/null --max-time 2 "$@" && { echo UP; exit 0; }',
  '  sleep 0.2; i=$((i+1))',
  'done',
  'echo WAIT',
].join('\n');

// $1 where the body goes, $2 curl's time limit (s), then curl's arguments: the HTTP status on
// stdout, curl's exit code as ours.
const QUERY = ['out=$1; max=$2; shift 2', 'code=$(curl -sS --max-time "$max" -o "$out" -w "%{http_code}" "$@"); rc=$?', 'echo "$code"', 'exit $rc'].join('\n');

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
  /** Set when the protocol failed; the files fetched so far are kept. */
  error?: LabError;
  durationMs: number;
  /** Wall time of each step of the protocol, in the order they ran (PHASES; a failed run stops early). */
  phases: Phase[];
  /** What the protocol noticed without failing (servers restarted, closes not seen within the settle). */
  notes: string[];
}

/**
 * What a target's trials share: the HTTPS servers, started by the first trial and reused by the
 * next ones (each trial's client opens new connections to them), restarted when they died or
 * when a trial asks for other ports or another Nagle setting. closeSession stops them.
 */
export interface TargetSession {
  /** Scratch folder on the machine for the servers' and tracers' files. */
  dir: string;
  servers?: { proc: BgProc; key: string };
  /**
   * Loaded tracers (`usm_tls --control`), one per variant and settings: attached behind a closed
   * gate, opened for each trial's run and closed after it with its maps emptied.
   */
  tracers: Map<string, SessionTracer>;
}

export interface SessionTracer {
  proc: BgProc;
  /** Control file: the next run's output path. */
  control: string;
  /** Runs opened so far (the loader numbers them from 1). */
  runs: number;
}

export function newSession(dir: string): TargetSession {
  return { dir, tracers: new Map() };
}

/** Stop the session's tracers and servers; remove its folder and `scratch` (the trials' folders). */
export async function closeSession(m: Machine, s: TargetSession, scratch: string[] = []): Promise<void> {
  for (const t of s.tracers.values()) await stopProc(m, t.proc, { signal: 'INT' });
  s.tracers.clear();
  if (s.servers) await stopProc(m, s.servers.proc, { signal: 'TERM' });
  s.servers = undefined;
  await m.exec(['rm', '-rf', s.dir, ...scratch], { timeoutMs: 30_000 }).catch(() => {});
}

// $1 trial folder, $2 session folder, $3 servers' rc file ('' when none), $4 $5 servers' stdout and
// stderr, $6 $7 the variant's tracer's rc file and stderr ('' when none): make both folders; say
// whether the servers and the tracer still run, and where their outputs end now.
const SETUP = [
  'mkdir -p "$1" "$2" || exit 4',
  'state() { if [ -z "$1" ]; then echo NONE; elif [ -s "$1" ]; then echo "EXITED $(cat "$1")"; else echo RUNNING; fi; }',
  'state "$3"',
  'wc -c <"$4" 2>/dev/null || echo 0',
  'wc -c <"$5" 2>/dev/null || echo 0',
  'state "$6"',
  'wc -c <"$7" 2>/dev/null || echo 0',
].join('\n');

// $1 servers' stdout, $2 its offset at the trial's start, $3 checks (20 a second), $4 $5 their
// stderr and its offset, $6 the trial's folder, $7 their rc file, then one "CLOSED <port> <peer
// port>" line per connection of the trial: wait until the servers have closed them all; copy
// their outputs since the trial began into the trial's folder; print ALL or SOME, then the
// servers' exit code if they have exited.
const SETTLE = [
  'so=$1; off=$2; n=$3; se=$4; eoff=$5; d=$6; rc=$7; shift 7; i=0; res=SOME',
  'while [ "$i" -lt "$n" ]; do',
  '  all=1; for pat in "$@"; do tail -c +$((off+1)) "$so" | grep -q -F -x -e "$pat" || { all=0; break; }; done',
  '  [ "$all" = 1 ] && { res=ALL; break; }',
  '  sleep 0.05; i=$((i+1))',
  'done',
  'tail -c +$((off+1)) "$so" >"$d/servers.out" 2>/dev/null; tail -c +$((eoff+1)) "$se" >"$d/servers.log" 2>/dev/null',
  'echo "$res"',
  'cat "$rc" 2>/dev/null || true',
].join('\n');

export async function runTrial(opts: {
  machine: Machine;
  tools: Tools;
  spec: TrialSpec;
  /** Scratch folder on the machine for this trial (created, removed after fetch). */
  remoteDir: string;
  localDir: string;
  timeouts?: Timeouts;
  /** The target's servers, shared by its trials; without one the trial starts and stops servers of its own. */
  session?: TargetSession;
  emit: Emit;
  signal: AbortSignal;
}): Promise<TrialRun> {
  const { machine: m, tools, spec, remoteDir, localDir, signal } = opts;
  const to = opts.timeouts ?? DEFAULT_TIMEOUTS;
  const session = opts.session ?? newSession(`${remoteDir}-servers`);
  const t0 = Date.now();
  const procs: BgProc[] = [];
  const run: TrialRun = { localDir, conns: [], clientPid: null, clientRc: null, durationMs: 0, phases: [], notes: [] };
  let lap = t0;
  const mark = (name: PhaseName) => {
    const now = Date.now();
    run.phases.push({ name, ms: now - lap });
    lap = now;
  };
  let client: BgProc | undefined;
  let tracerLog = '';
  /** Exit codes already known (no stop needed for these). */
  const exited = new Set<BgProc>();
  const key = `${spec.server} ${spec.ports.join(',')} nagle=${spec.nagle}`;
  let offsets = { out: 0, err: 0 };

  const sv = session.servers;
  const filter = spec.trace === 'client' ? ['--comm', basename(tools.client)] : spec.trace === 'server' ? ['--comm', serverComm(spec.server, tools)] : [];
  const tkey = `${spec.variant} ${spec.hook} ${filter.join(' ')} ${tools.libssl}`;
  const tv = session.tracers.get(tkey);
  const mk = await m.exec(
    ['sh', '-c', SETUP, 'sh', remoteDir, session.dir, sv?.proc.rc ?? '', sv?.proc.out ?? '', sv?.proc.err ?? '', tv?.proc.rc ?? '', tv?.proc.err ?? ''],
    { timeoutMs: to.execMs },
  );
  if (mk.code !== 0) throw new LabError('internal', `failed to create ${remoteDir} on ${m.target}: ${mk.stderr.trim() || `exit ${mk.code}`}`);
  const [state = '', outAt = '0', errAt = '0', tracerState = '', tracerAt = '0'] = mk.stdout.trim().split('\n');
  offsets = { out: Number(outAt) || 0, err: Number(errAt) || 0 };
  mark('setup');

  const startServers = async () => {
    if (sv && state === 'RUNNING' && sv.key === key) return;
    if (sv) {
      if (state.startsWith('EXITED')) {
        const st = await readProc(m, sv.proc).catch(() => null);
        const why = `the servers had exited (code ${state.slice('EXITED '.length).trim()}) since the last trial: restarted`;
        run.notes.push(why + (st?.err ? `; their last log lines: ${tail(st.err, 3).replace(/\n/g, ' | ')}` : ''));
        opts.emit({ type: 'warn', target: m.target, message: why });
      } else await stopProc(m, sv.proc, { signal: 'TERM' });
      session.servers = undefined;
    }
    const { proc, state: ready } = await startAndWait(
      m,
      {
        name: 'servers',
        dir: session.dir,
        kind: 'server-failed',
        execMs: to.execMs,
        argv: serverArgv(spec, tools, session.dir),
      },
      new RegExp(`^LISTENING ${spec.ports.at(-1)}$`),
      to.serverMs,
      signal,
    );
    session.servers = { proc, key };
    // every port listening (one line each; the last one's wake-up above is only a hint): checked on
    // the state already read, a round trip only for a port whose line is not there yet
    let seen = ready;
    for (const port of spec.ports) seen = await waitForLine(m, proc, new RegExp(`^LISTENING ${port}$`), to.serverMs, signal, seen);
    offsets = { out: 0, err: 0 };
  };
  const startClient = async () => {
    const { proc, state: st } = await startAndWait(
      m,
      { name: 'client', dir: remoteDir, kind: 'client-failed', execMs: to.execMs, argv: clientArgv(spec, tools.client, remoteDir) },
      /^READY(:\d+)+$/,
      to.clientReadyMs,
      signal,
    );
    client = proc;
    procs.push(client);
    run.clientPid = client.pid;
    run.conns = parseClientOutput(st.out).conns;
    if (run.conns.length !== spec.ports.length)
      throw new LabError('client-failed', `client READY line names ${run.conns.length} connections, expected ${spec.ports.length}`);
  };
  // The tracer of this variant and settings, loaded once per session behind a closed gate (its
  // programs return at their first instruction): loading it before the client makes no difference
  // to what it sees. A tracer that died is loaded again.
  let st: SessionTracer | undefined;
  let tracerErrAt = 0;
  const loadTracer = async () => {
    if (tv) {
      if (tracerState === 'RUNNING') {
        st = tv;
        tracerErrAt = Number(tracerAt) || 0;
        return false;
      }
      const why = `the ${spec.variant} tracer had exited (${tracerState.toLowerCase()}) since its last run: loaded again`;
      run.notes.push(why);
      opts.emit({ type: 'warn', target: m.target, message: why });
      session.tracers.delete(tkey);
    }
    const name = `tracer-${session.tracers.size + 1}-${spec.variant}`;
    const control = `${session.dir}/${name}.control`;
    const { proc, state: ready } = await startAndWait(
      m,
      {
        name,
        dir: session.dir,
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
          '--control',
          control,
          '--verifier-log',
          `${remoteDir}/verifier.log`,
          ...filter,
        ],
      },
      /^LOADED$/,
      to.tracerReadyMs,
      signal,
    );
    st = { proc, control, runs: 0 };
    session.tracers.set(tkey, st);
    tracerErrAt = 0;
    return true;
  };
  /** "The tracer starts": its gate opens for this trial's run, writing to the trial's events.jsonl. */
  const startTracer = async () => {
    const n = st!.runs + 1;
    tracerOpen = true;
    await waitForLine(m, st!.proc, new RegExp(`^ENABLED ${n}$`), to.tracerReadyMs, signal, null, {
      write: { file: st!.control, line: `${remoteDir}/events.jsonl` },
      kill: 'USR1',
    });
    st!.runs = n;
  };
  /** The "query": the gate closes, the ring buffer is drained, the stats written, the maps emptied. */
  const stopTracer = async () => {
    const state = await waitForLine(m, st!.proc, new RegExp(`^FLUSHED ${st!.runs}$`), to.tracerStopMs, signal, null, { kill: 'USR2' });
    tracerOpen = false;
    return state;
  };
  let tracerOpen = false;

  // An external tracer: started per trial in the protocol's place for the tracer (after the
  // client's READY, or before the client in a baseline), ready by its log line or its endpoint
  // answering, queried after the settle, then stopped.
  const ext = spec.external;
  let extProc: BgProc | undefined;
  const startExternal = async () => {
    const opts = { name: 'tracer', dir: remoteDir, kind: 'tracer-failed' as const, execMs: to.execMs, argv: ext!.argv };
    const readyMs = ext!.readyTimeoutMs ?? to.tracerReadyMs;
    if ('log' in ext!.ready) {
      extProc = (await startAndWait(m, opts, new RegExp(ext!.ready.log), readyMs, signal)).proc;
      return;
    }
    extProc = await startProc(m, opts);
    const deadline = Date.now() + readyMs;
    for (;;) {
      if (signal.aborted) throw new LabError('interrupted', 'interrupted while waiting for the tracer');
      const r = await m.exec(['sh', '-c', POLL_QUERY, 'sh', extProc.rc, '25', ...queryArgs(ext!.query)], { timeoutMs: 25 * 2200 + to.execMs });
      const said = r.stdout.trim();
      if (said === 'UP') return;
      if (said === 'EXITED' || Date.now() >= deadline) {
        const st = await readProc(m, extProc).catch(() => null);
        const last = tail(st?.err || st?.out || '');
        const why =
          said === 'EXITED'
            ? `the tracer ${ext!.label} exited with code ${st?.rc ?? '?'} before its endpoint answered`
            : `the tracer ${ext!.label}'s endpoint did not answer within ${Math.round(readyMs / 1000)} s (${queryArgs(ext!.query).join(' ')})`;
        throw new LabError('tracer-failed', last ? `${why}: ${last.split('\n').at(-1)}` : why, last);
      }
    }
  };
  /** The debug query: its body is the trial's http_monitoring.json, as returned. */
  const queryExternal = async () => {
    const q = ext!.query;
    const r = await m.exec(['sh', '-c', QUERY, 'sh', `${remoteDir}/http_monitoring.json`, String(Math.ceil(q.timeoutMs / 1000)), ...queryArgs(q)], {
      timeoutMs: q.timeoutMs + to.execMs,
    });
    const code = r.stdout.trim();
    if (r.code !== 0)
      throw new LabError(
        'tracer-failed',
        `the tracer ${ext!.label}'s query failed (curl exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.trim() || 'no answer'}`,
      );
    if (code !== '200') throw new LabError('tracer-failed', `the tracer ${ext!.label}'s endpoint answered HTTP ${code} to GET ${q.path}`);
  };

  try {
    await startServers();
    mark('servers');
    if (!ext && (await loadTracer())) mark('tracer-load');
    // the model's gate opens, or the external tracer starts
    const tracerUp = ext ? startExternal : startTracer;
    if (spec.scenario === 'preexisting') {
      await startClient();
      mark('client-ready');
      await tracerUp();
      mark('tracer-ready');
    } else {
      await tracerUp();
      mark('tracer-ready');
      await startClient();
      mark('client-ready');
    }
    const budget = to.clientBaseMs + to.perRequestMs * spec.iterations * spec.ports.length;
    const cst = await waitExit(m, client!, budget, signal, 'USR1');
    const clientExit = Date.now();
    run.clientRc = cst.rc;
    exited.add(client!);
    mark('traffic');
    // Before the "query": the servers have closed the run's connections (their tcp_close ends each
    // connection's transaction). Waited for by their CLOSED lines, settleMs at most (the
    // investigation sleeps 2 s before its query); the servers' outputs of this trial are copied.
    const closes = run.conns.map((c) => `CLOSED ${c.rport} ${c.lport}`);
    const sproc = session.servers!.proc;
    const checks = Math.ceil(spec.settleMs / 50);
    const se = await m.exec(
      ['sh', '-c', SETTLE, 'sh', sproc.out, String(offsets.out), String(checks), sproc.err, String(offsets.err), remoteDir, sproc.rc, ...closes],
      { timeoutMs: spec.settleMs + to.execMs },
    );
    const [closed = '', serversRc = ''] = se.stdout.trim().split('\n');
    if (spec.settleMs > 0 && closed !== 'ALL') run.notes.push(`not every connection was closed by the servers within ${spec.settleMs} ms of the client's exit`);
    if (ext) {
      // the external tracer's settle counts from the client's exit, as the investigation's sleep 2
      const rest = ext.settleMs - (Date.now() - clientExit);
      // cut short by an abort: the next step sees the signal
      if (rest > 0) await delay(rest, undefined, { signal }).catch(() => {});
    }
    mark('settle');
    if (ext) {
      // the query, then the stop (its outputs are in the trial's folder: tracer.out, tracer.log)
      await queryExternal();
      const st = await stopProc(m, extProc!, { signal: ext.stop.signal, graceMs: ext.stop.timeoutMs });
      extProc = undefined;
      if (st && st.rc === null) run.notes.push(`the tracer ${ext.label} did not exit on SIG${ext.stop.signal} within ${ext.stop.timeoutMs} ms: killed`);
    } else {
      // Close the tracer's run: it drains the ring buffer and writes its stats line.
      const tst = await stopTracer();
      tracerLog = tst.err;
    }
    mark('tracer-exit');
    // servers that died during the run are the cause of whatever the client then did
    if (serversRc.trim() !== '') throw await serversDied(m, sproc, serversRc.trim(), cst.rc !== 0 ? ` (the client then exited with code ${cst.rc})` : '');
    if (cst.rc !== 0) throw new LabError('client-failed', `client exited with code ${cst.rc}`, cst.err.slice(-4000));
  } catch (err) {
    run.error = asLabError(err);
    // a client that failed because the servers went away: the servers failed (their log says why)
    const sv = session.servers?.proc;
    if (run.error.kind === 'client-failed' && sv) {
      const st = await readProc(m, sv).catch(() => null);
      if (st && st.rc !== null) run.error = await serversDied(m, sv, String(st.rc), ` (the client failed after them: ${run.error.message})`);
    }
  } finally {
    // Stop everything still running: tracer first (it must flush), then the client. The servers
    // stay for the next trial, unless this trial owns them.
    if (extProc) await stopProc(m, extProc, { signal: ext!.stop.signal, graceMs: ext!.stop.timeoutMs });
    if (tracerOpen && st) {
      // a run left open by a failure: close it (its stats still land in events.jsonl), or drop the tracer
      const closed = await stopTracer().catch(() => null);
      if (closed) tracerLog = closed.err;
      else {
        await stopProc(m, st.proc, { signal: 'INT' });
        session.tracers.delete(tkey);
      }
    }
    if (!tracerLog && st) tracerLog = (await readProc(m, st.proc).catch(() => null))?.err ?? '';
    const order = [...procs].filter((p) => !exited.has(p));
    for (const p of order) {
      const state = await stopProc(m, p, { signal: 'TERM' });
      if (p === client && run.clientRc === null) run.clientRc = state?.rc ?? null;
    }
    if (!opts.session) await closeSession(m, session);
    mark('stop');
    // Fetch whatever exists, even after a failure.
    await rm(localDir, { recursive: true, force: true });
    await mkdir(localDir, { recursive: true });
    try {
      await m.get(remoteDir, localDir, { timeoutMs: 120_000 });
      // with a session, the run's scratch root goes at closeSession (one exec less per trial)
      if (!opts.session) await m.exec(['rm', '-rf', remoteDir], { timeoutMs: 30_000 });
    } catch (err) {
      run.error ??= new LabError('internal', `failed to fetch ${remoteDir} from ${m.target}: ${asLabError(err).message}`);
    }
    // this trial's part of the session tracer's log
    if (tracerLog) await writeFile(join(localDir, 'tracer.log'), tracerLog.slice(tracerErrAt)).catch(() => {});
    // servers that failed to start live in the session's folder: their words go with the trial
    if (run.error?.kind === 'server-failed' && run.error.detail)
      await writeFile(join(localDir, 'servers.log'), run.error.detail + '\n', { flag: 'wx' }).catch(() => {});
    mark('fetch');
    run.durationMs = Date.now() - t0;
  }
  return run;
}

/** The servers' exit as a server-failed error naming what their log said last (e.g. which port's server died). */
async function serversDied(m: Machine, p: BgProc, rc: string, after: string): Promise<LabError> {
  const st = await readProc(m, p).catch(() => null);
  const last = (st?.err ?? '').trim().split('\n').filter(Boolean).at(-1);
  return new LabError('server-failed', `the servers exited with code ${rc} during the run${last ? `: ${last}` : ''}${after}`, tail(st?.err ?? ''));
}

/**
 * The client's command line: ours with its flags (every port a connection, the run's api and
 * reads, a record of its requests), or the user's own with the investigation's CLI
 * (`CLIENT HOST1 PORT1 HOST2 PORT2 ITERATIONS --MODE`).
 */
export function clientArgv(spec: Pick<TrialSpec, 'ports' | 'iterations' | 'mode' | 'api' | 'reads' | 'clientCli'>, client: string, dir: string): string[] {
  if (spec.clientCli === 'investigation') return [client, ...spec.ports.flatMap((p) => ['127.0.0.1', String(p)]), String(spec.iterations), `--${spec.mode}`];
  const conns = spec.ports.flatMap((port) => ['--conn', `127.0.0.1:${port}`]);
  return [
    client,
    ...conns,
    '--iterations',
    String(spec.iterations),
    `--${spec.mode}`,
    '--api',
    spec.api,
    '--reads',
    spec.reads,
    '--record',
    `${dir}/client-record.jsonl`,
  ];
}

/** The servers' command line: one supervisor for all ports (ours, or a terminator with its backends). */
export function serverArgv(spec: Pick<TrialSpec, 'server' | 'ports' | 'nagle'>, tools: Pick<Tools, 'python' | 'server' | 'terminator'>, dir: string): string[] {
  const common = ['--ports', spec.ports.join(','), '--nagle', spec.nagle, '--quiet'];
  if (spec.server === 'python') return [tools.python, tools.server, ...common];
  const kind = spec.server === 'nginx-proxy' ? 'nginx' : 'haproxy';
  return [tools.python, tools.terminator, '--server', kind, ...common, '--dir', `${dir}/${spec.server}`];
}

/** The process name (comm, at most 15 characters) `--trace server` traces: the process that calls SSL_read/SSL_write. */
export function serverComm(server: Server, tools: Pick<Tools, 'python'>): string {
  if (server === 'nginx-proxy') return 'nginx';
  if (server === 'haproxy') return 'haproxy';
  return basename(tools.python).slice(0, 15);
}

function basename(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

export { readProc };
