// From flags + matrix.yaml to a ResolvedRun: every name checked and every path made absolute
// before the first VM boots, so the orchestrator (src/matrix.ts) only orchestrates.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { LOOKALIKE_FILE, type MatrixConfig } from '../config/matrix.ts';
import { BUNDLE_NAME } from '../lookalike/bundle.ts';
import { ConfigError } from '../errors.ts';
import { resolveCacheRoot } from '../images/manifest.ts';
import type { ResolvedRun } from '../matrix.ts';
import type { MatrixFlags } from './flags.ts';

/** A path flag (--config, --out, --cache): absolute as given, relative to the caller's cwd. */
export function flagPath(cwd: string, p: string): string {
  return resolve(cwd, p);
}

/** The matrix file: --config (absolute or relative to cwd), else matrix.yaml at the repository root. */
export function matrixFile(f: Pick<MatrixFlags, 'config'>, env: { cwd: string; repoRoot: string }): string {
  return f.config ? flagPath(env.cwd, f.config) : join(env.repoRoot, 'matrix.yaml');
}

/**
 * The user's own client: --client-src (relative to the cwd) or matrix.yaml `client.src` (relative
 * to the matrix file), checked to be a readable file; with its sha256 (the manifest, resume inputs).
 * It takes the investigation's CLI, which names two connections.
 */
export function resolveClient(
  cfg: Pick<MatrixConfig, 'client' | 'file'>,
  f: Pick<MatrixFlags, 'clientSrc'>,
  cwd: string,
  ports: readonly number[],
): ResolvedRun['client'] {
  const given = f.clientSrc ?? cfg.client?.src;
  if (given === undefined) return null;
  const what = f.clientSrc !== undefined ? `--client-src ${given}` : `${cfg.file}: client.src ${given}`;
  const src = f.clientSrc !== undefined ? flagPath(cwd, given) : resolve(dirname(cfg.file), given);
  let text: Buffer;
  try {
    if (!statSync(src).isFile()) throw new Error('not a file');
    text = readFileSync(src);
  } catch (err) {
    throw new ConfigError(`${what}: cannot read ${src} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!src.endsWith('.c')) throw new ConfigError(`${what}: a C file is wanted (FILE.c), built in each target with cc -O2 ... -lssl -lcrypto`);
  if (ports.length !== 2)
    throw new ConfigError(
      `${what}: your client takes the investigation's CLI (HOST1 PORT1 HOST2 PORT2 ITERATIONS --MODE): give two ports, not ${ports.length}`,
    );
  return { src, sha256: createHash('sha256').update(text).digest('hex') };
}

/**
 * The external tracer of matrix.yaml `tracer:`: each file checked to be a readable file (paths
 * relative to the matrix file; a placeholder path not filled in is named), with its sha256.
 * LOOKALIKE_FILE stays unresolved: the run bundles it at its start (src/lookalike/bundle.ts).
 */
export function resolveTracer(cfg: Pick<MatrixConfig, 'tracer' | 'file'>, f: Pick<MatrixFlags, 'variants'>): ResolvedRun['tracer'] {
  const t = cfg.tracer;
  if (!t) return null;
  if (f.variants)
    throw new ConfigError(
      `--variants ${f.variants.join(',')}: ${cfg.file} runs the external tracer '${t.label}' (tracer:), whose cells' variant is its label; the model's variants do not apply (drop --variants, or use a matrix file without tracer:)`,
    );
  const files: NonNullable<ResolvedRun['tracer']>['files'] = [];
  const missing: string[] = [];
  for (const given of t.files) {
    if (given === LOOKALIKE_FILE) {
      files.push({ src: LOOKALIKE_FILE, name: BUNDLE_NAME, sha256: '', mode: 0o644 });
      continue;
    }
    const src = resolve(dirname(cfg.file), given);
    let text: Buffer;
    let mode: number;
    try {
      const st = statSync(src);
      if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: 'not a file' });
      mode = st.mode & 0o777;
      text = readFileSync(src);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      missing.push(`${given} (${src}): ${code === 'ENOENT' ? 'no such file' : code}`);
      continue;
    }
    const name = basename(src);
    if (files.some((x) => x.name === name))
      throw new ConfigError(`${cfg.file}: tracer.files: two files are named ${name}: each lands in {files}/${name} in the target`);
    files.push({ src, name, sha256: createHash('sha256').update(text).digest('hex'), mode });
  }
  if (missing.length)
    throw new ConfigError(
      `${cfg.file}: tracer.files: ${missing.join('; ')}: fill in the path${missing.length > 1 ? 's' : ''} of your own build (tracer.files; tracer.argv names them as {files}/NAME)`,
    );
  return { ...t, files };
}

export function makeRunId(now = new Date()): string {
  return now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** Merge matrix.yaml and flags; check every name before the first VM boots. */
/** After the client exits, before the tracer stops: the investigation's script sleeps 2 s before it queries. */
export const SETTLE_MS = 2000;

export function resolveRun(
  cfg: MatrixConfig,
  f: MatrixFlags,
  env: { cwd: string; home: string; cacheEnv?: string; now?: Date; hostCpus?: number },
): ResolvedRun {
  const byName = new Map(cfg.targets.map((t) => [t.name, t]));
  let names: string[];
  if (f.targets) names = f.targets;
  else if (f.backend === 'local') names = ['local'];
  else names = cfg.defaultTargets;
  const targets = names.map((n) => {
    const t = byName.get(n);
    if (!t) throw new ConfigError(`--targets: unknown target '${n}' (defined in ${cfg.file}: ${[...byName.keys()].join(', ')})`);
    if (f.backend && f.backend !== t.backend) {
      if (f.backend === 'local' || t.backend === 'local')
        throw new ConfigError(`--backend ${f.backend} cannot run target '${n}' (backend ${t.backend}); use --targets local or a VM target`);
      if (!t.suite && !t.box) throw new ConfigError(`target '${n}' has no suite or box to run with backend ${f.backend}`);
      return { ...t, backend: f.backend };
    }
    return t;
  });
  for (const t of targets) {
    if (f.cpus && t.backend === 'vagrant' && f.cpus.length > 1)
      throw new ConfigError(
        `--cpus ${f.cpus.join(',')}: target '${t.name}' runs on Vagrant, whose Vagrantfile defines one machine per target: give one vCPU count`,
      );
    if (!f.cpus && t.backend === 'vagrant' && (cfg.targetCpus[t.name]?.length ?? 1) > 1)
      throw new ConfigError(
        `target '${t.name}': cpus ${cfg.targetCpus[t.name]!.join(',')} on Vagrant, whose Vagrantfile defines one machine per target: give one vCPU count`,
      );
  }
  // One boot per vCPU count; local runs on this host as it is: its CPU count is recorded, not chosen.
  const cpus = Object.fromEntries(
    targets.map((t) => [t.name, t.backend === 'local' ? [env.hostCpus ?? availableParallelism()] : (f.cpus ?? cfg.targetCpus[t.name] ?? [t.cpus ?? 1])]),
  );
  const runId = makeRunId(env.now);
  // --resume DIR writes to DIR: --out may name it too, not another folder.
  const resumeDir = f.resume === undefined ? undefined : flagPath(env.cwd, f.resume);
  const outFlag = f.out === undefined ? undefined : flagPath(env.cwd, f.out);
  if (resumeDir && outFlag && resumeDir !== outFlag)
    throw new ConfigError(`--resume ${f.resume} and --out ${f.out} name different folders: a resumed run writes to the folder it resumes (give one of them)`);
  const ports = f.ports ?? cfg.defaults.ports;
  const tracer = resolveTracer(cfg, f);
  return {
    targets,
    client: resolveClient(cfg, f, env.cwd, ports),
    tracer,
    // an external tracer's cells have one variant: its label
    variants: tracer ? [tracer.label] : (f.variants ?? cfg.defaults.variants),
    modes: f.modes ?? cfg.defaults.modes,
    scenarios: f.scenarios ?? cfg.defaults.scenarios,
    iterations: f.iterations ?? cfg.defaults.iterations,
    // --iterations N is every mode's count.
    iterationsByMode: f.iterations !== undefined ? {} : { ...cfg.defaults.iterationsByMode },
    reads: f.reads ?? cfg.defaults.reads,
    servers: f.servers ?? cfg.defaults.servers,
    nagle: f.nagle ?? cfg.defaults.nagle,
    cpus,
    settleMs: SETTLE_MS,
    trials: f.trials ?? cfg.defaults.trials,
    ports,
    trace: f.trace ?? cfg.defaults.trace,
    api: f.api ?? cfg.defaults.api,
    hook: f.hook ?? cfg.defaults.hook,
    seed: f.seed ?? cfg.defaults.seed,
    parallel: f.parallel ?? Math.max(1, availableParallelism()),
    keep: f.keep,
    outDir: resumeDir ?? outFlag ?? flagPath(env.cwd, join('reports', runId)),
    runId,
    cacheDir: resolveCacheRoot({ flag: f.cache, env: { USM_LAB_CACHE: env.cacheEnv }, cwd: env.cwd, home: env.home }),
    rebuild: f.rebuild,
    // A new folder (the default reports/<run-id>) holds nothing to reuse; --out DIR resumes the run DIR holds, if any.
    resume: resumeDir ? 'required' : outFlag ? 'auto' : 'off',
    force: f.force,
    ...(f.shard ? { shard: f.shard } : {}),
  };
}
