// Fault cases 11 and 12: signals. A signal to the TOP process only (`kill <pid of npx>`, as
// `timeout` and CI runners cancel a job) must stop the run's VMs within seconds and exit 130
// (SIGINT) / 143 (SIGTERM). npx is npm -> (shell) -> node: the repository's .npmrc makes the
// shell exec node, and node also watches its parent (scripts/launch.mjs). Real qemu guests.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MatrixRun, descendants, leftoverFiles, missingForQemu, qemuOf, skipUnless, waitNoLeftovers } from './harness.ts';

const missing = missingForQemu();
const ONE_CELL = ['--targets', 'bookworm', '--variants', 'upstream', '--modes', 'interleaved', '--scenarios', 'preexisting', '--iterations', '20'];
/** A cancelled job's VMs are gone within this long after the signal. */
const STOP_WITHIN_MS = 15_000;

let runs: MatrixRun[] = [];
afterEach(() => {
  for (const r of runs) r.kill();
  runs = [];
});

function start(env: NodeJS.ProcessEnv = {}): MatrixRun {
  const r = new MatrixRun(ONE_CELL, mkdtempSync(join(tmpdir(), 'fault-sig-')), env);
  runs.push(r);
  return r;
}

describe.skipIf(skipUnless(missing))(`signals to the top process only (real qemu)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root and QEMU are available', () => {
    expect(missing, `the signal fault cases cannot run here: ${missing}`).toBeNull();
  });

  it.each([
    ['SIGINT', 'ssh-wait', 130],
    ['SIGTERM', 'build', 143],
  ] as const)(
    '%s to the pid of npx only, during %s: qemu gone within seconds, exit %i, the cell interrupted in summary.json',
    async (sig, stepName, code) => {
      const r = start();
      const t0 = Date.now();
      await r.waitFor(new RegExp(`\\[bookworm\\] ${stepName}\\b`), 5 * 60_000);
      const qemu = qemuOf(r.outDir);
      expect(qemu.length, `a qemu of the run is up\n${r.log()}`).toBe(1);
      // npm's child is node itself (.npmrc script-shell): no shell in between to swallow the signal.
      const children = descendants(r.pid).filter((p) => p.ppid === r.pid);
      expect(children.map((c) => c.cmdline).join('\n')).toMatch(/^node .*zx scripts\/matrix\.mjs/);
      const sentAt = Date.now();
      process.kill(r.pid, sig);
      const exit = await r.exit(60_000);
      const left = await waitNoLeftovers(r.outDir, STOP_WITHIN_MS);
      console.log(
        `figure: ${sig} to npx during ${stepName}: npx exited ${exit.code} after ${exit.at - sentAt} ms, run's processes gone after ${Date.now() - sentAt} ms`,
      );
      expect(left, r.log()).toEqual([]);
      expect(exit.at - sentAt, `npx exited ${exit.at - sentAt} ms after ${sig}`).toBeLessThan(STOP_WITHIN_MS);
      expect(exit.code, r.log()).toBe(code);
      expect(leftoverFiles(r.outDir, t0)).toEqual([]);
      const cells = r.summary();
      expect(cells).toHaveLength(1);
      expect(cells[0]!.status).toBe('interrupted');
    },
    6 * 60_000,
  );

  it(
    'SIGTERM to npx with a shell in between (script-shell=/bin/sh: dash dies, node is orphaned): node notices, qemu gone within seconds',
    async () => {
      const r = start({ npm_config_script_shell: '/bin/sh' });
      const t0 = Date.now();
      await r.waitFor(/\[bookworm\] ssh-wait\b/, 5 * 60_000);
      expect(qemuOf(r.outDir).length, r.log()).toBe(1);
      const shell = descendants(r.pid).find((p) => p.ppid === r.pid);
      expect(shell?.cmdline, 'the layer under test: a shell between npm and node').toMatch(/^\/bin\/sh -c/);
      const sentAt = Date.now();
      process.kill(r.pid, 'SIGTERM');
      const exit = await r.exit(60_000);
      // npm re-raises its child's death by a signal: the shell died of SIGTERM, so did npx.
      expect(exit.code === 143 || exit.signal === 'SIGTERM', `npx: ${JSON.stringify(exit)}`).toBe(true);
      // node, now orphaned, stops the VM and exits by itself: nothing of the run is left.
      const left = await waitNoLeftovers(r.outDir, STOP_WITHIN_MS);
      console.log(`figure: SIGTERM to npx, /bin/sh between: run's processes gone after ${Date.now() - sentAt} ms`);
      expect(left, `${Date.now() - sentAt} ms after SIGTERM\n${r.log()}`).toEqual([]);
      expect(leftoverFiles(r.outDir, t0)).toEqual([]);
    },
    6 * 60_000,
  );
});
