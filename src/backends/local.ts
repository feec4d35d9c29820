// The `local` backend: this host, no VM. The project is built in place. One matrix run at a time
// uses it: its servers listen on the run's fixed ports and its tracer puts uprobes on the system
// libssl, so a second run's cells would fail on a taken port or see the first run's traffic. A
// second run waits for the first (and says so), as a second image build of a suite does.
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidLock } from '../images/lock.ts';
import { LocalMachine } from '../machine/local.ts';
import type { Backend, BackendContext, Lease, TargetSpec } from './types.ts';

/** The host-wide lock of the local backend (a pid file; a dead holder's is taken over). */
export function localLockPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.USM_LAB_LOCAL_LOCK ?? join(tmpdir(), 'usm-race-lab-local.lock');
}

/** A local run's scratch folder in /tmp (matrix.ts remoteRunDir: /tmp/usm-lab-<run id>). */
const SCRATCH = /^usm-lab-\d{8}T\d{6}Z$/;

export class LocalBackend implements Backend {
  readonly name = 'local' as const;
  constructor(
    private readonly repoRoot: string,
    private readonly lockPath = localLockPath(),
    /** Where local runs keep their scratch folders (the host's temporary folder). */
    private readonly scratchRoot = tmpdir(),
  ) {}

  /**
   * With the lock held no other local run is alive: a scratch folder left in /tmp is a dead run's
   * (killed with SIGKILL, or by a timeout before its teardown). Removed, and said so.
   */
  private async sweep(target: string, ctx: BackendContext): Promise<void> {
    const left = (await readdir(this.scratchRoot).catch(() => [] as string[])).filter((n) => SCRATCH.test(n));
    for (const n of left) await rm(join(this.scratchRoot, n), { recursive: true, force: true }).catch(() => {});
    if (left.length)
      ctx.emit({
        type: 'info',
        target,
        message: `removed ${left.length} scratch folder(s) of earlier local runs that did not finish (${left.map((n) => join(this.scratchRoot, n)).join(', ')})`,
      });
  }

  async up(target: TargetSpec, ctx: BackendContext): Promise<Lease> {
    const release = await pidLock(this.lockPath, {
      signal: ctx.signal,
      pollMs: 500,
      waitingFor: `the local backend (${this.lockPath})`,
      onWait: (pid) =>
        ctx.emit({
          type: 'info',
          target: target.name,
          message: `another matrix run (pid ${pid}) is using this host's local backend (its ports, uprobes on the system libssl): waiting for it to finish (${this.lockPath})`,
        }),
    });
    try {
      await this.sweep(target.name, ctx);
    } catch (err) {
      await release();
      throw err;
    }
    const machine = new LocalMachine({ target: target.name, workdir: this.repoRoot });
    let stopped: Promise<void> | undefined;
    return {
      machine,
      facts: { accel: 'none (host)' },
      stop: () =>
        (stopped ??= (async () => {
          try {
            await machine.close();
          } finally {
            await release();
          }
        })()),
    };
  }
}
