// End to end through Vagrant: scripts/matrix.mjs --backend vagrant on the local bookworm box
// (libvirt, TCG here, no libvirt network), the reduced scenario of the QEMU end-to-end test with
// the same assertions, destroy, and no libvirt domain or volume of the run left.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { leftovers } from '../src/backends/vagrant/index.ts';
import { ensureDaemons, stopDaemons } from '../src/backends/vagrant/libvirt.ts';
import { inCI } from './helpers/requirements.ts';
import { expectPermanentSwap, expectScopedFix, type SummaryCell } from './helpers/cells.ts';

const ITERATIONS = 60;
const missing = process.platform !== 'linux' ? 'needs Linux' : process.getuid?.() !== 0 ? 'needs root (libvirt, image build, BPF in the guest)' : null;

type Entry = SummaryCell;

describe.skipIf(missing !== null && !inCI)(`vagrant end to end (bookworm box)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root', () => {
    expect(missing, `the vagrant end-to-end test cannot run here: ${missing}`).toBeNull();
  });

  const out = mkdtempSync(join(tmpdir(), 'e2e-vagrant-'));
  let entries: Entry[] = [];
  const get = (variant: string) => {
    const e = entries.find((x) => x.variant === variant);
    if (!e) throw new Error(`no ${variant} cell in summary.json`);
    return e;
  };

  it.runIf(missing === null)(
    'scripts/matrix.mjs --backend vagrant: up, build inside, run, destroy, nothing left',
    async () => {
      const r = spawnSync(
        'npx',
        [
          'zx',
          'scripts/matrix.mjs',
          '--backend',
          'vagrant',
          '--targets',
          'bookworm',
          '--variants',
          'upstream,scoped',
          '--modes',
          'interleaved',
          '--scenarios',
          'preexisting',
          '--iterations',
          String(ITERATIONS),
          '--out',
          out,
        ],
        { encoding: 'utf8', timeout: 40 * 60_000, env: { ...process.env, CI: 'true' } },
      );
      const log = `${r.stdout}\n${r.stderr.slice(-4000)}`;
      expect(existsSync(join(out, 'summary.json')), log).toBe(true);
      entries = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Entry[];
      expect(entries).toHaveLength(2);
      for (const e of entries) {
        expect(e.status, log).toBe('ok');
        expect(e.kernel).toMatch(/^6\.1\./);
      }
      expect(r.status, log).toBe(0);
      const facts = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).targets[0].facts as { domain: string; provider: string };
      expect(facts.provider).toBe('libvirt');
      expect(facts.domain).toMatch(/-bookworm$/);
      // The run stopped the libvirt daemons it started: start them (only if down) to look, then stop those.
      const started = await ensureDaemons(out, () => {}, 'e2e');
      try {
        const left = await leftovers(facts.domain.slice(0, -'bookworm'.length));
        expect(left, 'libvirt domains or volumes of the run are left').toEqual({ domains: [], volumes: [] });
      } finally {
        await stopDaemons(started);
      }
    },
    45 * 60_000,
  );

  it.runIf(missing === null)('upstream: the client side is permanently swapped, symmetrically; about half the rows wrong', () => {
    expectPermanentSwap(get('upstream'), ITERATIONS);
  });

  it.runIf(missing === null)('scoped: 0 rows wrong, >= 95 % of the requests captured', () => {
    expectScopedFix(get('scoped'));
  });
});
