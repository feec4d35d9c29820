// The server dimension (issue 10): flags and matrix.yaml, the plan's cells and folders, the
// servers' command line, the trace scope's process name, and what the analysis counts of rows on
// a terminator's backend tuples. Each would let a wrong cell through if it broke.
import { describe, expect, it } from 'vitest';
import { parseMatrixFlags } from '../src/cli/flags.ts';
import { parseMatrix } from '../src/config/matrix.ts';
import { resolveRun } from '../src/cli/run.ts';
import { ConfigError } from '../src/errors.ts';
import { planMatrix, rng, shuffle } from '../src/plan/plan.ts';
import { cellDir, summarizeCell, type TrialResult } from '../src/analysis/cell.ts';
import { attributeTrial } from '../src/analysis/attribution.ts';
import { cellInputs } from '../src/plan/resume.ts';
import { serverArgv, serverComm } from '../src/scenario/run.ts';
import { colOf, declaredCols } from '../src/report/view.ts';
import { renderMatrixMd } from '../src/report/matrix-md.ts';
import { renderJunit } from '../src/report/junit.ts';
import type { CellId } from '../src/domain.ts';
import { monitoringRow } from './helpers/tls-events.ts';

const env = { cwd: '/w', home: '/h', now: new Date('2026-12-01T10:00:00Z'), hostCpus: 2 };
const yaml = (servers: string) => `defaults:\n  server: ${servers}\ntargets:\n  bw: { backend: qemu, suite: bookworm }\n`;

describe('server: flags and matrix.yaml', () => {
  it('--server is a de-duplicated list of python, nginx-proxy, haproxy; matrix.yaml servers a list or one value', () => {
    expect(parseMatrixFlags(['--server', 'haproxy,nginx-proxy,haproxy']).servers).toEqual(['haproxy', 'nginx-proxy']);
    expect(() => parseMatrixFlags(['--server', 'nginx'])).toThrow(/--server: unknown value 'nginx' \(allowed: python, nginx-proxy, haproxy\)/);
    expect(parseMatrix(yaml('[python, haproxy, python]'), 'm.yaml').defaults.servers).toEqual(['python', 'haproxy']);
    expect(parseMatrix(yaml('nginx-proxy'), 'm.yaml').defaults.servers).toEqual(['nginx-proxy']);
    expect(() => parseMatrix(yaml('[python, apache]'), 'm.yaml')).toThrow(ConfigError);
    expect(() => parseMatrix(yaml('[python, apache]'), 'm.yaml')).toThrow(/m\.yaml:2:20: unknown server 'apache' \(allowed: python, nginx-proxy, haproxy\)/);
  });

  it('resolveRun: matrix.yaml servers unless --server says otherwise; the default is python only', () => {
    const cfg = parseMatrix(yaml('[python, haproxy]'), 'm.yaml');
    expect(resolveRun(cfg, parseMatrixFlags([]), env).servers).toEqual(['python', 'haproxy']);
    expect(resolveRun(cfg, parseMatrixFlags(['--server', 'nginx-proxy']), env).servers).toEqual(['nginx-proxy']);
    const builtin = parseMatrix('targets:\n  bw: { backend: qemu, suite: bookworm }\n', 'm.yaml');
    expect(resolveRun(builtin, parseMatrixFlags([]), env).servers).toEqual(['python']);
  });
});

describe('server: plan, folders, inputs', () => {
  const plan = (servers?: NonNullable<CellId['server']>[]) =>
    planMatrix({
      targets: [{ name: 'bw', backend: 'qemu', suite: 'bookworm' }],
      variants: ['upstream', 'scoped'],
      modes: ['interleaved'],
      scenarios: ['preexisting', 'baseline'],
      reads: ['full'],
      ...(servers ? { servers } : {}),
      cpus: {},
      trials: 1,
      seed: 1,
    })[0]!.cells;

  it('every server is a cell set of its own, each in its own folder; python keeps the folder names it had', () => {
    const cells = plan(['python', 'nginx-proxy', 'haproxy']);
    expect(cells).toHaveLength(12);
    for (const s of ['python', 'nginx-proxy', 'haproxy']) expect(cells.filter((c) => c.server === s)).toHaveLength(4);
    const dirs = cells.map(cellDir);
    expect(new Set(dirs).size).toBe(12);
    expect(dirs).toContain('preexisting-interleaved-upstream');
    expect(dirs).toContain('preexisting-interleaved-upstream-nginx-proxy');
    expect(dirs).toContain('baseline-interleaved-scoped-haproxy');
    expect(cellDir({ scenario: 'preexisting', mode: 'sequential', variant: 'upstream', reads: 'single', server: 'haproxy' })).toBe(
      'preexisting-sequential-upstream-single-haproxy',
    );
    expect(plan().every((c) => c.server === 'python')).toBe(true);
  });

  it("one server's cells run together (its servers start once), each group in a seeded order; python alone keeps the order it had", () => {
    const cells = plan(['haproxy', 'python', 'nginx-proxy']);
    expect(cells.map((c) => c.server)).toEqual([...Array(4).fill('haproxy'), ...Array(4).fill('python'), ...Array(4).fill('nginx-proxy')]);
    const key = (c: CellId) => `${c.scenario}/${c.variant}`;
    // the same seed, the same order; python alone: the shuffle of the whole list, as before servers were a dimension
    expect(plan(['haproxy', 'python', 'nginx-proxy']).map(key)).toEqual(cells.map(key));
    const alone = plan(['python']).map(key);
    const before = shuffle(
      ['preexisting', 'baseline'].flatMap((scenario) => ['upstream', 'scoped'].map((variant) => `${scenario}/${variant}`)),
      rng(1),
    );
    expect(alone).toEqual(before);
    expect(plan().map(key)).toEqual(before);
  });

  it("a cell's inputs differ by server; a python cell's inputs are those it had before servers were a dimension", () => {
    const s = { iterations: 200, trials: 1, ports: [18001, 18002], trace: 'all', api: 'classic', hook: 'auto', nagle: 'off', settleMs: 2000 };
    const id = { target: 'bw', cpus: 1, reads: 'full', scenario: 'preexisting', mode: 'interleaved', variant: 'upstream' } as const;
    const old = cellInputs(id, s, 'src', { suite: 'bookworm' }).hash;
    expect(cellInputs({ ...id, server: 'python' }, s, 'src', { suite: 'bookworm' }).hash).toBe(old);
    const n = cellInputs({ ...id, server: 'nginx-proxy' }, s, 'src', { suite: 'bookworm' }).hash;
    const h = cellInputs({ ...id, server: 'haproxy' }, s, 'src', { suite: 'bookworm' }).hash;
    expect(new Set([old, n, h]).size).toBe(3);
  });

  it("a report column names a terminator after the variant; python's column is the variant's", () => {
    expect(colOf({ variant: 'upstream', reads: 'full', server: 'python' })).toBe('upstream');
    expect(colOf({ variant: 'upstream', reads: 'full' })).toBe('upstream');
    expect(colOf({ variant: 'scoped', reads: 'single', server: 'haproxy' })).toBe('scoped single haproxy');
  });
});

describe("server: the servers' command line and the traced process", () => {
  const tools = { python: '/usr/bin/python3', server: '/w/client/https_server.py', terminator: '/w/client/tls_terminator.py' };
  const spec = { ports: [18001, 18002], nagle: 'off' } as const;
  it('python runs our server; a terminator runs tls_terminator.py with its kind, the ports and a folder of its own: argv, never a shell string', () => {
    expect(serverArgv({ ...spec, server: 'python' }, tools, '/s')).toEqual([
      '/usr/bin/python3',
      '/w/client/https_server.py',
      '--ports',
      '18001,18002',
      '--nagle',
      'off',
      '--quiet',
    ]);
    expect(serverArgv({ ...spec, server: 'nginx-proxy' }, tools, '/s')).toEqual([
      '/usr/bin/python3',
      '/w/client/tls_terminator.py',
      '--server',
      'nginx',
      '--ports',
      '18001,18002',
      '--nagle',
      'off',
      '--quiet',
      '--dir',
      '/s/nginx-proxy',
    ]);
    expect(serverArgv({ ...spec, server: 'haproxy', nagle: 'on' }, tools, '/s d;x')).toContain('/s d;x/haproxy');
    expect(serverArgv({ ...spec, server: 'haproxy' }, tools, '/s').slice(2, 4)).toEqual(['--server', 'haproxy']);
  });
  it("--trace server traces the process that calls SSL_read/SSL_write: nginx's worker, haproxy, or python's name (15 characters at most)", () => {
    expect(serverComm('nginx-proxy', tools)).toBe('nginx');
    expect(serverComm('haproxy', tools)).toBe('haproxy');
    expect(serverComm('python', tools)).toBe('python3');
    expect(serverComm('python', { python: '/opt/py/bin/python3.11-debug-build' })).toBe('python3.11-debu');
  });
});

describe('server: rows on backend tuples and buffers without a tuple', () => {
  const conns = [
    { k: 1, lport: 40001, rport: 18001 },
    { k: 2, lport: 40002, rport: 18002 },
  ];
  const row = (path: string, client: number, server: number) => monitoringRow(path, server, client);
  const rows = [
    row('/200/conn1-iter0', 40001, 18001), // right
    row('/200/conn1-iter1', 40002, 18002), // wrong: on conn 2
    row('/200/conn2-iter0', 51000, 37123), // on a backend tuple
    row('/200/conn1-iter2', 51001, 37124), // on a backend tuple
    row('/other', 51002, 37125), // names no request of the run: not counted
  ];

  it('a row naming a request of the run on a tuple of no client connection is a backend row: neither right nor wrong, and the request is still lost', () => {
    const a = attributeTrial({ rows: rows as never, events: [], conns, iterations: 3, clientPid: null });
    expect(a).toMatchObject({ correct: 1, wrong: 1, captured: 2, backendRows: 2, expected: 6, lost: 4 });
  });

  const cell = (
    backend: number,
    wrong: number,
    variant: 'upstream' | 'scoped' | 'no-fallback',
    scenario: 'preexisting' | 'baseline' = 'preexisting',
  ): TrialResult => ({
    trial: 1,
    status: 'ok',
    attribution: {
      expected: 4,
      captured: 4,
      correct: 4 - wrong,
      wrong,
      lost: 0,
      backendRows: backend,
      capturedRequests: 4,
      byConn: [],
      truth: { writes: { correct: 0, wrong: 0, lost: 4 }, reads: { correct: 0, wrong: 0, lost: 4 } },
    },
    tracerStats: { dropped_no_tuple: 3 },
  });
  const id = (variant: CellId['variant'], scenario: CellId['scenario'] = 'preexisting'): CellId => ({
    target: 'bw',
    cpus: 1,
    server: 'nginx-proxy',
    reads: 'full',
    variant,
    mode: 'interleaved',
    scenario,
  });

  it('a cell sums backend rows and dropped buffers; a fix or a baseline with rows on backend tuples fails, upstream with only those reproduces the race', () => {
    const up = summarizeCell(id('upstream'), {}, [cell(5, 0, 'upstream'), cell(2, 0, 'upstream')]);
    expect(up).toMatchObject({ backendRows: 7, droppedNoTuple: 6, wrong: 0 });
    expect(up.verdict.pass).toBe(true);
    expect(up.verdict.reason).toContain('7 on backend tuples');
    expect(summarizeCell(id('upstream'), {}, [cell(0, 0, 'upstream')]).verdict.pass).toBe(false);
    expect(summarizeCell(id('scoped'), {}, [cell(1, 0, 'scoped')]).verdict).toMatchObject({
      pass: false,
      reason: '0 wrong rows, 1 on backend tuples, capture 100.0 %',
    });
    expect(summarizeCell(id('scoped'), {}, [cell(0, 0, 'scoped')]).verdict.pass).toBe(true);
    expect(summarizeCell(id('upstream', 'baseline'), {}, [cell(1, 0, 'upstream')]).verdict.pass).toBe(false);
    expect(summarizeCell(id('no-fallback'), {}, [cell(1, 0, 'no-fallback')]).verdict.pass).toBe(false);
    expect(summarizeCell(id('no-fallback'), {}, [cell(0, 0, 'no-fallback')]).verdict.pass).toBe(true);
    expect(summarizeCell(id('upstream'), {}, [{ trial: 1, status: 'ok', attribution: cell(0, 1, 'upstream').attribution! }]).droppedNoTuple).toBeNull();
  });
});

describe('server: every cell its own name across the reports', () => {
  it('junit.xml names a cell by scenario/mode/variant, then single and the terminator: no two cells of a target share a name', () => {
    const ids: CellId[] = [];
    for (const server of ['python', 'nginx-proxy', 'haproxy'] as const)
      for (const reads of ['full', 'single'] as const)
        ids.push({ target: 'bw', boot: 'bw', cpus: 1, server, reads, variant: 'upstream', mode: 'interleaved', scenario: 'preexisting' });
    const cells = ids.map((id) => summarizeCell(id, { kernel: '6.1.0', openssl: '3.0.15' }, [{ trial: 1, status: 'client-failed', error: 'x' }]));
    const manifest = {
      runId: 'r',
      tool: { commit: 'c', dirty: false, node: 'v20' },
      startedAt: 't',
      argv: [],
      seed: 1,
      iterations: 1,
      trials: 1,
      variants: [],
      modes: [],
      scenarios: [],
      targets: [],
    };
    const names = [...renderJunit(manifest, cells).matchAll(/<testcase [^>]*name="([^"]+)"/g)].map((m) => m[1]);
    expect(names.sort()).toEqual(
      [
        'preexisting/interleaved/upstream',
        'preexisting/interleaved/upstream/single',
        'preexisting/interleaved/upstream/nginx-proxy',
        'preexisting/interleaved/upstream/single/nginx-proxy',
        'preexisting/interleaved/upstream/haproxy',
        'preexisting/interleaved/upstream/single/haproxy',
      ].sort(),
    );
  });
});

describe("server: the matrix's columns", () => {
  it('summary.md and summary.html group the columns by server in the order the run gave them, then by reads, then the variants', () => {
    const m = { variants: ['upstream', 'scoped'], reads: ['full', 'single'], servers: ['python', 'haproxy'] };
    expect(declaredCols(m)).toEqual([
      'upstream',
      'scoped',
      'upstream single',
      'scoped single',
      'upstream haproxy',
      'scoped haproxy',
      'upstream single haproxy',
      'scoped single haproxy',
    ]);
    expect(declaredCols({ variants: ['upstream'] })).toEqual(['upstream']);
    const cells = (['haproxy', 'python', 'nginx-proxy'] as const).flatMap((server) =>
      (['scoped', 'upstream'] as const).map((variant) =>
        summarizeCell(
          { target: 'bw', boot: 'bw', cpus: 1, server, reads: 'full', variant, mode: 'interleaved', scenario: 'preexisting' },
          { kernel: 'k', openssl: 'o' },
          [{ trial: 1, status: 'client-failed' }],
        ),
      ),
    );
    const header = renderMatrixMd(
      { variants: ['upstream', 'scoped'], modes: ['interleaved'], scenarios: ['preexisting'], servers: ['python', 'nginx-proxy', 'haproxy'] },
      cells,
    ).find((l) => l.startsWith('| target |'));
    expect(header).toBe(
      '| target | upstream interleaved | scoped interleaved | upstream nginx-proxy interleaved | scoped nginx-proxy interleaved | upstream haproxy interleaved | scoped haproxy interleaved |',
    );
  });
});
