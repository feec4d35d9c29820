// Fault cases 5 and 6: the tracer cannot start. 5: a verifier rejection (the test-only build flag
// `make -C bpf USM_TEST_BAD_PROG=1` makes uprobe__SSL_shutdown invalid under --variant scoped) ->
// that cell tracer-failed naming the program, the verifier log saved in its folder, the other cell
// ok. 6: a libssl without a probed symbol (a tiny libssl.so.3 built here, given to the tracer by
// the test hook $USM_LAB_TEST_LIBSSL) -> tracer-failed naming the symbol and the library. Local
// backend, real tracer, client and servers; each run holds the host-wide lock /tmp/usm-local.lock.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalPids, MatrixRun, REPO, localRunDir, missingForLocal, runIdOf, skipUnless, waitNoLeftovers, tracked } from './harness.ts';

const missing = missingForLocal();
const TWO_CELLS = [
  '--backend',
  'local',
  '--variants',
  'upstream,scoped',
  '--modes',
  'interleaved',
  '--scenarios',
  'preexisting',
  '--trials',
  '1',
  '--iterations',
  '20',
];
const cellFolder = (out: string, variant: string) => join(out, 'local', `preexisting-interleaved-${variant}`);

const { runs, watchers, tempDir } = tracked();
afterAll(() => {
  // The local backend builds in place: leave bpf/build as a plain build (the flags stamp rebuilds it).
  spawnSync('make', ['-C', join(REPO, 'bpf')], { stdio: 'ignore', timeout: 120_000 });
});

async function start(env: NodeJS.ProcessEnv): Promise<{ r: MatrixRun; procs: LocalPids }> {
  const r = await MatrixRun.local(TWO_CELLS, join(tempDir('fault-tracer-'), 'out'), { USM_TEST_BAD_PROG: '', ...env });
  runs.push(r);
  const procs = new LocalPids(r);
  watchers.push(procs);
  return { r, procs };
}

async function expectNothingLeft(r: MatrixRun, procs: LocalPids): Promise<void> {
  expect(await waitNoLeftovers(r.outDir, 10_000)).toEqual([]);
  expect(procs.pids.size, 'the harness saw the trial processes').toBeGreaterThan(0);
  expect(procs.alive(), 'trial processes left running').toEqual([]);
  expect(existsSync(localRunDir(runIdOf(r.outDir)!)), 'the run folder in /tmp is removed').toBe(false);
}

type Cell = ReturnType<MatrixRun['summary']>[number];
const show = (cells: Cell[], r: MatrixRun) => `${JSON.stringify(cells.map((c) => [c.variant, c.status, c.error]))}\n${r.log()}`;

describe.skipIf(skipUnless(missing))(`tracer faults (real tracer, client, servers)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root, BPF and flock are available', () => {
    expect(missing, `the tracer fault cases cannot run here: ${missing}`).toBeNull();
  });

  it(
    '5: a verifier rejection (USM_TEST_BAD_PROG=1) -> that cell tracer-failed naming the program, its verifier log saved; the other ok; exit 3',
    async () => {
      const { r, procs } = await start({ USM_TEST_BAD_PROG: '1' });
      const exit = await r.exit(10 * 60_000);
      const cells = r.summary();
      const log = show(cells, r);
      expect(exit.code, log).toBe(3);
      expect(cells, 'every planned cell is in summary.json').toHaveLength(2);
      const bad = cells.find((c) => c.variant === 'scoped')!;
      const good = cells.find((c) => c.variant === 'upstream')!;
      expect(bad.status, log).toBe('tracer-failed');
      // the loader's own words, not only "exited with code 1"
      expect(bad.error, log).toMatch(/failed to load BPF program uprobe__SSL_shutdown: .*verifier log in \S*verifier\.log/);
      // ...and the log it names is the copy in the cell's folder (the trial's folder on the target is gone)
      const named = /verifier log in (\S+verifier\.log)\)/.exec(bad.error ?? '')?.[1];
      expect(named, log).toBe(join(cellFolder(r.outDir, 'scoped'), 'trial-1', 'verifier.log'));
      expect(good.status, log).toBe('ok');
      expect((good as { captured?: number }).captured, 'the cell that ran has its figures').toBeGreaterThan(0);
      // The verifier's log is in the failed cell's folder (fetched with the trial), and says why.
      const trial = join(cellFolder(r.outDir, 'scoped'), 'trial-1');
      expect(existsSync(join(trial, 'verifier.log')), `verifier.log in ${trial}`).toBe(true);
      expect(readFileSync(join(trial, 'verifier.log'), 'utf8')).toMatch(/uprobe__SSL_shutdown[\s\S]*invalid mem access/);
      // the tracer never loaded, so its stderr is the trial's tracer.log (what the reporter shows)
      expect(readFileSync(join(trial, 'tracer.log'), 'utf8')).toMatch(/failed to load BPF program uprobe__SSL_shutdown/);
      expect(existsSync(join(cellFolder(r.outDir, 'upstream'), 'trial-1', 'verifier.log')), 'no verifier log where the programs loaded').toBe(false);
      await expectNothingLeft(r, procs);
      // A plain build after the test build rebuilds the object (bpf/build/bpf-cflags): no bad tracer stays behind.
      const mk = spawnSync('make', ['-C', join(REPO, 'bpf')], { encoding: 'utf8', timeout: 120_000 });
      expect(mk.status, mk.stderr).toBe(0);
      expect(mk.stdout).toMatch(/BPF\s+build\/usm_tls\.bpf\.o/);
      expect(readFileSync(join(REPO, 'bpf', 'build', 'bpf-cflags'), 'utf8')).not.toMatch(/USM_TEST_BAD_PROG/);
      console.log(`figure: verifier rejection: exit ${exit.code}, cells ${cells.map((c) => `${c.variant}=${c.status}`).join(', ')}; error: ${bad.error}`);
    },
    12 * 60_000,
  );

  it(
    '6: a libssl without SSL_read_ex -> every cell tracer-failed naming the symbol and the library; exit 3',
    async () => {
      // A libssl.so.3 that exports every probed function but SSL_read_ex, linked to the system libcrypto
      // (the loader finds BIO_new_socket's library through libssl's DT_NEEDED).
      const dir = tempDir('fault-libssl-');
      const present = ['SSL_set_fd', 'SSL_set_bio', 'SSL_do_handshake', 'SSL_connect', 'SSL_write', 'SSL_write_ex', 'SSL_read', 'SSL_shutdown'];
      writeFileSync(join(dir, 'stub.c'), present.map((s) => `int ${s}(void) { return 0; }\n`).join(''));
      const lib = join(dir, 'libssl.so.3');
      const cc = spawnSync('cc', ['-shared', '-fPIC', '-o', lib, join(dir, 'stub.c'), '-Wl,-soname,libssl.so.3', '-Wl,--no-as-needed', '-l:libcrypto.so.3'], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(cc.status, `cc: ${cc.stderr}`).toBe(0);
      const { r, procs } = await start({ USM_LAB_TEST_LIBSSL: lib });
      const exit = await r.exit(10 * 60_000);
      const cells = r.summary();
      const log = show(cells, r);
      expect(exit.code, log).toBe(3);
      expect(cells, 'every planned cell is in summary.json').toHaveLength(2);
      for (const c of cells) {
        expect(c.status, log).toBe('tracer-failed');
        expect(c.error, log).toContain(`failed to attach uprobe SSL_read_ex in ${lib}: symbol not found`);
      }
      const trial = join(cellFolder(r.outDir, 'upstream'), 'trial-1');
      expect(readFileSync(join(trial, 'tracer.log'), 'utf8')).toContain('SSL_read_ex');
      await expectNothingLeft(r, procs);
      console.log(`figure: missing symbol: exit ${exit.code}, cells ${cells.map((c) => `${c.variant}=${c.status}`).join(', ')}; error: ${cells[0]!.error}`);
    },
    12 * 60_000,
  );
});
