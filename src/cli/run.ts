// From flags + matrix.yaml to a ResolvedRun: every name checked and every path made absolute
// before the first VM boots, so the orchestrator (src/matrix.ts) only orchestrates.
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { MatrixConfig } from '../config/matrix.ts';
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

export function makeRunId(now = new Date()): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Merge matrix.yaml and flags; check every name before the first VM boots. */
export function resolveRun(cfg: MatrixConfig, f: MatrixFlags, env: { cwd: string; home: string; cacheEnv?: string; now?: Date }): ResolvedRun {
  const byName = new Map(cfg.targets.map((t) => [t.name, t]));
  let names: string[];
  if (f.targets) names = f.targets;
  else if (f.backend === 'local') names = ['local'];
  else names = cfg.defaultTargets;
  const targets = names.map((n) => {
    const t = byName.get(n);
    if (!t) throw new ConfigError(`--targets: unknown target '${n}' (defined in ${cfg.file}: ${[...byName.keys()].join(', ')})`);
    if (f.backend && f.backend !== t.backend) {
      if (f.backend === 'local' || t.backend === 'local') throw new ConfigError(`--backend ${f.backend} cannot run target '${n}' (backend ${t.backend}); use --targets local or a VM target`);
      if (!t.suite && !t.box) throw new ConfigError(`target '${n}' has no suite or box to run with backend ${f.backend}`);
      return { ...t, backend: f.backend };
    }
    return t;
  });
  const runId = makeRunId(env.now);
  return {
    targets,
    variants: f.variants ?? cfg.defaults.variants,
    modes: f.modes ?? cfg.defaults.modes,
    scenarios: f.scenarios ?? cfg.defaults.scenarios,
    iterations: f.iterations ?? cfg.defaults.iterations,
    trials: f.trials ?? cfg.defaults.trials,
    ports: f.ports ?? cfg.defaults.ports,
    trace: f.trace ?? cfg.defaults.trace,
    api: f.api ?? cfg.defaults.api,
    hook: f.hook ?? cfg.defaults.hook,
    seed: f.seed ?? cfg.defaults.seed,
    parallel: f.parallel ?? Math.max(1, availableParallelism()),
    keep: f.keep,
    outDir: flagPath(env.cwd, f.out ?? join('reports', runId)),
    runId,
    cacheDir: resolveCacheRoot({ flag: f.cache, env: { USM_LAB_CACHE: env.cacheEnv }, cwd: env.cwd, home: env.home }),
    rebuild: f.rebuild,
    ...(f.shard ? { shard: f.shard } : {}),
  };
}
