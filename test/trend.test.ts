// Trend between two runs: what changed per cell, which change is a regression, the exit code of
// `report.mjs compare`, its inputs (run folders, merged folders, summary.json files) and the history.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summarizeCell } from '../src/analysis/cell.ts';
import { mergeRuns, readRun } from '../src/report/merge.ts';
import { writeSummary } from '../src/report/summary.ts';
import { compareMain } from '../src/report/compare.ts';
import { compareRuns, renderTrendMd, type Trend, type TrendCell } from '../src/report/trend.ts';
import { copyFixture, editCell } from './helpers/report-fixture.ts';

const REPO = new URL('..', import.meta.url).pathname;

const cell = (over: Partial<TrendCell> & { pass?: boolean | null } = {}): TrendCell => {
  const { pass = true, ...rest } = over;
  return {
    target: 'sid',
    scenario: 'preexisting',
    mode: 'interleaved',
    variant: 'upstream',
    status: 'ok',
    verdict: { pass },
    misattribution: 0.5,
    wrong: 100,
    captured: 200,
    ...rest,
  };
};
const run = (runId: string, cells: TrendCell[]) => ({ runId, startedAt: `2026-12-0${runId.at(-1)}T00:00:00Z`, cells });

describe('compareRuns', () => {
  it.each([
    ['nothing changed', cell(), cell(), [], false],
    ['a verdict that was as expected and no longer is', cell(), cell({ pass: false, wrong: 0, misattribution: 0 }), ['verdict-flipped', 'rate-moved'], true],
    [
      'an ok cell that now fails',
      cell(),
      cell({ status: 'boot-timeout', pass: false, misattribution: null, wrong: 0, captured: 0 }),
      ['verdict-flipped', 'status-changed'],
      true,
    ],
    [
      'a failed cell that runs again (not a regression)',
      cell({ status: 'tracer-failed', pass: false, misattribution: null, wrong: 0, captured: 0 }),
      cell(),
      ['verdict-flipped', 'status-changed'],
      false,
    ],
    ['a verdict that was not as expected and now is', cell({ pass: false }), cell(), ['verdict-flipped'], false],
    ['the rate moved outside the previous interval, verdict unchanged', cell(), cell({ misattribution: 0.7, wrong: 140 }), ['rate-moved'], false],
    ['the rate moved inside the previous interval', cell(), cell({ misattribution: 0.53, wrong: 106 }), [], false],
    [
      "the previous interval is the analysis stage's when it has one",
      cell({ misattributionCI: { lo: 0.49, hi: 0.51, method: 'bootstrap' } }),
      cell({ misattribution: 0.53, wrong: 106 }),
      ['rate-moved'],
      false,
    ],
    [
      'measured only (recv-hook) stays measured',
      cell({ variant: 'recv-hook', pass: null }),
      cell({ variant: 'recv-hook', pass: null, misattribution: 0.9, wrong: 180 }),
      ['rate-moved'],
      false,
    ],
  ] as const)('%s', (_name, before, after, kinds, regression) => {
    const t = compareRuns(run('r1', [before]), run('r2', [after]));
    expect(t.changes.map((c) => c.kinds).flat()).toEqual(kinds);
    expect(t.regressions).toBe(regression ? 1 : 0);
  });

  it('cells new or gone are changes, not regressions; the changes come in report order', () => {
    const t = compareRuns(
      run('r1', [cell({ target: 'sid' }), cell({ target: 'bookworm' })]),
      run('r2', [cell({ target: 'trixie' }), cell({ target: 'bookworm' })]),
    );
    expect(t.changes.map((c) => [c.key, c.kinds])).toEqual([
      ['sid/preexisting/interleaved/upstream', ['gone']],
      ['trixie/preexisting/interleaved/upstream', ['new']],
    ]);
    expect(t.regressions).toBe(0);
    expect(t.cells).toBe(2);
  });
});

/** The run with one cell made to regress (upstream lost its wrong rows) and a new run id. */
function regressedCopy(): string {
  const dir = copyFixture('trend-cur-');
  editCell(dir, 'local/preexisting-sequential-upstream', (r) => {
    for (const t of r.trials)
      t.attribution = {
        ...t.attribution!,
        wrong: 0,
        correct: t.attribution!.captured,
        byConn: t.attribution!.byConn.map((b) => ({ ...b, rightRows: b.rightRows + b.wrongRows, wrongRows: 0 })),
      };
    r.cell = summarizeCell(r.cell, { kernel: r.cell.kernel, openssl: r.cell.openssl }, r.trials);
  });
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...m, runId: '20261202T000000Z', startedAt: '2026-12-02T00:00:00Z' }));
  return dir;
}

async function compare(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await compareMain({ argv, cwd: REPO, stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
  return { code, out, err };
}

describe('report.mjs compare', () => {
  it('exits 1 on a regression and writes trend.json / trend.md beside CUR; 0 when nothing regressed', async () => {
    const prev = copyFixture('trend-prev-');
    const cur = regressedCopy();
    const r = await compare([prev, cur]);
    expect(r.code, r.err).toBe(1);
    const t = JSON.parse(readFileSync(join(cur, 'trend.json'), 'utf8')) as Trend;
    expect(t.previous.runId).toBe('20261201T090924Z');
    expect(t.current.runId).toBe('20261202T000000Z');
    expect(t.changes).toEqual([
      expect.objectContaining({ key: 'local/preexisting/sequential/upstream', kinds: ['verdict-flipped', 'rate-moved'], regression: true }),
    ]);
    expect(readFileSync(join(cur, 'trend.md'), 'utf8')).toContain(
      '| local/preexisting/sequential/upstream | **regression**: verdict-flipped, rate-moved | 50.0 % [43.6 %, 56.4 %] (116 of 232), as expected | 0.0 %',
    );
    expect(r.out).toContain('1 regression(s)');
    // the other way round the cell recovers: a change, not a regression
    const back = await compare([cur, prev, '--out', mkdtempSync(join(tmpdir(), 'trend-out-'))]);
    expect(back.code, back.err).toBe(0);
    expect(back.out).toContain('0 regression(s), 1 change(s)');
  });

  it('reads summary.json files and merged folders (with or without their shards)', async () => {
    const prev = copyFixture('trend-prev-');
    const { manifest, cells } = await readRun(prev);
    await writeSummary(prev, manifest, cells);
    const cur = regressedCopy();
    // two shards of the current night, one target each, merged as the workflow does
    const root = mkdtempSync(join(tmpdir(), 'trend-merge-'));
    const shards = ['bullseye', 'local'].map((target, i) => {
      const dir = join(root, `shard-${i + 1}`);
      spawnSync('cp', ['-r', cur, dir]);
      const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
      m.targets = m.targets.filter((t: { name: string }) => t.name === target);
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
      return dir;
    });
    const merged = join(root, 'merged');
    await mergeRuns(shards, merged);
    expect(JSON.parse(readFileSync(join(merged, 'sources.json'), 'utf8'))).toEqual(['../shard-1', '../shard-2']);
    expect(readFileSync(join(merged, 'summary.html'), 'utf8')).toContain('href="../shard-2/local/preexisting-sequential-upstream/trial-1/tracer.log"');

    const r = await compare([join(prev, 'summary.json'), merged]);
    expect(r.code, r.err).toBe(1);
    expect(JSON.parse(readFileSync(join(merged, 'trend.json'), 'utf8')).regressions).toBe(1);
    expect(readFileSync(join(merged, 'summary.html'), 'utf8')).toContain('<section id="trend">');
    // the page drawn again still links each cell's files in its shard
    expect(readFileSync(join(merged, 'summary.html'), 'utf8')).toContain('href="../shard-2/local/preexisting-sequential-upstream/trial-1/tracer.log"');

    // the previous night's merged folder, downloaded without its shards: its summary.json is used
    for (const s of shards) rmSync(s, { recursive: true });
    const again = await compare([merged, join(prev, 'summary.json'), '--out', root]);
    expect(again.code, again.err).toBe(0);
    expect(JSON.parse(readFileSync(join(root, 'trend.json'), 'utf8')).cells).toBe(16);
  });

  it('--history keeps the newest K runs and the page draws a sparkline per cell', async () => {
    const hist = join(mkdtempSync(join(tmpdir(), 'trend-hist-')), 'history');
    const prev = copyFixture('trend-prev-');
    for (let night = 1; night <= 4; night++) {
      const cur = copyFixture('trend-night-');
      const m = JSON.parse(readFileSync(join(cur, 'manifest.json'), 'utf8'));
      writeFileSync(join(cur, 'manifest.json'), JSON.stringify({ ...m, runId: `night-${night}`, startedAt: `2026-12-0${night}T00:00:00Z` }));
      const r = await compare([prev, cur, '--history', hist, '--keep', '3']);
      expect(r.code, r.err).toBe(0);
      if (night === 4) {
        const html = readFileSync(join(cur, 'summary.html'), 'utf8');
        expect(html.match(/<td class="hm-cell[^>]*>.*?<svg class="spark"/g)?.length).toBe(16);
        expect(html).toContain('(night-2, night-3, night-4)');
      }
    }
    expect(readdirSync(hist).sort()).toEqual(['2026-12-02T00_00_00Z-night-2.json', '2026-12-03T00_00_00Z-night-3.json', '2026-12-04T00_00_00Z-night-4.json']);
  });

  it('bad arguments exit 2 and say why; a missing PREV is an error unless --allow-no-previous (the first night)', async () => {
    expect((await compare(['only-one'])).code).toBe(2);
    expect((await compare(['a', 'b', '--keep', '0'])).err).toMatch(/--keep must be a whole number >= 1/);
    expect((await compare(['a', 'b', '--nope'])).code).toBe(2);
    const cur = copyFixture('trend-first-');
    const missing = await compare([join(cur, 'no-such'), cur]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/no such report folder or summary file/);
    const first = await compare([join(cur, 'no-such'), cur, '--allow-no-previous']);
    expect(first.code, first.err).toBe(0);
    expect(first.out).toContain('16 change(s) over 16 cell(s)');
    expect(existsSync(join(cur, 'trend.json'))).toBe(true);
  });

  it('runs through scripts/report.mjs (exit code as the command returns it)', () => {
    const prev = copyFixture('trend-cli-');
    const cur = regressedCopy();
    const r = spawnSync('npx', ['zx', 'scripts/report.mjs', 'compare', prev, cur], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stdout).toContain('**regression**');
  }, 130_000);
});

describe('compareRuns: the edges of each change, and how a cell is described', () => {
  const ci = { lo: 0.4, hi: 0.6, method: 'bootstrap' };
  it.each([
    ['a rate on the lower bound of the previous interval has not moved', cell({ misattributionCI: ci }), cell({ misattribution: 0.4 }), []],
    ['a rate on the upper bound has not moved', cell({ misattributionCI: ci }), cell({ misattribution: 0.6 }), []],
    ['a rate just below it has', cell({ misattributionCI: ci }), cell({ misattribution: 0.399 }), ['rate-moved']],
    ['a rate just above it has', cell({ misattributionCI: ci }), cell({ misattribution: 0.601 }), ['rate-moved']],
    ['an ok cell without a rate has no rate to move', cell({ misattributionCI: ci }), cell({ misattribution: null }), []],
    [
      'a failed cell that kept an interval is not a rate to move from',
      cell({ misattributionCI: ci, status: 'timeout' }),
      cell({ misattribution: 0.9 }),
      ['status-changed'],
    ],
    ['nor is a rate of a cell that now fails', cell({ misattributionCI: ci }), cell({ misattribution: 0.9, status: 'timeout' }), ['status-changed']],
    ['a previous cell without rows has no interval', cell({ wrong: 0, captured: 0, misattribution: null }), cell({ misattribution: 0.9 }), []],
  ] as const)('%s', (_name, before, after, kinds) => {
    const t = compareRuns(run('r1', [before]), run('r2', [after]));
    expect(t.changes.flatMap((c) => c.kinds)).toEqual(kinds);
  });

  it.each([
    ['as expected -> measured only', true, 'ok', null, 'ok', true],
    ['as expected -> NOT as expected', true, 'ok', false, 'ok', true],
    ['measured only -> NOT as expected, still ok', null, 'ok', false, 'ok', false],
    ['NOT as expected -> measured only', false, 'ok', null, 'ok', false],
    ['measured only, ok -> failed', null, 'ok', null, 'timeout', true],
    ['failed -> failed otherwise', null, 'timeout', null, 'vm-died', false],
  ] as const)('a regression or not: %s', (_name, passA, statusA, passB, statusB, regression) => {
    const t = compareRuns(run('r1', [cell({ pass: passA, status: statusA })]), run('r2', [cell({ pass: passB, status: statusB })]));
    expect(t.changes).toHaveLength(1);
    expect(t.changes[0]!.regression).toBe(regression);
    expect(t.regressions).toBe(regression ? 1 : 0);
  });

  it('describes each side: its rate with the interval and rows, its verdict, or its status; absent when there is none', () => {
    const t = compareRuns(
      run('r1', [
        cell({ target: 'a', misattributionCI: ci }),
        cell({ target: 'b', pass: null }),
        cell({ target: 'c', status: 'boot-failed', pass: false }),
        cell({ target: 'd', wrong: 0, captured: 0, misattribution: null, pass: false }),
      ]),
      run('r2', [
        cell({ target: 'a', misattribution: 0.7, wrong: 7, captured: 10, pass: false }),
        cell({ target: 'b', status: 'timeout', pass: null }),
        cell({ target: 'c', pass: true }),
        cell({ target: 'e' }),
      ]),
    );
    expect(t.changes.map((c) => [c.key, c.before, c.after])).toEqual([
      ['a/preexisting/interleaved/upstream', '50.0 % [40.0 %, 60.0 %] (100 of 200), as expected', '70.0 % [39.7 %, 89.2 %] (7 of 10), NOT as expected'],
      ['b/preexisting/interleaved/upstream', '50.0 % [43.1 %, 56.9 %] (100 of 200), measured', 'timeout, measured'],
      ['c/preexisting/interleaved/upstream', 'boot-failed, NOT as expected', '50.0 % [43.1 %, 56.9 %] (100 of 200), as expected'],
      ['d/preexisting/interleaved/upstream', 'n/a (0 of 0), NOT as expected', 'absent'],
      ['e/preexisting/interleaved/upstream', 'absent', '50.0 % [43.1 %, 56.9 %] (100 of 200), as expected'],
    ]);
    expect([t.previous, t.current, t.cells, t.regressions]).toEqual([
      { runId: 'r1', startedAt: '2026-12-01T00:00:00Z' },
      { runId: 'r2', startedAt: '2026-12-02T00:00:00Z' },
      4,
      2,
    ]);
  });

  it('orders the changes by target, scenario, mode and column, whatever order the runs list them in', () => {
    const keys = [
      cell({ target: 'b', scenario: 'baseline' }),
      cell({ target: 'a', scenario: 'preexisting', mode: 'sequential' }),
      cell({ target: 'a', scenario: 'preexisting', mode: 'interleaved', variant: 'scoped' }),
      cell({ target: 'a', scenario: 'baseline' }),
      cell({ target: 'a', scenario: 'preexisting', mode: 'interleaved' }),
    ];
    const t = compareRuns(run('r1', []), run('r2', keys));
    expect(t.changes.map((c) => c.key)).toEqual([
      'a/baseline/interleaved/upstream',
      'a/preexisting/interleaved/scoped',
      'a/preexisting/interleaved/upstream',
      'a/preexisting/sequential/upstream',
      'b/baseline/interleaved/upstream',
    ]);
    // the cells counted are the current run's
    expect(t.cells).toBe(5);
  });
});

describe('renderTrendMd, word for word', () => {
  it('a heading, the counts, and a table of the changes (a pipe in a key escaped, a regression in bold)', () => {
    const t = compareRuns(
      run('r1', [cell({ target: 'x|y' }), cell({ target: 'z', pass: false })]),
      run('r2', [cell({ target: 'x|y', status: 'timeout' }), cell({ target: 'z' })]),
    );
    expect(renderTrendMd(t)).toBe(
      [
        '# Trend: r2 against r1',
        '',
        '1 regression(s), 2 change(s) over 2 cell(s).',
        '',
        '| cell | change | before | after |',
        '|---|---|---|---|',
        '| x\\|y/preexisting/interleaved/upstream | **regression**: status-changed | 50.0 % [43.1 %, 56.9 %] (100 of 200), as expected | timeout, as expected |',
        '| z/preexisting/interleaved/upstream | verdict-flipped | 50.0 % [43.1 %, 56.9 %] (100 of 200), NOT as expected | 50.0 % [43.1 %, 56.9 %] (100 of 200), as expected |',
        '',
      ].join('\n'),
    );
  });

  it('no table when nothing changed', () => {
    expect(renderTrendMd(compareRuns(run('r1', [cell()]), run('r2', [cell()])))).toBe(
      '# Trend: r2 against r1\n\n0 regression(s), 0 change(s) over 1 cell(s).\n',
    );
  });
});
