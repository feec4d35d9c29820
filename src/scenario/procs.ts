// Background processes on a Machine, built only on Machine.exec: the same code drives this host
// and a guest over SSH. Each process gets its own session (setsid), stdout/stderr files, a pid
// file and an exit-code file; readiness is a line in one of its outputs.
import { LabError, type FailureKind } from '../errors.ts';
import type { Machine } from '../machine/types.ts';

export interface BgProc {
  name: string;
  pid: number;
  out: string;
  err: string;
  rc: string;
  /** Failure kind reported when this process misbehaves. */
  kind: FailureKind;
  /** Deadline of one control exec (read, wait slice, signal): longer on a slow (TCG) guest. */
  execMs: number;
}

/** One control exec's deadline on this host; a TCG guest under load wants its scaled value (Timeouts.execMs). */
export const DEFAULT_EXEC_MS = 15_000;

/**
 * An exec's precondition failed on the machine: a process it relies on (`Alive`) had exited, so
 * the exec did nothing. The caller starts that process again and repeats the step.
 */
export class ProcGone extends Error {
  constructor(
    readonly proc: BgProc,
    /** Its exit code as its rc file holds it. */
    readonly code: string,
  ) {
    super(`${proc.name} had exited (code ${code})`);
  }
}

// What an exec checks and prepares on the machine before it acts (its first arguments): a count
// and that many rc files of processes that must still run (the first one that has exited is
// printed as GONE <index> <code>, and the exec stops there, having changed nothing); then a count
// and that many folders to create.
const PRE = [
  'ng=$1; shift; i=0',
  'while [ "$i" -lt "$ng" ]; do',
  '  if [ -s "$1" ]; then printf \'\\035GONE %s %s\\n\' "$i" "$(cat "$1")"; exit 0; fi',
  '  shift; i=$((i+1))',
  'done',
  'nm=$1; shift; i=0',
  'while [ "$i" -lt "$nm" ]; do mkdir -p "$1" || exit 4; shift; i=$((i+1)); done',
].join('\n');

function preArgs(alive: readonly BgProc[] = [], mkdir: readonly string[] = []): string[] {
  return [String(alive.length), ...alive.map((p) => p.rc), String(mkdir.length), ...mkdir];
}

/** PRE's GONE line, as a ProcGone of the process it names. */
function checkGone(stdout: string, alive: readonly BgProc[] = []): void {
  const g = /^\x1dGONE (\d+) ?(.*)$/m.exec(stdout);
  const p = g ? alive[Number(g[1])] : undefined;
  if (p) throw new ProcGone(p, g![2]!.trim());
}

/** What an exec relies on and prepares: processes that must still run, folders to create. */
export interface Pre {
  /** Checked first: if one of them has exited, the exec does nothing and throws ProcGone. */
  alive?: readonly BgProc[];
  mkdir?: readonly string[];
}

// $1..$4: stdout, stderr, rc, pid files; $5, $6: WAIT's pattern and checks (when a wait follows
// in the same exec); then PRE's arguments (the process's own folder among the folders); the rest
// is argv. The inner sh writes its own pid and execs the program, so the pid file holds the
// program's pid; the subshell records the exit code.
const LAUNCH = [
  'o=$1; e=$2; r=$3; p=$4; pat=$5; n=$6; shift 6',
  PRE,
  // a restart under the same name: the last run's exit code and pid must not be read as this one's
  'rm -f "$r" "$p"',
  '( setsid -w sh -c \'echo $$ >"$0"; exec "$@"\' "$p" "$@" >"$o" 2>"$e" </dev/null; echo $? >"$r" ) >/dev/null 2>&1 </dev/null &',
  'i=0; while [ ! -s "$p" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done',
  'cat "$p"',
].join('\n');

/** How a process is started: its name and folder (its files: NAME.out, .log, .rc, .pid), what it runs, what it relies on. */
export interface StartOpts extends Pre {
  name: string;
  /** Created when missing. */
  dir: string;
  argv: readonly string[];
  kind: FailureKind;
  cwd?: string;
  execMs?: number;
  /**
   * What the same exec goes on to do once the ready line is there (startAndWait only): a script run
   * after the wait, with the process's files in $o $e $r $p, the wait's pattern in $pat, the
   * exec's start clock (ns) in $ts0 and `env` in its environment; what it prints after a \x1f
   * comes back as `more`. It must stop at once unless the line is there (`grep -E -q -e "$pat"`).
   */
  then?: { script: string; env: Record<string, string>; timeoutMs: number };
}

export async function startProc(m: Machine, opts: StartOpts): Promise<BgProc> {
  return (await launch(m, opts, '', 0)).proc;
}

function procFiles(opts: { name: string; dir: string }) {
  const base = `${opts.dir}/${opts.name}`;
  return { out: `${base}.out`, err: `${base}.log`, rc: `${base}.rc`, pid: `${base}.pid` };
}

/** Start the process and, in the same exec, wait up to `checks` tenths of a second for `ere` (or its exit). */
async function launch(m: Machine, opts: StartOpts, ere: string, checks: number): Promise<{ proc: BgProc; state: ProcState | null; more: string[] }> {
  const execMs = opts.execMs ?? DEFAULT_EXEC_MS;
  const files = procFiles(opts);
  const then = checks > 0 ? opts.then : undefined;
  // without a pattern the wait's grep would match anything: nothing may follow it
  if (then && !ere) throw new LabError('internal', `${opts.name}: a step after its ready line needs a pattern grep -E can check`);
  // READ's last cat fails while the rc file does not exist yet: the status is the pid's, not READ's.
  // the start clock only for a step that reports the exec's time split by stage
  const clock = then ? 'ts0=$(date +%s%N 2>/dev/null)\n' : '';
  const script = checks > 0 ? `${clock}${LAUNCH}\nprintf '\\037'\n${WAIT}\n${then?.script ?? ''}\nexit 0` : LAUNCH;
  const pre = preArgs(opts.alive, [opts.dir, ...(opts.mkdir ?? [])]);
  const env = then ? ['env', ...Object.entries(then.env).map(([k, v]) => `${k}=${v}`)] : [];
  const r = await m.exec([...env, 'sh', '-c', script, 'sh', files.out, files.err, files.rc, files.pid, ere, String(checks), ...pre, ...opts.argv], {
    timeoutMs: execMs + checks * 100 + (then?.timeoutMs ?? 0),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  if (r.code === 0) checkGone(r.stdout, opts.alive);
  const [pidText = '', rest, ...more] = r.stdout.split('\x1f');
  const pid = Number(pidText.trim());
  if (r.code !== 0 || !Number.isInteger(pid) || pid <= 0) {
    throw new LabError(opts.kind, `failed to start ${opts.name}: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
  const proc = { name: opts.name, pid, out: files.out, err: files.err, rc: files.rc, kind: opts.kind, execMs };
  return { proc, state: rest === undefined ? null : parseState(rest), more };
}

/**
 * Start a process and wait for `re` on one of its outputs: one round trip when it is ready within
 * a wait slice (a TCG guest spends 0.2-0.9 s per exec), then waitForLine's loop for the rest.
 */
export async function startAndWait(
  m: Machine,
  opts: StartOpts,
  re: RegExp,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ proc: BgProc; state: ProcState; more: string[] }> {
  const deadline = Date.now() + timeoutMs;
  const { proc, state, more } = await launch(m, opts, toEre(re), sliceChecks(timeoutMs));
  if (state && matches(state, re)) return { proc, state, more };
  // the line came between the wait's read and the step after it, which went on: read it again (rare)
  if (more.length) return { proc, state: await readProc(m, proc), more };
  try {
    return { proc, state: await waitForLine(m, proc, re, Math.max(0, deadline - Date.now()), signal, state), more: [] };
  } catch (err) {
    // never ready: the caller has no handle on it, so it is stopped here
    await stopProc(m, proc);
    throw err;
  }
}

export interface ProcState {
  out: string;
  err: string;
  /** Exit code once the process has ended, else null. */
  rc: number | null;
}

const READ = 'cat "$1" 2>/dev/null; printf "\\n\\036"; cat "$2" 2>/dev/null; printf "\\n\\036"; cat "$3" 2>/dev/null';

export async function readProc(m: Machine, p: BgProc): Promise<ProcState> {
  const r = await m.exec(['sh', '-c', READ, 'sh', p.out, p.err, p.rc], { timeoutMs: p.execMs });
  return parseState(r.stdout);
}

/** READ's output: stdout, stderr and the exit code, separated by \n\x1e. */
export function parseState(text: string): ProcState {
  const [out = '', err = '', rc = ''] = text.split('\n\x1e');
  return { out, err, rc: rc.trim() === '' ? null : Number(rc.trim()) };
}

// Waiting happens on the machine, not by polling from here: one exec loops in the machine's shell
// (10 checks a second) until the exit-code file is written or, for a ready line, grep finds it,
// or SLICE_S passes; then it prints the three files like READ. Over SSH into a TCG guest every
// exec costs 0.2-0.9 s, so host-side polling added about a second per wait and loaded the
// guest's one vCPU while the client ran. The host re-checks with the JS RegExp (the ERE given to
// grep is only a wake-up hint) and checks the abort signal and deadline between slices.
// $6 $7: a signal to send to pid $7 first; $8 $9: a line to write to file $8 before that; then
// PRE's arguments, checked before either.
const WAIT_ARGS = [
  'o=$1; e=$2; r=$3; pat=$4; n=$5; k=$6; pid=$7; wf=$8; wl=$9; shift 9',
  PRE,
  '[ -z "$wf" ] || printf \'%s\\n\' "$wl" >"$wf" || exit 3',
  '[ -z "$k" ] || kill -s "$k" "$pid" 2>/dev/null',
].join('\n');
/** On the machine: wait (checks $n tenths of a second at most) for pattern $pat in files $o $e, or rc file $r; then print the three like READ. */
export const WAIT = [
  'i=0',
  'while [ "$i" -lt "$n" ]; do',
  '  [ -s "$r" ] && break',
  '  if [ -n "$pat" ] && grep -E -q -e "$pat" "$o" "$e" 2>/dev/null; then break; fi',
  '  sleep 0.1; i=$((i+1))',
  'done',
  'set -- "$o" "$e" "$r"',
  READ,
].join('\n');
const SLICE_S = 5;

/** A POSIX ERE that matches at least what `re` matches on one line (\d -> [0-9]); '' when unsure. */
export function toEre(re: RegExp): string {
  const src = re.source.replace(/\\d/g, '[0-9]');
  return /\\[a-zA-Z]|\(\?/.test(src) || re.flags.includes('i') ? '' : src;
}

/** The checks (tenths of a second) of one wait slice on the machine: SLICE_S at most. */
export function sliceChecks(remainingMs: number): number {
  return Math.max(1, Math.min(SLICE_S * 10, Math.ceil(remainingMs / 100)));
}

export function matches(st: ProcState, re: RegExp): boolean {
  return `${st.out}\n${st.err}`.split('\n').some((l) => re.test(l));
}

/** Done in the first round trip of a wait, before it: check PRE's processes, make its folders, write a line to a file, then send a signal. */
export interface Before extends Pre {
  kill?: Sig;
  write?: { file: string; line: string };
}

/** One wait slice on the machine, after `before` in the same exec. */
async function waitOnMachine(m: Machine, p: BgProc, ere: string, remainingMs: number, before?: Before): Promise<ProcState> {
  const checks = sliceChecks(remainingMs);
  const w = before?.write;
  const argv = [
    p.out,
    p.err,
    p.rc,
    ere,
    String(checks),
    before?.kill ?? '',
    String(p.pid),
    w?.file ?? '',
    w?.line ?? '',
    ...preArgs(before?.alive, before?.mkdir),
  ];
  const r = await m.exec(['sh', '-c', `${WAIT_ARGS}\n${WAIT}`, 'sh', ...argv], { timeoutMs: checks * 100 + p.execMs });
  if (r.code === 0) checkGone(r.stdout, before?.alive);
  if (r.code !== 0 && r.code !== 1)
    throw new LabError(p.kind, `cannot read the state of ${p.name}: ${r.timedOut ? 'timed out' : r.stderr.trim() || `exit ${r.code}`}`);
  return parseState(r.stdout);
}

/** Wait until `re` matches a line of the process's stdout or stderr; fail if it exits first. */
export async function waitForLine(
  m: Machine,
  p: BgProc,
  re: RegExp,
  timeoutMs: number,
  signal?: AbortSignal,
  /** A state already read (startAndWait's): checked first, before another round trip. */
  first?: ProcState | null,
  /** Done in the first round trip, before the wait (not with `first`). */
  before?: Before,
): Promise<ProcState> {
  const deadline = Date.now() + timeoutMs;
  const ere = toEre(re);
  for (let known = first ?? null, b = before; ; known = null, b = undefined) {
    if (signal?.aborted) throw new LabError('interrupted', `interrupted while waiting for ${p.name}`);
    const st = known ?? (await waitOnMachine(m, p, ere, deadline - Date.now(), b));
    if (matches(st, re)) return st;
    if (st.rc !== null) {
      throw new LabError(p.kind, `${p.name} exited with code ${st.rc} before printing ${re}`, tail(st.err || st.out));
    }
    if (Date.now() >= deadline) {
      throw new LabError(
        p.kind === 'client-failed' || p.kind === 'tracer-failed' || p.kind === 'server-failed' ? p.kind : 'timeout',
        `${p.name} did not print ${re} within ${Math.round(timeoutMs / 1000)} s`,
        tail(st.err || st.out),
      );
    }
  }
}

/** Wait for the process to exit (after sending it `kill`, in the first round trip); returns its state, or throws on timeout. */
export async function waitExit(m: Machine, p: BgProc, timeoutMs: number, signal?: AbortSignal, kill?: Sig): Promise<ProcState> {
  const deadline = Date.now() + timeoutMs;
  for (let k = kill; ; k = undefined) {
    if (signal?.aborted) throw new LabError('interrupted', `interrupted while waiting for ${p.name}`);
    const st = await waitOnMachine(m, p, '', deadline - Date.now(), k ? { kill: k } : undefined);
    if (st.rc !== null) return st;
    if (Date.now() >= deadline) throw new LabError(p.kind, `${p.name} did not exit within ${Math.round(timeoutMs / 1000)} s`, tail(st.err || st.out));
  }
}

export type Sig = 'USR1' | 'USR2' | 'INT' | 'TERM' | 'KILL';

export async function signalProc(m: Machine, p: BgProc, sig: Sig): Promise<void> {
  await m.exec(['kill', '-s', sig, String(p.pid)], { timeoutMs: p.execMs });
}

/** Stop a process for sure: TERM (or the given signal), a grace period, then KILL its whole session. */
export async function stopProc(m: Machine, p: BgProc, opts: { signal?: 'INT' | 'TERM'; graceMs?: number } = {}): Promise<ProcState | null> {
  try {
    const st = await readProc(m, p);
    if (st.rc !== null) return st;
    await signalProc(m, p, opts.signal ?? 'TERM').catch(() => {});
    try {
      return await waitExit(m, p, opts.graceMs ?? 5_000);
    } catch {
      // setsid made the program a session and process-group leader: kill the group.
      await m.exec(['kill', '-s', 'KILL', '--', `-${p.pid}`], { timeoutMs: p.execMs }).catch(() => {});
      return await waitExit(m, p, 5_000).catch(() => null);
    }
  } catch {
    return null;
  }
}

export function tail(text: string, lines = 30): string {
  const arr = text.trimEnd().split('\n');
  return arr.slice(-lines).join('\n');
}
