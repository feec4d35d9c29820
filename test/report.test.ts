import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, readlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summarizeCell, type CellSummary } from '../src/analysis/cell.ts';
import { toHttpMonitoring, type Transaction } from '../src/analysis/transactions.ts';
import { renderCellMd, writeCellReport } from '../src/report/cell.ts';
import type { Manifest } from '../src/report/manifest.ts';
import { renderSummaryMd, renderTable, writeSummary, pointLatest } from '../src/report/summary.ts';

// The investigation's analysis, verbatim (INVESTIGATION.md, step 7): it must run unchanged.
const SEED_ANALYSIS = `
import json, sys
data = json.load(sys.stdin)
conn1_correct = sum(1 for e in data if 'conn1' in e.get('Path','') and e.get('Server',{}).get('Port')==18001)
conn1_wrong = sum(1 for e in data if 'conn1' in e.get('Path','') and e.get('Server',{}).get('Port')==18002)
conn2_wrong = sum(1 for e in data if 'conn2' in e.get('Path','') and e.get('Server',{}).get('Port')==18001)
conn2_correct = sum(1 for e in data if 'conn2' in e.get('Path','') and e.get('Server',{}).get('Port')==18002)
print(f'conn1 -> 18001 (correct): {conn1_correct}')
print(f'conn1 -> 18002 (WRONG):   {conn1_wrong}')
print(f'conn2 -> 18001 (WRONG):   {conn2_wrong}')
print(f'conn2 -> 18002 (correct): {conn2_correct}')
print(f'Misattribution rate: {(conn1_wrong+conn2_wrong)/(conn1_correct+conn1_wrong+conn2_wrong+conn2_correct)*100:.1f}%')
`;

const tx = (clientPort: number, serverPort: number, path: string, status = 200): Transaction => ({
  tuple: { client: { ip: '127.0.0.1', port: clientPort }, server: { ip: '127.0.0.1', port: serverPort } },
  method: 'GET',
  path,
  status,
  requestTs: 1e6,
  responseTs: 3e6,
  pid: 1,
  joined: false,
});

function cell(over: Partial<CellSummary> = {}): CellSummary {
  const base = summarizeCell(
    { target: 'bookworm', cpus: 1, reads: 'full', variant: 'upstream', mode: 'interleaved', scenario: 'preexisting' },
    { kernel: '6.1.0-1', openssl: '3.0.15' },
    [
      {
        trial: 1,
        status: 'ok',
        attribution: {
          // every denominator distinct: 4 requests, 6 rows (some requests have two), 2 right rows
          // but only 1 request with a right row: misattribution 4/6 (not 4/4), capture 1/4 (not 2/4)
          expected: 4,
          captured: 6,
          correct: 2,
          wrong: 4,
          lost: 0,
          capturedRequests: 1,
          byConn: [
            { k: 1, rport: 18001, rightRows: 2, wrongRows: 3 },
            { k: 2, rport: 18002, rightRows: 0, wrongRows: 1 },
          ],
          truth: { writes: { correct: 0, wrong: 4, lost: 0 }, reads: { correct: 0, wrong: 2, lost: 2 } },
        },
      },
    ],
  );
  return { ...base, ...over };
}

describe('http_monitoring.json', () => {
  it("is in upstream's debug-endpoint shape and the seed's analysis runs on it unchanged", () => {
    const rows = toHttpMonitoring([
      tx(40001, 18001, '/200/conn1-iter0'),
      tx(40001, 18001, '/200/conn1-iter0'), // the other side of the same request: one row, Count 2
      tx(40002, 18002, '/200/conn1-iter1'),
      tx(40001, 18001, '/200/conn2-iter0'),
      tx(40002, 18002, '/200/conn2-iter1', 404),
    ]);
    expect(rows).toHaveLength(4);
    expect(rows[0]).toEqual({
      Client: { IP: '127.0.0.1', Port: 40001 },
      Server: { IP: '127.0.0.1', Port: 18001 },
      DNS: '',
      Path: '/200/conn1-iter0',
      Method: 'GET',
      ByStatus: { '200': { Count: 2, FirstLatencySample: 2 } },
      StaticTags: 2,
      DynamicTags: null,
    }); // StaticTags 2: LIBSSL
    expect(rows[3]!.ByStatus).toHaveProperty('404');
    expect(rows[3]).not.toHaveProperty('Status');
    const out = execFileSync('python3', ['-c', SEED_ANALYSIS], { input: JSON.stringify(rows), encoding: 'utf8', timeout: 10_000 });
    expect(out).toContain('conn1 -> 18001 (correct): 1');
    expect(out).toContain('conn1 -> 18002 (WRONG):   1');
    expect(out).toContain('conn2 -> 18001 (WRONG):   1');
    expect(out).toContain('conn2 -> 18002 (correct): 1');
    expect(out).toContain('Misattribution rate: 50.0%');
  });
});

describe('reports', () => {
  it("report.md has the investigation's table layout with the cell's figures", () => {
    const md = renderCellMd({ cell: cell(), trials: [] });
    expect(md).toContain('| run | conn1 right | conn1 wrong | conn2 right | conn2 wrong | misattribution |');
    expect(md).toContain('| interleaved, 4 requests expected, 6 rows captured | 2 | 3 | 0 | 1 | 66.7 % (4 of 6) |');
    expect(md).toContain('- rows per request sent: 1.50');
    expect(md).toContain('- lost (in no row): 0 of 4; captured correctly: 25.0 %');
    expect(md).toContain('| request writes | 0 | 4 | 0 |');
    expect(md).toMatch(/Verdict: as expected/);
  });

  it('a failed cell says what failed, never a bare 0 %', () => {
    const failed = summarizeCell({ target: 'sid', cpus: 1, reads: 'full', variant: 'scoped', mode: 'interleaved', scenario: 'preexisting' }, {}, [
      { trial: 1, status: 'build-failed', error: 'make -C bpf failed (exit 2)' },
    ]);
    const md = renderCellMd({ cell: failed, trials: [] });
    expect(md).toContain('**Status: build-failed** (make -C bpf failed (exit 2))');
    expect(md).toContain('n/a (no row names a connection)');
    expect(md).not.toMatch(/\b0\.0 %/);
    expect(renderTable([failed])).toMatch(/sid preexisting\/interleaved\/scoped\s+unknown\s+n\/a\s+n\/a\s+build-failed\s+NOT as expected/);
  });

  it('summary.md sets our figures beside the investigation, lists failed targets; files and latest link are written', async () => {
    const out = mkdtempSync(join(tmpdir(), 'report-test-'));
    const dir = join(out, '20261124T000000Z');
    mkdirSync(dir);
    const manifest: Manifest = {
      runId: 'r1',
      tool: { commit: 'abc', dirty: false, node: 'v20' },
      startedAt: 'now',
      argv: [],
      seed: 1,
      iterations: 2,
      trials: 1,
      variants: ['upstream'],
      modes: ['interleaved'],
      scenarios: ['preexisting'],
      targets: [
        { name: 'bookworm', backend: 'qemu', status: 'ok', facts: {} },
        { name: 'sid', backend: 'qemu', status: 'boot-timeout', error: 'no SSH within 120 s', detail: '[  1.0] console tail', facts: {} },
      ],
    };
    const md = renderSummaryMd(manifest, [cell()]);
    expect(md).toContain('73.8 % (138 / 408 / 402 / 150');
    expect(md).toContain('quoted as 81 %');
    expect(md).toContain('63.9 %');
    expect(md).toContain('bookworm: 66.7 % (4 of 6)');
    expect(md).toContain('**sid** (qemu): boot-timeout: no SSH within 120 s');
    expect(md).toContain('console tail');
    await writeSummary(dir, manifest, [cell()]);
    await writeCellReport(join(dir, 'bookworm', 'preexisting-interleaved-upstream'), { cell: cell(), trials: [] });
    const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
    expect(Object.keys(summary[0])).toEqual(
      expect.arrayContaining([
        'target',
        'kernel',
        'openssl',
        'variant',
        'mode',
        'scenario',
        'trials',
        'expected',
        'captured',
        'correct',
        'wrong',
        'lost',
        'misattribution',
        'capture',
        'status',
      ]),
    );
    expect(summary[0]).toMatchObject({ expected: 4, captured: 6, correct: 2, wrong: 4, rowsPerRequest: 1.5, capture: 0.25 });
    expect(summary[0].misattribution).toBeCloseTo(4 / 6, 10);
    expect(JSON.parse(readFileSync(join(dir, 'bookworm', 'preexisting-interleaved-upstream', 'report.json'), 'utf8')).cell.wrong).toBe(4);
    // summary.md as written, read back: the matrix entry, the detail row, the failed target
    const written = readFileSync(join(dir, 'summary.md'), 'utf8');
    expect(written).toBe(renderSummaryMd(manifest, [cell()]));
    expect(written).toContain('| bookworm (6.1.0-1, OpenSSL 3.0.15) | ✓ 66.7 % [30.0-90.3], capture 25.0 % |');
    expect(written).toContain(
      '| bookworm | 1 | 6.1.0-1 | 3.0.15 | python | full | preexisting | interleaved | upstream | 4 | 6 | 1.50 | 2 | 4 | 0 | 0 | n/a | 66.7 % [30.0-90.3] | 25.0 % | ok | as expected |',
    );
    expect(written).toContain('| sid | qemu | boot-timeout | - | - | - | - | - | - | - |');
    expect(written).toContain('- **sid** (qemu): boot-timeout: no SSH within 120 s');
    await pointLatest(dir);
    expect(readlinkSync(join(out, 'latest'))).toBe('20261124T000000Z');
    writeFileSync(join(out, 'x'), '');
  });
});

describe('merge of shard folders', () => {
  it('merges the cells and targets of several report folders into one summary; refuses a target twice', async () => {
    const { mergeRuns } = await import('../src/report/merge.ts');
    const root = mkdtempSync(join(tmpdir(), 'merge-test-'));
    const mk = async (name: string, target: string) => {
      const dir = join(root, name);
      const c = cell({ target });
      const manifest: Manifest = {
        runId: name,
        tool: { commit: 'abc', dirty: false, node: 'v20' },
        startedAt: `2026-11-24T0${name.at(-1)}:00:00Z`,
        argv: [],
        seed: 1,
        iterations: 2,
        trials: 1,
        variants: ['upstream'],
        modes: ['interleaved'],
        scenarios: ['preexisting'],
        targets: [{ name: target, backend: 'qemu', status: 'ok', facts: {} }],
      };
      await writeSummary(dir, manifest, [c]);
      await writeCellReport(join(dir, target, 'preexisting-interleaved-upstream'), { cell: c, trials: [] });
      return dir;
    };
    const a = await mk('shard-1', 'bullseye');
    const b = await mk('shard-2', 'sid');
    const out = join(root, 'merged');
    const { cells, manifest } = await mergeRuns([a, b], out);
    expect(cells.map((c) => c.target)).toEqual(['bullseye', 'sid']);
    expect(manifest.targets.map((t) => t.name)).toEqual(['bullseye', 'sid']);
    expect(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'))).toHaveLength(2);
    expect(readFileSync(join(out, 'summary.md'), 'utf8')).toContain('| sid |');
    await expect(mergeRuns([a, a], join(root, 'm2'))).rejects.toThrow(/target 'bullseye' appears in more than one folder/);
    await expect(mergeRuns([join(root, 'nothing')], join(root, 'm3'))).rejects.toThrow(/not a report folder/);
  });
});
