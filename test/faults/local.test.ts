// Fault cases on the local backend (this host, a real tracer on the system libssl, real client
// and servers): 7 the client SIGKILLed mid-run, 8 a server killed mid-run, 10 the servers' port
// taken, 16 a report path with `$(...)` used as one argument. Each run holds the host-wide local
// lock (flock /tmp/usm-local.lock): other local runs on this machine use the same ports and libssl.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  LocalPids,
  MatrixRun,
  REPO,
  descendants,
  listenersOf,
  localRunDir,
  missingForLocal,
  runIdOf,
  skipUnless,
  waitNoLeftovers,
  tracked,
} from './harness.ts';

const missing = missingForLocal();
// Two cells: the fault hits the first one that runs; the other must complete with its figures.
const TWO_CELLS = ['--backend', 'local', '--variants', 'upstream,scoped', '--modes', 'interleaved', '--scenarios', 'preexisting', '--trials', '1'];
/** A folder name a shell would run: it must stay a name (case 16). */
const META = 'fault-$(touch pwned)-`touch pwned2`;touch pwned3-';

const { runs, watchers, dirs } = tracked();

async function start(iterations: number): Promise<{ r: MatrixRun; procs: LocalPids }> {
  const parent = mkdtempSync(join(tmpdir(), 'fault-local-'));
  dirs.push(parent);
  const r = await MatrixRun.local([...TWO_CELLS, '--iterations', String(iterations)], join(parent, META));
  runs.push(r);
  const procs = new LocalPids(r);
  watchers.push(procs);
  return { r, procs };
}

/** Nothing of a local run is left: no process it started (servers, client, tracer; by pid), no /tmp/usm-lab-<run> folder. */
async function expectNothingLeft(r: MatrixRun, procs: LocalPids): Promise<void> {
  expect(await waitNoLeftovers(r.outDir, 10_000)).toEqual([]);
  expect(procs.pids.size, 'the harness saw the trial processes').toBeGreaterThan(0);
  expect(procs.alive(), 'trial processes left running').toEqual([]);
  expect(existsSync(localRunDir(runIdOf(r.outDir)!)), 'the run folder in /tmp is removed').toBe(false);
}

/** The checks every case makes: the exit code, every planned cell listed, the faulty cell's kind, the other ok with figures, nothing left. */
async function expectOneCellFailed(r: MatrixRun, procs: LocalPids, kind: string, error: RegExp): Promise<void> {
  const exit = await r.exit(10 * 60_000);
  const cells = r.summary();
  const log = `${JSON.stringify(cells.map((c) => [c.variant, c.status, c.error]))}\n${r.log()}`;
  expect(exit.code, log).toBe(3);
  expect(cells, 'every planned cell is in summary.json').toHaveLength(2);
  const failed = cells.filter((c) => c.status !== 'ok');
  expect(
    failed.map((c) => c.status),
    log,
  ).toEqual([kind]);
  expect(failed[0]!.error, log).toMatch(error);
  const ok = cells.filter((c) => c.status === 'ok');
  expect(ok, log).toHaveLength(1);
  expect((ok[0] as { captured?: number }).captured, 'the cell that ran has its figures').toBeGreaterThan(0);
  await expectNothingLeft(r, procs);
  // Case 16: the folder's `$(...)`, backquotes and `;` were never run by a shell.
  for (const f of ['pwned', 'pwned2', 'pwned3']) {
    expect(existsSync(join(REPO, f)), `${f} in the repository`).toBe(false);
    expect(existsSync(join(REPO, 'bpf', f)) || existsSync(join(REPO, 'client', f)), `${f} beside a build`).toBe(false);
  }
  expect(readdirSync(join(r.outDir, '..')).filter((f) => f !== 'latest')).toEqual([META]);
  expect(existsSync(join(r.outDir, 'summary.json'))).toBe(true);
  console.log(`figure: ${kind}: exit ${exit.code}, cells ${cells.map((c) => `${c.variant}=${c.status}`).join(', ')}`);
}

describe.skipIf(skipUnless(missing))(`local backend faults (real tracer, client, servers)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root, BPF and flock are available', () => {
    expect(missing, `the local fault cases cannot run here: ${missing}`).toBeNull();
  });

  it(
    '7: the client SIGKILLed mid-run -> that cell client-failed, the other ok; exit 3; a $(...) report path is one argument',
    async () => {
      const { r, procs } = await start(20_000);
      // The client is up once the run's first trial starts it; kill it while it runs.
      const pid = await procs.find('client', 5 * 60_000);
      // Security: the servers this run started listen on 127.0.0.1 only (ss, while they serve).
      // (one supervisor, `servers`, forks a single-threaded server per port: the children listen)
      const listening = descendants(await procs.find('servers', 5_000))
        .flatMap((k) => listenersOf(k.pid))
        .sort();
      expect(listening, `the servers listen on ${listening.join(' ')}`).toEqual(['127.0.0.1:18001', '127.0.0.1:18002']);
      await new Promise((res) => setTimeout(res, 1_500));
      process.kill(pid, 'SIGKILL');
      await expectOneCellFailed(r, procs, 'client-failed', /client/);
    },
    12 * 60_000,
  );

  it(
    '8: a server SIGKILLed mid-run -> that cell server-failed, the other ok; exit 3',
    async () => {
      const { r, procs } = await start(20_000);
      await procs.find('client', 5 * 60_000);
      // the server of port 18002: the supervisor's child that listens there
      const sup = await procs.find('servers', 5_000);
      const pid = descendants(sup).find((k) => listenersOf(k.pid).includes('127.0.0.1:18002'))?.pid;
      if (!pid) throw new Error('no server listens on 18002');
      await new Promise((res) => setTimeout(res, 1_500));
      process.kill(pid, 'SIGKILL');
      await expectOneCellFailed(r, procs, 'server-failed', /18002/);
    },
    12 * 60_000,
  );

  it(
    "10: the servers' port taken on the target -> every cell server-failed naming the port and the reason; exit 3",
    async () => {
      const squat: Server = createServer();
      await new Promise<void>((res, rej) => squat.once('error', rej).listen(18002, '127.0.0.1', () => res()));
      try {
        const { r, procs } = await start(200);
        const exit = await r.exit(10 * 60_000);
        const cells = r.summary();
        const log = `${JSON.stringify(cells.map((c) => [c.variant, c.status, c.error]))}\n${r.log()}`;
        expect(exit.code, log).toBe(3);
        expect(cells).toHaveLength(2);
        for (const c of cells) {
          expect(c.status, log).toBe('server-failed');
          expect(c.error, log).toMatch(/18002/);
        }
        // The reason is in the cell's report (the server's own words), not only "exited".
        const md = readFileSync(join(r.outDir, 'summary.md'), 'utf8');
        expect(md, log).toMatch(/Address already in use|in use/i);
        await expectNothingLeft(r, procs);
        console.log(`figure: port taken: exit ${exit.code}, cells ${cells.map((c) => `${c.variant}=${c.status}: ${c.error}`).join('; ')}`);
      } finally {
        await new Promise<void>((res) => squat.close(() => res()));
      }
    },
    12 * 60_000,
  );
});
