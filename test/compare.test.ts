// src/report/compare.ts piece by piece, on small folders made here (test/trend.test.ts runs it on a
// real run's folder): what loadSummary takes from a folder or a file, the errors it names, the
// history folder's names, order and pruning, and compareMain's exit codes and words.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summarizeCell, type CellSummary } from '../src/analysis/cell.ts';
import { COMPARE_HELP, compareMain, loadFullRun, loadSummary, readHistory, saveHistory } from '../src/report/compare.ts';
import type { TrendCell } from '../src/report/trend.ts';

const tmp = (p = 'compare-') => mkdtempSync(join(tmpdir(), p));

const cell = (target: string, pass: boolean | null = true): TrendCell => ({
  target,
  scenario: 'preexisting',
  mode: 'interleaved',
  variant: 'upstream',
  status: 'ok',
  verdict: { pass },
  misattribution: 0.5,
  wrong: 1,
  captured: 2,
});

/** A run folder: manifest.json with one ok target per cell, a report.json per cell. */
function runFolder(dir: string, runId: string, targets: string[]): CellSummary[] {
  mkdirSync(dir, { recursive: true });
  const cells = targets.map((target) =>
    summarizeCell({ target, cpus: 1, reads: 'full', variant: 'upstream', mode: 'interleaved', scenario: 'preexisting' }, { kernel: 'k', openssl: 'o' }, []),
  );
  writeFileSync(
    join(dir, 'manifest.json'),
    JSON.stringify({ runId, startedAt: `start-${runId}`, targets: targets.map((name) => ({ name, backend: 'qemu', status: 'ok', facts: {} })) }),
  );
  for (const c of cells) {
    mkdirSync(join(dir, c.target, 'preexisting-interleaved-upstream'), { recursive: true });
    writeFileSync(join(dir, c.target, 'preexisting-interleaved-upstream', 'report.json'), JSON.stringify({ cell: c, trials: [] }));
  }
  return cells;
}

describe('loadSummary', () => {
  it('names a path that is neither a folder nor a file', async () => {
    const p = join(tmp(), 'nope');
    await expect(loadSummary(p)).rejects.toThrow(`${p}: no such report folder or summary file`);
  });

  it('a summary.json file: its cells; the run id and start from the manifest beside it, else the file name and no start', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'summary.json'), JSON.stringify([cell('a')]));
    expect(await loadSummary(join(dir, 'summary.json'))).toEqual({ runId: 'summary.json', startedAt: '', cells: [cell('a')] });
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ runId: 'r9', startedAt: 's9' }));
    expect(await loadSummary(join(dir, 'summary.json'))).toEqual({ runId: 'r9', startedAt: 's9', cells: [cell('a')] });
  });

  it.each([
    ['not JSON', '{', /: not a summary \(.*JSON.*\)$/],
    ['not an array', '{"a":1}', /: not a summary \(expected the array of summary\.json\)$/],
  ])('refuses a summary that is %s, naming the file', async (_, text, msg) => {
    const f = join(tmp(), 'summary.json');
    writeFileSync(f, text);
    const err = await loadSummary(f).catch((e: Error) => e);
    expect((err as Error).message.startsWith(`${f}: not a summary (`)).toBe(true);
    expect((err as Error).message).toMatch(msg);
  });

  it('a folder with only a summary.json (a merged run without its shards): its cells, the folder name without a manifest', async () => {
    const dir = join(tmp(), 'night-3');
    mkdirSync(dir);
    writeFileSync(join(dir, 'summary.json'), JSON.stringify([cell('a'), cell('b')]));
    expect(await loadSummary(dir)).toEqual({ runId: 'night-3', startedAt: '', cells: [cell('a'), cell('b')] });
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ runId: 'r3', startedAt: 's3', targets: [] }));
    expect(await loadSummary(dir)).toEqual({ runId: 'r3', startedAt: 's3', cells: [cell('a'), cell('b')] });
  });

  it('a folder with neither cells nor summary.json is an error naming its summary.json', async () => {
    const dir = tmp();
    await expect(loadSummary(dir)).rejects.toThrow(`${join(dir, 'summary.json')}: not a summary (`);
  });

  it("a full run folder: its own cells, with its manifest and where each cell's files are, unless summary.json lists more", async () => {
    const dir = join(tmp(), 'run');
    const cells = runFolder(dir, 'r1', ['a', 'b']);
    const full = await loadSummary(dir);
    expect([full.runId, full.startedAt, full.dir, full.manifest?.runId, full.cells.map((c) => c.target)]).toEqual(['r1', 'start-r1', dir, 'r1', ['a', 'b']]);
    expect(full.full).toBe(full.cells);
    expect(full.dirOf!(cells[1]!)).toBe(join(dir, 'b', 'preexisting-interleaved-upstream'));
    // summary.json with as many cells: still the full run
    writeFileSync(join(dir, 'summary.json'), JSON.stringify([cell('a'), cell('b')]));
    expect((await loadSummary(dir)).dir).toBe(dir);
    // with more cells (a merged folder whose shards are gone but one): summary.json
    writeFileSync(join(dir, 'summary.json'), JSON.stringify([cell('a'), cell('b'), cell('c')]));
    const listed = await loadSummary(dir);
    expect([listed.dir, listed.cells.map((c) => c.target)]).toEqual([undefined, ['a', 'b', 'c']]);
  });
});

describe('loadFullRun', () => {
  it("a merged run's cells are its shards', sorted, each found in its shard; a cell no shard has is looked for in the merged folder", async () => {
    const root = tmp();
    runFolder(join(root, 's1'), 'r1', ['z']);
    runFolder(join(root, 's2'), 'r2', ['a']);
    const merged = join(root, 'm');
    const own = runFolder(merged, 'merged', ['q']);
    writeFileSync(join(merged, 'sources.json'), JSON.stringify(['../s1', '../s2']));
    const r = await loadFullRun(merged);
    expect(r.manifest.runId).toBe('merged');
    expect(r.cells.map((c) => c.target)).toEqual(['a', 'z']);
    expect(r.cells.map(r.dirOf)).toEqual([
      join(root, 's2', 'a', 'preexisting-interleaved-upstream'),
      join(root, 's1', 'z', 'preexisting-interleaved-upstream'),
    ]);
    expect(r.dirOf(own[0]!)).toBe(join(merged, 'q', 'preexisting-interleaved-upstream'));
  });
});

describe('saveHistory and readHistory', () => {
  it('names a run by its start and id made file-safe, writes its cells, and keeps the newest K (by start, then id)', async () => {
    const dir = join(tmp(), 'history');
    const runs = [
      { runId: 'r: 2', startedAt: '2026-12-02 00:00', cells: [cell('a')] },
      { runId: 'b', startedAt: '2026-12-01', cells: [cell('a', false)] },
      { runId: 'a', startedAt: '2026-12-01', cells: [] },
      { runId: 'r3', startedAt: '2026-12-03', cells: [cell('a', null)] },
    ];
    let h = await saveHistory(dir, runs[0]!, 3);
    expect(readdirSync(dir)).toEqual(['2026-12-02_00_00-r_2.json']);
    expect(JSON.parse(readFileSync(join(dir, '2026-12-02_00_00-r_2.json'), 'utf8'))).toEqual({
      runId: 'r: 2',
      startedAt: '2026-12-02 00:00',
      cells: { 'a/preexisting/interleaved/upstream': { status: 'ok', misattribution: 0.5, pass: true } },
    });
    expect(readFileSync(join(dir, '2026-12-02_00_00-r_2.json'), 'utf8')).toMatch(/^\{\n {2}"runId"[^]*\}\n$/);
    await saveHistory(dir, runs[1]!, 3);
    h = await saveHistory(dir, runs[2]!, 3);
    expect(h.runs.map((r) => r.runId)).toEqual(['a', 'b', 'r: 2']);
    h = await saveHistory(dir, runs[3]!, 3);
    expect(h.runs.map((r) => r.runId)).toEqual(['b', 'r: 2', 'r3']);
    expect(readdirSync(dir).sort()).toEqual(['2026-12-01-b.json', '2026-12-02_00_00-r_2.json', '2026-12-03-r3.json']);
    expect((await readHistory(dir)).runs.map((r) => r.runId)).toEqual(['b', 'r: 2', 'r3']);
    h = await saveHistory(dir, { runId: 'r4', startedAt: '2026-12-04', cells: [] }, 1);
    expect(h.runs.map((r) => r.runId)).toEqual(['r4']);
    expect(readdirSync(dir)).toEqual(['2026-12-04-r4.json']);
  });

  it('reads only the JSON files that are runs; a missing folder is no run', async () => {
    const dir = tmp();
    expect(await readHistory(join(dir, 'none'))).toEqual({ runs: [] });
    writeFileSync(join(dir, 'ok.json'), JSON.stringify({ runId: 'r1', startedAt: 's', cells: {} }));
    writeFileSync(join(dir, 'notes.txt'), JSON.stringify({ runId: 'txt', startedAt: 's', cells: {} }));
    writeFileSync(join(dir, 'broken.json'), '{');
    writeFileSync(join(dir, 'noid.json'), JSON.stringify({ runId: 7, startedAt: 's', cells: {} }));
    writeFileSync(join(dir, 'nocells.json'), JSON.stringify({ runId: 'r2', startedAt: 's' }));
    expect((await readHistory(dir)).runs.map((r) => r.runId)).toEqual(['r1']);
  });

  it('orders runs by start, then by id, not by file name', async () => {
    const dir = tmp();
    const put = (file: string, runId: string, startedAt: string) => writeFileSync(join(dir, file), JSON.stringify({ runId, startedAt, cells: {} }));
    put('x1.json', 'b', '2026-12-01');
    put('x2.json', 'a', '2026-12-01');
    put('x3.json', 'c', '2026-11-30');
    put('x4.json', 'd', '2026-12-01');
    put('x0.json', 'e', '2026-12-02');
    expect((await readHistory(dir)).runs.map((r) => r.runId)).toEqual(['c', 'a', 'b', 'd', 'e']);
  });
});

describe('compareMain', () => {
  async function compare(argv: string[], cwd = tmpdir()): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await compareMain({ argv, cwd, stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
    return { code, out, err };
  }

  it('the usage names the command, every option, the defaults and the exit codes', () => {
    expect(COMPARE_HELP.split('\n')[0]).toBe('Usage: npx zx scripts/report.mjs compare PREV CUR [--history DIR] [--keep K] [--out DIR] [--allow-no-previous]');
    for (const w of [
      "default CUR's folder",
      'keeps the newest K runs (default 14)',
      'Exit 1 when a cell regressed',
      '2 on bad arguments',
      'a missing PREV is the first night',
    ])
      expect(COMPARE_HELP).toContain(w);
    expect(COMPARE_HELP.endsWith('\n')).toBe(true);
  });

  it('--keep 1 is a valid count', async () => {
    expect(await compare(['a', '--keep', '1'])).toEqual({ code: 2, out: '', err: 'error: expected: compare PREV CUR (got 1 path(s))\n' + COMPARE_HELP });
    const dir = tmp();
    writeFileSync(join(dir, 'prev.json'), JSON.stringify([cell('a')]));
    expect((await compare(['prev.json', 'prev.json', '--keep', '1', '--history', 'h'], dir)).code).toBe(0);
    expect(readdirSync(join(dir, 'h'))).toHaveLength(1);
  });

  it('--help and -h print the usage and exit 0', async () => {
    for (const h of ['--help', '-h']) expect(await compare([h])).toEqual({ code: 0, out: COMPARE_HELP, err: '' });
  });

  it.each([
    [['a'], 'error: expected: compare PREV CUR (got 1 path(s))\n'],
    [['a', 'b', 'c'], 'error: expected: compare PREV CUR (got 3 path(s))\n'],
    [['a', 'b', '--keep', '0'], "error: expected: compare PREV CUR (got 2 path(s)); --keep must be a whole number >= 1, got '0'\n"],
    [['a', 'b', '--keep', '1.5'], "error: expected: compare PREV CUR (got 2 path(s)); --keep must be a whole number >= 1, got '1.5'\n"],
    [['a', '--keep', 'x'], "error: expected: compare PREV CUR (got 1 path(s)); --keep must be a whole number >= 1, got 'x'\n"],
  ])('%j exits 2: %s then the usage', async (argv, msg) => {
    expect(await compare(argv)).toEqual({ code: 2, out: '', err: msg + COMPARE_HELP });
  });

  it("an unknown option exits 2 with the parser's message and the usage", async () => {
    const r = await compare(['a', 'b', '--nope']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error: Unknown option '--nope'[^\n]*\nUsage: /);
    expect(r.err.endsWith(COMPARE_HELP)).toBe(true);
  });

  it('paths relative to cwd; trend.md printed and written to --out; 0 without a regression, 1 with one; a bad summary is exit 2 with its message', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'prev.json'), JSON.stringify([cell('a'), cell('b')]));
    writeFileSync(join(dir, 'same.json'), JSON.stringify([cell('a'), cell('b')]));
    writeFileSync(join(dir, 'worse.json'), JSON.stringify([cell('a', false), cell('b')]));
    const same = await compare(['prev.json', 'same.json', '--out', 'out'], dir);
    const md = readFileSync(join(dir, 'out', 'trend.md'), 'utf8');
    expect(same).toEqual({ code: 0, out: `${md}\nwrote ${join(dir, 'out', 'trend.md')}\n`, err: '' });
    expect(md).toContain('0 regression(s), 0 change(s) over 2 cell(s).');
    expect(readFileSync(join(dir, 'out', 'trend.json'), 'utf8')).toMatch(/^\{\n {2}"previous": \{\n {4}"runId": "prev\.json"[^]*\}\n$/);
    // no --out: beside CUR
    const worse = await compare(['prev.json', 'worse.json'], dir);
    expect(worse.code).toBe(1);
    expect(readFileSync(join(dir, 'trend.md'), 'utf8')).toContain('1 regression(s), 1 change(s) over 2 cell(s).');
    writeFileSync(join(dir, 'bad.json'), '{}');
    expect(await compare(['prev.json', 'bad.json'], dir)).toEqual({
      code: 2,
      out: '',
      err: `error: ${join(dir, 'bad.json')}: not a summary (expected the array of summary.json)\n`,
    });
  });

  it('--allow-no-previous takes a missing PREV as an empty run, but not an unreadable one', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'cur.json'), JSON.stringify([cell('a')]));
    const first = await compare(['none.json', 'cur.json', '--allow-no-previous'], dir);
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/^# Trend: cur\.json against \(none\)\n\n0 regression\(s\), 1 change\(s\) over 1 cell\(s\)\./);
    expect(JSON.parse(readFileSync(join(dir, 'trend.json'), 'utf8')).previous).toEqual({ runId: '(none)', startedAt: '' });
    writeFileSync(join(dir, 'bad.json'), '[');
    expect((await compare(['bad.json', 'cur.json', '--allow-no-previous'], dir)).code).toBe(2);
  });

  it('--history adds CUR to the folder, relative to cwd, and keeps --keep runs (14 by default)', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'prev.json'), JSON.stringify([cell('a')]));
    for (let i = 0; i < 16; i++) {
      writeFileSync(
        join(dir, 'manifest.json'),
        JSON.stringify({ runId: `n${String(i).padStart(2, '0')}`, startedAt: `2026-12-${String(i + 1).padStart(2, '0')}` }),
      );
      writeFileSync(join(dir, 'cur.json'), JSON.stringify([cell('a')]));
      expect((await compare(['prev.json', 'cur.json', '--history', 'h'], dir)).code).toBe(0);
    }
    const names = readdirSync(join(dir, 'h')).sort();
    expect(names).toHaveLength(14);
    expect(names[0]).toBe('2026-12-03-n02.json');
    expect((await compare(['prev.json', 'cur.json', '--history', 'h', '--keep', '2'], dir)).code).toBe(0);
    expect(readdirSync(join(dir, 'h')).sort()).toEqual(['2026-12-15-n14.json', '2026-12-16-n15.json']);
  });
});
