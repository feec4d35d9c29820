// External tracers (issue 9, part 2): matrix.yaml tracer: checked as a whole, resolved before
// anything boots (files, placeholders, the flags that do not apply), its cells judged by the model
// variant it is expected to behave as, and its debug endpoint's answer analysed as our rows.
import { describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseMatrixFlags } from '../src/cli/flags.ts';
import { loadMatrix, parseMatrix } from '../src/config/matrix.ts';
import { DEBUG_PATH } from '../src/analysis/transactions.ts';
import { resolveRun, resolveTracer } from '../src/cli/run.ts';
import { ConfigError } from '../src/errors.ts';
import { expandTracer, type ResolvedRun } from '../src/matrix.ts';
import { queryArgs } from '../src/scenario/run.ts';
import { cellDir, summarizeCell, type TrialResult } from '../src/analysis/cell.ts';
import { analyzeTrial, parseEndpointRows } from '../src/analysis/trial.ts';
import { feb5Rows } from '../src/report/feb5.ts';
import { renderCellMd } from '../src/report/cell.ts';
import type { CellId } from '../src/domain.ts';
import { monitoringRow } from './helpers/tls-events.ts';

const ROOT = resolve(import.meta.dirname, '..');
const env = { cwd: ROOT, home: '/h', now: new Date('2026-12-01T10:00:00Z'), hostCpus: 2 };
const base = 'targets:\n  bw: { backend: qemu, suite: bookworm }\n';
const good = [
  'tracer:',
  '  label: sp-7.77',
  '  expect: scoped',
  '  files: [bin/system-probe, sp.yaml]',
  "  argv: ['{files}/system-probe', run, '--config={files}/sp.yaml', 3]",
  "  ready: { log: 'USM (is )?enabled', timeout_ms: 60000 }",
  '  query: { socket: /opt/datadog-agent/run/sysprobe.sock }',
  '',
].join('\n');

function errorOf(text: string): string {
  try {
    parseMatrix(text, 'm.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('no error');
}

describe('matrix.yaml tracer:', () => {
  it('absent or `model`: the model; a mapping: every field, with the defaults the issue names', () => {
    expect(parseMatrix(base, 'm.yaml').tracer).toBeNull();
    expect(parseMatrix(`${base}tracer: model\n`, 'm.yaml').tracer).toBeNull();
    expect(parseMatrix(base + good, 'm.yaml').tracer).toEqual({
      label: 'sp-7.77',
      expect: 'scoped',
      files: ['bin/system-probe', 'sp.yaml'],
      argv: ['{files}/system-probe', 'run', '--config={files}/sp.yaml', '3'],
      ready: { log: 'USM (is )?enabled' },
      readyTimeoutMs: 60000,
      query: { socket: '/opt/datadog-agent/run/sysprobe.sock', path: DEBUG_PATH, timeoutMs: 30000 },
      settleMs: 2000,
      stop: { signal: 'INT', timeoutMs: 30000 },
    });
    const t = parseMatrix(
      `${base}tracer:\n  label: x\n  argv: [x]\n  ready: { socket: true }\n  query: { port: 5555, path: /d, timeout_ms: 5000 }\n  settle_ms: 0\n  stop: { signal: TERM, timeout_ms: 9000 }\n`,
      'm.yaml',
    ).tracer!;
    expect(t).toMatchObject({
      expect: null,
      files: [],
      ready: { socket: true },
      readyTimeoutMs: null,
      query: { port: 5555, path: '/d', timeoutMs: 5000 },
      settleMs: 0,
    });
    expect(t.stop).toEqual({ signal: 'TERM', timeoutMs: 9000 });
  });

  it.each([
    ['label: upstream', /m\.yaml:2:10: tracer\.label 'upstream' is a model variant's name/],
    ['label: System Probe', /tracer\.label 'System Probe' must be lower-case letters/],
    [
      'expect: fixed',
      /m\.yaml:3:11: unknown tracer\.expect \(the model variant whose verdict applies\) 'fixed' \(allowed: upstream, no-fallback, recv-hook, scoped\)/,
    ],
    ["argv: 'system-probe run --config x'", /m\.yaml:5:9: tracer\.argv must be a list of arguments \(never a shell string\)/],
    ['argv: []', /tracer\.argv must be a non-empty list/],
    ['ready: { log: x, socket: true }', /tracer\.ready needs one of log: REGEX or socket: true/],
    ['ready: { timeout_ms: 5000 }', /tracer\.ready needs one of log: REGEX or socket: true/],
    ["ready: { log: '(' }", /tracer\.ready\.log is not a valid regex/],
    ['ready: { socket: false }', /tracer\.ready\.socket must be true/],
    ['query: { path: /x }', /tracer\.query needs one of socket: PATH \(a unix socket\) or port: N/],
    ['query: { socket: run/sp.sock }', /tracer\.query\.socket 'run\/sp\.sock' must be an absolute path/],
    ['query: { port: 0 }', /tracer\.query\.port is 0, out of range/],
    ['query: { socket: /s, path: network_tracer }', /tracer\.query\.path 'network_tracer' must be an absolute HTTP path/],
    ['stop: { signal: KILL }', /unknown tracer\.stop\.signal 'KILL' \(allowed: INT, TERM\)/],
    ['settle_ms: -1', /tracer\.settle_ms is -1, out of range/],
    ['colour: red', /unknown key 'colour' in tracer \(allowed: label, expect, files, argv, ready, query, settle_ms, stop\)/],
  ])('%s is refused at its place', (line, msg) => {
    const key = line.split(':')[0]!;
    const lines = good.split('\n').map((l) => (l.startsWith(`  ${key}:`) ? `  ${line}` : l));
    if (!lines.some((l) => l === `  ${line}`)) lines.splice(lines.length - 1, 0, `  ${line}`);
    expect(errorOf(lines.join('\n') + base)).toMatch(msg);
  });

  // A minimal tracer with one field replaced (or left out): every message names the field by its
  // whole path in matrix.yaml, at its line and column, and says what it must be.
  it.each([
    ['label', '  label: [x]', 'm.yaml:5:10: tracer.label must be a string'],
    ['label', '  label: sp!', "m.yaml:5:10: tracer.label 'sp!' must be lower-case letters, digits, '.', '_' or '-'"],
    ['expect', '  expect: [x]', 'm.yaml:6:11: tracer.expect (the model variant whose verdict applies) must be a string'],
    ['files', '  files: x', 'm.yaml:6:10: tracer.files must be a non-empty list'],
    ['files', '  files: [[x]]', 'm.yaml:6:11: a tracer file must be a string'],
    ['argv', '  argv: [[x]]', 'm.yaml:5:10: an argument of tracer.argv must be a string'],
    ['argv', '  argv: [x, true]', 'm.yaml:5:13: an argument of tracer.argv must be a string'],
    ['ready', '  ready: { log: [x] }', 'm.yaml:5:17: tracer.ready.log must be a string'],
    ['ready', '  ready: { socket: 3 }', 'm.yaml:5:20: tracer.ready.socket must be true or false'],
    ['ready', '  ready: { log: x, timeout_ms: 5 }', 'm.yaml:5:32: tracer.ready.timeout_ms is 5, out of range (allowed: 1000..3600000)'],
    ['ready', '  ready: 3', 'm.yaml:5:10: tracer.ready must be a mapping (keys: log, socket, timeout_ms)'],
    ['query', '  query: { socket: [x] }', 'm.yaml:5:20: tracer.query.socket must be a string'],
    ['query', '  query: { port: 5555, path: [x] }', 'm.yaml:5:30: tracer.query.path must be a string'],
    ['query', '  query: { port: 5555, path: x }', "m.yaml:5:30: tracer.query.path 'x' must be an absolute HTTP path (/...)"],
    ['query', '  query: { port: 5555, timeout_ms: 5 }', 'm.yaml:5:36: tracer.query.timeout_ms is 5, out of range (allowed: 1000..600000)'],
    ['query', '  query: { port: x }', 'm.yaml:5:18: tracer.query.port must be a whole number (1..65535)'],
    ['query', '  query: 3', 'm.yaml:5:10: tracer.query must be a mapping (keys: socket, port, path, timeout_ms)'],
    ['stop', '  stop: { timeout_ms: 5 }', 'm.yaml:6:23: tracer.stop.timeout_ms is 5, out of range (allowed: 1000..600000)'],
    ['stop', '  stop: 3', 'm.yaml:6:9: tracer.stop must be a mapping (keys: signal, timeout_ms)'],
    ['settle_ms', '  settle_ms: x', 'm.yaml:6:14: tracer.settle_ms must be a whole number (0..600000)'],
    ['label', null, "m.yaml:2:3: tracer needs label: its name, shown as the cells' variant"],
    ['argv', null, 'm.yaml:2:3: tracer needs argv: its command line, one argument an item'],
    ['ready', null, 'm.yaml:2:3: tracer needs ready: how to know it is ready: { log: REGEX } (a line of its output) or { socket: true } (its query answers)'],
    ['query', null, 'm.yaml:2:3: tracer needs query: where its debug endpoint answers: { socket: PATH } or { port: N }, and path'],
  ])('%s as %j: %s', (key, line, msg) => {
    const minimal = ['tracer:', '  label: sp', '  argv: [x]', '  ready: { socket: true }', '  query: { port: 5555 }'].filter((l) => !l.startsWith(`  ${key}:`));
    expect(
      errorOf(
        [...minimal, ...(line === null ? [] : [line])].join('\n') + '\n' + base.replace('bw: { backend: qemu, suite: bookworm }', 'l: { backend: local }'),
      ),
    ).toBe(msg);
  });

  it('needs label, argv, ready and query, each named; `tracer: 3` says what it may be', () => {
    const msg = errorOf(`${base}tracer: { files: [] }\n`);
    for (const k of ['label', 'argv', 'ready', 'query']) expect(msg).toContain(`tracer needs ${k}:`);
    expect(errorOf(`${base}tracer: 3\n`)).toMatch(/tracer must be 'model' \(the default\) or a mapping/);
  });
});

describe('the tracer resolved before anything boots', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tracer-'));
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'system-probe'), '#!/bin/sh\n');
  chmodSync(join(dir, 'bin', 'system-probe'), 0o755);
  writeFileSync(join(dir, 'sp.yaml'), 'x: 1\n');
  const file = join(dir, 'matrix.yaml');

  it("files relative to the matrix file, with sha256 and mode; the cells' one variant is the label", () => {
    const run = resolveRun(parseMatrix(base + good, file), parseMatrixFlags([]), env);
    expect(run.variants).toEqual(['sp-7.77']);
    expect(run.tracer!.files).toEqual([
      { src: join(dir, 'bin', 'system-probe'), name: 'system-probe', sha256: expect.stringMatching(/^[0-9a-f]{64}$/), mode: 0o755 },
      { src: join(dir, 'sp.yaml'), name: 'sp.yaml', sha256: expect.stringMatching(/^[0-9a-f]{64}$/), mode: 0o644 },
    ]);
    expect(resolveRun(parseMatrix(base, file), parseMatrixFlags([]), env).tracer).toBeNull();
  });

  it('every missing file named at once, with what to do; two files of one name refused; --variants refused', () => {
    const cfg = parseMatrix(base + good.replace('[bin/system-probe, sp.yaml]', '[FILL-IN/system-probe, bin/system-probe, FILL-IN/sp.yaml]'), file);
    expect(() => resolveTracer(cfg, {})).toThrow(
      new RegExp(
        `tracer\\.files: FILL-IN/system-probe \\(${dir}/FILL-IN/system-probe\\): no such file; FILL-IN/sp\\.yaml \\(.*\\): no such file: fill in the paths`,
      ),
    );
    writeFileSync(join(dir, 'system-probe'), 'other\n');
    const twice = parseMatrix(base + good.replace('[bin/system-probe, sp.yaml]', '[bin/system-probe, system-probe]'), file);
    expect(() => resolveTracer(twice, {})).toThrow(/two files are named system-probe/);
    expect(() => resolveRun(parseMatrix(base + good, file), parseMatrixFlags(['--variants', 'scoped']), env)).toThrow(
      /--variants scoped: .* runs the external tracer 'sp-7\.77' \(tracer:\), whose cells' variant is its label/,
    );
  });

  it('matrix.system-probe.yaml: valid, and until its paths are filled in it names each missing file', async () => {
    const cfg = await loadMatrix(join(ROOT, 'matrix.system-probe.yaml'));
    expect(cfg.tracer).toMatchObject({
      label: 'system-probe',
      expect: 'upstream',
      query: { socket: '/opt/datadog-agent/run/sysprobe.sock', path: DEBUG_PATH },
    });
    expect(() => resolveRun(cfg, parseMatrixFlags([]), env)).toThrow(/FILL-IN\/system-probe .*no such file; FILL-IN\/system-probe\.yaml .*no such file/);
  });

  it('matrix.lookalike.yaml: the look-alike bundled at the run start (@lookalike), judged as upstream', async () => {
    const cfg = await loadMatrix(join(ROOT, 'matrix.lookalike.yaml'));
    const run = resolveRun(cfg, parseMatrixFlags([]), env);
    expect(run.tracer!.files).toEqual([{ src: '@lookalike', name: 'usm-lookalike.cjs', sha256: '', mode: 0o644 }]);
    expect(run.tracer!.expect).toBe('upstream');
    expect(run.variants).toEqual(['lookalike-upstream']);
  });

  it('placeholders filled per target, in argv and the socket; the query by socket or port', () => {
    const t = resolveRun(parseMatrix(base + good.replace('/opt/datadog-agent/run/sysprobe.sock', "'{files}/sp.sock'"), file), parseMatrixFlags([]), env)
      .tracer as NonNullable<ResolvedRun['tracer']>;
    const x = expandTracer(
      { ...t, argv: [...t.argv, '{libssl}', '{workdir}/bpf/build/usm_tls'] },
      { files: '/tmp/r/tracer', workdir: '/root/w', libssl: '/lib/libssl.so.3' },
    );
    expect(x.argv).toEqual(['/tmp/r/tracer/system-probe', 'run', '--config=/tmp/r/tracer/sp.yaml', '3', '/lib/libssl.so.3', '/root/w/bpf/build/usm_tls']);
    expect(x.query).toEqual({ socket: '/tmp/r/tracer/sp.sock', path: DEBUG_PATH, timeoutMs: 30000 });
    expect(queryArgs(x.query)).toEqual(['--unix-socket', '/tmp/r/tracer/sp.sock', `http://unix${DEBUG_PATH}`]);
    expect(queryArgs({ port: 5555, path: '/d', timeoutMs: 1 })).toEqual(['http://127.0.0.1:5555/d']);
  });
});

const id = (variant: string, scenario: CellId['scenario'] = 'preexisting'): CellId => ({
  target: 'bw',
  cpus: 1,
  reads: 'full',
  variant,
  mode: 'interleaved',
  scenario,
});
const trial = (correct: number, wrong: number, expected = 200): TrialResult => ({
  trial: 1,
  status: 'ok',
  attribution: {
    expected,
    captured: correct + wrong,
    correct,
    wrong,
    lost: 0,
    backendRows: 0,
    capturedRequests: correct,
    byConn: [
      { k: 1, rport: 18001, rightRows: Math.ceil(correct / 2), wrongRows: Math.ceil(wrong / 2) },
      { k: 2, rport: 18002, rightRows: Math.floor(correct / 2), wrongRows: Math.floor(wrong / 2) },
    ],
    truth: { writes: { correct: 0, wrong: 0, lost: expected }, reads: { correct: 0, wrong: 0, lost: expected }, unclassifiedReads: 0 },
  },
});

describe("an external tracer's cells: judged as the variant it is expected to behave as, on rows alone", () => {
  it('expect upstream: wrong rows reproduce the race; none is a failure', () => {
    const ext = { external: { expect: 'upstream' as const } };
    expect(summarizeCell(id('sp'), ext, [trial(100, 96)]).verdict).toMatchObject({ pass: true, expectation: 'race reproduced (wrong rows)' });
    expect(summarizeCell(id('sp'), ext, [trial(196, 0)]).verdict.pass).toBe(false);
  });

  it('expect scoped: no wrong rows passes without any client-side truth (there are no events of ours)', () => {
    const ext = { external: { expect: 'scoped' as const } };
    const ok = summarizeCell(id('sp-fix'), ext, [trial(200, 0)]);
    expect(ok.verdict).toMatchObject({ pass: true, expectation: 'no wrong rows (your tracer: rows only)' });
    expect(ok.external).toEqual({ expect: 'scoped' });
    expect(summarizeCell(id('sp-fix'), ext, [trial(150, 3)]).verdict).toMatchObject({ pass: false, reason: '3 wrong of 153 rows' });
    // the same figures judged as the model's scoped (truth needed): not a pass
    expect(summarizeCell(id('scoped'), {}, [{ ...trial(100, 0), attribution: { ...trial(100, 0).attribution!, capturedRequests: 100 } }]).verdict.pass).toBe(
      false,
    );
  });

  it('no expect: measured, never a pass or a failure; a baseline still wants no wrong rows', () => {
    const ext = { external: { expect: null } };
    expect(summarizeCell(id('sp'), ext, [trial(100, 96)]).verdict).toEqual({
      pass: null,
      expectation: 'measured (tracer sp: no expect given)',
      reason: '96 wrong of 196 rows',
    });
    expect(summarizeCell(id('sp', 'baseline'), ext, [trial(100, 1)]).verdict.pass).toBe(false);
    expect(summarizeCell(id('sp', 'baseline'), ext, [trial(100, 0)]).verdict.pass).toBe(true);
  });

  it("the label is the cell's folder, its report says the truth is n/a; Feb 5 compares an upstream-expected tracer", () => {
    expect(cellDir(id('sp-7.77'))).toBe('preexisting-interleaved-sp-7.77');
    const c = summarizeCell(id('sp'), { external: { expect: 'upstream' } }, [trial(100, 96)]);
    const md = renderCellMd({ cell: c, trials: [] });
    expect(md).toContain('tracer: yours (sp, judged as upstream)');
    expect(md).toContain('n/a: an external tracer (sp) ran');
    const rows = feb5Rows([{ ...c, kernel: '6.1' }]).find((m) => m.mode === 'interleaved')!.rows;
    expect(rows.at(-1)!.who).toContain(', sp,');
    expect(rows.at(-1)!.within).not.toBeNull();
    const measured = summarizeCell(id('sp'), { external: { expect: null } }, [trial(100, 96)]);
    expect(
      feb5Rows([{ ...measured, kernel: '6.1' }])
        .find((m) => m.mode === 'interleaved')!
        .rows.at(-1)!.within,
    ).toBeNull();
  });
});

describe("the endpoint's answer analysed as our rows", () => {
  const row = (path: string, port: number) => monitoringRow(path, port);

  it('the seed formula over the rows, kept as returned; no events, so the truth is all n/a (lost)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'endpoint-'));
    const body = JSON.stringify([row('/200/conn1-iter0', 18001), row('/200/conn1-iter1', 18002), row('/200/conn2-iter0', 18002), row('/other', 18001)]);
    writeFileSync(join(dir, 'http_monitoring.json'), body);
    writeFileSync(join(dir, 'client.out'), 'READY:40001:18001:40002:18002\nDONE\n');
    const r = await analyzeTrial({ dir, trial: 1, iterations: 2, conns: [], clientPid: 123, rowsFrom: 'endpoint' });
    expect(r.status).toBe('ok');
    expect(r.attribution).toMatchObject({ expected: 4, captured: 3, correct: 2, wrong: 1, lost: 1 });
    expect(r.attribution!.truth.writes.lost).toBe(4);
    expect(r.queryTime).toEqual({ ns: null, source: 'endpoint' });
    expect(readFileSync(join(dir, 'http_monitoring.json'), 'utf8')).toBe(body);
  });

  it('an answer that is not rows is tracer-failed, saying what it was', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'endpoint-'));
    writeFileSync(join(dir, 'client.out'), 'READY:40001:18001:40002:18002\nDONE\n');
    for (const [body, msg] of [
      ['', /http_monitoring\.json\) is empty/],
      ['{"error":"module not loaded"}', /is not a JSON array of rows \(it is object\)/],
      ['[{"Path":"/x"}]', /row 0 has no Path string or Server\.Port number/],
      ['<html>', /is not JSON/],
    ] as const) {
      writeFileSync(join(dir, 'http_monitoring.json'), body);
      const r = await analyzeTrial({ dir, trial: 1, iterations: 2, conns: [], clientPid: null, rowsFrom: 'endpoint' });
      expect(r.status).toBe('tracer-failed');
      expect(r.error).toMatch(msg);
    }
    expect(parseEndpointRows('[]')).toEqual([]);
  });
});
