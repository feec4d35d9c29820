// External tracers end to end (issue 9, part 2), through the real entry point: the model's
// debug-endpoint look-alike started as an external tracer (matrix.lookalike.yaml: uploaded,
// started after the client's READY, ready when its socket answers, queried, stopped) beside the
// model's own run of the same cells, on this host and in a bookworm guest: same verdicts, rates
// within each other's interval. And the tracer's failures: never ready, gone before ready, an
// endpoint that answers 404: tracer-failed with its words, nothing left running.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inCI, missingForBpf } from './helpers/requirements.ts';
import type { SummaryCell } from './helpers/cells.ts';

type Entry = SummaryCell & {
  error?: string;
  external?: { expect: string | null };
  misattributionCI: { lo: number; hi: number } | null;
  verdict: { pass: boolean | null };
};

function matrix(args: string[], out: string, timeoutMs: number): { entries: Entry[]; status: number | null; log: string } {
  const r = spawnSync('npx', ['zx', 'scripts/matrix.mjs', ...args, '--out', out], {
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, CI: 'true' },
  });
  const log = `${r.stdout}\n${r.stderr.slice(-4000)}`;
  expect(existsSync(join(out, 'summary.json')), `no summary.json; output:\n${log}`).toBe(true);
  return { entries: JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Entry[], status: r.status, log };
}

const CELLS = ['--modes', 'interleaved', '--scenarios', 'preexisting,baseline', '--trials', '1'];

/** The look-alike's run and the model's run of the same cells agree. */
function expectSameAsModel(target: string, iterations: number, timeoutMs: number): void {
  const lkOut = mkdtempSync(join(tmpdir(), 'e2e-tracer-lk-'));
  const lk = matrix(['--config', 'matrix.lookalike.yaml', '--targets', target, '--iterations', String(iterations), ...CELLS], lkOut, timeoutMs);
  const model = matrix(
    ['--targets', target, '--variants', 'upstream', '--iterations', String(iterations), ...CELLS],
    mkdtempSync(join(tmpdir(), 'e2e-tracer-model-')),
    timeoutMs,
  );
  expect(lk.entries).toHaveLength(2);
  expect(model.entries).toHaveLength(2);
  for (const scenario of ['preexisting', 'baseline']) {
    const a = lk.entries.find((e) => e.scenario === scenario)!;
    const b = model.entries.find((e) => e.scenario === scenario)!;
    expect(a.status, `look-alike ${scenario}: ${a.error}\n${lk.log}`).toBe('ok');
    expect(b.status, `model ${scenario}: ${b.error}\n${model.log}`).toBe('ok');
    expect(a.variant).toBe('lookalike-upstream');
    expect(a.external).toEqual({ expect: 'upstream' });
    expect(a.verdict.pass, `${scenario}: look-alike ${JSON.stringify(a.verdict)}, model ${JSON.stringify(b.verdict)}`).toBe(b.verdict.pass);
    expect(a.verdict.pass).toBe(true);
    // rows of both connections, from the endpoint
    expect(a.captured).toBeGreaterThan(iterations);
    // each rate inside the other's 95 % interval
    expect(a.misattribution).toBeGreaterThanOrEqual(b.misattributionCI!.lo - 1e-9);
    expect(a.misattribution).toBeLessThanOrEqual(b.misattributionCI!.hi + 1e-9);
    expect(b.misattribution).toBeGreaterThanOrEqual(a.misattributionCI!.lo - 1e-9);
    expect(b.misattribution).toBeLessThanOrEqual(a.misattributionCI!.hi + 1e-9);
  }
  expect(lk.entries.find((e) => e.scenario === 'preexisting')!.wrong).toBeGreaterThan(iterations / 2);
  expect(lk.status, lk.log).toBe(0);
  const manifest = JSON.parse(readFileSync(join(lkOut, 'manifest.json'), 'utf8'));
  expect(manifest.tracer).toMatchObject({
    label: 'lookalike-upstream',
    files: [{ name: 'usm-lookalike.cjs', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }],
  });
  // the trial's folder: the endpoint's answer as returned, the tracer's log with its one real query
  const trial = join(lkOut, target, 'preexisting-interleaved-lookalike-upstream', 'trial-1');
  const rows = JSON.parse(readFileSync(join(trial, 'http_monitoring.json'), 'utf8')) as { Path: string }[];
  expect(rows.length).toBe(lk.entries.find((e) => e.scenario === 'preexisting')!.captured);
  expect(readFileSync(join(trial, 'tracer.log'), 'utf8')).toMatch(/usm-lookalike: query \d+: \d+ rows/);
  expect(readFileSync(join(lkOut, target, 'preexisting-interleaved-lookalike-upstream', 'report.md'), 'utf8')).toContain(
    'n/a: an external tracer (lookalike-upstream) ran',
  );
}

/** Processes whose command line holds `token`. */
function running(token: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(token)) out.push(Number(pid));
    } catch {
      // gone
    }
  }
  return out;
}

const missing = missingForBpf();
describe.skipIf(missing !== null && !inCI)(`external tracers end to end, local${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root and BPF are available', () => {
    expect(missing, `the local end-to-end test cannot run here: ${missing}`).toBeNull();
  });

  it.runIf(missing === null)(
    "the look-alike as an external tracer gives the model's verdicts and rates, same cells",
    () => expectSameAsModel('local', 100, 600_000),
    900_000,
  );

  it.runIf(missing === null)(
    'a tracer never ready, one gone before ready, one whose endpoint answers 404: tracer-failed with its words; nothing left running; one on 127.0.0.1:PORT ready by a log line: ok',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'e2e-tracer-bad-'));
      const token = `usm-lab-test-tracer-${process.pid}`;
      const cases = [
        {
          name: 'never',
          tracer: [
            `  argv: [python3, -c, "import sys, time; print('${token}: loading', file=sys.stderr, flush=True); time.sleep(300)", ${token}]`,
            '  ready: { socket: true, timeout_ms: 3000 }',
            `  query: { socket: ${dir}/none.sock }`,
          ],
          error: /tracer never's endpoint did not answer within 3 s .*: .*loading/,
        },
        {
          name: 'gone',
          tracer: [
            `  argv: [python3, -c, "import sys; print('failed to load: ${token}', file=sys.stderr); sys.exit(3)"]`,
            '  ready: { socket: true }',
            `  query: { socket: ${dir}/gone.sock }`,
          ],
          error: /the tracer gone exited with code 3 before its endpoint answered: failed to load/,
        },
        {
          name: 'wrong-path',
          files: "  files: ['@lookalike']",
          tracer: [
            `  argv: [node, '{files}/usm-lookalike.cjs', --socket, '${dir}/lk.sock', --path, /elsewhere, --, '{workdir}/bpf/build/usm_tls', --variant, upstream, --libssl, '{libssl}']`,
            "  ready: { log: '^READY$' }",
            `  query: { socket: ${dir}/lk.sock }`,
          ],
          error: /the tracer wrong-path's endpoint answered HTTP 404 to GET \/network_tracer\/debug\/http_monitoring/,
        },
      ];
      for (const c of cases) {
        const file = join(dir, `${c.name}.yaml`);
        writeFileSync(file, ['targets: {}', 'tracer:', `  label: ${c.name}`, ...(c.files ? [c.files] : []), ...c.tracer, ''].join('\n'));
        const r = matrix(
          ['--config', file, '--targets', 'local', '--iterations', '20', '--modes', 'interleaved', '--scenarios', 'preexisting'],
          join(dir, c.name),
          300_000,
        );
        expect(r.entries).toHaveLength(1);
        const e = r.entries[0]!;
        expect(e.status, `${c.name}: ${JSON.stringify(e)}\n${r.log}`).toBe('tracer-failed');
        expect(e.error, c.name).toMatch(c.error);
        expect(r.status, r.log).toBe(3);
      }
      // and one that answers on 127.0.0.1:PORT, ready by a log line: the same rows as by socket
      const port = 20000 + (process.pid % 10000);
      const file = join(dir, 'port.yaml');
      writeFileSync(
        file,
        [
          'targets: {}',
          'tracer:',
          '  label: by-port',
          '  expect: upstream',
          "  files: ['@lookalike']",
          `  argv: [node, '{files}/usm-lookalike.cjs', --port, ${port}, --, '{workdir}/bpf/build/usm_tls', --variant, upstream, --libssl, '{libssl}']`,
          "  ready: { log: '^READY$' }",
          `  query: { port: ${port} }`,
          '',
        ].join('\n'),
      );
      const byPort = matrix(
        ['--config', file, '--targets', 'local', '--iterations', '50', '--modes', 'interleaved', '--scenarios', 'preexisting'],
        join(dir, 'port'),
        300_000,
      );
      expect(
        byPort.entries.map((e) => [e.status, e.verdict.pass]),
        byPort.log,
      ).toEqual([['ok', true]]);
      expect(byPort.entries[0]!.captured).toBeGreaterThan(50);
      expect(existsSync(join(dir, 'never', 'local', 'preexisting-interleaved-never', 'trial-1', 'tracer.log'))).toBe(true);
      expect(running(token)).toEqual([]);
      expect(existsSync(join(dir, 'lk.sock'))).toBe(false);
    },
    900_000,
  );
});

const has = (bin: string) => spawnSync('sh', ['-c', 'command -v "$1" || test -x "/usr/sbin/$1"', 'sh', bin], { timeout: 5_000 }).status === 0;
const missingQemu =
  process.platform !== 'linux' ? 'needs Linux' : process.getuid?.() !== 0 ? 'needs root' : !has('qemu-system-x86_64') ? 'needs qemu-system-x86_64' : null;
describe.skipIf(missingQemu !== null && !inCI)(`external tracers end to end, qemu bookworm${missingQemu ? ` (skipped: ${missingQemu})` : ''}`, () => {
  it('requirements: root and QEMU are available', () => {
    expect(missingQemu, `the qemu end-to-end test cannot run here: ${missingQemu}`).toBeNull();
  });
  it.runIf(missingQemu === null)(
    "the look-alike in a bookworm guest (Debian's node runs its bundle): the model's verdicts and rates, same cells",
    () => expectSameAsModel('bookworm', 100, 30 * 60_000),
    60 * 60_000,
  );
});
