// Real TLS terminators end to end (issue 10), through the real entry point: Debian's nginx (one
// worker, proxy_pass) and HAProxy (one thread) in front of plain backends, on this host and in a
// bookworm guest; the client's connections exist before the tracer. Upstream puts rows on the
// wrong tuple, scoped puts none there with every server, and the baseline none either.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inCI, missingForBpf } from './helpers/requirements.ts';
import type { SummaryCell } from './helpers/cells.ts';

type Entry = SummaryCell & { server: string; backendRows: number; droppedNoTuple: number | null; error?: string };
const SERVERS = ['nginx-proxy', 'haproxy'] as const;

function runMatrix(target: string, out: string, iterations: number, timeoutMs: number): { entries: Entry[]; status: number | null; log: string } {
  const r = spawnSync(
    'npx',
    [
      'zx',
      'scripts/matrix.mjs',
      '--targets',
      target,
      '--server',
      SERVERS.join(','),
      '--variants',
      'upstream,scoped',
      '--modes',
      'interleaved',
      '--scenarios',
      'preexisting,baseline',
      '--iterations',
      String(iterations),
      '--trials',
      '1',
      '--out',
      out,
    ],
    { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, CI: 'true' } },
  );
  const log = `${r.stdout}\n${r.stderr.slice(-4000)}`;
  expect(existsSync(join(out, 'summary.json')), `no summary.json; output:\n${log}`).toBe(true);
  return { entries: JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Entry[], status: r.status, log };
}

/** What every target must show, whatever its kernel. */
function expectServerProperties(entries: readonly Entry[], iterations: number, log: string): void {
  expect(entries).toHaveLength(SERVERS.length * 4);
  const get = (server: string, variant: string, scenario: string) => {
    const e = entries.find((x) => x.server === server && x.variant === variant && x.scenario === scenario);
    if (!e) throw new Error(`no ${scenario}/${variant}/${server} cell\n${log}`);
    return e;
  };
  for (const server of SERVERS) {
    for (const e of entries.filter((x) => x.server === server)) expect(e.status, `${server} ${e.scenario}/${e.variant}: ${e.error}\n${log}`).toBe('ok');
    // upstream on pre-existing connections: wrong rows (the client side, and the terminator's
    // responses on its backend tuples)
    const up = get(server, 'upstream', 'preexisting');
    expect(up.wrong + up.backendRows, `${server} upstream: ${JSON.stringify(up)}`).toBeGreaterThan(iterations / 2);
    expect(up.droppedNoTuple).not.toBeNull();
    // scoped: nothing on a wrong tuple, backend tuples included, and the requests captured
    const fix = get(server, 'scoped', 'preexisting');
    expect(fix.wrong, `${server} scoped`).toBe(0);
    expect(fix.backendRows, `${server} scoped`).toBe(0);
    expect(fix.capture, `${server} scoped`).toBeGreaterThanOrEqual(0.95);
    // baseline: the tracer saw every connection begin: nothing wrong
    for (const v of ['upstream', 'scoped']) {
      const b = get(server, v, 'baseline');
      expect(b.wrong, `${server} baseline ${v}`).toBe(0);
      expect(b.backendRows, `${server} baseline ${v}`).toBe(0);
      expect(b.captured).toBeGreaterThan(iterations);
    }
  }
  // nginx through proxy_pass: upstream's wrong rows in the investigation's own formula
  expect(get('nginx-proxy', 'upstream', 'preexisting').wrong).toBeGreaterThan(iterations / 2);
}

const missingLocal = missingForBpf();
describe.skipIf(missingLocal !== null && !inCI)(`servers end to end, local${missingLocal ? ` (skipped: ${missingLocal})` : ''}`, () => {
  it('requirements: root and BPF are available', () => {
    expect(missingLocal, `the local end-to-end test cannot run here: ${missingLocal}`).toBeNull();
  });
  it.runIf(missingLocal === null)(
    'nginx-proxy and haproxy on this host: upstream wrong, scoped and baseline 0 wrong (backend tuples included); versions recorded',
    () => {
      const out = mkdtempSync(join(tmpdir(), 'e2e-servers-local-'));
      const r = runMatrix('local', out, 100, 900_000);
      expectServerProperties(r.entries, 100, r.log);
      expect(r.status, r.log).toBe(0);
      const facts = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).targets[0].facts;
      expect(facts.nginx).toMatch(/^\d+\.\d+/);
      expect(facts.haproxy).toMatch(/^\d+\.\d+/);
      // the terminator's own words are kept with the trial that started it (its servers.log holds what they wrote during that trial)
      const logs = SERVERS.flatMap((s) =>
        ['preexisting', 'baseline'].flatMap((sc) =>
          ['upstream', 'scoped'].map((v) => readFileSync(join(out, 'local', `${sc}-interleaved-${v}-${s}`, 'trial-1', 'servers.log'), 'utf8')),
        ),
      );
      expect(logs.join('\n')).toMatch(/nginx\/\d/);
    },
    900_000,
  );
});

const has = (bin: string) => spawnSync('sh', ['-c', 'command -v "$1" || test -x "/usr/sbin/$1"', 'sh', bin], { timeout: 5_000 }).status === 0;
const missingQemu =
  process.platform !== 'linux' ? 'needs Linux' : process.getuid?.() !== 0 ? 'needs root' : !has('qemu-system-x86_64') ? 'needs qemu-system-x86_64' : null;
describe.skipIf(missingQemu !== null && !inCI)(`servers end to end, qemu bookworm${missingQemu ? ` (skipped: ${missingQemu})` : ''}`, () => {
  it('requirements: root and QEMU are available', () => {
    expect(missingQemu, `the qemu end-to-end test cannot run here: ${missingQemu}`).toBeNull();
  });
  it.runIf(missingQemu === null)(
    "nginx-proxy and haproxy in a bookworm guest (Debian's packages in the image): the same properties",
    () => {
      const out = mkdtempSync(join(tmpdir(), 'e2e-servers-qemu-'));
      const r = runMatrix('bookworm', out, 60, 40 * 60_000);
      expectServerProperties(r.entries, 60, r.log);
      for (const e of r.entries) expect(e.kernel).toMatch(/^6\.1\./);
      expect(r.status, r.log).toBe(0);
      const facts = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).targets[0].facts;
      expect(facts.nginx).toMatch(/^1\.22\./);
      expect(facts.haproxy).toMatch(/^2\.6\./);
    },
    45 * 60_000,
  );
});
