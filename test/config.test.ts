import { beforeEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FLAG_NAMES, HELP, parseMatrixFlags } from '../src/cli/flags.ts';
import { loadMatrix, parseMatrix, BUILTIN_DEFAULTS, type MatrixConfig } from '../src/config/matrix.ts';
import { resolveRun } from '../src/cli/run.ts';
import { ConfigError, LabError } from '../src/errors.ts';
import { ensureHostPackages } from '../src/hostdeps.ts';
import { planMatrix } from '../src/plan/plan.ts';

describe('flags', () => {
  it('parses lists, numbers and enums', () => {
    const f = parseMatrixFlags([
      '--backend',
      'local',
      '--variants',
      'upstream,scoped',
      '--modes',
      'interleaved',
      '--iterations',
      '50',
      '--trials',
      '2',
      '--shard',
      '2/4',
      '--ports',
      '19001,19002,19003',
      '--keep',
    ]);
    expect(f).toMatchObject({
      backend: 'local',
      variants: ['upstream', 'scoped'],
      modes: ['interleaved'],
      iterations: 50,
      trials: 2,
      shard: { k: 2, n: 4 },
      ports: [19001, 19002, 19003],
      keep: true,
    });
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
    expect(cfg.defaults).toMatchObject({ reads: ['full'], nagle: 'off', cpus: [1] });
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

  it('reports every error at once, one per line in file order, each with its line:column', () => {
    const text = [
      'defaults:',
      '  iterations: 0',
      '  reads: partial',
      'colour: red',
      'targets:',
      '  a: { backend: qemu, suite: jessie }',
      '  b: { backend: vagrant }',
      '  c: { backend: qemu, suite: bookworm, memory: 64, cpus: 0 }',
      'default_targets: [a, nowhere]',
      '',
    ].join('\n');
    let err: unknown;
    try {
      parseMatrix(text, 'm.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message.split('\n')).toEqual([
      'm.yaml: 8 errors',
      'm.yaml:2:15: defaults.iterations is 0, out of range (allowed: 1..1000000)',
      "m.yaml:3:10: unknown reads 'partial' (allowed: full, single)",
      "m.yaml:4:1: unknown key 'colour' in the matrix file (allowed: defaults, targets, default_targets, vagrant, client, tracer)",
      "m.yaml:6:30: unknown suite 'jessie' (allowed: bullseye, bookworm, trixie, sid)",
      "m.yaml:7:6: target 'b' (backend vagrant) needs a suite (a local box built from it) or a box",
      'm.yaml:8:48: memory (MiB) is 64, out of range (allowed: 256..65536)',
      "m.yaml:8:58: target 'c' cpus is 0, out of range (allowed: 1..64)",
      // 'a' is defined (with an error of its own): only 'nowhere' is unknown.
      "m.yaml:9:22: unknown target 'nowhere' (defined: a, b, c, local)",
    ]);
  });

  it('every bad item of a list is reported, and YAML syntax errors all at once', () => {
    expect(() => parseMatrix('defaults:\n  variants: [fixed, upstream, broken]\ntargets: {}\n', 'm.yaml')).toThrow(
      "m.yaml: 2 errors\nm.yaml:2:14: unknown variant 'fixed' (allowed: upstream, no-fallback, recv-hook, scoped)\nm.yaml:2:31: unknown variant 'broken' (allowed: upstream, no-fallback, recv-hook, scoped)",
    );
    expect(() =>
      parseMatrix('targets:\n  a: { backend: qemu, suite: sid }\n  a: { backend: qemu, suite: sid }\ndefaults:\n  seed: 1\n  seed: 2\n', 'm.yaml'),
    ).toThrow(/^m\.yaml: 2 errors\nm\.yaml:3:3: .*unique.*\nm\.yaml:6:3: .*unique/i);
  });

  it.each([
    [
      'defaults.iterations',
      'defaults:\n  iterations: 1000001\ntargets: {}\n',
      /m\.yaml:2:15: defaults\.iterations is 1000001, out of range \(allowed: 1\.\.1000000\)/,
    ],
    ['defaults.trials', 'defaults:\n  trials: 1001\ntargets: {}\n', /m\.yaml:2:11: defaults\.trials is 1001, out of range \(allowed: 1\.\.1000\)/],
    ['a port', 'defaults:\n  ports: [18001, 65536]\ntargets: {}\n', /m\.yaml:2:18: a port is 65536, out of range \(allowed: 1024\.\.65535\)/],
    ['defaults.memory', 'defaults:\n  memory: 65537\ntargets: {}\n', /m\.yaml:2:11: defaults\.memory \(MiB\) is 65537, out of range \(allowed: 256\.\.65536\)/],
    ['defaults.seed', 'defaults:\n  seed: 4294967296\ntargets: {}\n', /m\.yaml:2:9: defaults\.seed is 4294967296, out of range \(allowed: 0\.\.4294967295\)/],
    ['defaults.cpus', 'defaults:\n  cpus: 65\ntargets: {}\n', /m\.yaml:2:9: defaults\.cpus is 65, out of range \(allowed: 1\.\.64\)/],
    ['defaults.cpus list', 'defaults:\n  cpus: [1, 65]\ntargets: {}\n', /m\.yaml:2:13: defaults\.cpus is 65, out of range \(allowed: 1\.\.64\)/],
    [
      'target memory',
      'targets:\n  a: { backend: qemu, suite: sid, memory: 65537 }\n',
      /m\.yaml:2:43: memory \(MiB\) is 65537, out of range \(allowed: 256\.\.65536\)/,
    ],
    ['target cpus', 'targets:\n  a: { backend: qemu, suite: sid, cpus: 65 }\n', /m\.yaml:2:41: target 'a' cpus is 65, out of range \(allowed: 1\.\.64\)/],
  ])('%s above its upper bound is refused with the range', (_what, text, re) => {
    expect(() => parseMatrix(text, 'm.yaml')).toThrow(re);
  });

  it('the largest allowed values are accepted', () => {
    const cfg = parseMatrix(
      'defaults:\n  iterations: 1000000\n  trials: 1000\n  ports: [1024, 65535]\n  memory: 65536\n  seed: 4294967295\n  cpus: 64\ntargets:\n  a: { backend: qemu, suite: sid, memory: 65536, cpus: [64] }\n',
      'm.yaml',
    );
    expect(cfg.defaults).toMatchObject({ iterations: 1_000_000, trials: 1000, ports: [1024, 65535], memory: 65536, seed: 2 ** 32 - 1, cpus: [64] });
    expect(cfg.targetCpus).toEqual({ a: [64] });
  });

  it('ports: two ports are accepted, one is refused', () => {
    expect(parseMatrix('defaults:\n  ports: [18001, 18002]\ntargets: {}\n', 'm.yaml').defaults.ports).toEqual([18001, 18002]);
    expect(() => parseMatrix('defaults:\n  ports: [18001]\ntargets: {}\n', 'm.yaml')).toThrow(/^m\.yaml:2:10: defaults\.ports needs at least two ports$/);
    expect(() => parseMatrix('defaults:\n  ports: 18001\ntargets: {}\n', 'm.yaml')).toThrow(/m\.yaml:2:10: defaults\.ports must be a non-empty list/);
  });

  it('ports: a port named twice is refused at its place (one server per port), as --ports refuses it', () => {
    expect(() => parseMatrix('defaults:\n  ports: [18001, 18002, 18001]\ntargets: {}\n', 'm.yaml')).toThrow(
      /^m\.yaml:2:25: port 18001 is named twice in defaults\.ports \(one HTTPS server and one connection per port\)$/,
    );
  });

  it('a vagrant target needs a suite or a box', () => {
    expect(() => parseMatrix('targets:\n  v: { backend: vagrant, memory: 2048 }\n', 'm.yaml')).toThrow(
      /^m\.yaml:2:6: target 'v' \(backend vagrant\) needs a suite \(a local box built from it\) or a box$/,
    );
    const cfg = parseMatrix('targets:\n  v: { backend: vagrant, box: debian/bookworm64 }\n  w: { backend: vagrant, suite: trixie }\n', 'm.yaml');
    expect(cfg.targets.slice(0, 2)).toEqual([
      expect.objectContaining({ name: 'v', backend: 'vagrant', box: 'debian/bookworm64' }),
      expect.objectContaining({ name: 'w', backend: 'vagrant', suite: 'trixie' }),
    ]);
  });

  it('iterations per mode: a mapping mode -> number; a mode it does not name keeps the number; a bad mode or value is an error at its place', () => {
    const d = parseMatrix('defaults:\n  iterations: { sequential: 500, interleaved: 200 }\ntargets: {}\n', 'm.yaml').defaults;
    expect(d.iterationsByMode).toEqual({ sequential: 500, interleaved: 200 });
    expect(d.iterations).toBe(200);
    expect(BUILTIN_DEFAULTS.iterationsByMode).toEqual({});
    expect(() => parseMatrix('defaults:\n  iterations: { random: 5 }\ntargets: {}\n', 'm.yaml')).toThrow(
      /m\.yaml:2:17: unknown key 'random' in defaults\.iterations \(allowed: sequential, interleaved, writes-only\)/,
    );
    expect(() => parseMatrix('defaults:\n  iterations: { sequential: 0 }\ntargets: {}\n', 'm.yaml')).toThrow(
      /m\.yaml:2:29: defaults\.iterations\.sequential is 0, out of range/,
    );
  });

  it('reads and nagle: full / off unless set; an unknown value names what is allowed', () => {
    expect(BUILTIN_DEFAULTS).toMatchObject({ reads: ['full'], nagle: 'off', cpus: [1] });
    expect(parseMatrix('defaults:\n  reads: single\n  nagle: on\ntargets: {}\n', 'm.yaml').defaults).toMatchObject({ reads: ['single'], nagle: 'on' });
    expect(parseMatrix('defaults:\n  reads: [single, full, single]\ntargets: {}\n', 'm.yaml').defaults.reads).toEqual(['single', 'full']);
    expect(parseMatrix('defaults:\n  server: [haproxy, python, haproxy]\ntargets: {}\n', 'm.yaml').defaults.servers).toEqual(['haproxy', 'python']);
    expect(() => parseMatrix('defaults:\n  reads: all\ntargets: {}\n', 'm.yaml')).toThrow(/^m\.yaml:2:10: unknown reads 'all' \(allowed: full, single\)$/);
    expect(() => parseMatrix('defaults:\n  nagle: yes\ntargets: {}\n', 'm.yaml')).toThrow(/^m\.yaml:2:10: unknown nagle 'yes' \(allowed: on, off\)$/);
    expect(() => parseMatrix('defaults:\n  nagle: false\ntargets: {}\n', 'm.yaml')).toThrow(/^m\.yaml:2:10: unknown nagle 'false' \(allowed: on, off\)$/);
  });

  it('cpus: a number or a list of distinct numbers, in defaults and per target; TargetSpec.cpus is the first', () => {
    const cfg = parseMatrix(
      'defaults:\n  cpus: [2, 1, 2]\ntargets:\n  a: { backend: qemu, suite: sid }\n  b: { backend: vagrant, suite: sid, cpus: 4 }\n  c: { backend: qemu, suite: sid, cpus: [1, 4] }\n  here: { backend: local }\n',
      'm.yaml',
    );
    expect(cfg.defaults.cpus).toEqual([2, 1]);
    expect(cfg.targetCpus).toEqual({ a: [2, 1], b: [4], c: [1, 4] });
    expect(cfg.targets.map((t) => [t.name, t.cpus])).toEqual([
      ['a', 2],
      ['b', 4],
      ['c', 1],
      ['here', undefined],
      ['local', undefined],
    ]);
    expect(parseMatrix('targets:\n  a: { backend: qemu, suite: sid }\n', 'm.yaml').targetCpus).toEqual({ a: [1] });
  });

  it.each([
    ['targets:\n  here: { backend: local, cpus: 2 }\n', /^m\.yaml:2:33: target 'here' \(backend local\) takes no cpus: it runs on this host/],
    ['defaults:\n  cpus: []\ntargets: {}\n', /^m\.yaml:2:9: defaults\.cpus must be a non-empty list$/],
    ['defaults:\n  cpus: two\ntargets: {}\n', /^m\.yaml:2:9: defaults\.cpus must be a whole number \(1\.\.64\) or a list of them \(e\.g\. \[1, 2\]\)$/],
    ['defaults:\n  cpus: 1.5\ntargets: {}\n', /^m\.yaml:2:9: defaults\.cpus must be a whole number \(1\.\.64\)/],
    ['targets:\n  a: { backend: qemu, suite: sid, cpus: [1, x] }\n', /^m\.yaml:2:45: target 'a' cpus must be a whole number \(1\.\.64\)$/],
  ])('cpus %j is refused', (text, re) => {
    expect(() => parseMatrix(text, 'm.yaml')).toThrow(re);
  });

  it('missing keys take the built-in defaults; local is always there', () => {
    // a matrix file that names local itself has it once, as it wrote it
    const own = parseMatrix('targets:\n  local: { backend: local, memory: 512 }\n', 'm.yaml').targets.filter((t) => t.name === 'local');
    expect(own).toEqual([{ name: 'local', backend: 'local', memoryMiB: 512 }]);
    const cfg = parseMatrix('targets:\n  bw: { backend: qemu, suite: bookworm, memory: 2048 }\n', 'm.yaml');
    expect(cfg.defaults).toEqual(BUILTIN_DEFAULTS);
    // the built-in values themselves, written out (BUILTIN_DEFAULTS compared with itself proves nothing)
    expect(BUILTIN_DEFAULTS).toEqual({
      variants: ['upstream', 'no-fallback', 'recv-hook', 'scoped'],
      modes: ['sequential', 'interleaved'],
      scenarios: ['preexisting', 'baseline'],
      iterations: 200,
      iterationsByMode: {},
      trials: 1,
      ports: [18001, 18002],
      trace: 'all',
      api: 'classic',
      hook: 'auto',
      memory: 1024,
      seed: 1,
      reads: ['full'],
      servers: ['python'],
      nagle: 'off',
      cpus: [1],
    });
    expect(cfg.targets.map((t) => t.name)).toEqual(['bw', 'local']);
    expect(cfg.targets[0]!.memoryMiB).toBe(2048);
    expect(cfg.targets[0]!.cpus).toBe(1);
    expect(cfg.targetCpus).toEqual({ bw: [1] });
    expect(cfg.defaultTargets).toEqual(['bw']);
  });
});

describe('resolveRun and plan', () => {
  // parsed in each test (not while the file is collected), so mutation testing sees which tests use it
  let cfg: MatrixConfig;
  beforeEach(() => {
    cfg = parseMatrix(readFileSync('matrix.yaml', 'utf8'), 'matrix.yaml');
  });
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
    expect(() => resolveRun(cfg, parseMatrixFlags(['--targets', 'buster']), env)).toThrow(
      /unknown target 'buster' \(defined in matrix.yaml: bullseye, bookworm, trixie, sid, local\)/,
    );
    expect(() => resolveRun(cfg, parseMatrixFlags(['--backend', 'qemu', '--targets', 'local']), env)).toThrow(/cannot run target 'local'/);
  });

  it('expands every cell once, in a seeded order, and shards targets', () => {
    const targets = cfg.targets.filter((t) => t.backend === 'qemu');
    const p = planMatrix({
      targets,
      variants: ['upstream', 'scoped'],
      modes: ['interleaved', 'sequential'],
      scenarios: ['preexisting', 'baseline'],
      reads: ['full'],
      cpus: {},
      trials: 1,
      seed: 3,
    });
    expect(p).toHaveLength(4);
    expect(p[0]!.cells).toHaveLength(8);
    expect(new Set(p[0]!.cells.map((c) => `${c.scenario}${c.mode}${c.variant}`)).size).toBe(8);
    const again = planMatrix({
      targets,
      variants: ['upstream', 'scoped'],
      modes: ['interleaved', 'sequential'],
      scenarios: ['preexisting', 'baseline'],
      reads: ['full'],
      cpus: {},
      trials: 1,
      seed: 3,
    });
    expect(again[0]!.cells).toEqual(p[0]!.cells);
    const shards = [1, 2].map((k) =>
      planMatrix({
        targets,
        variants: ['upstream'],
        modes: ['interleaved'],
        scenarios: ['preexisting'],
        reads: ['full'],
        cpus: {},
        trials: 1,
        seed: 1,
        shard: { k, n: 2 },
      }).map((x) => x.target.name),
    );
    expect(shards).toEqual([
      ['bullseye', 'trixie'],
      ['bookworm', 'sid'],
    ]);
  });
});

describe('host packages (provision/host-deps.sh)', () => {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  it("a failing host-deps.sh is an error of the kind asked for, with the script's own words", async () => {
    const err = await ensureHostPackages(root, ['no-such-group'], { kind: 'boot-failed' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).kind).toBe('boot-failed');
    expect((err as LabError).message).toBe('host packages are missing (provision/host-deps.sh no-such-group exited 2)');
    expect((err as LabError).detail).toMatch(/unknown group 'no-such-group' \(allowed: build images vagrant report servers\)/);
  });
});

describe('issue 13 dimensions: reads, nagle, cpus, iterations per mode', () => {
  // parsed in each test (not while the file is collected), so mutation testing sees which tests use it
  let cfg: MatrixConfig;
  beforeEach(() => {
    cfg = parseMatrix(readFileSync('matrix.yaml', 'utf8'), 'matrix.yaml');
  });
  const env = { cwd: '/w', home: '/h', now: new Date('2026-11-24T10:00:00Z'), hostCpus: 6 };

  it('flags: --reads is a list of full/single, --nagle on/off, --cpus whole numbers 1..64, each de-duplicated', () => {
    expect(parseMatrixFlags(['--reads', 'single,full,single', '--nagle', 'on', '--cpus', '2,1,2'])).toMatchObject({
      reads: ['single', 'full'],
      nagle: 'on',
      cpus: [2, 1],
    });
    expect(() => parseMatrixFlags(['--reads', 'half'])).toThrow(/--reads: unknown value 'half' \(allowed: full, single\)/);
    expect(() => parseMatrixFlags(['--nagle', 'yes'])).toThrow(/--nagle: unknown value 'yes' \(allowed: on, off\)/);
    expect(() => parseMatrixFlags(['--cpus', '0'])).toThrow(/--cpus: 0 is out of range \(allowed: 1\.\.64\)/);
    expect(() => parseMatrixFlags(['--cpus', '65'])).toThrow(/out of range/);
    expect(() => parseMatrixFlags(['--cpus', 'two'])).toThrow(/not a whole number/);
  });

  it('resolveRun: matrix.yaml values unless a flag says otherwise; local records the host CPU count', () => {
    const dflt = resolveRun(cfg, parseMatrixFlags(['--targets', 'bookworm,local']), env);
    expect(dflt).toMatchObject({ reads: ['full'], nagle: 'off', cpus: { bookworm: [1], local: [6] }, settleMs: 2000, iterationsByMode: {} });
    const f = resolveRun(cfg, parseMatrixFlags(['--targets', 'bookworm,local', '--reads', 'single', '--nagle', 'on', '--cpus', '1,2']), env);
    expect(f).toMatchObject({ reads: ['single'], nagle: 'on', cpus: { bookworm: [1, 2], local: [6] } });
  });

  it('matrix.feb5.yaml: the investigation setup, per-mode iterations that --iterations overrides', () => {
    const feb5 = parseMatrix(readFileSync('matrix.feb5.yaml', 'utf8'), 'matrix.feb5.yaml');
    expect(feb5.defaults).toMatchObject({
      variants: ['upstream', 'scoped'],
      reads: ['single'],
      nagle: 'on',
      ports: [18001, 18002],
      trace: 'all',
      iterationsByMode: { sequential: 500, interleaved: 200 },
    });
    expect(feb5.defaults.trials).toBeGreaterThanOrEqual(5);
    expect(feb5.defaultTargets).toEqual(expect.arrayContaining(['bullseye', 'bookworm', 'local']));
    const r = resolveRun(feb5, parseMatrixFlags([]), env);
    expect(r.cpus).toMatchObject({ bullseye: [1, 2], bookworm: [1, 2], local: [6] });
    expect(r.iterationsByMode).toEqual({ sequential: 500, interleaved: 200 });
    expect(resolveRun(feb5, parseMatrixFlags(['--iterations', '20']), env)).toMatchObject({ iterations: 20, iterationsByMode: {} });
  });

  it('refuses several vCPU counts on a Vagrant target (its Vagrantfile has one machine per target)', () => {
    expect(() => resolveRun(cfg, parseMatrixFlags(['--backend', 'vagrant', '--targets', 'bookworm', '--cpus', '1,2']), env)).toThrow(/one machine per target/);
    expect(resolveRun(cfg, parseMatrixFlags(['--backend', 'vagrant', '--targets', 'bookworm', '--cpus', '2']), env).cpus).toEqual({ bookworm: [2] });
  });

  it('plan: one boot per (target, cpus) named <target>-<N>cpu unless N is 1, cells per reads, local keeps its name', () => {
    const targets = [
      { name: 'bookworm', backend: 'qemu' as const, suite: 'bookworm' },
      { name: 'local', backend: 'local' as const },
    ];
    const p = planMatrix({
      targets,
      variants: ['upstream', 'scoped'],
      modes: ['interleaved'],
      scenarios: ['preexisting'],
      reads: ['full', 'single'],
      cpus: { bookworm: [1, 2], local: [6] },
      trials: 1,
      seed: 1,
    });
    expect(p.map((x) => [x.instance, x.target.cpus])).toEqual([
      ['bookworm', 1],
      ['bookworm-2cpu', 2],
      ['local', 6],
    ]);
    for (const b of p) {
      expect(b.cells).toHaveLength(4);
      expect(new Set(b.cells.map((c) => `${c.reads}/${c.variant}`)).size).toBe(4);
      expect(b.cells.every((c) => c.cpus === b.target.cpus && c.target === b.target.name)).toBe(true);
    }
    // Shards deal targets, so both boots of bookworm are on one shard.
    const s1 = planMatrix({
      targets,
      variants: ['upstream'],
      modes: ['interleaved'],
      scenarios: ['preexisting'],
      reads: ['full'],
      cpus: { bookworm: [1, 2], local: [6] },
      trials: 1,
      seed: 1,
      shard: { k: 1, n: 2 },
    });
    expect(s1.map((x) => x.instance)).toEqual(['bookworm', 'bookworm-2cpu']);
  });
});

describe('flags: edges (each would let a wrong run through)', () => {
  it.each([
    [['--iterations', '1000001'], /--iterations: 1000001 is out of range \(allowed: 1\.\.1000000\)/],
    [['--trials', '1001'], /--trials: 1001 is out of range \(allowed: 1\.\.1000\)/],
    [['--trials', '0'], /--trials: 0 is out of range \(allowed: 1\.\.1000\)/],
    [['--parallel', '65'], /--parallel: 65 is out of range \(allowed: 1\.\.64\)/],
    [['--parallel', '0'], /--parallel: 0 is out of range/],
    [['--seed', '4294967296'], /--seed: 4294967296 is out of range \(allowed: 0\.\.4294967295\)/],
    [['--seed=-1'], /--seed: '-1' is not a whole number \(allowed: 0\.\.4294967295\)/],
    [['--seed', '1e3'], /--seed: '1e3' is not a whole number/],
    [['--seed', ' 7'], /--seed: ' 7' is not a whole number/],
    [['--cpus', '65'], /--cpus: 65 is out of range \(allowed: 1\.\.64\)/],
    [['--cpus', '0'], /--cpus: 0 is out of range/],
    [['--ports', '18001,65536'], /--ports: 65536 is out of range \(allowed: 1024\.\.65535\)/],
    [['--ports', '1023,18001'], /--ports: 1023 is out of range/],
    [['--ports', '18001,18001'], /--ports: give at least two ports/], // one port twice is one connection
    [['--shard', '0/4'], /--shard: '0\/4' must be K\/N with 1 <= K <= N/],
    [['--shard', '1/0'], /--shard: '1\/0' must be K\/N/],
    [['--shard', '2'], /--shard: '2' must be K\/N/],
    [['--shard', 'x1/2'], /--shard: 'x1\/2' must be K\/N/],
    [['--shard', '1/2x'], /--shard: '1\/2x' must be K\/N/],
    [['--reads', 'half'], /--reads: unknown value 'half' \(allowed: full, single\)/],
    [['--trace', 'servers'], /--trace: unknown value 'servers' \(allowed: all, client, server\)/],
    [['--server', 'apache'], /--server: unknown value 'apache' \(allowed: python, nginx-proxy, haproxy\)/],
    [['--server', ''], /--server needs at least one value \(allowed: python, nginx-proxy, haproxy\)/],
    [['--hook', 'fentry'], /--hook: unknown value 'fentry'/],
    [['--targets', ' , '], /--targets needs at least one value$/],
    [['--ports', ','], /^--ports needs at least one value$/],
    [['--variants', ','], /^--variants needs at least one value \(allowed: upstream, no-fallback, recv-hook, scoped\)$/],
    [['--modes', ''], /^--modes needs at least one value \(allowed: sequential, interleaved, writes-only\)$/],
    [['--scenarios', 'later'], /^--scenarios: unknown value 'later' \(allowed: preexisting, baseline\)$/],
    [['--api', 'new'], /^--api: unknown value 'new' \(allowed: classic, ex\)$/],
    [['--nagle', 'maybe'], /^--nagle: unknown value 'maybe' \(allowed: on, off\)$/],
    [['--backend', 'docker'], /^--backend: unknown value 'docker' \(allowed: qemu, vagrant, local\)$/],
    [['--iterations', 'x'], /^--iterations: 'x' is not a whole number \(allowed: 1\.\.1000000\)$/],
    [['--bogus'], /^Unknown option '--bogus'.* \(valid flags: --help --config --backend /],
  ])('%j is refused with what is allowed', (argv, re) => {
    expect(() => parseMatrixFlags(argv)).toThrow(ConfigError);
    expect(() => parseMatrixFlags(argv)).toThrow(re);
  });

  it('the largest and smallest allowed values are accepted', () => {
    expect(
      parseMatrixFlags(['--iterations', '1000000', '--trials', '1000', '--parallel', '64', '--seed', '4294967295', '--cpus', '64', '--ports', '1024,65535']),
    ).toMatchObject({ iterations: 1_000_000, trials: 1000, parallel: 64, seed: 2 ** 32 - 1, cpus: [64], ports: [1024, 65535] });
    expect(parseMatrixFlags(['--iterations', '1', '--trials', '1', '--parallel', '1', '--seed', '0', '--cpus', '1'])).toMatchObject({
      iterations: 1,
      trials: 1,
      parallel: 1,
      seed: 0,
      cpus: [1],
    });
  });

  it('--ports with exactly two ports (the default 18001,18002) is accepted, in order', () => {
    expect(parseMatrixFlags(['--ports', '18001,18002']).ports).toEqual([18001, 18002]);
    expect(parseMatrixFlags(['--ports', '18002, 18001']).ports).toEqual([18002, 18001]);
  });

  it('--shard K/N: K and N of several digits', () => {
    expect(parseMatrixFlags(['--shard', '10/12']).shard).toEqual({ k: 10, n: 12 });
  });

  it('--shard K/N: 1/1 and N/N are accepted', () => {
    expect(parseMatrixFlags(['--shard', '1/1']).shard).toEqual({ k: 1, n: 1 });
    expect(parseMatrixFlags(['--shard', '4/4']).shard).toEqual({ k: 4, n: 4 });
  });

  it('lists are trimmed and de-duplicated, in the order given', () => {
    const f = parseMatrixFlags([
      '--variants',
      'scoped, upstream,scoped,,upstream',
      '--targets',
      'sid,bookworm,sid',
      '--modes',
      'interleaved,interleaved',
      '--scenarios',
      'baseline,preexisting,baseline',
      '--reads',
      'single,full,single',
      '--cpus',
      '2,1,2',
      '--ports',
      '19001,19002,19001',
    ]);
    expect(f).toMatchObject({
      variants: ['scoped', 'upstream'],
      targets: ['sid', 'bookworm'],
      modes: ['interleaved'],
      scenarios: ['baseline', 'preexisting'],
      reads: ['single', 'full'],
      cpus: [2, 1],
      ports: [19001, 19002],
    });
  });

  it('flags not given are undefined (matrix.yaml decides), booleans false', () => {
    const f = parseMatrixFlags([]);
    expect(f).toEqual({ help: false, keep: false, rebuild: false, force: false });
    expect(parseMatrixFlags(['-h', '--rebuild', '--force', '--keep'])).toMatchObject({ help: true, rebuild: true, force: true, keep: true });
    expect(
      parseMatrixFlags([
        '--config',
        'c.yaml',
        '--out',
        'o',
        '--cache',
        'k',
        '--resume',
        'r',
        '--trace',
        'client',
        '--api',
        'ex',
        '--hook',
        'tracepoint',
        '--nagle',
        'on',
      ]),
    ).toMatchObject({ config: 'c.yaml', out: 'o', cache: 'k', resume: 'r', trace: 'client', api: 'ex', hook: 'tracepoint', nagle: 'on' });
  });
});

describe('plan: the seeded order', () => {
  const input = (seed: number) => ({
    targets: [
      { name: 'a', backend: 'qemu' as const, suite: 'bookworm' as const },
      { name: 'b', backend: 'qemu' as const, suite: 'sid' as const },
    ],
    variants: ['upstream', 'scoped'] as ('upstream' | 'scoped')[],
    modes: ['interleaved', 'sequential'] as ('interleaved' | 'sequential')[],
    scenarios: ['preexisting'] as 'preexisting'[],
    reads: ['full'] as 'full'[],
    cpus: {},
    trials: 1,
    seed,
  });
  const order = (seed: number, boot = 0) => planMatrix(input(seed))[boot]!.cells.map((c) => `${c.mode}/${c.variant}`);

  it('seed 1 gives this order (pinned: a change of the shuffle or the generator shows here)', () => {
    // unshuffled it would be interleaved/upstream, interleaved/scoped, sequential/upstream, sequential/scoped
    expect(order(1)).toEqual(['sequential/scoped', 'interleaved/scoped', 'interleaved/upstream', 'sequential/upstream']);
  });

  it('another seed, another order; each boot its own order (seed + boot index)', () => {
    expect(order(2)).not.toEqual(order(1));
    expect(order(1, 1)).toEqual(order(2, 0));
    expect(order(1, 1)).not.toEqual(order(1, 0));
  });

  it('the order is a permutation of every cell', () => {
    for (const seed of [0, 1, 2, 3, 4294967295])
      expect([...order(seed)].sort()).toEqual(['interleaved/scoped', 'interleaved/upstream', 'sequential/scoped', 'sequential/upstream']);
  });
});

describe('--help', () => {
  it('documents every flag the parser takes, and each list of allowed values', () => {
    for (const f of FLAG_NAMES) expect(HELP, `--${f} missing from --help`).toMatch(new RegExp(`--${f}\\b`));
    expect(HELP).toContain('--backend B           run the targets with this backend: qemu | vagrant | local');
    expect(HELP).toContain('--variants V,...      upstream, no-fallback, recv-hook, scoped');
    expect(HELP).toContain('--modes M,...         sequential, interleaved, writes-only');
    expect(HELP).toContain('--scenarios S,...     preexisting, baseline');
    expect(HELP).toContain('--trace SCOPE         all | client | server:');
    expect(HELP).toContain('--server S,...        python, nginx-proxy, haproxy:');
    expect(HELP).toContain('--api A               classic | ex:');
    expect(HELP).toContain('--hook H              auto | kprobe | tracepoint:');
    expect(HELP).toContain('--reads R,...         full, single:');
    expect(HELP).toContain('--nagle N             on | off:');
    expect(HELP).toContain('one boot per value (1..64)');
    expect(HELP).toMatch(/^Usage: npx zx scripts\/matrix\.mjs \[flags\]/);
    expect(HELP).toContain('Exit codes: 0 every cell ran and met its expectation; 1 a verdict was not as expected;');
  });
});

describe('matrix.yaml: each structural error, exactly as reported', () => {
  it.each([
    ['- a\n- b\n', 'm.yaml:1:1: the matrix file must be a mapping with keys defaults, targets, default_targets, vagrant, client, tracer'],
    ['defaults:\n  modes: x\ntargets: {}\n', 'm.yaml:2:10: defaults.modes must be a non-empty list'],
    ['defaults:\n  scenarios: x\ntargets: {}\n', 'm.yaml:2:14: defaults.scenarios must be a non-empty list'],
    ['defaults:\n  scenarios: [x]\ntargets: {}\n', "m.yaml:2:15: unknown scenario 'x' (allowed: preexisting, baseline)"],
    ['defaults:\n  modes: [x]\ntargets: {}\n', "m.yaml:2:11: unknown mode 'x' (allowed: sequential, interleaved, writes-only)"],
    ['targets:\n  a: { backend: qemu }\n', "m.yaml:2:6: target 'a' (backend qemu) needs a suite (allowed: bullseye, bookworm, trixie, sid)"],
    // a key that is not a scalar (YAML's `? [a, b]`) is named '?', never taken as a string
    ['? [a, b]\n: 1\ntargets: {}\n', "m.yaml:1:3: unknown key '?' in the matrix file (allowed: defaults, targets, default_targets, vagrant, client, tracer)"],
    ['defaults:\n  api: x\ntargets: {}\n', "m.yaml:2:8: unknown api 'x' (allowed: classic, ex)"],
    ['defaults:\n  hook: x\ntargets: {}\n', "m.yaml:2:9: unknown hook 'x' (allowed: auto, kprobe, tracepoint)"],
    ['defaults:\n  reads: []\ntargets: {}\n', 'm.yaml:2:10: defaults.reads must be a non-empty list'],
    ['defaults:\n  reads: [x]\ntargets: {}\n', "m.yaml:2:11: unknown reads 'x' (allowed: full, single)"],
    ['defaults:\n  reads: {}\ntargets: {}\n', 'm.yaml:2:10: reads must be a string'],
    ['defaults:\n  server: []\ntargets: {}\n', 'm.yaml:2:11: defaults.server must be a non-empty list'],
    ['defaults:\n  server: x\ntargets: {}\n', "m.yaml:2:11: unknown server 'x' (allowed: python, nginx-proxy, haproxy)"],
    ['defaults:\n  server: [x]\ntargets: {}\n', "m.yaml:2:12: unknown server 'x' (allowed: python, nginx-proxy, haproxy)"],
    ['default_targets: x\ntargets: {}\n', 'm.yaml:1:18: default_targets must be a non-empty list'],
    ['default_targets: [[x]]\ntargets: {}\n', 'm.yaml:1:19: a target name must be a string'],
    ['client: { src: [x] }\ntargets: {}\n', 'm.yaml:1:16: client.src must be a string'],
    ['defaults: {}\n', "m.yaml:1:1: missing key 'targets'"],
    ['targets: [a, b]\n', 'm.yaml:1:10: targets must be a mapping of name -> { backend, suite | box, memory, cpus }'],
    [
      'defaults: [1]\ntargets: {}\n',
      'm.yaml:1:11: defaults must be a mapping (keys: variants, modes, scenarios, iterations, trials, ports, trace, api, hook, memory, seed, reads, server, nagle, cpus)',
    ],
    ['targets:\n  a:\n', "m.yaml:2:5: target 'a' must be a mapping (keys: backend, suite, box, memory, cpus)"],
    ['targets:\n  a: { suite: sid }\n', "m.yaml:2:6: target 'a' needs a backend (allowed: qemu, vagrant, local)"],
    ['targets:\n  Big: { backend: qemu, suite: sid }\n', "m.yaml:2:3: target name 'Big' must be lower-case letters, digits, '.', '_' or '-'"],
    ['targets:\n  sid!: { backend: qemu, suite: sid }\n', "m.yaml:2:3: target name 'sid!' must be lower-case letters, digits, '.', '_' or '-'"],
    ['targets:\n  a: { backend: vagrant, box: 7 }\n', 'm.yaml:2:31: box must be a string'],
    [
      'targets:\n  l: { backend: local, cpus: 2 }\n',
      "m.yaml:2:30: target 'l' (backend local) takes no cpus: it runs on this host, whose CPU count the report records",
    ],
    [
      'targets:\n  a: { backend: qemu, suite: sid, cpus: two }\n',
      "m.yaml:2:41: target 'a' cpus must be a whole number (1..64) or a list of them (e.g. [1, 2])",
    ],
    ['defaults:\n  nagle: false\ntargets: {}\n', "m.yaml:2:10: unknown nagle 'false' (allowed: on, off)"],
    ['defaults:\n  trace: 1\ntargets: {}\n', "m.yaml:2:10: unknown trace scope '1' (allowed: all, client, server)"],
    ['defaults:\n  trials: 1.5\ntargets: {}\n', 'm.yaml:2:11: defaults.trials must be a whole number (1..1000)'],
    ['defaults:\n  variants: []\ntargets: {}\n', 'm.yaml:2:13: defaults.variants must be a non-empty list'],
    [
      'defaults:\n  iterations: { random: 5 }\ntargets: {}\n',
      "m.yaml:2:17: unknown key 'random' in defaults.iterations (allowed: sequential, interleaved, writes-only)",
    ],
    ['targets: {}\nvagrant: { sandboxed: maybe }\n', 'm.yaml:2:23: vagrant.sandboxed must be true or false'],
    ['targets: {}\nvagrant: { boxed: true }\n', "m.yaml:2:12: unknown key 'boxed' in vagrant (allowed: sandboxed)"],
    ['targets: {}\ndefault_targets: [7]\n', 'm.yaml:2:19: a target name must be a string'],
  ])('%j', (text, message) => {
    let err: unknown;
    try {
      parseMatrix(text, 'm.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(message);
  });

  it('the values that are not errors: vagrant.sandboxed false, a box target, default_targets, local implied', () => {
    const cfg = parseMatrix(
      'targets:\n  a: { backend: vagrant, box: debian/bookworm64, cpus: [2, 1, 2] }\n  b: { backend: qemu, suite: sid }\ndefault_targets: [b, local]\nvagrant: { sandboxed: false }\n',
      'm.yaml',
    );
    expect(cfg.vagrant).toEqual({ sandboxed: false });
    expect(cfg.defaultTargets).toEqual(['b', 'local']);
    expect(cfg.targets).toEqual([
      { name: 'a', backend: 'vagrant', box: 'debian/bookworm64', memoryMiB: 1024, cpus: 2 },
      { name: 'b', backend: 'qemu', suite: 'sid', memoryMiB: 1024, cpus: 1 },
      { name: 'local', backend: 'local' },
    ]);
    expect(cfg.targetCpus).toEqual({ a: [2, 1], b: [1] });
    expect(parseMatrix('targets: {}\n', 'm.yaml')).toMatchObject({ vagrant: { sandboxed: true }, defaultTargets: [], defaults: BUILTIN_DEFAULTS });
  });
});

describe('matrix.yaml: a file that cannot be read', () => {
  // The file's path and the system's reason, as one ConfigError (the CLI prints it and exits 2).
  const here = dirname(fileURLToPath(import.meta.url));
  it.each([
    ['missing', resolve(here, 'no-such-matrix.yaml'), /: ENOENT: no such file or directory/],
    ['a folder', here, /: EISDIR: illegal operation on a directory/],
  ])('%s: names the file and why', async (_, file, why) => {
    const err = await loadMatrix(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message.startsWith(`cannot read matrix file ${file}: `)).toBe(true);
    expect((err as ConfigError).message).toMatch(why);
  });
});

describe('matrix.yaml: a value of the wrong shape is an error, never a silently dropped key or target', () => {
  it.each([
    ['a box that is a mapping', 'targets:\n  a: { backend: vagrant, box: { name: x } }\n', /box must be a string/],
    ['a suite that is a list', 'targets:\n  a: { backend: qemu, suite: [sid] }\n', /suite must be a string|unknown suite/],
    ['trials as a list', 'defaults:\n  trials: [1]\ntargets: {}\n', /defaults\.trials must be a whole number \(1\.\.1000\)/],
    ['memory as a string', 'targets:\n  a: { backend: qemu, suite: sid, memory: lots }\n', /memory \(MiB\) must be a whole number \(256\.\.65536\)/],
    ['sandboxed as a list', 'targets: {}\nvagrant: { sandboxed: [true] }\n', /vagrant\.sandboxed must be true or false/],
    ['a trace scope left empty', 'defaults:\n  trace:\ntargets: {}\n', /trace scope must be a string/],
    ['a trace scope as a list', 'defaults:\n  trace: [all]\ntargets: {}\n', /trace scope must be a string/],
    ['a target name that is a number', 'targets:\n  7: { backend: qemu, suite: sid }\n', /a target name must be a string/],
  ])('%s', (_what, text, re) => {
    expect(() => parseMatrix(text, 'm.yaml')).toThrow(ConfigError);
    expect(() => parseMatrix(text, 'm.yaml')).toThrow(re);
  });
});
