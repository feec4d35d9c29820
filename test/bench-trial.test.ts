// bench:trial's figures (src/bench/trial.ts): per phase the median and max over the trials that
// reached it, the trial's total, and its overhead = total - traffic.
import { describe, expect, it } from 'vitest';
import { formatTrialBench, phaseStats } from '../src/bench/trial.ts';
import type { Phase } from '../src/domain.ts';

const t = (ms: Record<string, number>): Phase[] => Object.entries(ms).map(([name, v]) => ({ name: name as Phase['name'], ms: v }));

describe('bench:trial figures', () => {
  it('median, max, total and overhead per phase; a phase a failed trial never reached is not a 0', () => {
    const rows = phaseStats([
      t({ servers: 100, traffic: 1000, fetch: 10 }),
      t({ servers: 300, traffic: 3000, fetch: 30 }),
      t({ servers: 200, traffic: 2000, fetch: 20 }),
      t({ servers: 400 }), // failed before its traffic
    ]);
    const by = Object.fromEntries(rows.map((r) => [r.row, r]));
    expect(by.servers).toEqual({ row: 'servers', n: 4, medianMs: 250, maxMs: 400 });
    expect(by.traffic).toEqual({ row: 'traffic', n: 3, medianMs: 2000, maxMs: 3000 });
    expect(by.trial).toEqual({ row: 'trial', n: 4, medianMs: (1110 + 2220) / 2, maxMs: 3330 });
    // overhead only where the traffic ran: 110, 330, 220
    expect(by.overhead).toEqual({ row: 'overhead', n: 3, medianMs: 220, maxMs: 330 });
    // the protocol's order, then trial and overhead
    expect(rows.map((r) => r.row)).toEqual(['servers', 'traffic', 'fetch', 'trial', 'overhead']);
  });

  it('a phase that ran twice in one trial counts once, summed', () => {
    const by = Object.fromEntries(phaseStats([t({ stop: 5 }).concat(t({ stop: 7 }))]).map((r) => [r.row, r]));
    expect(by.stop?.medianMs).toBe(12);
  });

  it('prints each target and a side-by-side table of medians', () => {
    const rows = phaseStats([t({ servers: 1500, traffic: 2500 })]);
    const out = formatTrialBench(
      [
        { target: 'local', cell: 'c', trials: 1, ok: 1, statuses: ['ok'], wallMs: 9000, rows },
        { target: 'bookworm', cell: 'c', trials: 1, ok: 1, statuses: ['ok'], wallMs: 9000, rows: phaseStats([t({ traffic: 4000 })]) },
      ],
      { wallMs: 180_000, cells: 64, ok: 64, exitCode: 0 },
    );
    expect(out).toContain('| servers | 1.50 | 1.50 | 1 |');
    expect(out).toContain('| overhead | 1.50 | 0.00 |');
    expect(out).toContain('| servers | 1.50 | - |');
    expect(out).toContain('Default matrix: 64/64 cells ok, exit 0, wall 180.00 s (3.0 min)');
  });
});
