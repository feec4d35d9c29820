// Path flags of scripts/matrix.mjs (issue 15): --config, --out and --cache take absolute paths
// as given and relative ones from the caller's cwd.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { parseMatrixFlags } from '../src/cli/flags.ts';
import { matrixMain } from '../src/cli/matrix.ts';
import { matrixFile, resolveRun } from '../src/cli/run.ts';
import { parseMatrix, type MatrixConfig } from '../src/config/matrix.ts';

// parsed in each test (not while the file is collected), so mutation testing sees which tests use it
let cfg: MatrixConfig;
beforeEach(() => {
  cfg = parseMatrix('targets:\n  bw: { backend: qemu, suite: bookworm }\n', 'm.yaml');
});
const env = { cwd: '/w', home: '/h', now: new Date('2026-11-24T10:00:00Z') };

describe('path flags', () => {
  it('--config: absolute as given, relative from cwd, else matrix.yaml at the repository root', () => {
    const where = { cwd: '/w', repoRoot: '/repo' };
    expect(matrixFile(parseMatrixFlags(['--config', '/abs/path/matrix.yaml']), where)).toBe('/abs/path/matrix.yaml');
    expect(matrixFile(parseMatrixFlags(['--config', 'sub/m.yaml']), where)).toBe('/w/sub/m.yaml');
    expect(matrixFile(parseMatrixFlags(['--config', '../m.yaml']), where)).toBe('/m.yaml');
    expect(matrixFile(parseMatrixFlags([]), where)).toBe('/repo/matrix.yaml');
  });

  it('--out and --cache: absolute as given, relative from cwd', () => {
    const abs = resolveRun(cfg, parseMatrixFlags(['--out', '/abs/out', '--cache', '/abs/cache']), env);
    expect(abs.outDir).toBe('/abs/out');
    expect(abs.cacheDir).toBe('/abs/cache');
    const rel = resolveRun(cfg, parseMatrixFlags(['--out', 'o', '--cache', '../c']), env);
    expect(rel.outDir).toBe('/w/o');
    expect(rel.cacheDir).toBe('/c');
    expect(resolveRun(cfg, parseMatrixFlags([]), { ...env, cacheEnv: 'rel-cache' }).cacheDir).toBe('/w/rel-cache');
  });

  const dir = mkdtempSync(join(tmpdir(), 'usm-lab-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('matrix.mjs reads --config /abs/path from that path, whatever the cwd', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'targets: [not, a, mapping]\n');
    const out = new PassThrough();
    const err = new PassThrough();
    let text = '';
    err.on('data', (d: Buffer) => (text += d.toString()));
    const code = await matrixMain({
      argv: ['--config', file],
      cwd: '/nonexistent-cwd',
      repoRoot: '/nonexistent-repo',
      env: {},
      stdout: out as unknown as NodeJS.WriteStream,
      stderr: err as unknown as NodeJS.WriteStream,
      signal: new AbortController().signal,
    });
    expect(code).toBe(2);
    expect(text).toContain(`${file}:1:`);
    expect(text).not.toContain('cannot read matrix file');
  });
});

describe('report.mjs arguments', () => {
  it('merge DIR... --out DIR, in any order; anything else is a usage error', async () => {
    const { parseReportFlags } = await import('../src/cli/report.ts');
    expect(parseReportFlags(['merge', 'a', '--out', 'o', 'b'])).toEqual({ help: false, dirs: ['a', 'b'], out: 'o' });
    expect(parseReportFlags(['-h'])).toEqual({ help: true });
    expect(() => parseReportFlags(['merge', 'a'])).toThrow('expected: merge DIR... --out DIR');
    expect(() => parseReportFlags(['merge', 'a', '--bogus', '--out', 'o'])).toThrow(/--bogus/);
  });
});
