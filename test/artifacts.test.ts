// src/report/artifacts.ts and outputs.ts on cell folders made here: the log tail a failure quotes
// (which file, in which order, what is cut), the files linked, the http_monitoring.json rows.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CellSummary } from '../src/analysis/cell.ts';
import { defaultCellDir, loadAllArtifacts, loadCellArtifacts, logCandidates, tail } from '../src/report/artifacts.ts';
import type { Manifest } from '../src/report/manifest.ts';
import { loadArtifactsFor, tailsOf } from '../src/report/outputs.ts';

/** A run folder with target `sid` and its cell folder; files: path (from the cell folder) -> text. */
function cellFolder(files: Record<string, string>): { run: string; dir: string } {
  const run = mkdtempSync(join(tmpdir(), 'artifacts-'));
  const dir = join(run, 'sid', 'preexisting-interleaved-upstream');
  mkdirSync(dir, { recursive: true });
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  return { run, dir };
}

const cell = (status: string, error?: string): CellSummary =>
  ({ target: 'sid', scenario: 'preexisting', mode: 'interleaved', variant: 'upstream', reads: 'full', status, ...(error ? { error } : {}) }) as CellSummary;

describe('tail', () => {
  it('the last 30 lines, trailing blanks cut; at most 4000 characters, the end kept', () => {
    const text = Array.from({ length: 40 }, (_, i) => `line ${i + 1}`).join('\n') + '\n \n\t\n';
    expect(tail(text)).toBe(Array.from({ length: 30 }, (_, i) => `line ${i + 11}`).join('\n'));
    expect(tail('a\nb\nc', 2)).toBe('b\nc');
    expect(tail('  lead\nx  \n\n')).toBe('  lead\nx');
    const long = 'y'.repeat(3000) + '\n' + 'z'.repeat(3000);
    expect(tail(long)).toBe(long.slice(-4000));
    expect(tail('q'.repeat(4000))).toBe('q'.repeat(4000));
  });
});

describe('logCandidates', () => {
  it.each([
    ['tracer-failed', ['tracer.log', 'tracer.out'], []],
    ['no-traffic', ['tracer.log', 'tracer.out'], []],
    ['client-failed', ['client.log', 'client.out'], []],
    ['server-failed', ['servers.log', 'servers.out'], []],
    ['build-failed', [], ['build-failed.txt', 'build.log']],
    ['boot-failed', [], ['boot-failed.txt', 'console.log']],
    ['boot-timeout', [], ['boot-timeout.txt', 'console.log']],
    ['vm-died', ['vm-died.txt'], ['vm-died.txt', 'console.log']],
    ['timeout', ['tracer.log', 'client.log'], ['timeout.txt', 'console.log']],
    ['internal', ['tracer.log', 'client.log'], ['internal.txt', 'console.log']],
  ])('%s: trial %j, target %j', (status, trial, target) => {
    expect(logCandidates(status)).toEqual({ trial, target });
  });
});

describe('loadCellArtifacts', () => {
  it("links the target's and each trial's logs, http_monitoring.json, events.jsonl and .txt files, trials in numeric order", async () => {
    const { run, dir } = cellFolder({
      '../build.log': 'b',
      '../notes.md': 'n',
      '../boot-failed.txt': 't',
      'report.json': JSON.stringify({ cell: {}, trials: [{ trial: 1, status: 'ok' }] }),
      'trial-10/tracer.log': 'x',
      'trial-2/http_monitoring.json': '[]',
      'trial-2/events.jsonl': '',
      'trial-2/client.out': 'o',
      'trial-2/vm-died.txt': 'v',
      'trial-x/tracer.log': 'x',
    });
    const a = await loadCellArtifacts(cell('ok'), dir);
    const sid = join(run, 'sid');
    expect(a.files).toEqual([
      { trial: null, name: 'boot-failed.txt', path: join(sid, 'boot-failed.txt') },
      { trial: null, name: 'build.log', path: join(sid, 'build.log') },
      { trial: 2, name: 'events.jsonl', path: join(dir, 'trial-2', 'events.jsonl') },
      { trial: 2, name: 'http_monitoring.json', path: join(dir, 'trial-2', 'http_monitoring.json') },
      { trial: 2, name: 'vm-died.txt', path: join(dir, 'trial-2', 'vm-died.txt') },
      { trial: 10, name: 'tracer.log', path: join(dir, 'trial-10', 'tracer.log') },
    ]);
    expect([a.dir, a.trials, a.logTail]).toEqual([dir, [{ trial: 1, status: 'ok' }], '']);
  });

  it('the rows of http_monitoring.json over the trials, the first rowLimit of them; the total counts them all', async () => {
    const row = (path: string, client: number, by: Record<string, { Count?: number }>) => ({
      Path: path,
      Client: { Port: client },
      Server: { Port: 18001 },
      ByStatus: by,
    });
    const { dir } = cellFolder({
      'trial-1/http_monitoring.json': JSON.stringify([row('/conn1/a', 5000, { '200': { Count: 2 }, '404': { Count: 1 } }), {}]),
      'trial-2/http_monitoring.json': JSON.stringify([row('/conn2/b', 5001, { '200': {} }), row('/conn2/c', 5002, {})]),
      'trial-3/http_monitoring.json': JSON.stringify({ not: 'an array' }),
      'trial-4/http_monitoring.json': '{',
    });
    const a = await loadCellArtifacts(cell('ok'), dir, { rowLimit: 3 });
    expect(a.rows).toEqual([
      { trial: 1, path: '/conn1/a', clientPort: 5000, serverPort: 18001, statuses: '200,404', count: 3 },
      { trial: 1, path: '', clientPort: 0, serverPort: 0, statuses: '', count: 0 },
      { trial: 2, path: '/conn2/b', clientPort: 5001, serverPort: 18001, statuses: '200', count: 0 },
    ]);
    expect(a.rowsTotal).toBe(4);
    // 100 rows by default
    const many = cellFolder({ 'trial-1/http_monitoring.json': JSON.stringify(Array.from({ length: 120 }, () => ({}))) });
    const b = await loadCellArtifacts(cell('ok'), many.dir);
    expect([b.rows.length, b.rowsTotal]).toEqual([100, 120]);
  });

  it("a failed cell quotes the failed trial's log first (an empty one skipped), then the target's, then the target's detail, then its error", async () => {
    const trials = JSON.stringify({
      cell: {},
      trials: [
        { trial: 1, status: 'ok' },
        { trial: 2, status: 'tracer-failed' },
      ],
    });
    const one = cellFolder({ 'report.json': trials, 'trial-1/tracer.log': 'not this', 'trial-2/tracer.log': ' \n', 'trial-2/tracer.out': 'load failed\n' });
    expect((await loadCellArtifacts(cell('tracer-failed', 'e'), one.dir)).logTail).toBe('load failed');
    const boot = cellFolder({ '../console.log': 'console', '../boot-timeout.txt': 'no SSH\n' });
    expect((await loadCellArtifacts(cell('boot-timeout', 'e'), boot.dir)).logTail).toBe('no SSH');
    const noTxt = cellFolder({ '../console.log': 'console\n' });
    expect((await loadCellArtifacts(cell('boot-timeout', 'e'), noTxt.dir)).logTail).toBe('console');
    // no report.json: trial 1 is the one looked in
    const t1 = cellFolder({ 'trial-1/client.log': 'client said no' });
    expect((await loadCellArtifacts(cell('client-failed'), t1.dir)).logTail).toBe('client said no');
    const none = cellFolder({});
    expect((await loadCellArtifacts(cell('boot-failed', 'the error'), none.dir, { targetDetail: 'the detail' })).logTail).toBe('the detail');
    expect((await loadCellArtifacts(cell('boot-failed', 'the error'), none.dir)).logTail).toBe('the error');
    expect((await loadCellArtifacts(cell('boot-failed'), none.dir)).logTail).toBe('');
  });

  it('a file name is matched whole, its dot a dot', async () => {
    const { dir } = cellFolder({ 'trial-1/tracerXlog': 'no', 'trial-1/old-tracer.log': 'no', 'trial-1/tracer.log.1': 'no' });
    expect((await loadCellArtifacts(cell('tracer-failed', 'the error'), dir)).logTail).toBe('the error');
  });

  it('only folders named trial-N are trials (not old-trial-2, not trial-3.bak)', async () => {
    const { dir } = cellFolder({ 'trial-1/tracer.log': 'a', 'old-trial-2/tracer.log': 'b', 'trial-3.bak/tracer.log': 'c' });
    expect((await loadCellArtifacts(cell('ok'), dir)).files.map((f) => [f.trial, f.name])).toEqual([[1, 'tracer.log']]);
  });

  it('a log that cannot be read (a folder of that name) is skipped for the next one', async () => {
    const { dir } = cellFolder({ '../boot-failed.txt/x': 'not this', '../console.log': 'the console\n' });
    expect((await loadCellArtifacts(cell('boot-failed', 'e'), dir)).logTail).toBe('the console');
  });

  it('a status of ByStatus that is null counts nothing (and breaks nothing)', async () => {
    const row = { Path: '/p', Client: { Port: 1 }, Server: { Port: 2 }, ByStatus: { '200': null, '404': { Count: 2 } } };
    const { dir } = cellFolder({ 'trial-1/http_monitoring.json': JSON.stringify([row]) });
    expect((await loadCellArtifacts(cell('ok'), dir)).rows).toEqual([{ trial: 1, path: '/p', clientPort: 1, serverPort: 2, statuses: '200,404', count: 2 }]);
  });

  it('a cell that ran quotes nothing, whatever its logs say', async () => {
    const { dir } = cellFolder({ 'trial-1/tracer.log': 'error' });
    expect((await loadCellArtifacts(cell('ok', 'x'), dir)).logTail).toBe('');
  });
});

describe('loadAllArtifacts, defaultCellDir, loadArtifactsFor, tailsOf', () => {
  it("every cell by its key, from the folder dirOf names, with its target's detail", async () => {
    const { run } = cellFolder({});
    expect(defaultCellDir(run)({ ...cell('ok'), boot: 'sid-2cpu', reads: 'single' })).toBe(join(run, 'sid-2cpu', 'preexisting-interleaved-upstream-single'));
    const all = await loadAllArtifacts([cell('boot-failed', 'err'), { ...cell('timeout', 'late'), target: 'jammy' }], defaultCellDir(run), (t) =>
      t === 'sid' ? 'sid detail' : undefined,
    );
    expect([...all].map(([k, a]) => [k, a.dir, a.logTail])).toEqual([
      ['sid/preexisting/interleaved/upstream', join(run, 'sid', 'preexisting-interleaved-upstream'), 'sid detail'],
      ['jammy/preexisting/interleaved/upstream', join(run, 'jammy', 'preexisting-interleaved-upstream'), 'late'],
    ]);
    expect(tailsOf(all)).toEqual(
      new Map([
        ['sid/preexisting/interleaved/upstream', 'sid detail'],
        ['jammy/preexisting/interleaved/upstream', 'late'],
      ]),
    );
  });

  it("a target's detail is its error, a newline and its detail, or either alone (no blank first line); a cell of no listed target quotes its own error", async () => {
    const { run } = cellFolder({});
    const m = {
      targets: [
        { name: 'sid', error: 'boom', detail: 'more' },
        { name: 'jammy', error: 'only' },
        { name: 'lunar', detail: 'no error' },
      ],
    } as unknown as Manifest;
    const cells = ['sid', 'jammy', 'lunar', 'noble'].map((target) => ({ ...cell('boot-failed', 'cell error'), target }));
    const tails = tailsOf(await loadArtifactsFor(run, m, cells));
    expect([...tails.values()]).toEqual(['boom\nmore', 'only', 'no error', 'cell error']);
  });
});
