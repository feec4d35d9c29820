// End to end in a QEMU guest, through the real entry point: the bookworm image (built when not
// cached), booted under TCG here, bpf/ and client/ built inside with the guest's toolchain, the
// pre-existing-connection scenario, analysis on the host. Same properties as the local test.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inCI } from './helpers/requirements.ts';
import { expectHalfAtTwoRows, expectPermanentSwap, expectScopedFix, expectSingleReadRace, type SummaryCell } from './helpers/cells.ts';

const ITERATIONS = 60;
const has = (bin: string) => spawnSync('sh', ['-c', 'command -v "$1" || test -x "/usr/sbin/$1"', 'sh', bin], { timeout: 5_000 }).status === 0;
const missing =
  process.platform !== 'linux'
    ? 'needs Linux'
    : process.getuid?.() !== 0
      ? 'needs root (image build and BPF in the guest)'
      : !has('qemu-system-x86_64')
        ? 'needs qemu-system-x86_64 (bash provision/host-deps.sh images)'
        : null;

type Entry = SummaryCell;

describe.skipIf(missing !== null && !inCI)(`qemu end to end (bookworm)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root and QEMU are available', () => {
    expect(missing, `the qemu end-to-end test cannot run here: ${missing}`).toBeNull();
  });

  const out = mkdtempSync(join(tmpdir(), 'e2e-qemu-'));
  let entries: Entry[] = [];
  let log = '';
  const get = (variant: string, reads = 'full') => {
    const e = entries.find((x) => x.variant === variant && x.reads === reads);
    if (!e) throw new Error(`no ${variant} cell in summary.json\n${log}`);
    return e;
  };

  it.runIf(missing === null)(
    'scripts/matrix.mjs --targets bookworm: boots, builds inside, runs, reports',
    () => {
      const r = spawnSync(
        'npx',
        [
          'zx',
          'scripts/matrix.mjs',
          '--targets',
          'bookworm',
          '--variants',
          'upstream,scoped',
          '--modes',
          'interleaved',
          '--scenarios',
          'preexisting',
          '--reads',
          'full,single',
          '--iterations',
          String(ITERATIONS),
          '--out',
          out,
        ],
        { encoding: 'utf8', timeout: 40 * 60_000, env: { ...process.env, CI: 'true' } },
      );
      log = `${r.stdout}\n${r.stderr.slice(-4000)}`;
      expect(existsSync(join(out, 'summary.json')), log).toBe(true);
      entries = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Entry[];
      expect(entries).toHaveLength(4);
      for (const e of entries) {
        expect(e.status, log).toBe('ok');
        expect(e.kernel).toMatch(/^6\.1\./); // the guest's kernel, not this host's
      }
      expect(r.status, log).toBe(0);
      const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
      expect(manifest.targets[0].facts).toMatchObject({ openssl: expect.stringMatching(/^3\.0\./), accel: expect.stringMatching(/tcg|kvm/) });
      expect(existsSync(join(out, 'bookworm', 'build.log'))).toBe(true);
      expect(existsSync(join(out, 'bookworm', 'console.log'))).toBe(true);
      // No qemu of this run is left: no live process whose command line names this run's folder.
      const leftovers = readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .filter((d) => {
          try {
            return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(out) && !readFileSync(`/proc/${d}/status`, 'utf8').includes('State:\tZ');
          } catch {
            return false;
          }
        });
      expect(leftovers, 'qemu processes of the run still alive').toEqual([]);
    },
    45 * 60_000,
  );

  it.runIf(missing === null)('upstream: the client side is permanently swapped, symmetrically; about half the rows wrong', () => {
    expectPermanentSwap(get('upstream'), ITERATIONS);
  });

  it.runIf(missing === null)('scoped: 0 rows wrong, >= 95 % of the requests captured', () => {
    expectScopedFix(get('scoped'));
  });

  it.runIf(missing === null)('upstream, full reads: 50 % of the rows wrong (+- 2 pp) at about 2 rows per request', () => {
    expectHalfAtTwoRows(get('upstream'));
  });

  it.runIf(missing === null)("upstream, the investigation's single reads: wrong rows at fewer than 1.5 rows per request", () => {
    expectSingleReadRace(get('upstream', 'single'));
  });

  it.runIf(missing === null)("scoped, single reads: 0 rows wrong, the client's writes on their connection", () => {
    const e = get('scoped', 'single');
    expect(e.status).toBe('ok');
    expect(e.wrong).toBe(0);
    expect(e.truth.writes.correct).toBeGreaterThanOrEqual(0.95 * e.expected);
  });
});
