// The matrix run: for each target (N at once) bring it up, prepare it, run every cell's trials,
// analyse, report; a failure in one target never loses another's results.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { summarizeCell, cellDir, verdictFor, type CellSummary, type Status, type TrialResult } from './analysis/cell.ts';
import { analyzeTrial } from './analysis/trial.ts';
import type { Backend, Lease, TargetSpec } from './backends/types.ts';
import type { BackendName, CellId, Variant } from './domain.ts';
import { ConfigError, LabError, asLabError, messageWithReason, outputError, type FailureKind } from './errors.ts';
import { tryPidLock } from './images/lock.ts';
import { planMatrix, type TargetPlan } from './plan/plan.ts';
import { canonicalJson, cellInputs, readPreviousRun, reusableCells, targetIdentity, type CellSettings, type TargetIdentity } from './plan/resume.ts';
import { step, type Emit } from './progress/events.ts';
import { writeCellReport, type CellInputs, type CellReport } from './report/cell.ts';
import type { Manifest, TargetRecord } from './report/manifest.ts';
import { pointLatest, writeSummary } from './report/summary.ts';
import { buildExternalClient, prepareMachine, uploadTracerFiles, type Prepared } from './scenario/prepare.ts';
import {
  DEFAULT_TIMEOUTS,
  closeSession,
  newSession,
  runTrial,
  scaleTimeouts,
  type ExternalTracerRun,
  type TargetSession,
  type TrialSpec,
} from './scenario/run.ts';
import { sourcesHash } from './sources.ts';
import { LOOKALIKE_FILE, type TracerConfig } from './config/matrix.ts';
import { lookalikeBundle } from './lookalike/bundle.ts';

/** A file of an external tracer: its host path, its name in the target's {files}, contents' sha256, mode bits. */
export interface TracerFile {
  src: string;
  name: string;
  sha256: string;
  mode: number;
}

/** A run with every name checked and every path absolute (src/cli/run.ts makes it from flags + matrix.yaml). */
export interface ResolvedRun {
  targets: TargetSpec[];
  /** The user's own client (--client-src, matrix.yaml client.src): absolute path and sha256; null: ours (race_client). */
  client: { src: string; sha256: string } | null;
  /**
   * An external tracer (matrix.yaml tracer:) with its files resolved (sha256 '' for the look-alike,
   * bundled at the run's start); null: the model.
   */
  tracer: (Omit<TracerConfig, 'files'> & { files: TracerFile[]; sha256?: string }) | null;
  /** Model variants, or the external tracer's label alone. */
  variants: CellId['variant'][];
  modes: TrialSpec['mode'][];
  scenarios: TrialSpec['scenario'][];
  iterations: number;
  /** Requests per connection for the modes named here (matrix.yaml); the others take `iterations`. */
  iterationsByMode: Partial<Record<TrialSpec['mode'], number>>;
  trials: number;
  ports: number[];
  reads: TrialSpec['reads'][];
  servers: TrialSpec['server'][];
  nagle: TrialSpec['nagle'];
  /** vCPU counts per target name: one boot each (local: this host's CPU count). */
  cpus: Record<string, number[]>;
  /** Wait after the client's exit before the tracer is stopped (the investigation's 2 s before its query). */
  settleMs: number;
  trace: TrialSpec['trace'];
  api: TrialSpec['api'];
  hook: TrialSpec['hook'];
  seed: number;
  parallel: number;
  keep: boolean;
  outDir: string;
  runId: string;
  cacheDir: string;
  rebuild: boolean;
  /**
   * Reuse the complete cells of the run already in outDir whose inputs are unchanged (plan/resume.ts):
   * 'required' (--resume DIR: outDir must be a report folder), 'auto' (when outDir holds a run), 'off'.
   */
  resume: 'off' | 'auto' | 'required';
  /** Rerun every cell, reusable or not (--force). */
  force: boolean;
  shard?: { k: number; n: number };
}

export interface MatrixResult {
  outDir: string;
  cells: CellSummary[];
  manifest: Manifest;
  exitCode: number;
  hints: string[];
  /**
   * The report folder refused a write of summary.json and its siblings (disk full, read-only): the
   * cells above are every cell of the run, but the folder holds only what was written before.
   */
  outputError?: LabError;
}

export interface MatrixDeps {
  repoRoot: string;
  backends: (name: BackendName) => Promise<Backend>;
  emit: Emit;
  signal: AbortSignal;
  argv: string[];
  /**
   * Test hook (test/faults, $USM_LAB_TEST_LIBSSL): the libssl the tracer probes instead of the one
   * the client links (a library without a symbol: the attach fails and the cell must name it).
   */
  testLibssl?: string;
  /** The scenario's two entry points (default: src/scenario/); tests pass fakes. */
  scenario?: { prepareMachine: typeof prepareMachine; runTrial: typeof runTrial; buildExternalClient?: typeof buildExternalClient };
}

/** A failure's kind as a cell or trial status: a config error this late is an internal one. */
function statusOf(kind: FailureKind): Status {
  return kind === 'config' ? 'internal' : kind;
}

function toolCommit(repoRoot: string): { commit: string; dirty: boolean } {
  try {
    // stderr ignored: a copy of the sources outside git (benchmarks) is 'unknown', not a 'fatal:' line.
    const git = (args: string[]) => execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const commit = git(['rev-parse', 'HEAD']);
    const dirty = git(['status', '--porcelain']) !== '';
    return { commit, dirty };
  } catch {
    return { commit: 'unknown', dirty: false };
  }
}

/**
 * The run, with its report folder held: a second run given the same folder (the same --out, or two
 * runs started in the same second with the default reports/<run-id>) is refused at once, before it
 * reads or writes anything there, instead of two runs mixing their cells in one folder.
 */
export async function runMatrix(run: ResolvedRun, deps: MatrixDeps): Promise<MatrixResult> {
  // --resume DIR that is no report folder: its ConfigError comes first, and no empty folder is made for it
  if (run.resume === 'required') await readPreviousRun(run.outDir, true);
  let held: Awaited<ReturnType<typeof tryPidLock>>;
  try {
    held = await tryPidLock(join(run.outDir, RUN_LOCK));
  } catch (err) {
    throw outputError(err, `the report folder ${run.outDir}`) ?? err;
  }
  if ('holder' in held)
    throw new ConfigError(
      `another matrix run (pid ${held.holder}) is writing to ${run.outDir}: wait for it to finish, or give this run another --out (${join(run.outDir, RUN_LOCK)} holds its pid)`,
    );
  try {
    return await runMatrixIn(run, deps);
  } finally {
    await held.release();
  }
}

/** The report folder's lock file: the pid of the run writing to it. */
export const RUN_LOCK = '.run.lock';

/**
 * The external tracer with every file's sha256 known (the look-alike bundled now, from the
 * sources), and the sha256 of the whole: its settings and files' contents (the cells' resume input).
 */
async function materializeTracer(t: NonNullable<ResolvedRun['tracer']>, cacheDir: string): Promise<NonNullable<ResolvedRun['tracer']>> {
  const files: TracerFile[] = [];
  for (const f of t.files) {
    if (f.src !== LOOKALIKE_FILE) files.push(f);
    else {
      const b = await lookalikeBundle(join(cacheDir, 'lookalike'));
      files.push({ ...f, src: b.file, sha256: b.sha256 });
    }
  }
  const settings = { ...t, files: files.map((f) => ({ name: f.name, sha256: f.sha256, mode: f.mode })) };
  return { ...t, files, sha256: createHash('sha256').update(canonicalJson(settings)).digest('hex') };
}

async function runMatrixIn(given: ResolvedRun, deps: MatrixDeps): Promise<MatrixResult> {
  const run: ResolvedRun = given.tracer ? { ...given, tracer: await materializeTracer(given.tracer, given.cacheDir) } : given;
  const plans = planMatrix({
    targets: run.targets,
    variants: run.variants,
    modes: run.modes,
    scenarios: run.scenarios,
    reads: run.reads,
    servers: run.servers,
    cpus: run.cpus,
    trials: run.trials,
    seed: run.seed,
    ...(run.shard ? { shard: run.shard } : {}),
  });
  const manifest: Manifest = {
    runId: run.runId,
    tool: { ...toolCommit(deps.repoRoot), node: process.version },
    startedAt: new Date().toISOString(),
    argv: deps.argv,
    seed: run.seed,
    iterations: run.iterations,
    iterationsByMode: run.iterationsByMode,
    trials: run.trials,
    variants: run.variants,
    modes: run.modes,
    scenarios: run.scenarios,
    reads: run.reads,
    servers: run.servers,
    nagle: run.nagle,
    settleMs: run.settleMs,
    ...(run.client ? { client: run.client } : {}),
    ...(run.tracer
      ? { tracer: { ...run.tracer, files: run.tracer.files.map((f) => ({ src: f.src, name: f.name, sha256: f.sha256 })), sha256: tracerSha(run) } }
      : {}),
    targets: [],
  };
  // Before anything boots: a --resume folder that is not a report folder is a ConfigError (exit 2).
  const previous = run.resume === 'off' ? null : await readPreviousRun(run.outDir, run.resume === 'required');
  const ctx: RunContext = { sources: await sourcesHash(deps.repoRoot), previous: run.force ? null : previous };
  if (ctx.previous) manifest.resumedFrom = { runId: ctx.previous.runId, startedAt: ctx.previous.startedAt };
  try {
    await mkdir(run.outDir, { recursive: true });
    // A folder is a report folder from the start: a run killed before its first target finished resumes too.
    if (!previous) await writeFile(join(run.outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  } catch (err) {
    throw outputError(err, `the report folder ${run.outDir}`) ?? err;
  }
  const cellsByTarget = new Map<string, CellSummary[]>();
  const hints: string[] = [];
  // A summary that cannot be written (a full disk) stops no target: the run goes on, its cells are
  // returned (and printed), and the last refusal is the result's outputError.
  let outputFailure: LabError | undefined;
  const flush = async () => {
    const cells = plans.flatMap((p) => cellsByTarget.get(p.instance) ?? []);
    try {
      await writeSummary(run.outDir, manifest, cells);
      outputFailure = undefined;
    } catch (err) {
      const e = outputError(err, `the summary in ${run.outDir}`);
      if (!e) throw err;
      outputFailure = e;
      deps.emit({ type: 'warn', target: 'report', message: `${e.kind}: ${e.message}` });
    }
    return cells;
  };

  const queue = [...plans];
  const worker = async () => {
    for (let p = queue.shift(); p; p = queue.shift()) {
      const rec: TargetRecord = { name: p.instance, target: p.target.name, cpus: p.target.cpus ?? 1, backend: p.target.backend, status: 'ok', facts: {} };
      manifest.targets.push(rec);
      const cells = await runTarget(p, run, deps, rec, hints, ctx);
      cellsByTarget.set(p.instance, cells);
      await flush();
    }
  };
  await Promise.all(Array.from({ length: Math.min(run.parallel, plans.length) }, worker));
  manifest.finishedAt = new Date().toISOString();
  const cells = await flush();
  await pointLatest(run.outDir).catch(() => {});
  const code = exitCodeFor(cells, deps.signal.aborted);
  const exitCode = outputFailure && code < 3 ? 3 : code;
  return { outDir: run.outDir, cells, manifest, exitCode, hints, ...(outputFailure ? { outputError: outputFailure } : {}) };
}

export function exitCodeFor(cells: readonly CellSummary[], interrupted: boolean): number {
  if (interrupted) return 130;
  if (cells.length === 0 || cells.some((c) => c.status !== 'ok')) return 3;
  if (cells.some((c) => c.verdict.pass === false)) return 1;
  return 0;
}

/** What every target of a run shares: the sources hash, and the run whose cells may be reused (null: none, or --force). */
interface RunContext {
  sources: string;
  previous: Manifest | null;
}

/** The run's settings that shape a cell of this mode (the cell's inputs, with its id, sources and target). */
function cellSettings(run: ResolvedRun, cell: CellId): CellSettings {
  return {
    iterations: run.iterationsByMode[cell.mode] ?? run.iterations,
    trials: run.trials,
    ports: run.ports,
    trace: run.trace,
    api: run.api,
    hook: run.hook,
    nagle: run.nagle,
    settleMs: run.settleMs,
    // the user's own client by its contents (absent for ours: a cell's inputs as they were)
    ...(run.client ? { client: run.client.sha256 } : {}),
    ...(run.tracer ? { tracer: tracerSha(run) } : {}),
  };
}

function tracerSha(run: ResolvedRun): string {
  return run.tracer?.sha256 ?? '';
}

async function runTarget(p: TargetPlan, run: ResolvedRun, deps: MatrixDeps, rec: TargetRecord, hints: string[], ctx: RunContext): Promise<CellSummary[]> {
  const { emit, signal } = deps;
  const t = p.target;
  const name = p.instance;
  const targetDir = join(run.outDir, name);
  await mkdir(targetDir, { recursive: true });
  const identityOpts = { cacheDir: run.cacheDir, repoRoot: deps.repoRoot };
  const inputsFor = (id: TargetIdentity) => (c: CellId) => cellInputs(c, cellSettings(run, c), ctx.sources, id);
  // Reuse is decided before the boot, from files on disk: no identity yet, nothing reused.
  const before = ctx.previous ? await targetIdentity(t, { ...identityOpts, rebuild: run.rebuild }).catch(() => null) : null;
  const reused: Map<string, CellReport> = before ? await reusableCells(targetDir, p.cells, inputsFor(before), run.trials) : new Map();
  const todo = p.cells.filter((c) => !reused.has(cellDir(c)));
  const inOrder = (ran: readonly CellSummary[]): CellSummary[] => {
    const byDir = new Map(ran.map((c) => [cellDir(c), c]));
    return p.cells.map((c) => reused.get(cellDir(c))?.cell ?? byDir.get(cellDir(c))!);
  };
  if (reused.size) {
    rec.reused = reused.size;
    emit({ type: 'reused', target: name, cells: reused.size, of: p.cells.length, boot: todo.length > 0 });
  }
  if (todo.length === 0) {
    // Not booted: what the previous run learned of this boot stands (its cells' kernel and OpenSSL are in their reports).
    const prev = ctx.previous?.targets.find((r) => r.name === name);
    Object.assign(rec.facts, prev?.facts ?? {});
    return inOrder([]);
  }
  let lease: Lease | undefined;
  let prepared: Prepared | undefined;
  let stopping: Promise<void> | undefined;
  const stopLease = () => (stopping ??= lease!.stop());
  let disarm = () => {};
  // The target's servers and loaded tracers, shared by its trials (scenario/run.ts); stopped
  // before the VM. A VM booted again starts a new session (the old one's processes died with it).
  let session = newSession(`${remoteRunDir(run)}/servers`);
  const failAll = (err: LabError): CellSummary[] => {
    rec.status = err.kind;
    rec.error = err.message;
    if (err.detail) rec.detail = err.detail;
    return inOrder(todo.map((c) => summarizeCell(c, { ...rec.facts, ...clientFact(run) }, [{ trial: 1, status: statusOf(err.kind), error: err.message }])));
  };
  try {
    const backend = await deps.backends(t.backend);
    let slow = 1;
    const bootAndPrepare = async (): Promise<void> => {
      lease = await step(emit, name, 'boot', () => backend.up(t, { runDir: targetDir, emit, signal, keep: run.keep, cacheDir: run.cacheDir }), t.backend);
      stopping = undefined;
      Object.assign(rec.facts, lease.facts);
      disarm();
      if (!run.keep) disarm = stopOnAbort(signal, stopLease);
      slow = t.backend === 'local' ? 1 : String(lease.facts.accel ?? '').includes('kvm') ? 3 : 10;
      const built = typeof lease.facts.sourcesHash === 'string' ? { builtSources: lease.facts.sourcesHash } : {};
      prepared = await (deps.scenario?.prepareMachine ?? prepareMachine)({
        machine: lease.machine,
        repoRoot: deps.repoRoot,
        logDir: targetDir,
        emit,
        buildTimeoutMs: 60_000 * Math.max(5, slow),
        buildCacheDir: join(run.cacheDir, 'builds'),
        ...built,
      });
      Object.assign(rec.facts, prepared.facts);
      if (run.client) {
        const client = await (deps.scenario?.buildExternalClient ?? buildExternalClient)({
          machine: lease.machine,
          src: run.client.src,
          dir: `${remoteRunDir(run)}/client-src`,
          logDir: targetDir,
          emit,
          timeoutMs: 60_000 * Math.max(2, slow),
        });
        prepared = { ...prepared, tools: { ...prepared.tools, client } };
      }
      if (run.tracer) await uploadTracerFiles(lease.machine, run.tracer.files, tracerDir(run), emit, 60_000 * Math.max(2, slow));
      session = newSession(`${remoteRunDir(run)}/servers`);
    };
    await bootAndPrepare();
    // After the boot the image is built: the identity a later run will compare with. Still unknown: no inputs, never reused.
    const after = await targetIdentity(t, { ...identityOpts, rebuild: false }).catch(() => null);
    const inputsOf = after ? inputsFor(after) : () => undefined;
    const timeouts = scaleTimeouts(DEFAULT_TIMEOUTS, slow);
    const out: CellSummary[] = [];
    /** Why the cells left cannot run (the VM died and could not be booted again), or null. */
    let blocked: LabError | null = null;
    for (const cell of todo) {
      if (signal.aborted) {
        out.push(summarizeCell(cell, { ...rec.facts, ...clientFact(run) }, [{ trial: 1, status: 'interrupted', error: 'interrupted before this cell ran' }]));
        continue;
      }
      if (blocked) {
        out.push(
          summarizeCell(cell, { ...rec.facts, ...clientFact(run) }, [{ trial: 1, status: statusOf(blocked.kind), error: `not run: ${blocked.message}` }]),
        );
        continue;
      }
      let gone = false;
      out.push(await runCell(cell, name, run, deps, lease!, prepared!, session, targetDir, timeouts, inputsOf(cell), () => (gone = true)));
      if (gone) blocked = await bootAgainOnce(rec, emit, stopLease, bootAndPrepare, signal);
    }
    if (out.some((c) => c.status !== 'ok')) rec.status = 'cells-failed';
    return inOrder(out);
  } catch (err) {
    const e = signal.aborted ? new LabError('interrupted', 'interrupted') : asLabError(err);
    emit({ type: 'warn', target: name, message: `${e.kind}: ${e.message}` });
    if (e.detail) await writeFile(join(targetDir, `${e.kind}.txt`), e.detail).catch(() => {});
    return failAll(e);
  } finally {
    disarm();
    if (lease) {
      // The session's servers and tracers, and the trials' folder (this host's /tmp outlives the run).
      await closeSession(lease.machine, session, [remoteRunDir(run)]).catch(() => {});
      if (run.keep && lease.hints) hints.push(...lease.hints.map((h) => `${name}: ${h}`));
      else {
        await step(emit, name, 'stop', stopLease).catch(() => {});
        Object.assign(rec.facts, lease.facts); // what the backend learned while stopping (peak memory)
      }
    }
  }
}

/** Write a failure's detail (the console tail) into each folder; a full disk does not fail the cell twice. */
async function saveDetail(dirs: readonly string[], name: string, text: string): Promise<void> {
  for (const d of dirs)
    await mkdir(d, { recursive: true })
      .then(() => writeFile(join(d, name), text))
      .catch(() => {});
}

/** A message naming files of the trial's folder on the target (the verifier log) names the fetched copies instead: the folder there is gone after the run. */
function atHome(message: string, remoteDir: string, localDir: string): string {
  return message.replaceAll(`${remoteDir}/`, `${localDir}/`);
}

/** A failed trial's detail: tracer.log when the tracer left none (it never loaded), else <kind>.txt; never over a file the trial fetched. */
async function saveTrialDetail(dir: string, e: LabError): Promise<void> {
  const name = e.kind === 'tracer-failed' ? 'tracer.log' : `${statusOf(e.kind)}.txt`;
  await writeFile(join(dir, name), e.detail!.trimEnd() + '\n', { flag: 'wx' }).catch(() => {});
}

/**
 * The VM died or hung under a cell (QEMU killed, a panic, no answer): stop what is left of it and boot the target
 * again, once per target, for the cells left. null: the target is back (a new lease and build);
 * else why the cells left cannot run (a second death, the boot or build failed, an abort).
 */
async function bootAgainOnce(
  rec: TargetRecord,
  emit: Emit,
  stopOld: () => Promise<void>,
  boot: () => Promise<void>,
  signal: AbortSignal,
): Promise<LabError | null> {
  if (rec.reboots) return new LabError('vm-died', 'the VM died again after it was booted again once');
  rec.reboots = 1;
  await stopOld().catch(() => {});
  if (signal.aborted) return new LabError('interrupted', 'interrupted');
  emit({ type: 'info', target: rec.name, message: 'the VM died under a cell: booting it again (once) for the cells left' });
  try {
    await boot();
    return null;
  } catch (err) {
    const e = signal.aborted ? new LabError('interrupted', 'interrupted') : asLabError(err);
    return new LabError(e.kind, `booting again after the VM died: ${e.message}`, e.detail);
  }
}

/** The user's own client as the cells name it (its file), and the external tracer's expectation; nothing for ours. */
function clientFact(run: ResolvedRun): { client?: string; external?: { expect: Variant | null } } {
  return {
    ...(run.client ? { client: run.client.src.slice(run.client.src.lastIndexOf('/') + 1) } : {}),
    ...(run.tracer ? { external: { expect: run.tracer.expect } } : {}),
  };
}

/** Where the external tracer's files land on a target: its {files}. */
const tracerDir = (run: ResolvedRun) => `${remoteRunDir(run)}/tracer`;

/** The external tracer as this target runs it: {files}, {workdir} and {libssl} filled in. */
export function expandTracer(t: NonNullable<ResolvedRun['tracer']>, vars: { files: string; workdir: string; libssl: string }): ExternalTracerRun {
  const fill = (x: string) => x.replaceAll('{files}', vars.files).replaceAll('{workdir}', vars.workdir).replaceAll('{libssl}', vars.libssl);
  const query = 'socket' in t.query ? { ...t.query, socket: fill(t.query.socket) } : { ...t.query };
  return { label: t.label, argv: t.argv.map(fill), ready: t.ready, readyTimeoutMs: t.readyTimeoutMs, query, settleMs: t.settleMs, stop: t.stop };
}

/** The run's folder on a target: each trial's files (logs, pid files, events) below it. */
const remoteRunDir = (run: ResolvedRun) => `/tmp/usm-lab-${run.runId}`;

/** After an abort, what is in flight (a build, a trial's teardown) gets this long before its VM is stopped under it. */
const ABORT_GRACE_MS = 5_000;

/**
 * Stop the lease ABORT_GRACE_MS after the run is aborted: no step (a build over SSH, a trial)
 * holds a cancelled job's VM up until its own timeout. Returns the disarm function.
 */
function stopOnAbort(signal: AbortSignal, stop: () => Promise<void>): () => void {
  let timer: NodeJS.Timeout | undefined;
  const onAbort = () => {
    timer = setTimeout(() => void stop().catch(() => {}), ABORT_GRACE_MS);
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return () => {
    signal.removeEventListener('abort', onAbort);
    clearTimeout(timer);
  };
}

async function runCell(
  cell: CellId,
  instance: string,
  run: ResolvedRun,
  deps: MatrixDeps,
  lease: Lease,
  prepared: Prepared,
  session: TargetSession,
  targetDir: string,
  timeouts: ReturnType<typeof scaleTimeouts>,
  inputs: CellInputs | undefined,
  /** Called when the VM died or hung under this cell (its trials left are not run). */
  vmGone: () => void,
): Promise<CellSummary> {
  const dir = join(targetDir, cellDir(cell));
  // A cell rerun over a resumed folder: no trial folder of the earlier run is left beside the new ones.
  await rm(dir, { recursive: true, force: true });
  const trials: TrialResult[] = [];
  const externalTracer = run.tracer
    ? expandTracer(run.tracer, { files: tracerDir(run), workdir: lease.machine.workdir, libssl: deps.testLibssl ?? prepared.tools.libssl })
    : undefined;
  for (let k = 1; k <= run.trials; k++) {
    const { iterations } = cellSettings(run, cell);
    const spec: TrialSpec = {
      // an external tracer's cell: the model variant it is judged as (the loader is not run)
      variant: run.tracer ? (run.tracer.expect ?? 'upstream') : (cell.variant as TrialSpec['variant']),
      ...(externalTracer ? { external: externalTracer } : {}),
      mode: cell.mode,
      scenario: cell.scenario,
      reads: cell.reads,
      server: cell.server ?? 'python',
      clientCli: run.client ? 'investigation' : 'race_client',
      nagle: run.nagle,
      settleMs: run.settleMs,
      iterations,
      trial: k,
      ports: run.ports,
      trace: run.trace,
      api: run.api,
      hook: run.hook,
    };
    const label = `${cellDir(cell)}#${k}`;
    const localDir = join(dir, `trial-${k}`);
    const remoteDir = `${remoteRunDir(run)}/${cellDir(cell)}/trial-${k}`;
    const tr = await step(
      deps.emit,
      instance,
      'run',
      async () => {
        const r = await (deps.scenario?.runTrial ?? runTrial)({
          machine: lease.machine,
          tools: deps.testLibssl ? { ...prepared.tools, libssl: deps.testLibssl } : prepared.tools,
          spec,
          remoteDir,
          localDir,
          timeouts,
          session,
          emit: deps.emit,
          signal: deps.signal,
        });
        // The failed process's own words (a tracer that never loaded has no tracer.log of the run): kept in the
        // trial's folder, and their `failed to ...` line goes into the cell's error.
        // a copy into the report folder refused (disk full) is the folder's failure, not an internal one
        if (r.error) r.error = outputError(r.error, `the trial's folder ${localDir}`) ?? r.error;
        if (r.error?.detail) await saveTrialDetail(r.localDir, r.error);
        const a0 = Date.now();
        const res = await analyzeTrial({
          dir: r.localDir,
          trial: k,
          iterations,
          conns: r.conns,
          // the client-side truth is ours only: an external client's requests and reads are its own,
          // and an external tracer gives rows, no events
          clientPid: run.client || run.tracer ? null : r.clientPid,
          rowsFrom: run.tracer ? 'endpoint' : 'events',
          durationMs: r.durationMs,
          ...(r.error ? { failure: { kind: statusOf(r.error.kind), message: atHome(messageWithReason(r.error), remoteDir, localDir) } } : {}),
        });
        return { ...res, phases: [...r.phases, { name: 'analysis' as const, ms: Date.now() - a0 }], ...(r.notes?.length ? { notes: r.notes } : {}) };
      },
      label,
      (res) => (res.status === 'ok' ? null : { message: `${label}: ${res.error ?? res.status}`, logFile: join(localDir, 'tracer.log') }),
    ).catch((err: unknown): TrialResult => {
      const e = outputError(err, `the trial's folder ${localDir}`) ?? asLabError(err);
      return { trial: k, status: statusOf(e.kind), error: e.message };
    });
    // Whatever a trial died of once the run was aborted (its VM stopped under it), it was interrupted.
    if (deps.signal.aborted && tr.status !== 'ok') Object.assign(tr, { status: 'interrupted' });
    trials.push(tr);
    const death = tr.status === 'ok' || deps.signal.aborted ? null : await lease.died?.();
    if (death) {
      // What the trial saw (an SSH channel closed) is a consequence: the cell says the VM died or hung, with the console tail.
      const kind = statusOf(death.kind);
      Object.assign(tr, { status: kind, error: death.message });
      if (death.detail) await saveDetail([localDir, targetDir], `${kind}.txt`, death.detail);
      for (let j = k + 1; j <= run.trials; j++) trials.push({ trial: j, status: kind, error: `not run: the VM went away in trial ${k}` });
      vmGone();
      break;
    }
  }
  const summary = summarizeCell(cell, { kernel: prepared.facts.kernel, openssl: prepared.facts.openssl, ...clientFact(run) }, trials);
  try {
    await writeCellReport(dir, { cell: summary, trials, ...(inputs ? { inputs } : {}) });
  } catch (err) {
    // The cell ran but its report could not be saved (a full disk): its figures stay in the summary,
    // its status says the report is missing; the next cells still run.
    const e = outputError(err, `the cell's report in ${dir}`);
    if (!e) throw err;
    const failed = { ...summary, status: 'output-failed' as const, error: e.message };
    return { ...failed, verdict: verdictFor(failed) };
  }
  return summary;
}
