import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMatrixFlags } from '../src/cli/flags.ts';
import { parseMatrix, BUILTIN_DEFAULTS } from '../src/config/matrix.ts';
import { resolveRun } from '../src/cli/run.ts';
import { ConfigError, LabError } from '../src/errors.ts';
import { ensureHostPackages } from '../src/hostdeps.ts';
import { planMatrix } from '../src/plan/plan.ts';

describe('flags', () => {
  it('parses lists, numbers and enums', () => {
    const f = parseMatrixFlags(['--backend', 'local', '--variants', 'upstream,scoped', '--modes', 'interleaved', '--iterations', '50', '--trials', '2', '--shard', '2/4', '--ports', '19001,19002,19003', '--keep']);
    expect(f).toMatchObject({ backend: 'local', variants: ['upstream', 'scoped'], modes: ['interleaved'], iterations: 50, trials: 2, shard: { k: 2, n: 4 }, ports: [19001, 19002, 19003], keep: true });
  });

  it.each([
    [['--bogus'], /Unknown option '--bogus'.*valid flags: .*--variants/],
    [['--variants', 'upstream,nope'], /unknown value 'nope' \(allowed: upstream, no-fallback, recv-hook, scoped\)/],
    [['--modes', 'random'], /allowed: sequential, interleaved, writes-only/],
    [['--backend', 'docker'], /allowed: qemu, vagrant, local/],
    [['--iterations', '0'], /out of range/],
    [['--iterations', '1.5'], /not a whole number/],
    [['--shard', '5/4'], /K\/N/],
    [['--ports', '18001'], /at least two ports/],
    [['--ports', '80,81'], /out of range/],
    [['--variants', ''], /at least one value/],
    [['stray'], /positional/i],
  ])('%j is refused with what is allowed', (argv, re) => {
    expect(() => parseMatrixFlags(argv)).toThrow(ConfigError);
    expect(() => parseMatrixFlags(argv)).toThrow(re);
  });
});

describe('matrix.yaml', () => {
  it('the shipped matrix.yaml is valid and names the four Debian kernels', () => {
    const cfg = parseMatrix(readFileSync('matrix.yaml', 'utf8'), 'matrix.yaml');
    expect(cfg.defaultTargets).toEqual(['bullseye', 'bookworm', 'trixie', 'sid']);
    expect(cfg.targets.find((t) => t.name === 'local')?.backend).toBe('local');
    expect(cfg.defaults.iterations).toBe(200);
    expect(cfg.targets.filter((t) => t.backend === 'qemu').map((t) => t.suite)).toEqual(['bullseye', 'bookworm', 'trixie', 'sid']);
  });

  it.each([
    ['targets:\n  a: { backend: qemu, suite: jessie }\n', /m\.yaml:2:30: unknown suite 'jessie' \(allowed: bullseye, bookworm, trixie, sid\)/],
    ['targets:\n  a: { backend: qemu, sutie: bookworm }\n', /m\.yaml:2:23: unknown key 'sutie' in target 'a' \(allowed: backend, suite, box, memory, cpus\)/],
    ['defaults:\n  iterations: many\ntargets: {}\n', /m\.yaml:2:15: defaults\.iterations must be a whole number/],
    ['defaults:\n  variants: [upstream, fixed]\ntargets: {}\n', /m\.yaml:2:24: unknown variant 'fixed'/],
    ['targets:\n  a: { backend: qemu }\n', /m\.yaml:2:6: target 'a' \(backend qemu\) needs a suite/],
    ['targets:\n  a: { backend: docker }\n', /unknown backend 'docker' \(allowed: qemu, vagrant, local\)/],
    ['colour: red\ntargets: {}\n', /m\.yaml:1:1: unknown key 'colour'/],
    ['targets: {}\ndefault_targets: [nowhere]\n', /m\.yaml:2:19: unknown target 'nowhere'/],
    ['targets:\n  a: [\n', /m\.yaml:\d+:\d+:/],
    ['defaults:\n  memory: 64\ntargets: {}\n', /out of range \(allowed: 256\.\.65536\)/],
  ])('%j -> error with position', (text, re) => {
    expect(() => parseMatrix(text, 'm.yaml')).toThrow(re);
  });

  it('missing keys take the built-in defaults; local is always there', () => {
    const cfg = parseMatrix('targets:\n  bw: { backend: qemu, suite: bookworm, memory: 2048 }\n', 'm.yaml');
    expect(cfg.defaults).toEqual(BUILTIN_DEFAULTS);
    expect(cfg.targets.map((t) => t.name)).toEqual(['bw', 'local']);
    expect(cfg.targets[0]!.memoryMiB).toBe(2048);
    expect(cfg.defaultTargets).toEqual(['bw']);
  });
});

describe('resolveRun and plan', () => {
  const cfg = parseMatrix(readFileSync('matrix.yaml', 'utf8'), 'matrix.yaml');
  const env = { cwd: '/w', home: '/h', now: new Date('2026-11-24T10:00:00Z') };

  it('flags override matrix.yaml; --backend local runs only the local target', () => {
    const r = resolveRun(cfg, parseMatrixFlags(['--backend', 'local', '--iterations', '7']), env);
    expect(r.targets.map((t) => t.name)).toEqual(['local']);
    expect(r.iterations).toBe(7);
    expect(r.variants).toEqual(cfg.defaults.variants);
    expect(r.outDir).toBe('/w/reports/20261124T100000Z');
    expect(r.cacheDir).toBe('/h/.cache/usm-race-lab');
  });

  it('--backend vagrant runs the default suites through vagrant', () => {
    const r = resolveRun(cfg, parseMatrixFlags(['--backend', 'vagrant', '--targets', 'bookworm']), env);
    expect(r.targets).toEqual([expect.objectContaining({ name: 'bookworm', backend: 'vagrant', suite: 'bookworm' })]);
  });

  it('refuses unknown targets and impossible backend overrides before anything boots', () => {
    expect(() => resolveRun(cfg, parseMatrixFlags(['--targets', 'buster']), env)).toThrow(/unknown target 'buster' \(defined in matrix.yaml: bullseye, bookworm, trixie, sid, local\)/);
    expect(() => resolveRun(cfg, parseMatrixFlags(['--backend', 'qemu', '--targets', 'local']), env)).toThrow(/cannot run target 'local'/);
  });

  it('expands every cell once, in a seeded order, and shards targets', () => {
    const targets = cfg.targets.filter((t) => t.backend === 'qemu');
    const p = planMatrix({ targets, variants: ['upstream', 'scoped'], modes: ['interleaved', 'sequential'], scenarios: ['preexisting', 'baseline'], trials: 1, seed: 3 });
    expect(p).toHaveLength(4);
    expect(p[0]!.cells).toHaveLength(8);
    expect(new Set(p[0]!.cells.map((c) => `${c.scenario}${c.mode}${c.variant}`)).size).toBe(8);
    const again = planMatrix({ targets, variants: ['upstream', 'scoped'], modes: ['interleaved', 'sequential'], scenarios: ['preexisting', 'baseline'], trials: 1, seed: 3 });
    expect(again[0]!.cells).toEqual(p[0]!.cells);
    const shards = [1, 2].map((k) => planMatrix({ targets, variants: ['upstream'], modes: ['interleaved'], scenarios: ['preexisting'], trials: 1, seed: 1, shard: { k, n: 2 } }).map((x) => x.target.name));
    expect(shards).toEqual([['bullseye', 'trixie'], ['bookworm', 'sid']]);
  });
});

describe('host packages (provision/host-deps.sh)', () => {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  it('a failing host-deps.sh is an error of the kind asked for, with the script\'s own words', async () => {
    const err = await ensureHostPackages(root, ['no-such-group'], { kind: 'boot-failed' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).kind).toBe('boot-failed');
    expect((err as LabError).message).toBe('host packages are missing (provision/host-deps.sh no-such-group exited 2)');
    expect((err as LabError).detail).toMatch(/unknown group 'no-such-group' \(allowed: build images vagrant\)/);
  });
});
