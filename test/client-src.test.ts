// --client-src (issue 9, part 1): the user's own client, built in each target and run with the
// investigation's CLI. Flags, matrix.yaml, the checks before anything boots, the command line,
// the DONE line of the investigation's v1 client, and the verdicts on rows alone.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseMatrixFlags } from '../src/cli/flags.ts';
import { parseMatrix } from '../src/config/matrix.ts';
import { resolveClient, resolveRun } from '../src/cli/run.ts';
import { ConfigError } from '../src/errors.ts';
import { parseClientOutput } from '../src/analysis/events.ts';
import { clientArgv } from '../src/scenario/run.ts';
import { summarizeCell, type TrialResult } from '../src/analysis/cell.ts';
import { renderCellMd } from '../src/report/cell.ts';
import type { CellId } from '../src/domain.ts';

const FIXTURE = resolve(import.meta.dirname, 'fixtures/clients/two_conn_client.c');
const env = { cwd: resolve(import.meta.dirname, '..'), home: '/h', now: new Date('2026-12-01T10:00:00Z'), hostCpus: 2 };
const base = 'targets:\n  bw: { backend: qemu, suite: bookworm }\n';

describe('--client-src and matrix.yaml client', () => {
  it('--client-src: relative to the cwd, read and hashed before anything boots; ours when absent', () => {
    const cfg = parseMatrix(base, '/etc/m.yaml');
    const run = resolveRun(cfg, parseMatrixFlags(['--client-src', 'test/fixtures/clients/two_conn_client.c']), env);
    expect(run.client).toEqual({ src: FIXTURE, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(resolveRun(cfg, parseMatrixFlags([]), env).client).toBeNull();
  });

  it('matrix.yaml client.src is relative to the matrix file; --client-src wins over it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'client-src-'));
    mkdirSync(join(dir, 'c'));
    writeFileSync(join(dir, 'c', 'mine.c'), 'int main(void) { return 0; }\n');
    const file = join(dir, 'matrix.yaml');
    const cfg = parseMatrix(`${base}client: { src: c/mine.c }\n`, file);
    expect(cfg.client).toEqual({ src: 'c/mine.c' });
    expect(resolveRun(cfg, parseMatrixFlags([]), { ...env, cwd: '/' }).client?.src).toBe(join(dir, 'c', 'mine.c'));
    expect(resolveRun(cfg, parseMatrixFlags(['--client-src', FIXTURE]), env).client?.src).toBe(FIXTURE);
  });

  it('a missing file, a file that is not C, or other than two ports: a ConfigError naming it (exit 2), before anything boots', () => {
    const cfg = parseMatrix(base, '/etc/m.yaml');
    expect(() => resolveClient(cfg, { clientSrc: 'nope/client.c' }, '/w', [18001, 18002])).toThrow(ConfigError);
    expect(() => resolveClient(cfg, { clientSrc: 'nope/client.c' }, '/w', [18001, 18002])).toThrow(
      /--client-src nope\/client\.c: cannot read \/w\/nope\/client\.c \(ENOENT\)/,
    );
    expect(() => resolveClient(cfg, { clientSrc: 'test' }, env.cwd, [18001, 18002])).toThrow(/cannot read .*test \(not a file\)/);
    const dir = mkdtempSync(join(tmpdir(), 'client-src-'));
    writeFileSync(join(dir, 'client.py'), 'print()\n');
    expect(() => resolveClient(cfg, { clientSrc: join(dir, 'client.py') }, '/', [18001, 18002])).toThrow(/a C file is wanted/);
    expect(() => resolveClient(cfg, { clientSrc: FIXTURE }, '/', [18001, 18002, 18003])).toThrow(/give two ports, not 3/);
    const yamlMissing = parseMatrix(`${base}client: { src: gone.c }\n`, '/etc/m.yaml');
    expect(() => resolveClient(yamlMissing, {}, '/w', [18001, 18002])).toThrow(/\/etc\/m\.yaml: client\.src gone\.c: cannot read \/etc\/gone\.c/);
  });

  it('matrix.yaml: client must be { src: FILE.c }; each mistake with file:line:column', () => {
    expect(() => parseMatrix(`${base}client: mine.c\n`, 'm.yaml')).toThrow(/m\.yaml:3:9: client must be a mapping \{ src: FILE\.c \}/);
    expect(() => parseMatrix(`${base}client: { path: mine.c }\n`, 'm.yaml')).toThrow(/unknown key 'path' in client \(allowed: src\)/);
    expect(() => parseMatrix(`${base}client: { src: mine.py }\n`, 'm.yaml')).toThrow(/m\.yaml:3:16: client\.src 'mine\.py' must be a C file/);
    expect(() => parseMatrix(`${base}client: {}\n`, 'm.yaml')).toThrow(/client needs src/);
  });
});

describe('running your client', () => {
  const spec = { ports: [18001, 18002], iterations: 200, mode: 'interleaved', api: 'classic', reads: 'full' } as const;
  it("the investigation's CLI: CLIENT HOST1 PORT1 HOST2 PORT2 ITERATIONS --MODE, as argv; ours keeps its flags", () => {
    expect(clientArgv({ ...spec, clientCli: 'investigation' }, '/r/client-src/mine', '/r/t')).toEqual([
      '/r/client-src/mine',
      '127.0.0.1',
      '18001',
      '127.0.0.1',
      '18002',
      '200',
      '--interleaved',
    ]);
    expect(clientArgv({ ...spec, mode: 'writes-only', clientCli: 'investigation' }, 'c', 'd').at(-1)).toBe('--writes-only');
    expect(clientArgv(spec, '/w/race_client', '/r/t')).toEqual([
      '/w/race_client',
      '--conn',
      '127.0.0.1:18001',
      '--conn',
      '127.0.0.1:18002',
      '--iterations',
      '200',
      '--interleaved',
      '--api',
      'classic',
      '--reads',
      'full',
      '--record',
      '/r/t/client-record.jsonl',
    ]);
  });

  it("DONE:<ok1>:<fail1>:<ok2>:<fail2> (the investigation's v1 client) is DONE with its counts; READY as ours", () => {
    const o = parseClientOutput('READY:40001:18001:40002:18002\nDONE:198:2:200:0\n');
    expect(o).toMatchObject({
      done: true,
      ok: [198, 200],
      fail: [2, 0],
      conns: [
        { k: 1, lport: 40001, rport: 18001 },
        { k: 2, lport: 40002, rport: 18002 },
      ],
    });
    expect(parseClientOutput('READY:1:2:3:4\nDONE\n').done).toBe(true);
    expect(parseClientOutput('READY:1:2:3:4\nDONE:x\n').done).toBe(false);
  });

  const trial = (wrong: number): TrialResult => ({
    trial: 1,
    status: 'ok',
    attribution: {
      expected: 400,
      captured: 300,
      correct: 300 - wrong,
      wrong,
      lost: 100,
      backendRows: 0,
      capturedRequests: 300 - wrong,
      byConn: [],
      truth: { writes: { correct: 0, wrong: 0, lost: 400 }, reads: { correct: 0, wrong: 0, lost: 400 } },
    },
  });
  const id = (variant: CellId['variant']): CellId => ({
    target: 'bw',
    cpus: 1,
    server: 'python',
    reads: 'single',
    variant,
    mode: 'interleaved',
    scenario: 'preexisting',
  });

  it("your client's cells: a fix is judged on the rows alone (no client-side truth), and the report says the truth is n/a", () => {
    const fix = summarizeCell(id('scoped'), { client: 'mine.c' }, [trial(0)]);
    expect(fix.client).toBe('mine.c');
    expect(fix.verdict).toMatchObject({ pass: true, expectation: 'no wrong rows (your client: rows only)' });
    expect(summarizeCell(id('scoped'), { client: 'mine.c' }, [trial(3)]).verdict.pass).toBe(false);
    expect(summarizeCell(id('no-fallback'), { client: 'mine.c' }, [trial(0)]).verdict.pass).toBe(true);
    // ours with the same figures: the client's writes are not on their connection, the fix fails
    expect(summarizeCell(id('scoped'), {}, [trial(0)]).verdict.pass).toBe(false);
    expect(summarizeCell(id('upstream'), { client: 'mine.c' }, [trial(3)]).verdict.pass).toBe(true);
    const md = renderCellMd({ cell: fix, trials: [trial(0)] });
    expect(md).toContain('n/a: your own client (mine.c) ran');
    expect(md).not.toContain('| request writes |');
  });
});
