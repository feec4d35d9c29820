// summary.ts word for word: the terminal's final table, summary.json's entries (which fields are
// always there, which only when they mean something) and summary.md's run line. Aimed at what
// mutation run 10 left alive in src/report/summary.ts (README, "Mutation testing").
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summarizeCell, type TrialResult } from '../src/analysis/cell.ts';
import type { Manifest } from '../src/report/manifest.ts';
import { renderSummaryMd, renderTable, summaryEntries, writeSummary } from '../src/report/summary.ts';

/** A trial's attribution: `wrong` of `captured` rows wrong, 4 requests expected. */
const attribution = (wrong: number, captured: number): NonNullable<TrialResult['attribution']> => ({
  expected: 4,
  captured,
  correct: captured - wrong,
  wrong,
  lost: 0,
  capturedRequests: captured - wrong,
  byConn: [
    { k: 1, rport: 18001, rightRows: captured - wrong, wrongRows: wrong },
    { k: 2, rport: 18002, rightRows: 0, wrongRows: 0 },
  ],
  truth: { writes: { correct: 4, wrong: 0, lost: 0 }, reads: { correct: 4, wrong: 0, lost: 0 } },
});
const cellOf = (id: Partial<Parameters<typeof summarizeCell>[0]>, trial: Omit<TrialResult, 'trial'>) =>
  summarizeCell(
    { target: 'bookworm', cpus: 1, reads: 'full', variant: 'upstream', mode: 'interleaved', scenario: 'preexisting', ...id },
    { kernel: '6.1.0-1', openssl: '3.0.15' },
    [{ trial: 1, ...trial }],
  );
const cells = () => [
  cellOf({}, { status: 'ok', attribution: attribution(2, 4) }),
  cellOf({ target: 'sid', variant: 'scoped', reads: 'single', server: 'nginx-proxy' }, { status: 'ok', attribution: attribution(0, 4) }),
  cellOf({ target: 'trixie' }, { status: 'client-failed', error: 'boom' }),
];

const manifest = (over: Partial<Manifest> = {}): Manifest => ({
  runId: 'r1',
  tool: { commit: 'abc', dirty: false, node: 'v20' },
  startedAt: 'now',
  argv: [],
  seed: 7,
  iterations: 200,
  trials: 1,
  variants: ['upstream'],
  modes: ['interleaved'],
  scenarios: ['preexisting'],
  targets: [],
  ...over,
});

describe('summary.ts, word for word', () => {
  it("the terminal's table: a header, a dash line as wide as each column, two spaces between columns; single reads and a terminator named in the cell", () => {
    expect(renderTable(cells()).split('\n')).toEqual([
      'cell                                                   kernel   misattribution            capture  status         verdict        ',
      '-----------------------------------------------------  -------  ------------------------  -------  -------------  ---------------',
      'bookworm preexisting/interleaved/upstream              6.1.0-1  50.0 % [15.0-85.0] (2/4)  50.0 %   ok             as expected    ',
      'sid preexisting/interleaved/scoped/single/nginx-proxy  6.1.0-1  0.0 % [0.0-49.0] (0/4)    100.0 %  ok             as expected    ',
      'trixie preexisting/interleaved/upstream                6.1.0-1  n/a                       n/a      client-failed  NOT as expected',
    ]);
    // no cell: the header and its dashes only
    expect(renderTable([])).toBe('cell  kernel  misattribution  capture  status  verdict\n----  ------  --------------  -------  ------  -------');
  });

  it("summary.json's entries: defaults for what older cells lack; error, boot, client and external only when they are set", () => {
    const [ok, , failed] = summaryEntries(cells());
    expect(ok).toMatchObject({ server: 'python', backendRows: 0, droppedNoTuple: null, rowsPerRequest: 1, capture: 0.5, status: 'ok' });
    for (const k of ['error', 'boot', 'client', 'external']) expect(k in ok!, k).toBe(false);
    expect(failed).toMatchObject({ status: 'client-failed', error: 'boom', misattribution: null, rowsPerRequest: null });
    const c = {
      ...cells()[0]!,
      boot: 'snapshot' as never,
      client: { src: 'x.c', sha256: 'ff' } as never,
      external: { expect: 'upstream' } as never,
      backendRows: 3,
      droppedNoTuple: 4,
    };
    const e = summaryEntries([c])[0]!;
    expect([e.boot, e.client, e.external, e.backendRows, e.droppedNoTuple]).toEqual(['snapshot', { src: 'x.c', sha256: 'ff' }, { expect: 'upstream' }, 3, 4]);
    expect(Object.keys(e).at(-1)).toBe('verdict');
  });

  it("summary.md's run line: every setting that shapes the figures, with defaults for the ones an older manifest lacks", () => {
    const line = (m: Manifest) => renderSummaryMd(m, []).split('\n').slice(0, 3);
    expect(line(manifest())).toEqual([
      '# USM TLS attribution matrix: run r1',
      '',
      "tool abc, 200 iterations x 1 trial(s), seed 7; client reads full; servers python; servers' Nagle off; 0.0 s at most for the servers to close the run's connections before the tracer's run closes.",
    ]);
    const full = manifest({
      tool: { commit: 'abc', dirty: true, node: 'v20' },
      iterationsByMode: { interleaved: 200, sequential: 100 },
      reads: ['full', 'single'],
      servers: ['python', 'haproxy'],
      client: { src: 'my.c', sha256: '0123456789abcdef' },
      tracer: {
        label: 'sp',
        expect: null,
        argv: [],
        files: [
          { src: 'a', name: 'a', sha256: '1' },
          { src: 'b', name: 'b', sha256: '2' },
        ],
        sha256: 'fedcba9876543210',
      },
      nagle: 'on',
      settleMs: 2500,
    } as Partial<Manifest>);
    expect(line(full)[2]).toBe(
      "tool abc (dirty), 200 iterations (interleaved 200, sequential 100) x 1 trial(s), seed 7; client reads full, single; servers python, haproxy; client: yours, my.c (sha256 0123456789ab); tracer: yours, sp (a, b; sha256 fedcba987654); servers' Nagle on; 2.5 s at most for the servers to close the run's connections before the tracer's run closes.",
    );
    const noFiles = manifest({ tracer: { label: 'sp', expect: null, argv: [], files: [], sha256: 'fedcba9876543210' } });
    expect(line(noFiles)[2]).toContain('; tracer: yours, sp (no files; sha256 fedcba987654);');
  });

  it('summary.md: the resumed line counts the reused cells; the targets table fills missing facts with -; ours beside the investigation, or "not run"', () => {
    const m = manifest({
      resumedFrom: { runId: 'r0' } as never,
      targets: [
        { name: 'bookworm', backend: 'qemu', status: 'ok', reused: 2, facts: { kernel: '6.1.0-1', accel: 'tcg', bootSeconds: 9 } },
        { name: 'sid', backend: 'qemu', status: 'ok', facts: {} },
      ] as never,
    });
    const md = renderSummaryMd(m, cells());
    expect(md).toContain('\nResumed run r0: 2 of 3 cell(s) reused (inputs unchanged, report complete), the others ran again.\n');
    expect(md).toContain('\n| bookworm | qemu | ok | 6.1.0-1 | - | - | - | tcg | 9 | - |\n| sid | qemu | ok | - | - | - | - | - | - | - |\n');
    expect(md).not.toContain('## Targets that failed');
    // the interleaved pre-existing upstream cell is "ours" beside the investigation's interleaved run; no baseline cell: not run
    expect(md).toMatch(/\| [^|]*interleaved[^|]* \| 63\.9 % \([^)]*\) \| bookworm: 50\.0 % \(2 of 4\) \|/);
    expect(md).toMatch(/\| [^|]*baseline[^|]* \| [^|]* \| not run \|/);
    expect(md.endsWith('\n')).toBe(true);
    const plain = renderSummaryMd(manifest(), cells());
    expect(plain).not.toContain('Resumed run');
    expect(plain).not.toContain('## Targets\n');
  });

  it('writeSummary: summary.json and manifest.json are two-space JSON ending in a newline', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'summary-'));
    try {
      await writeSummary(dir, manifest(), cells());
      for (const f of ['summary.json', 'manifest.json']) {
        const text = readFileSync(join(dir, f), 'utf8');
        expect(text, f).toBe(JSON.stringify(JSON.parse(text), null, 2) + '\n');
      }
      expect(JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'))).toHaveLength(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('summary.ts: the sections after the matrix', () => {
  it('beside the investigation: ours per row are the ok upstream (or expected-upstream) cells of its mode, pre-existing; every baseline cell on the baseline row', () => {
    const all = [
      cellOf({}, { status: 'ok', attribution: attribution(2, 4) }),
      cellOf({ target: 'jammy', mode: 'sequential' }, { status: 'ok', attribution: attribution(1, 4) }),
      cellOf({ target: 'focal', scenario: 'baseline' }, { status: 'ok', attribution: attribution(0, 4) }),
      cellOf({ target: 'lunar', scenario: 'baseline', mode: 'sequential' }, { status: 'ok', attribution: attribution(1, 4) }),
      cellOf({ target: 'sid', variant: 'scoped' }, { status: 'ok', attribution: attribution(0, 4) }),
      cellOf({ target: 'trixie' }, { status: 'client-failed', error: 'boom' }),
      { ...cellOf({ target: 'noble', variant: 'sp' }, { status: 'ok', attribution: attribution(3, 4) }), external: { expect: 'upstream' as const } },
      { ...cellOf({ target: 'mantic', variant: 'sp' }, { status: 'ok', attribution: attribution(3, 4) }), external: { expect: null } },
    ];
    const md = renderSummaryMd(manifest(), all);
    expect(md.split('\n').slice(-8)).toEqual([
      '## Beside the investigation (Vagrant VM, system-probe)',
      '',
      '| investigation run | its misattribution | ours (same mode, upstream, preexisting) |',
      '|---|---|---|',
      '| sequential (v1 client, 500 iterations) | 73.8 % (138 / 408 / 402 / 150 (conn1 right, conn1 wrong, conn2 wrong, conn2 right); quoted as 81 %, which is 810 of the 1000 expected requests) | jammy: 25.0 % (1 of 4) |',
      '| interleaved (v2 client, 200 iterations, VM) | 63.9 % (67 / 133 / 134 / 84; 418 captured of 400 expected) | bookworm: 50.0 % (2 of 4); noble: 75.0 % (3 of 4) |',
      '| baseline: tracer before the connections | 0.0 % (80 entries captured) | focal: 0.0 % (0 of 4); lunar: 25.0 % (1 of 4) |',
      '',
    ]);
    // the Feb 5 section comes before it, after one blank line
    expect(md).toContain("\n\n## The Feb 5 comparison (the investigation's table beside ours)\n\n");
    expect(md.indexOf('## The Feb 5 comparison')).toBeLessThan(md.indexOf('## Beside the investigation'));
  });

  it('the targets that failed: each with its error, and its detail (trailing blanks cut) in a code block; no Feb 5 section without a pre-existing cell', () => {
    const m = manifest({
      targets: [
        { name: 'bookworm', backend: 'qemu', status: 'ok', facts: {} },
        { name: 'sid', backend: 'vagrant', status: 'boot-failed', error: 'no kvm', detail: '  line1\nline2 \n\n', facts: {} },
        { name: 'jammy', backend: 'qemu', status: 'timeout', facts: {} },
      ],
    });
    const md = renderSummaryMd(m, []);
    expect(md).toContain(
      [
        '| jammy | qemu | timeout | - | - | - | - | - | - | - |',
        '',
        '## Targets that failed',
        '',
        '- **sid** (vagrant): boot-failed: no kvm',
        '',
        '```',
        '  line1',
        'line2',
        '```',
        '',
        '- **jammy** (qemu): timeout',
        '',
        '## Beside the investigation (Vagrant VM, system-probe)',
        '',
      ].join('\n'),
    );
    expect(md).not.toContain('Feb 5');
  });

  it('summary.md from its title to the targets table, line by line: blank lines between the parts, every fact in its column', () => {
    const m = manifest({
      resumedFrom: { runId: 'r0' } as never,
      targets: [
        {
          name: 'bookworm',
          backend: 'qemu',
          status: 'ok',
          reused: 1,
          facts: { kernel: 'K', openssl: 'O', clang: 'C', libbpf: 'L', accel: 'A', bootSeconds: 'B', peakRssMiB: 'P' },
        },
      ],
    });
    const lines = renderSummaryMd(m, []).split('\n');
    expect(lines.slice(0, 5)).toEqual([
      '# USM TLS attribution matrix: run r1',
      '',
      "tool abc, 200 iterations x 1 trial(s), seed 7; client reads full; servers python; servers' Nagle off; 0.0 s at most for the servers to close the run's connections before the tracer's run closes.",
      '',
      'Resumed run r0: 1 of 0 cell(s) reused (inputs unchanged, report complete), the others ran again.',
    ]);
    expect(lines[5]).toBe('');
    const at = lines.indexOf('## Targets');
    expect(lines.slice(at - 1, at + 6)).toEqual([
      '',
      '## Targets',
      '',
      '| target | backend | status | kernel | OpenSSL | clang | libbpf | accel | boot s | peak MiB |',
      '|---|---|---|---|---|---|---|---|---|---|',
      '| bookworm | qemu | ok | K | O | C | L | A | B | P |',
      '',
    ]);
  });

  it('the terminal table does not name the python server, whether a cell names it or not', () => {
    const [named] = [cellOf({ server: 'python' }, { status: 'ok', attribution: attribution(2, 4) })];
    expect(renderTable([named!]).split('\n')[2]).toMatch(/^bookworm preexisting\/interleaved\/upstream {2}/);
  });

  it('writeSummary: a file it cannot put in place fails the write and leaves no temporary file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'summary-'));
    try {
      // summary.json is a folder with a file in it: the rename over it fails
      mkdirSync(join(dir, 'summary.json'));
      writeFileSync(join(dir, 'summary.json', 'x'), '');
      await expect(writeSummary(dir, manifest(), cells())).rejects.toThrow();
      expect(readdirSync(dir).sort()).toEqual(['manifest.json', 'summary.json']);
      expect(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).runId).toBe('r1');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
