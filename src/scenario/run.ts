// The run protocol of DESIGN.md on any Machine: servers, client, tracer (order by scenario),
// SIGUSR1, DONE, stop, fetch. Every step has a timeout; every process started is stopped on
// success, failure and abort.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { LabError, asLabError } from '../errors.ts';
import type { Machine } from '../machine/types.ts';
import type { Api, Hook, Mode, Nagle, Phase, PhaseName, Reads, Scenario, Server, TraceScope, Variant } from '../domain.ts';
import { parseClientOutput, type Conn } from '../analysis/events.ts';
import type { Emit } from '../progress/events.ts';
import {
  DEFAULT_EXEC_MS,
  ProcGone,
  WAIT,
  matches,
  parseState,
  readProc,
  sliceChecks,
  startAndWait,
  startProc,
  stopProc,
  tail,
  toEre,
  waitExit,
  waitForLine,
  type BgProc,
  type ProcState,
} from './procs.ts';

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
  /** Their settings, and where their outputs ended after the last trial (the next trial's part starts there). */
  servers?: { proc: BgProc; key: string; outAt: number; errAt: number };
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
  /** Where its stderr ended after the last run (the next run's part of the log starts there). */
  errAt: number;
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

// $1 servers' stdout, $2 its offset at the trial's start, $3 checks (20 a second), $4 $5 their
// stderr and its offset, $6 the trial's folder, $7 their rc file; $8..$12 the tracer's stdout,
// stderr, rc file and pid ('' when no tracer run is to be closed here) and its checks (10 a
// second), $13 the ERE of its FLUSHED line, $14 the largest folder (KiB) sent back as a tar; then
// one "CLOSED <port> <peer port>" line per connection of the trial.
// Wait until the servers have closed them all; copy their outputs since the trial began into the
// trial's folder; print ALL or SOME, their exit code (or an empty line), their outputs' sizes now.
// Then, with a tracer: close its run (SIGUSR2) and wait for its FLUSHED line (READ's three parts
// after a \x1f); once flushed, the trial's folder as a base64 tar after another \x1f. Last, after
// a \x1f, the machine's clock (ns) at the start, after the settle, after the flush, at the end.
const SETTLE = [
  'so=$1; off=$2; n=$3; se=$4; eoff=$5; d=$6; rc=$7; to=$8; te=$9; tr=${10}; tp=${11}; tn=${12}; tpat=${13}; maxk=${14}; shift 14',
  't0=$(date +%s%N 2>/dev/null); i=0; res=SOME',
  'while [ "$i" -lt "$n" ]; do',
  '  all=1; for pat in "$@"; do tail -c +$((off+1)) "$so" | grep -q -F -x -e "$pat" || { all=0; break; }; done',
  '  [ "$all" = 1 ] && { res=ALL; break; }',
  '  sleep 0.05; i=$((i+1))',
  'done',
  'tail -c +$((off+1)) "$so" >"$d/servers.out" 2>/dev/null; tail -c +$((eoff+1)) "$se" >"$d/servers.log" 2>/dev/null',
  'echo "$res"',
  'printf \'%s\\n\' "$(cat "$rc" 2>/dev/null)"',
  'wc -c <"$so" 2>/dev/null || echo 0',
  'wc -c <"$se" 2>/dev/null || echo 0',
  't1=$(date +%s%N 2>/dev/null); t2=$t1',
  'if [ -n "$tp" ]; then',
  "  printf '\\037'",
  '  kill -s USR2 "$tp" 2>/dev/null',
  '  o=$to; e=$te; r=$tr; pat=$tpat; n=$tn',
  WAIT,
  '  t2=$(date +%s%N 2>/dev/null)',
  "  printf '\\037'",
  '  if grep -E -q -e "$tpat" "$to" "$te" 2>/dev/null && [ "$(du -sk "$d" | cut -f1)" -le "$maxk" ]; then tar -C "$d" -cf - . | base64; fi',
  'fi',
  'printf \'\\037%s %s %s %s\\n\' "$t0" "$t1" "$t2" "$(date +%s%N 2>/dev/null)"',
].join('\n');

// After the client's READY, in the exec that started it (procs.ts StartOpts.then; $o $e $r $p are
// the client's files, $pat its READY pattern): with a tracer to open (T_TP its pid), write the
// run's events path (T_EV) to its control file (T_CTL), SIGUSR1 it and wait (T_EN checks) for its
// ENABLED line (T_EERE, files T_TO T_TE T_TR); then SIGUSR1 the client and wait (T_XN checks) for
// its exit. Each stage prints a \x1f and a tag: R the exec's start and READY clocks (ns), T the
// gate's wait state, U the clock after it, G the clock of the client's SIGUSR1, X the client's
// wait state, Z the clock at the end. It stops where a stage's line did not come.
const CLIENT_THEN = [
  'grep -E -q -e "$pat" "$o" "$e" 2>/dev/null && [ ! -s "$r" ] || exit 0',
  'printf \'\\037R%s %s\' "$ts0" "$(date +%s%N 2>/dev/null)"',
  'co=$o; ce=$e; cr=$r; cpid=$(cat "$p")',
  'if [ -n "$T_TP" ]; then',
  '  printf \'%s\\n\' "$T_EV" >"$T_CTL" || exit 0',
  '  kill -s USR1 "$T_TP" 2>/dev/null',
  "  printf '\\037T'",
  '  o=$T_TO; e=$T_TE; r=$T_TR; pat=$T_EERE; n=$T_EN',
  WAIT,
  '  printf \'\\037U%s\' "$(date +%s%N 2>/dev/null)"',
  '  grep -E -q -e "$T_EERE" "$T_TO" "$T_TE" 2>/dev/null || exit 0',
  'fi',
  'kill -s USR1 "$cpid" 2>/dev/null',
  'printf \'\\037G%s\' "$(date +%s%N 2>/dev/null)"',
  "printf '\\037X'",
  'o=$co; e=$ce; r=$cr; pat=; n=$T_XN',
  WAIT,
  'printf \'\\037Z%s\' "$(date +%s%N 2>/dev/null)"',
].join('\n');

/** CLIENT_THEN's stages by tag. */
function thenStages(more: readonly string[]): Map<string, string> {
  return new Map(more.filter((x) => x.length > 0).map((x) => [x[0]!, x.slice(1)]));
}

/** The largest trial folder sent back in the closing exec (as base64 text); a larger one goes by sftp. */
const TAR_MAX_KIB = 4096;

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
  const filter = spec.trace === 'client' ? ['--comm', basename(tools.client)] : spec.trace === 'server' ? ['--comm', serverComm(spec.server, tools)] : [];
  const tkey = `${spec.variant} ${spec.hook} ${filter.join(' ')} ${tools.libssl}`;
  // The session's servers and this variant's tracer are taken to run still; each exec that relies
  // on them checks that first on the machine (ProcGone: it did nothing), and the step is repeated
  // once they are started again. Their exit codes, once an exec found them gone:
  let serversGone: string | null = null;
  let tracerGone: string | null = null;
  /** The trial's folder as a base64 tar, sent back by the exec that closed the tracer's run. */
  let tarred = '';

  const startServers = async () => {
    const sv = session.servers;
    if (sv && serversGone === null && sv.key === key) return;
    if (sv) {
      if (serversGone !== null) {
        const st = await readProc(m, sv.proc).catch(() => null);
        const why = `the servers had exited (code ${serversGone}) since the last trial: restarted`;
        run.notes.push(why + (st?.err ? `; their last log lines: ${tail(st.err, 3).replace(/\n/g, ' | ')}` : ''));
        opts.emit({ type: 'warn', target: m.target, message: why });
      } else await stopProc(m, sv.proc, { signal: 'TERM' });
      session.servers = undefined;
    }
    serversGone = null;
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
    session.servers = { proc, key, outAt: 0, errAt: 0 };
    // every port listening (one line each; the last one's wake-up above is only a hint): checked on
    // the state already read, a round trip only for a port whose line is not there yet
    let seen = ready;
    for (const port of spec.ports) seen = await waitForLine(m, proc, new RegExp(`^LISTENING ${port}$`), to.serverMs, signal, seen);
  };
  // The tracer of this variant and settings, loaded once per session behind a closed gate (its
  // programs return at their first instruction): loading it before the client makes no difference
  // to what it sees. A tracer that died is loaded again.
  let st: SessionTracer | undefined;
  let tracerErrAt = 0;
  const loadTracer = async () => {
    const tv = session.tracers.get(tkey);
    if (tv) {
      if (tracerGone === null) {
        st = tv;
        tracerErrAt = tv.errAt;
        return false;
      }
      const why = `the ${spec.variant} tracer had exited (exited ${tracerGone}) since its last run: loaded again`;
      run.notes.push(why);
      opts.emit({ type: 'warn', target: m.target, message: why });
      session.tracers.delete(tkey);
    }
    tracerGone = null;
    const names = new Set([...session.tracers.values()].map((t) => t.proc.name));
    let k = session.tracers.size + 1;
    while (names.has(`tracer-${k}-${spec.variant}`)) k++;
    const name = `tracer-${k}-${spec.variant}`;
    const control = `${session.dir}/${name}.control`;
    const { proc } = await startAndWait(
      m,
      {
        name,
        dir: session.dir,
        // the verifier's log goes with the trial
        mkdir: [remoteDir],
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
    st = { proc, control, runs: 0, errAt: 0 };
    session.tracers.set(tkey, st);
    tracerErrAt = 0;
    return true;
  };
  /** Run a step; when its exec found the servers or the tracer gone, start them again (timed as their own phase) and repeat it. */
  const repaired = async (during: PhaseName, step: () => Promise<void>) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await step();
      } catch (err) {
        if (!(err instanceof ProcGone)) throw err;
        if (attempt > 2) throw new LabError(err.proc.kind, `${err.proc.name} exited again (code ${err.code}) just after it was started`);
        mark(during);
        if (err.proc === session.servers?.proc) {
          serversGone = err.code;
          await startServers();
          mark('servers');
        } else {
          tracerGone = err.code;
          await loadTracer();
          mark('tracer-load');
        }
      }
    }
  };
  const pre = spec.scenario === 'preexisting';
  /** What CLIENT_THEN did in the client's exec: its stages by tag, and the run number the gate was to open. */
  let chain: { stages: Map<string, string>; run: number } | null = null;
  const startClient = async () => {
    // in the same exec: the gate (pre-existing, the model's tracer) and the traffic's start
    const gate = pre && !ext && st ? st : undefined;
    const runNo = (gate?.runs ?? 0) + 1;
    const enabled = toEre(new RegExp(`^ENABLED ${runNo}$`));
    const then = {
      script: CLIENT_THEN,
      env: {
        T_TP: gate ? String(gate.proc.pid) : '',
        T_TO: gate?.proc.out ?? '',
        T_TE: gate?.proc.err ?? '',
        T_TR: gate?.proc.rc ?? '',
        T_CTL: gate?.control ?? '',
        T_EV: `${remoteDir}/events.jsonl`,
        T_EERE: enabled,
        T_EN: String(gate ? sliceChecks(to.tracerReadyMs) : 0),
        T_XN: String(sliceChecks(to.clientBaseMs)),
      },
      timeoutMs: (gate ? sliceChecks(to.tracerReadyMs) * 100 : 0) + sliceChecks(to.clientBaseMs) * 100,
    };
    if (gate) tracerOpen = true;
    const {
      proc,
      state: st0,
      more,
    } = await startAndWait(
      m,
      {
        name: 'client',
        dir: remoteDir,
        kind: 'client-failed',
        execMs: to.execMs,
        argv: clientArgv(spec, tools.client, remoteDir),
        // what the client must find: the servers, and a tracer still to be opened after it
        alive: [session.servers!.proc, ...(pre && st ? [st.proc] : [])],
        // a pre-existing external tracer starts after READY by its own means: no traffic before it
        ...(pre && ext ? {} : { then }),
      },
      /^READY(:\d+)+$/,
      to.clientReadyMs,
      signal,
    ).catch((err) => {
      // nothing was sent to the tracer
      if (gate) tracerOpen = false;
      throw err;
    });
    chain = { stages: thenStages(more), run: runNo };
    if (gate && !chain.stages.has('T')) tracerOpen = false;
    client = proc;
    procs.push(client);
    run.clientPid = client.pid;
    run.conns = parseClientOutput(st0.out).conns;
    if (run.conns.length !== spec.ports.length)
      throw new LabError('client-failed', `client READY line names ${run.conns.length} connections, expected ${spec.ports.length}`);
  };
  /** "The tracer starts": its gate opens for this trial's run, writing to the trial's events.jsonl. */
  const startTracer = async () => {
    const t = st!;
    const n = t.runs + 1;
    tracerOpen = true;
    try {
      await waitForLine(m, t.proc, new RegExp(`^ENABLED ${n}$`), to.tracerReadyMs, signal, null, {
        // after a pre-existing client, only the tracer must run (servers gone show at the end)
        alive: pre ? [t.proc] : [session.servers!.proc, t.proc],
        mkdir: [remoteDir],
        write: { file: t.control, line: `${remoteDir}/events.jsonl` },
        kill: 'USR1',
      });
    } catch (err) {
      if (err instanceof ProcGone) tracerOpen = false;
      throw err;
    }
    t.runs = n;
  };
  /** The "query": the gate closes, the ring buffer is drained, the stats written, the maps emptied. */
  const stopTracer = async (sent = false, first: ProcState | null = null, timeoutMs = to.tracerStopMs) => {
    const state = await waitForLine(m, st!.proc, new RegExp(`^FLUSHED ${st!.runs}$`), timeoutMs, signal, first, sent ? undefined : { kill: 'USR2' });
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
    const opts = {
      name: 'tracer',
      dir: remoteDir,
      kind: 'tracer-failed' as const,
      execMs: to.execMs,
      argv: ext!.argv,
      alive: pre ? [] : [session.servers!.proc],
    };
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
    if (!pre) {
      await repaired('tracer-ready', tracerUp);
      mark('tracer-ready');
    }
    // The client's exec went on after READY (CLIENT_THEN): the pre-existing model's gate, then the
    // traffic; what it did not finish is done from here, step by step.
    const s0 = lap;
    await repaired('client-ready', startClient);
    const stages = chain!.stages;
    const clock = (tag: string) => stages.get(tag)?.trim().split(' ').map(Number) ?? [];
    const [g0, gReady] = clock('R');
    const [gGate] = clock('U');
    const [gGo] = clock('G');
    const [gEnd] = clock('Z');
    const ns = (a?: number, b?: number) => (a && b && Number.isFinite(a) && Number.isFinite(b) && b >= a ? (b - a) / 1e6 : null);
    const readyMs = ns(g0, gReady);
    if (readyMs !== null) {
      // where the exec's time went, by the machine's clock; the round trip is the client's start
      const last = gEnd ?? gGo ?? gGate ?? gReady;
      const round = Math.max(0, Date.now() - s0 - (ns(g0, last) ?? 0));
      const gateMs = ns(gReady, gGate);
      run.phases.push({ name: 'client-ready', ms: Math.round(readyMs + round) });
      if (gateMs !== null) run.phases.push({ name: 'tracer-ready', ms: Math.round(gateMs) });
      const trafficMs = ns(gGate ?? gReady, gEnd);
      if (trafficMs !== null) run.phases.push({ name: 'traffic', ms: Math.round(trafficMs) });
      lap = Date.now();
    } else mark('client-ready');
    if (pre && !(stages.has('T') && !ext)) {
      await repaired('tracer-ready', tracerUp);
      mark('tracer-ready');
    } else if (stages.has('T')) {
      // the gate's SIGUSR1 was sent: wait for the rest of its ENABLED line, if it did not come yet
      const want = new RegExp(`^ENABLED ${chain!.run}$`);
      const gst = parseState(stages.get('T')!);
      if (!matches(gst, want)) {
        await waitForLine(m, st!.proc, want, to.tracerReadyMs, signal, gst);
        mark('tracer-ready');
      }
      st!.runs = chain!.run;
    }
    const budget = to.clientBaseMs + to.perRequestMs * spec.iterations * spec.ports.length;
    const xst = stages.has('X') ? parseState(stages.get('X')!) : null;
    // the client's SIGUSR1 was sent in its exec (G): its exit, or the rest of the wait for it
    const cst = xst?.rc != null ? xst : await waitExit(m, client!, budget, signal, stages.has('G') ? undefined : 'USR1');
    const clientExit = Date.now();
    run.clientRc = cst.rc;
    exited.add(client!);
    mark('traffic');
    // Before the "query": the servers have closed the run's connections (their tcp_close ends each
    // connection's transaction). Waited for by their CLOSED lines, settleMs at most (the
    // investigation sleeps 2 s before its query); the servers' outputs of this trial are copied.
    // The model's run is closed in the same exec, and once flushed the trial's folder comes back
    // with its answer: one round trip for settle, close and fetch.
    const closes = run.conns.map((c) => `CLOSED ${c.rport} ${c.lport}`);
    const sv = session.servers!;
    const checks = Math.ceil(spec.settleMs / 50);
    const closing = ext ? undefined : st;
    const flushed = closing ? new RegExp(`^FLUSHED ${closing.runs}$`) : null;
    const tn = closing ? sliceChecks(to.tracerStopMs) : 0;
    const c0 = Date.now();
    const se = await m.exec(
      [
        'sh',
        '-c',
        SETTLE,
        'sh',
        sv.proc.out,
        String(sv.outAt),
        String(checks),
        sv.proc.err,
        String(sv.errAt),
        remoteDir,
        sv.proc.rc,
        closing?.proc.out ?? '',
        closing?.proc.err ?? '',
        closing?.proc.rc ?? '',
        closing ? String(closing.proc.pid) : '',
        String(tn),
        flushed ? toEre(flushed) : '',
        String(TAR_MAX_KIB),
        ...closes,
      ],
      { timeoutMs: spec.settleMs + tn * 100 + to.execMs + (closing ? to.execMs : 0) },
    );
    const wall = Date.now() - c0;
    const parts = se.stdout.split('\x1f');
    const [closed = '', serversRc = '', outAt = '', errAt = ''] = (parts[0] ?? '').trim().split('\n');
    if (/^\d+$/.test(outAt) && /^\d+$/.test(errAt)) Object.assign(sv, { outAt: Number(outAt), errAt: Number(errAt) });
    if (spec.settleMs > 0 && closed !== 'ALL') run.notes.push(`not every connection was closed by the servers within ${spec.settleMs} ms of the client's exit`);
    if (ext) {
      // the external tracer's settle counts from the client's exit, as the investigation's sleep 2
      const rest = ext.settleMs - (Date.now() - clientExit);
      // cut short by an abort: the next step sees the signal
      if (rest > 0) await delay(rest, undefined, { signal }).catch(() => {});
      mark('settle');
      // the query, then the stop (its outputs are in the trial's folder: tracer.out, tracer.log)
      await queryExternal();
      const xs = await stopProc(m, extProc!, { signal: ext.stop.signal, graceMs: ext.stop.timeoutMs });
      extProc = undefined;
      if (xs && xs.rc === null) run.notes.push(`the tracer ${ext.label} did not exit on SIG${ext.stop.signal} within ${ext.stop.timeoutMs} ms: killed`);
      mark('tracer-exit');
    } else {
      // Complete answer: settle, SIGUSR2 sent, the wait's state, the tar, the clocks.
      const done = se.code === 0 && parts.length === 4;
      const clocks = done ? parts[3]!.trim().split(' ').map(Number) : [];
      if (clocks.length === 4 && clocks.every((n) => Number.isFinite(n) && n > 0)) {
        // where the exec's time went, by the machine's clock; the round trip and the tar's
        // transfer are the fetch's
        const [g0, g1, g2, g3] = clocks.map((ns) => ns / 1e6) as [number, number, number, number];
        run.phases.push({ name: 'settle', ms: Math.round(g1 - g0) }, { name: 'tracer-exit', ms: Math.round(g2 - g1) });
        run.phases.push({ name: 'fetch', ms: Math.max(0, Math.round(wall - (g2 - g0))) });
        lap = Date.now();
      } else mark('settle');
      // the close's state as the exec left it; the rest of its wait (or all of it) from here
      const first = parts.length >= 3 ? parseState(parts[1]!) : null;
      const tst = await stopTracer(parts.length >= 2, first, Math.max(0, to.tracerStopMs - (Date.now() - c0)));
      tracerLog = tst.err;
      if (done && matches(first!, flushed!)) tarred = parts[2]!.trim();
      mark('tracer-exit');
    }
    // servers that died during the run are the cause of whatever the client then did
    if (serversRc.trim() !== '') throw await serversDied(m, sv.proc, serversRc.trim(), cst.rc !== 0 ? ` (the client then exited with code ${cst.rc})` : '');
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
    if (st && tracerLog) st.errAt = tracerLog.length;
    const order = [...procs].filter((p) => !exited.has(p));
    for (const p of order) {
      const state = await stopProc(m, p, { signal: 'TERM' });
      if (p === client && run.clientRc === null) run.clientRc = state?.rc ?? null;
    }
    if (!opts.session) await closeSession(m, session);
    mark('stop');
    // Fetch whatever exists, even after a failure: the tar the close sent back, else by sftp.
    await rm(localDir, { recursive: true, force: true });
    await mkdir(localDir, { recursive: true });
    try {
      if (!tarred || !(await untar(tarred, localDir))) {
        await rm(localDir, { recursive: true, force: true });
        await mkdir(localDir, { recursive: true });
        await m.get(remoteDir, localDir, { timeoutMs: 120_000 });
      }
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

/** Unpack a base64 tar into `dir` with this host's tar (60 s at most); false when it could not. */
async function untar(b64: string, dir: string): Promise<boolean> {
  const data = Buffer.from(b64, 'base64');
  if (data.length === 0) return false;
  return new Promise((resolve) => {
    const p = spawn('tar', ['-x', '--no-same-owner', '-f', '-', '-C', dir], { stdio: ['pipe', 'ignore', 'ignore'], timeout: 60_000 });
    p.on('error', () => resolve(false));
    p.on('close', (code) => resolve(code === 0));
    p.stdin.on('error', () => {});
    p.stdin.end(data);
  });
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
