// A cell's report.md word for word (src/report/cell.ts): every line it writes, every default an
// older or a failed cell falls back to, and the three ways the truth table is shown (ours, the
// user's client, an external tracer). The cells are written out by hand, so each figure below is
// the one put in, not one the analysis computed.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CellSummary, TrialResult } from '../src/analysis/cell.ts';
import { renderCellMd, verdictWord, writeCellReport } from '../src/report/cell.ts';

function rich(): CellSummary {
  return {
    target: 'bookworm',
    cpus: 2,
    server: 'haproxy',
    reads: 'single',
    variant: 'upstream',
    mode: 'sequential',
    scenario: 'preexisting',
    kernel: '6.1.0-1',
    openssl: '3.0.15',
    hook: 'kprobe',
    trials: 3,
    trialsOk: 2,
    expected: 8,
    captured: 10,
    correct: 6,
    wrong: 4,
    lost: 1,
    backendRows: 3,
    droppedNoTuple: 5,
    misattribution: 0.4,
    misattributionCI: { lo: 0.125, hi: 0.75, method: 'wilson' },
    trialSpread: { n: 2, mean: 0.375, lo: 0.0625, hi: 0.6875 },
    capture: 0.625,
    symmetry: 0.333,
    truth: { writes: { correct: 7, wrong: 1, lost: 0 }, reads: { correct: 5, wrong: 2, lost: 1 }, unclassifiedReads: 2 },
    byConn: [
      { k: 1, rport: 18001, rightRows: 4, wrongRows: 3 },
      { k: 2, rport: 18002, rightRows: 2, wrongRows: 1 },
    ],
    http: { requestBuffers: 9, terminations: 4 } as unknown as CellSummary['http'],
    status: 'ok',
    verdict: { pass: true, expectation: 'wrong rows', reason: '4 wrong rows' },
  } as CellSummary;
}

function bare(): CellSummary {
  const c = rich() as Partial<CellSummary>;
  delete c.cpus;
  delete c.server;
  delete c.reads;
  delete c.backendRows;
  return {
    ...(c as CellSummary),
    status: 'tracer-failed',
    error: 'load failed',
    trials: 1,
    trialsOk: 0,
    expected: 0,
    captured: 0,
    correct: 0,
    wrong: 0,
    lost: 0,
    droppedNoTuple: null,
    misattribution: null,
    misattributionCI: null,
    trialSpread: null,
    capture: null,
    symmetry: null,
    truth: { writes: { correct: 0, wrong: 0, lost: 0 }, reads: { correct: 0, wrong: 0, lost: 0 }, unclassifiedReads: 0 },
    byConn: [],
    http: null,
    verdict: { pass: false, expectation: 'cell runs', reason: 'tracer-failed: load failed' },
  };
}

const full: TrialResult = {
  trial: 1,
  status: 'ok',
  attribution: { expected: 4, captured: 5, correct: 3, wrong: 2 } as TrialResult['attribution'],
  clientOk: 4,
  clientFail: 0,
  incompleteRequests: 1,
  orphanResponses: 2,
  tracerStats: { slot_writes: 10, slot_overwrites: 3, slot_consumed: 7, ringbuf_drops: 0 },
  durationMs: 12345,
};

describe('report.md, word for word', () => {
  it('an ok cell with every figure: its title, run line, status, attribution table, notes, truth, HTTP layer and trials', () => {
    const md = renderCellMd({
      cell: rich(),
      trials: [
        full,
        { trial: 2, status: 'client-failed', error: 'a|b\nsecond line', tracerStats: {}, durationMs: 0 },
        { trial: 3, status: 'ok', tracerStats: null },
      ],
    });
    expect(md).toBe(
      [
        '# bookworm: preexisting / sequential / upstream / haproxy',
        '',
        'kernel 6.1.0-1, OpenSSL 3.0.15, 2 vCPU(s), server: haproxy, client reads: single, kernel hooks: kprobe; 2 of 3 trial(s) ran.',
        '',
        '**Status: ok**. Verdict: as expected (expected wrong rows: 4 wrong rows).',
        '',
        '## Attribution (rows of http_monitoring.json, as the investigation counts them)',
        '',
        '| run | conn1 right | conn1 wrong | conn2 right | conn2 wrong | misattribution |',
        '|---|---|---|---|---|---|',
        '| sequential, 8 requests expected, 10 rows captured | 4 | 3 | 2 | 1 | 40.0 % (4 of 10) |',
        '',
        '- misattribution, 95 % Wilson interval over the pooled rows: [12.5 %, 75.0 %]',
        '- rows per request sent: 1.25',
        '- across the 2 trials: mean 37.5 %, 95 % t interval [6.3 %, 68.8 %]',
        '- lost (in no row): 1 of 8; captured correctly: 62.5 %',
        '- symmetry of the wrong rows (min/max over connections): 0.33',
        "- rows on tuples of no client connection (a terminator's backend side): 3; buffers dropped for lack of a tuple: 5",
        '',
        "## Per-request truth (the client's own writes and reads)",
        '',
        '| path | correct | wrong | lost |',
        '|---|---|---|---|',
        '| request writes | 7 | 1 | 0 |',
        '| response reads | 5 | 2 | 1 |',
        '',
        "Client reads that did not begin with a status line, counted in neither column (a body-only read: the response's own 2-byte body with full reads, an earlier response's with single reads): 2.",
        '',
        "## HTTP layer (upstream's rules: flushes, terminations, the joiner at the query, the drops)",
        '',
        '| counter | value |',
        '|---|---|',
        '| requestBuffers | 9 |',
        '| terminations | 4 |',
        '',
        '## Trials',
        '',
        '| trial | status | rows | wrong | client ok/fail | incomplete req / orphan resp | slot writes / overwrites / consumed | ringbuf drops | s |',
        '|---|---|---|---|---|---|---|---|---|',
        '| 1 | ok | 5 | 2 | 4/0 | 1 / 2 | 10 / 3 / 7 | 0 | 12.3 |',
        '| 2 | client-failed: a/b | - | - | -/- | - / - | - / - / - | - | 0.0 |',
        '| 3 | ok | - | - | -/- | - / - | - | - | - |',
        '',
      ].join('\n'),
    );
  });

  it('a failed cell of an older report: the defaults (1 vCPU, python, full reads, no backend rows), n/a for every missing figure', () => {
    const md = renderCellMd({ cell: bare(), trials: [] });
    expect(md).toBe(
      [
        '# bookworm: preexisting / sequential / upstream',
        '',
        'kernel 6.1.0-1, OpenSSL 3.0.15, 1 vCPU(s), server: python, client reads: full, kernel hooks: kprobe; 0 of 1 trial(s) ran.',
        '',
        '**Status: tracer-failed** (load failed). Verdict: NOT as expected (expected cell runs: tracer-failed: load failed).',
        '',
        '## Attribution (rows of http_monitoring.json, as the investigation counts them)',
        '',
        '| run | misattribution |',
        '|---|---|',
        '| sequential, 0 requests expected, 0 rows captured | n/a (no row names a connection) |',
        '',
        '- lost (in no row): 0 of 0; captured correctly: n/a',
        '- symmetry of the wrong rows (min/max over connections): n/a',
        "- rows on tuples of no client connection (a terminator's backend side): 0; buffers dropped for lack of a tuple: n/a",
        '',
        "## Per-request truth (the client's own writes and reads)",
        '',
        '| path | correct | wrong | lost |',
        '|---|---|---|---|',
        '| request writes | 0 | 0 | 0 |',
        '| response reads | 0 | 0 | 0 |',
        '',
        '## Trials',
        '',
        '| trial | status | rows | wrong | client ok/fail | incomplete req / orphan resp | slot writes / overwrites / consumed | ringbuf drops | s |',
        '|---|---|---|---|---|---|---|---|---|',
        '',
      ].join('\n'),
    );
  });

  it('names python only when the cell does not; a measured verdict', () => {
    const md = renderCellMd({ cell: { ...rich(), server: 'python', verdict: { pass: null, expectation: 'nothing', reason: 'measured only' } }, trials: [] });
    expect(md.split('\n')[0]).toBe('# bookworm: preexisting / sequential / upstream');
    expect(md).toContain(', server: python, ');
    expect(md).toContain('**Status: ok**. Verdict: measured (expected nothing: measured only).');
  });

  it.each([
    [
      'an external tracer judged as upstream',
      { variant: 'sp', external: { expect: 'upstream' as const } },
      'tracer: yours (sp, judged as upstream)',
      'n/a: an external tracer (sp) ran: its debug endpoint gave the rows above, and no events of ours.',
    ],
    [
      'an external tracer measured only',
      { variant: 'sp', external: { expect: null } },
      'tracer: yours (sp, judged as nothing: measured)',
      'n/a: an external tracer (sp) ran: its debug endpoint gave the rows above, and no events of ours.',
    ],
    [
      "the user's own client",
      { client: 'race.c' },
      'kernel hooks: kprobe',
      'n/a: your own client (race.c) ran, whose requests and reads are its own; the figures above are from the rows.',
    ],
  ])('%s: the run line says so and the truth table is n/a', (_, over, run, truth) => {
    const lines = renderCellMd({ cell: { ...rich(), ...over }, trials: [] }).split('\n');
    expect(lines[2]).toBe(`kernel 6.1.0-1, OpenSSL 3.0.15, 2 vCPU(s), server: haproxy, client reads: single, ${run}; 2 of 3 trial(s) ran.`);
    const at = lines.indexOf("## Per-request truth (the client's own writes and reads)");
    expect(lines.slice(at + 1, at + 4)).toEqual(['', truth, '']);
    expect(lines).not.toContain('| path | correct | wrong | lost |');
  });
});

describe('verdictWord and writeCellReport', () => {
  it.each([
    [true, 'as expected'],
    [false, 'NOT as expected'],
    [null, 'measured'],
  ])('verdict %s is %s', (pass, word) => {
    expect(verdictWord(pass)).toBe(word);
  });

  it('writes report.json (two-space JSON, final newline) and report.md into a folder it makes', async () => {
    const root = mkdtempSync(join(tmpdir(), 'report-cell-'));
    try {
      const dir = join(root, 'bookworm', 'preexisting-sequential-upstream');
      const r = { cell: rich(), trials: [full] };
      await writeCellReport(dir, r);
      expect(readFileSync(join(dir, 'report.json'), 'utf8')).toBe(JSON.stringify(r, null, 2) + '\n');
      expect(readFileSync(join(dir, 'report.md'), 'utf8')).toBe(renderCellMd(r));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
