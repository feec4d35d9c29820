// The vagrant backend: a target comes up through the repository's Vagrantfile (vagrant-libvirt,
// or VirtualBox on a workstation), is reached over SSH with ssh2 (SshMachine) and is destroyed at
// the end. Local boxes come from the image cache (one per Debian suite); public boxes from
// matrix.workstation.yaml. See Vagrantfile for the sandboxed network (no libvirt network).
// This file: host preparation (packages, daemons, /dev/kvm, pool, accelerator), shared by the
// targets; lease.ts: one target's machine.
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCleanup } from '../../cleanup.ts';
import { LabError } from '../../errors.ts';
import { ensureHostPackages } from '../../hostdeps.ts';
import { ensureFloorInitrd, ensureImage } from '../../images/index.ts';
import { step } from '../../progress/events.ts';
import { probeAccel } from '../shared/accel.ts';
import type { Backend, BackendContext, Lease, TargetSpec } from '../types.ts';
import { readBootFile, type VagrantEnvBase } from './box.ts';
import { baseVolumeName, vagrantEnv } from './env.ts';
import { VagrantLease } from './lease.ts';
import {
  choosePoolDir,
  ensureDaemons,
  ensurePool,
  fixKvmPermissions,
  listDomains,
  listVolumes,
  markOwner,
  stopDaemons,
  sweepDeadRuns,
  type StartedDaemon,
} from './libvirt.ts';
import { POOL_NAME, type HostState, type LeaseHost, type VagrantBackendOptions } from './options.ts';

export { parseMachineReadable, parseSshConfig, parseStatus, parseBoxList } from './parse.ts';
export { CommandQueue } from './queue.ts';
export { vagrantEnv, targetEntry, domainName } from './env.ts';
export { provisionFailure } from './lease.ts';
export { POOL_NAME, type VagrantBackendOptions, type VagrantFacts } from './options.ts';

export class VagrantBackend implements Backend {
  readonly name = 'vagrant' as const;
  readonly vagrantHome: string;
  /** Names this backend's domains and overlay volumes: usm-lab-<8 hex>-<target>. */
  readonly prefix = `usm-lab-${randomBytes(4).toString('hex')}-`;
  private host: Promise<HostState> | null = null;
  private readonly leases = new Set<Lease>();
  private readonly boxGates = new Map<string, Promise<unknown>>();
  private unregisterDaemons: (() => void) | null = null;
  private unmarkOwner: (() => Promise<void>) | null = null;
  private readonly env: NodeJS.ProcessEnv;
  /** The narrow view of this backend its leases get. */
  private readonly leaseHost: LeaseHost;

  constructor(readonly opts: VagrantBackendOptions) {
    this.vagrantHome = join(opts.cacheDir, 'vagrant.d');
    this.env = opts.env ?? process.env;
    this.leaseHost = {
      prefix: this.prefix,
      vagrantHome: this.vagrantHome,
      repoRoot: opts.repoRoot,
      sandboxed: opts.sandboxed,
      env: this.env,
      provision: opts.provision !== false,
      snapshots: opts.snapshots !== false,
      vagrantBase: (dotfilePath, extra) => this.vagrantBase(dotfilePath, extra),
      gate: (box, version, pool, fn) => this.gate(box, version, pool, fn),
      forget: (l) => this.leases.delete(l),
    };
  }

  async up(target: TargetSpec, ctx: BackendContext): Promise<Lease> {
    const { signal } = ctx;
    await mkdir(ctx.runDir, { recursive: true });
    const host = await this.prepareHost(ctx, target.name);
    if (signal.aborted) throw new LabError('interrupted', 'interrupted before boot');
    const lease = new VagrantLease(this.leaseHost, target, ctx, host);
    this.leases.add(lease);
    try {
      await lease.start();
      return lease;
    } catch (err) {
      await lease.stop().catch(() => {});
      throw err;
    }
  }

  /** The daemons (virtlogd, libvirtd) this backend started; shutdown() stops exactly these. */
  async startedDaemons(): Promise<StartedDaemon[]> {
    const h = await this.host?.catch(() => null);
    return [...(h?.started ?? [])];
  }

  /** Destroy every lease still up, then stop the daemons this backend started. Idempotent. */
  async shutdown(): Promise<void> {
    await Promise.allSettled([...this.leases].map((l) => l.stop()));
    const h = await this.host?.catch(() => null);
    if (h?.started.length) await stopDaemons(h.started);
    if (h) h.started = [];
    await this.unmarkOwner?.();
    this.unmarkOwner = null;
    this.unregisterDaemons?.();
    this.unregisterDaemons = null;
  }

  /** Run fn alone per box while the box's base volume is not in the pool yet. */
  private async gate<T>(box: string, version: string, pool: string, fn: () => Promise<T>): Promise<T> {
    const key = `${box}@${version}`;
    const before = this.boxGates.get(key);
    if (before) await before.catch(() => {});
    const vols = await listVolumes(pool);
    if (vols.includes(baseVolumeName(box, version))) return fn();
    const p = fn();
    this.boxGates.set(key, p);
    try {
      return await p;
    } finally {
      if (this.boxGates.get(key) === p) this.boxGates.delete(key);
    }
  }

  private vagrantBase(dotfilePath: string, extra: Partial<VagrantEnvBase> = {}): VagrantEnvBase {
    return {
      vagrantHome: this.vagrantHome,
      cwd: this.opts.repoRoot,
      env: vagrantEnv(this.env, {
        repoRoot: this.opts.repoRoot,
        vagrantHome: this.vagrantHome,
        dotfilePath,
        targets: [],
        sandboxed: this.opts.sandboxed,
        driver: 'qemu',
        pool: POOL_NAME,
        prefix: this.prefix,
      }),
      ...extra,
    };
  }

  private prepareHost(ctx: BackendContext, target: string): Promise<HostState> {
    this.host ??= this.doPrepareHost(ctx, target);
    return this.host;
  }

  private async doPrepareHost(ctx: BackendContext, target: string): Promise<HostState> {
    const { emit } = ctx;
    if (this.opts.installHostDeps !== false)
      await step(emit, target, 'host-deps', () => ensureHostPackages(this.opts.repoRoot, ['vagrant'], { kind: 'boot-failed' }), 'vagrant');
    const kvmFix = await fixKvmPermissions();
    if (kvmFix) emit({ type: 'info', target, message: kvmFix });
    const started = await step(emit, target, 'libvirtd', () => ensureDaemons(ctx.runDir, emit, target));
    if (started.length) this.unregisterDaemons = onCleanup(() => this.shutdown());
    const chosen = await choosePoolDir(this.opts.cacheDir);
    if (chosen.why) emit({ type: 'info', target, message: `storage pool in ${chosen.dir}: ${chosen.why}` });
    const pool = await step(emit, target, 'pool', () => ensurePool(POOL_NAME, chosen.dir), POOL_NAME);
    if (pool.created) emit({ type: 'info', target, message: `created storage pool ${POOL_NAME} (${pool.dir})` });
    // This run's domains are marked as a live process's; a dead run's (crashed, SIGKILLed) are removed.
    const owners = ownersDir(this.env);
    this.unmarkOwner = await markOwner(owners, this.prefix, ctx.keep);
    const swept = await sweepDeadRuns(owners, POOL_NAME);
    if (swept.domains.length || swept.volumes.length)
      emit({
        type: 'info',
        target,
        message: `removed what runs that are gone left in libvirt: ${swept.domains.length} domain(s)${swept.domains.length ? ` (${swept.domains.join(', ')})` : ''}, ${swept.volumes.length} volume(s)`,
      });
    let accel: 'kvm' | 'tcg';
    const forced = this.opts.accel ?? 'auto';
    if (forced !== 'auto') accel = forced;
    else {
      // The probe boots a kernel: the bookworm image's (built on demand) with the floor initrd.
      const img = await ensureImage('bookworm', { cacheDir: ctx.cacheDir, emit, signal: ctx.signal, target });
      const probe = await probeAccel({
        kernel: img.paths.kernel,
        initrd: await ensureFloorInitrd(ctx.cacheDir),
        workDir: ctx.runDir,
        cacheDir: ctx.cacheDir,
        env: this.env,
        signal: ctx.signal,
      });
      accel = probe.accel;
      emit({ type: 'info', target, message: `accelerator: ${accel} (${probe.reason}); libvirt driver ${accel === 'kvm' ? 'kvm' : 'qemu'}` });
    }
    return { pool: POOL_NAME, poolDir: pool.dir, driver: accel === 'kvm' ? 'kvm' : 'qemu', accel, started };
  }
}

/**
 * Where live runs mark their domain prefix (libvirt.ts markOwner): host-wide, as libvirt's
 * domains are (runs with other caches share them); $USM_LAB_VAGRANT_OWNERS moves it.
 */
export function ownersDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.USM_LAB_VAGRANT_OWNERS ?? join(tmpdir(), 'usm-race-lab-vagrant-owners');
}

/** Leftovers of one backend instance (tests, bench): domains and volumes named with its prefix. */
export async function leftovers(prefix: string, pool = POOL_NAME): Promise<{ domains: string[]; volumes: string[] }> {
  const domains = (await listDomains()).filter((d) => d.startsWith(prefix));
  const volumes = (await listVolumes(pool)).filter((v) => v.startsWith(prefix));
  return { domains, volumes };
}

/** Box list helper for scripts (uses this backend's VAGRANT_HOME). */
export async function bootEntries(cacheDir: string) {
  return readBootFile(join(cacheDir, 'vagrant.d'));
}
