// Fault cases 17, 3 and 4 on a real qemu guest: QEMU dies mid-cell (SIGKILL: vm-died), the run's
// SSH connection is dropped (the guest's sshd sessions killed) or the guest hangs (SIGSTOP of
// QEMU): both 'timeout', the VM killed. Each time the console tail is saved, the target is booted
// again once for the cells left, which complete with their figures; exit 3; nothing is left.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureImage } from '../../src/images/index.ts';
import { SshMachine } from '../../src/machine/ssh.ts';
import { MatrixRun, leftoverFiles, listenersOf, missingForQemu, qemuOf, skipUnless, waitNoLeftovers } from './harness.ts';

const missing = missingForQemu();
let runs: MatrixRun[] = [];
afterEach(() => {
  for (const r of runs) r.kill();
  runs = [];
});

describe.skipIf(skipUnless(missing))(`the VM dies mid-cell (real qemu)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root and QEMU are available', () => {
    expect(missing, `the vm-died fault case cannot run here: ${missing}`).toBeNull();
  });

  /** Case 3: from a session of our own, kill every other sshd session of the guest (the run's connection). */
  async function dropGuestSsh(outDir: string): Promise<void> {
    const [hostPort, hostKey] = readFileSync(join(outDir, 'bookworm', 'known_hosts'), 'utf8')
      .trim()
      .split(/ (.*)/s) as [string, string];
    const port = Number(/:(\d+)$/.exec(hostPort)![1]);
    const image = await ensureImage('bookworm', { cacheDir: process.env.USM_LAB_CACHE ?? join(homedir(), '.cache', 'usm-race-lab') });
    const m = await SshMachine.connect({
      target: 'drop',
      workdir: '/',
      host: '127.0.0.1',
      port,
      username: 'root',
      privateKey: image.key.privateKey,
      hostKey,
      deadlineMs: 60_000,
    });
    try {
      // $PPID of this shell is our own session's sshd: every other one is the run's.
      const script = 'for p in $(pgrep -f "^sshd: root"); do [ "$p" = "$PPID" ] || kill -9 "$p"; done; echo dropped';
      const r = await m.exec(['sh', '-c', script], { timeoutMs: 60_000, cwd: '/' });
      expect(r.stdout, r.stderr).toMatch(/dropped/);
    } finally {
      await m.close();
    }
  }

  async function qemuFault(sig: 'SIGKILL' | 'SIGSTOP' | 'drop-ssh', kind: string, error: RegExp, detailFile: string): Promise<void> {
    const args = ['--targets', 'bookworm', '--variants', 'upstream,scoped', '--modes', 'interleaved', '--scenarios', 'preexisting', '--iterations', '20'];
    const r = new MatrixRun(args, mkdtempSync(join(tmpdir(), 'fault-vm-')));
    runs.push(r);
    const t0 = Date.now();
    await r.waitFor(/\[bookworm\] run \S+#1 \.\.\./, 10 * 60_000);
    await new Promise((res) => setTimeout(res, 3_000)); // mid-protocol: servers and client up
    const [qemu] = qemuOf(r.outDir);
    expect(qemu, r.log()).toBeDefined();
    // Security: every listener qemu opened on the host (the SSH forward) is on 127.0.0.1; QMP is a unix socket.
    const listening = listenersOf(qemu!.pid);
    expect(listening.length, 'ss sees the SSH forward').toBeGreaterThan(0);
    for (const a of listening) expect(a, `qemu listens on ${listening.join(' ')}`).toMatch(/^127\.0\.0\.1:\d+$/);
    if (sig === 'drop-ssh') await dropGuestSsh(r.outDir);
    else process.kill(qemu!.pid, sig);
    const exit = await r.exit(15 * 60_000);
    expect(exit.code, r.log()).toBe(3);
    const cells = r.summary();
    const log = `${JSON.stringify(cells.map((c) => [c.variant, c.status, c.error]))}\n${r.log()}`;
    expect(cells, 'every planned cell is in summary.json').toHaveLength(2);
    const failed = cells.filter((c) => c.status !== 'ok');
    const ok = cells.filter((c) => c.status === 'ok');
    expect(
      failed.map((c) => c.status),
      log,
    ).toEqual([kind]);
    expect(failed[0]!.error, log).toMatch(error);
    expect(ok, 'the cell left ran on the VM booted again, with its figures').toHaveLength(1);
    expect((ok[0] as { captured?: number }).captured).toBeGreaterThan(0);
    const tail = readFileSync(join(r.outDir, 'bookworm', detailFile), 'utf8');
    expect(tail).toMatch(/console\.log \(tail\)/);
    expect(tail).toMatch(/Server listening on/); // the guest's console, up to its end
    const manifest = JSON.parse(readFileSync(join(r.outDir, 'manifest.json'), 'utf8'));
    expect(manifest.targets[0].reboots).toBe(1);
    expect(r.stderr).toMatch(/booting it again \(once\) for the cells left/);
    expect(await waitNoLeftovers(r.outDir, 10_000), 'the stopped qemu was killed').toEqual([]);
    expect(leftoverFiles(r.outDir, t0)).toEqual([]);
    expect(existsSync(join(r.outDir, 'summary.md'))).toBe(true);
    console.log(
      `figure: ${sig} qemu: exit ${exit.code}, cells ${cells.map((c) => `${c.variant}=${c.status}`).join(',')}, run ${Math.round((exit.at - t0) / 1000)} s`,
    );
  }

  it(
    '17: SIGKILL of qemu during the first cell: that cell vm-died with the console tail, the target booted again once, the other cell ok; exit 3; nothing left',
    () => qemuFault('SIGKILL', 'vm-died', /the VM died mid-cell: QEMU exited \(SIGKILL\)/, 'vm-died.txt'),
    20 * 60_000,
  );

  it(
    '3: the SSH connection dropped mid-cell (the guest-side sshd sessions killed): that cell timeout, the VM killed and booted again once, the other cell ok; exit 3',
    () => qemuFault('drop-ssh', 'timeout', /SSH connection was lost/, 'timeout.txt'),
    20 * 60_000,
  );

  it(
    '4: the guest hangs (SIGSTOP of qemu) during the first cell: that cell timeout, the VM killed, booted again once, the other cell ok; exit 3',
    () => qemuFault('SIGSTOP', 'timeout', /stopped answering .* killed/, 'timeout.txt'),
    20 * 60_000,
  );
});
