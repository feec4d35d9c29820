// Your own client end to end (--client-src, issue 9 part 1), through the real entry point on this
// host: built with the host's cc and OpenSSL, run with the investigation's CLI; a client that does
// not compile is build-failed with the compiler's words, one that never prints READY is
// client-failed and is stopped. The client is the project's own (test/fixtures/clients), written
// to the investigation's CLI: no copy of the investigation's code.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inCI, missingForBpf } from './helpers/requirements.ts';
import type { SummaryCell } from './helpers/cells.ts';

type Entry = SummaryCell & { client?: string; error?: string; backendRows: number };
const missing = missingForBpf();
const FIXTURES = 'test/fixtures/clients';

function run(out: string, client: string, extra: string[]): { entries: Entry[]; status: number | null; log: string } {
  const r = spawnSync(
    'npx',
    [
      'zx',
      'scripts/matrix.mjs',
      '--targets',
      'local',
      '--client-src',
      join(FIXTURES, client),
      '--modes',
      'interleaved',
      '--trials',
      '1',
      '--out',
      out,
      ...extra,
    ],
    { encoding: 'utf8', timeout: 600_000, env: { ...process.env, CI: 'true' } },
  );
  const log = `${r.stdout}\n${r.stderr.slice(-3000)}`;
  expect(existsSync(join(out, 'summary.json')), `no summary.json; output:\n${log}`).toBe(true);
  return { entries: JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Entry[], status: r.status, log };
}

describe.skipIf(missing !== null && !inCI)(`your own client end to end, local${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root and BPF are available', () => {
    expect(missing, `the local end-to-end test cannot run here: ${missing}`).toBeNull();
  });

  it.runIf(missing === null)(
    "a client with the investigation's CLI: upstream misattributes, scoped and the baseline put nothing on a wrong tuple; the manifest names the client",
    () => {
      const out = mkdtempSync(join(tmpdir(), 'e2e-client-'));
      const r = run(out, 'two_conn_client.c', [
        '--variants',
        'upstream,scoped',
        '--scenarios',
        'preexisting,baseline',
        '--iterations',
        '100',
        '--reads',
        'single',
      ]);
      expect(r.entries).toHaveLength(4);
      for (const e of r.entries) {
        expect(e.status, `${e.scenario}/${e.variant}: ${e.error}\n${r.log}`).toBe('ok');
        expect(e.client).toBe('two_conn_client.c');
      }
      const get = (v: string, s: string) => r.entries.find((e) => e.variant === v && e.scenario === s)!;
      const up = get('upstream', 'preexisting');
      expect(up.captured).toBeGreaterThan(100); // rows of both connections: not luck
      expect(up.misattribution).toBeGreaterThan(0.2);
      expect(get('scoped', 'preexisting').wrong).toBe(0);
      expect(get('scoped', 'preexisting').captured).toBeGreaterThan(100);
      for (const v of ['upstream', 'scoped']) expect(get(v, 'baseline').wrong).toBe(0);
      expect(r.status, r.log).toBe(0);
      const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
      expect(manifest.client).toEqual({ src: expect.stringMatching(/two_conn_client\.c$/), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
      expect(readFileSync(join(out, 'local', 'client-build.log'), 'utf8')).toMatch(
        /^\$ cc -O2 -o .*two_conn_client .*two_conn_client\.c -lssl -lcrypto\n[^]*\[exit 0\]/,
      );
      expect(readFileSync(join(out, 'local', 'preexisting-interleaved-upstream-single', 'report.md'), 'utf8')).toContain(
        'n/a: your own client (two_conn_client.c) ran',
      );
      // the client ran with the investigation's CLI and its DONE line is read
      expect(readFileSync(join(out, 'local', 'preexisting-interleaved-upstream-single', 'trial-1', 'client.out'), 'utf8')).toMatch(
        /^READY:\d+:18001:\d+:18002\nDONE:100:0:100:0\n$/,
      );
    },
    600_000,
  );

  it.runIf(missing === null)(
    "a client that does not compile: every cell build-failed, with the compiler's own words; exit 3",
    () => {
      const out = mkdtempSync(join(tmpdir(), 'e2e-client-bad-'));
      const r = run(out, 'compile_error.c', ['--variants', 'upstream,scoped', '--scenarios', 'preexisting', '--iterations', '10']);
      expect(r.entries).toHaveLength(2);
      for (const e of r.entries) {
        expect(e.status).toBe('build-failed');
        expect(e.error).toMatch(/your client compile_error\.c did not compile \(cc exited 1\) on local/);
      }
      expect(r.status).toBe(3);
      expect(readFileSync(join(out, 'local', 'build-failed.txt'), 'utf8')).toMatch(/error: expected .;. before .return./);
      expect(readFileSync(join(out, 'local', 'client-build.log'), 'utf8')).toMatch(/error: expected .;.[^]*\[exit 1\]/);
    },
    300_000,
  );

  it.runIf(missing === null)(
    'a client that never prints READY: client-failed after the ready timeout, and it is stopped',
    () => {
      const out = mkdtempSync(join(tmpdir(), 'e2e-client-noready-'));
      const r = run(out, 'no_ready.c', ['--variants', 'upstream', '--scenarios', 'preexisting', '--iterations', '10']);
      expect(r.entries).toHaveLength(1);
      expect(r.entries[0]!.status).toBe('client-failed');
      expect(r.entries[0]!.error).toMatch(/READY/);
      expect(r.status).toBe(3);
      const left = readdirSync('/proc').filter((d) => {
        try {
          return /^\d+$/.test(d) && readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'no_ready';
        } catch {
          return false;
        }
      });
      expect(left, 'the client that never got ready is still running').toEqual([]);
    },
    300_000,
  );
});
