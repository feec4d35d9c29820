// src/report/merge.ts on small folders made here: which report.json files readRun takes, the cells
// it makes for a target that never got to its own, and what mergeRuns writes (manifest, order of
// the cells, sources.json, where each cell's files are).
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summarizeCell, type CellSummary } from '../src/analysis/cell.ts';
import type { CellId } from '../src/domain.ts';
import type { Manifest, TargetRecord } from '../src/report/manifest.ts';
import { mergeRuns, readRun } from '../src/report/merge.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'merge-'));

const cellOf = (id: Partial<CellId>): CellSummary =>
  summarizeCell(
    { target: 't', cpus: 1, reads: 'full', variant: 'upstream', mode: 'interleaved', scenario: 'preexisting', ...id } as CellId,
    { kernel: 'k', openssl: 'o' },
    [],
  );

function manifestOf(over: Partial<Manifest>): Manifest {
  return {
    runId: 'r',
    tool: { commit: 'abc', dirty: false, node: 'v20' },
    startedAt: 's',
    argv: [],
    seed: 1,
    iterations: 2,
    trials: 1,
    variants: ['upstream'],
    modes: ['interleaved'],
    scenarios: ['preexisting'],
    targets: [],
    ...over,
  };
}

/** A report folder: its manifest and, per cell, <boot>/<folder>/report.json. */
function folder(dir: string, m: Manifest, cells: { at: string; cell: CellSummary }[]): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
  for (const { at, cell } of cells) {
    mkdirSync(join(dir, at), { recursive: true });
    writeFileSync(join(dir, at, 'report.json'), JSON.stringify({ cell, trials: [] }));
  }
  return dir;
}

const target = (over: Partial<TargetRecord>): TargetRecord => ({ name: 't', backend: 'qemu', status: 'ok', facts: {}, ...over });

describe('readRun', () => {
  it('names a folder without a readable manifest.json', async () => {
    const dir = tmp();
    await expect(readRun(dir)).rejects.toThrow(new RegExp(`^${dir} is not a report folder \\(manifest\\.json: .*ENOENT`));
  });

  it("takes each listed target's cell folders with a report.json, and nothing else", async () => {
    const dir = folder(tmp(), manifestOf({ targets: [target({ name: 'a' }), target({ name: 'gone' })] }), [
      { at: 'a/preexisting-interleaved-upstream', cell: cellOf({ target: 'a' }) },
      { at: 'a/empty', cell: cellOf({ target: 'x' }) },
      { at: 'unlisted/preexisting-interleaved-upstream', cell: cellOf({ target: 'unlisted' }) },
    ]);
    writeFileSync(join(dir, 'a', 'empty', 'report.json'), '');
    mkdirSync(join(dir, 'a', 'no-report'));
    writeFileSync(join(dir, 'a', 'report.json'), JSON.stringify({ cell: cellOf({ target: 'file' }) }));
    const { manifest, cells } = await readRun(dir);
    expect(manifest.targets.map((t) => t.name)).toEqual(['a', 'gone']);
    expect(cells.map((c) => c.target)).toEqual(['a']);
  });

  it('a target that failed before its cells: one failed cell per server, reads, scenario, mode and variant, with its status, error and facts', async () => {
    const m = manifestOf({
      servers: ['python', 'haproxy'],
      reads: ['full', 'single'],
      scenarios: ['preexisting', 'baseline'],
      modes: ['interleaved', 'sequential'],
      variants: ['upstream', 'scoped'],
      targets: [target({ name: 'sid-2cpu', target: 'sid', cpus: 2, status: 'boot-timeout', error: 'no SSH', facts: { kernel: '6.9' } })],
    });
    const { cells } = await readRun(folder(tmp(), m, []));
    expect(cells).toHaveLength(32);
    expect(cells.map((c) => `${c.server}/${c.reads}/${c.scenario}/${c.mode}/${c.variant}`).slice(0, 3)).toEqual([
      'python/full/preexisting/interleaved/upstream',
      'python/full/preexisting/interleaved/scoped',
      'python/full/preexisting/sequential/upstream',
    ]);
    expect(cells.at(-1)).toMatchObject({ server: 'haproxy', reads: 'single', scenario: 'baseline', mode: 'sequential', variant: 'scoped' });
    expect(cells[0]).toMatchObject({
      target: 'sid',
      boot: 'sid-2cpu',
      cpus: 2,
      status: 'boot-timeout',
      error: 'no SSH',
      kernel: '6.9',
      trials: 1,
      trialsOk: 0,
    });
  });

  it.each([
    [
      'its vCPUs from its facts and its own name as target, an unknown status as internal, no error',
      { status: 'weird', facts: { cpus: '4' } },
      { target: 't', boot: 't', cpus: 4, status: 'internal' },
    ],
    ['1 vCPU when the facts have none', { status: 'build-failed', facts: {} }, { cpus: 1, status: 'build-failed' }],
    ['1 vCPU when the facts have no number', { status: 'vm-died', facts: { cpus: 'many' } }, { cpus: 1, status: 'vm-died' }],
  ])('a failed target without cells: %s', async (_, over, want) => {
    const { cells } = await readRun(folder(tmp(), manifestOf({ targets: [target(over)] }), []));
    expect(cells).toHaveLength(1);
    expect(cells[0]).toMatchObject({ server: 'python', reads: 'full', ...want });
    expect('error' in cells[0]!).toBe(false);
  });

  it.each([
    'boot-failed',
    'boot-timeout',
    'build-failed',
    'tracer-failed',
    'client-failed',
    'server-failed',
    'timeout',
    'no-traffic',
    'vm-died',
    'interrupted',
    'output-failed',
    'internal',
  ])('keeps the status %s', async (status) => {
    const { cells } = await readRun(folder(tmp(), manifestOf({ targets: [target({ status })] }), []));
    expect(cells[0]!.status).toBe(status);
  });

  it('a failed target listed after one with cells still gets its failed cells (only its own cells count)', async () => {
    const m = manifestOf({ targets: [target({ name: 'a' }), target({ name: 'b', status: 'boot-failed' })] });
    const { cells } = await readRun(folder(tmp(), m, [{ at: 'a/x', cell: cellOf({ target: 'a' }) }]));
    expect(cells.map((c) => `${c.target}/${c.status}`)).toEqual(['a/internal', 'b/boot-failed']);
  });

  it('makes no cell for an ok target without cells, nor for a failed one that wrote some', async () => {
    const m = manifestOf({ variants: ['upstream', 'scoped'], targets: [target({ name: 'ok' }), target({ name: 'half', status: 'vm-died' })] });
    const { cells } = await readRun(folder(tmp(), m, [{ at: 'half/x', cell: cellOf({ target: 'half' }) }]));
    expect(cells.map((c) => `${c.target}/${c.variant}/${c.status}`)).toEqual(['half/upstream/internal']);
  });
});

describe('mergeRuns', () => {
  it('refuses no folder at all', async () => {
    await expect(mergeRuns([], tmp())).rejects.toThrow(/^merge: name at least one report folder$/);
  });

  it('refuses a target in two folders, by name', async () => {
    const root = tmp();
    const a = folder(join(root, 'a'), manifestOf({ targets: [target({ name: 'x' }), target({ name: 'sid' })] }), []);
    const b = folder(join(root, 'b'), manifestOf({ targets: [target({ name: 'sid' })] }), []);
    await expect(mergeRuns([a, b], join(root, 'm'))).rejects.toThrow(/^merge: target 'sid' appears in more than one folder$/);
  });

  it('one manifest (ids joined, the earliest start, the latest finish, every target), the cells in order of target, vCPUs, server, reads, scenario, mode, variant; sources.json relative', async () => {
    const root = tmp();
    const c = (id: Partial<CellId>) => ({ at: `${id.boot ?? id.target}/${Math.random().toString(36).slice(2)}`, cell: cellOf(id) });
    const a = folder(
      join(root, 'a'),
      manifestOf({ runId: 'ra', startedAt: '2026-12-02', finishedAt: '2026-12-05', seed: 11, targets: [target({ name: 'b' }), target({ name: 'b-10cpu' })] }),
      [
        c({ target: 'b', variant: 'upstream' }),
        c({ target: 'b', variant: 'scoped' }),
        c({ target: 'b', cpus: 10, boot: 'b-10cpu' }),
        c({ target: 'b', scenario: 'baseline' }),
      ],
    );
    const b = folder(
      join(root, 'b'),
      manifestOf({ runId: 'rb', startedAt: '2026-12-01', seed: 22, targets: [target({ name: 'a' }), target({ name: 'b-2cpu' })] }),
      [
        c({ target: 'a', server: 'haproxy' }),
        c({ target: 'a', reads: 'single' }),
        c({ target: 'a', mode: 'sequential' }),
        c({ target: 'b', cpus: 2, boot: 'b-2cpu' }),
      ],
    );
    const out = join(root, 'merged');
    const { manifest, cells } = await mergeRuns([a, b], out);
    expect([manifest.runId, manifest.startedAt, manifest.finishedAt, manifest.seed, manifest.targets.map((t) => t.name)]).toEqual([
      'merged-ra+rb',
      '2026-12-01',
      '2026-12-05',
      11,
      ['b', 'b-10cpu', 'a', 'b-2cpu'],
    ]);
    expect(cells.map((x) => `${x.target}/${x.cpus}/${x.server ?? '-'}/${x.reads}/${x.scenario}/${x.mode}/${x.variant}`)).toEqual([
      'a/1/haproxy/full/preexisting/interleaved/upstream',
      'a/1/-/full/preexisting/sequential/upstream',
      'a/1/-/single/preexisting/interleaved/upstream',
      'b/1/-/full/baseline/interleaved/upstream',
      'b/1/-/full/preexisting/interleaved/scoped',
      'b/1/-/full/preexisting/interleaved/upstream',
      'b/2/-/full/preexisting/interleaved/upstream',
      'b/10/-/full/preexisting/interleaved/upstream',
    ]);
    expect(readFileSync(join(out, 'sources.json'), 'utf8')).toBe('[\n  "../a",\n  "../b"\n]\n');
    expect(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).runId).toBe('merged-ra+rb');
    expect(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'))).toHaveLength(8);
  });

  it('a cell of an older summary without server or reads sorts as python and full reads', async () => {
    const root = tmp();
    // no two cells share a key: their folders' names are random, so a tie would sort by chance
    const older = (id: Partial<CellId>, drop: 'server' | 'reads') => {
      const cell = cellOf(id) as unknown as Record<string, unknown>;
      delete cell[drop];
      return { at: `t/${Math.random().toString(36).slice(2)}`, cell: cell as unknown as CellSummary };
    };
    const c = (id: Partial<CellId>) => ({ at: `t/${Math.random().toString(36).slice(2)}`, cell: cellOf(id) });
    const a = folder(join(root, 'a'), manifestOf({ targets: [target({ name: 't' })] }), [
      c({ server: 'nginx-proxy' }),
      c({ server: 'haproxy' }),
      older({ variant: 'upstream' }, 'server'),
      c({ server: 'python', variant: 'scoped' }),
      older({ server: 'python', mode: 'sequential' }, 'reads'),
    ]);
    const { cells } = await mergeRuns([a], join(root, 'm'));
    expect(cells.map((x) => `${x.server ?? '-'}/${x.reads ?? '-'}/${x.mode}/${x.variant}`)).toEqual([
      'haproxy/full/interleaved/upstream',
      'nginx-proxy/full/interleaved/upstream',
      'python/full/interleaved/scoped',
      '-/full/interleaved/upstream',
      'python/-/sequential/upstream',
    ]);
  });

  it('a run merged into its own folder is its source "."; a finish nobody recorded is empty', async () => {
    const dir = folder(tmp(), manifestOf({ runId: 'solo', targets: [target({ name: 'a' })] }), [{ at: 'a/x', cell: cellOf({ target: 'a' }) }]);
    const { manifest } = await mergeRuns([dir], dir);
    expect(manifest.finishedAt).toBe('');
    expect(JSON.parse(readFileSync(join(dir, 'sources.json'), 'utf8'))).toEqual(['.']);
  });
});
