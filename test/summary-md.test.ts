// summary.md reads as a matrix: failures first (kind, error, the telling line of the log tail),
// then one matrix per scenario (rows: targets with kernel and OpenSSL; columns: variant x mode),
// then the detail table in report order (target, scenario, mode, variant), not run order.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readRun } from '../src/report/merge.ts';
import { mdCell } from '../src/report/matrix-md.ts';
import { writeSummary } from '../src/report/summary.ts';
import { intervalOf, sortCells, tellingLine } from '../src/report/view.ts';
import { wilson } from '../src/analysis/interval.ts';
import { copyFixture } from './helpers/report-fixture.ts';

describe('summary.md', () => {
  it('failures first, then the matrix, then the cells sorted (target, scenario, mode, variant)', async () => {
    const dir = copyFixture('md-');
    const { manifest, cells } = await readRun(dir);
    await writeSummary(dir, manifest, [...cells].reverse());
    const md = readFileSync(join(dir, 'summary.md'), 'utf8');
    const at = (s: string) => md.indexOf(s);
    expect(at('## Failures')).toBeGreaterThan(0);
    expect(at('## Failures')).toBeLessThan(at('## Matrix'));
    expect(at('## Matrix')).toBeLessThan(at('## Cells'));
    expect(md).toContain('| bullseye (all 8 cells) | boot-timeout | no SSH within 360 s | [  360.0] (no login prompt) |');
    expect(md).toContain(
      "| local/preexisting/interleaved/scoped | tracer-failed | preexisting-interleaved-scoped#2: tracer exited 1 before READY (see tracer.log) | libbpf: prog 'uprobe__SSL_write': BPF program load failed: Permission denied |",
    );
    expect(md).toContain('### preexisting\n\n| target | upstream interleaved | upstream sequential | scoped interleaved | scoped sequential |');
    expect(md).toContain(
      '| local (6.18.44-fc-v1045, OpenSSL 3.0.19) | ✓ 50.0 % [43.6-56.4], capture 96.7 % | ✓ 50.0 % [43.6-56.4], capture 96.7 % | ⚠ tracer-failed | ✓ 0.0 % [0.0-3.1], capture 100.0 % |',
    );
    expect(md).toContain('| bullseye (5.10.0-33-cloud-amd64, OpenSSL 1.1.1w) | ⚠ boot-timeout |');
    const detail = md
      .slice(at('## Cells'), at('## Targets'))
      .split('\n')
      .filter((l) => /^\| (local|bullseye) \|/.test(l))
      .map((l) => l.split(' | '))
      .map((c) => [c[0], c[2], c[3], c[6], c[7], c[8]].join('/')); // target kernel OpenSSL scenario mode variant (vCPUs, server, reads between)
    expect(detail).toHaveLength(16);
    expect(detail[0]).toBe('| bullseye/5.10.0-33-cloud-amd64/1.1.1w/baseline/interleaved/scoped');
    expect(detail[8]).toBe('| local/6.18.44-fc-v1045/3.0.19/baseline/interleaved/scoped');
    expect(detail[15]).toBe('| local/6.18.44-fc-v1045/3.0.19/preexisting/sequential/upstream');
  });

  it('sorting, intervals, the telling line, table-safe text', () => {
    const c = (target: string, scenario: string, mode: string, variant: string) => ({ target, scenario, mode, variant });
    expect(
      sortCells([
        c('b', 'preexisting', 'sequential', 'upstream'),
        c('a', 'preexisting', 'sequential', 'upstream'),
        c('a', 'baseline', 'sequential', 'upstream'),
        c('a', 'baseline', 'interleaved', 'upstream'),
      ]).map((x) => `${x.target}/${x.scenario}/${x.mode}`),
    ).toEqual(['a/baseline/interleaved', 'a/baseline/sequential', 'a/preexisting/sequential', 'b/preexisting/sequential']);
    // the analysis stage's CI wins; else a Wilson interval on the rows
    expect(intervalOf({ wrong: 1, captured: 2, misattributionCI: { lo: 0.1, hi: 0.9, method: 'bootstrap' } })).toEqual({
      lo: 0.1,
      hi: 0.9,
      method: 'bootstrap',
    });
    const w = wilson(116, 232);
    expect(w!.lo).toBeCloseTo(0.436, 3);
    expect(w!.hi).toBeCloseTo(0.564, 3);
    expect(intervalOf({ wrong: 0, captured: 0 })).toBeNull();
    expect(tellingLine('libssl: /x\nREADY?\nlibbpf: failed to load: -13\nlast')).toBe('libbpf: failed to load: -13');
    expect(tellingLine('a\n\nb\n')).toBe('b');
    expect(mdCell('a|b\n<script>')).toBe('a\\|b &lt;script&gt;');
  });
});
