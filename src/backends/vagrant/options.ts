// The vagrant backend's options, facts and shared constants.
import type { Lease, TargetFacts } from '../types.ts';
import type { VagrantEnvBase } from './box.ts';
import type { StartedDaemon } from './libvirt.ts';

export const POOL_NAME = 'usm-race-lab';

export interface VagrantBackendOptions {
  repoRoot: string;
  /** Cache root (images, VAGRANT_HOME = CACHE/vagrant.d, snapshots, the pool when reachable). */
  cacheDir: string;
  /** No libvirt network: QEMU user-mode NIC with hostfwd on 127.0.0.1 (matrix.yaml vagrant.sandboxed). */
  sandboxed: boolean;
  /** kvm | tcg, or auto (default): KVM only if a guest really boots under it. */
  accel?: 'auto' | 'kvm' | 'tcg';
  /** Save and restore build snapshots (default true). */
  snapshots?: boolean;
  /** Upload the sources and run provision/setup.sh after a fresh up (default true). */
  provision?: boolean;
  /** Run `bash provision/host-deps.sh vagrant` before the first target (default true). */
  installHostDeps?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface VagrantFacts extends TargetFacts {
  accel: 'kvm' | 'tcg';
  box: string;
  boxVersion: string;
  /** restored: booted from a build snapshot; saved: provisioned + built, snapshot saved; off. */
  snapshot: 'restored' | 'saved' | 'off' | 'failed';
  domain: string;
  sshPort: number;
  /** ms from `vagrant up` to an authenticated SSH session. */
  upMs: number;
  provisionMs?: number;
  snapshotMs?: number;
  /** sha256 of bpf/, client/, provision/ built in the guest's workdir (provisioned or restored). */
  sourcesHash?: string;
}

export interface HostState {
  pool: string;
  poolDir: string;
  driver: 'kvm' | 'qemu';
  accel: 'kvm' | 'tcg';
  started: StartedDaemon[];
}

/** What one lease needs of its backend (lease.ts never sees VagrantBackend itself). */
export interface LeaseHost {
  /** Names the backend's domains and overlay volumes: usm-lab-<8 hex>-<target>. */
  readonly prefix: string;
  readonly vagrantHome: string;
  readonly repoRoot: string;
  readonly sandboxed: boolean;
  readonly env: NodeJS.ProcessEnv;
  /** Upload the sources and run provision/setup.sh after a fresh up. */
  readonly provision: boolean;
  /** Save and restore build snapshots. */
  readonly snapshots: boolean;
  /** Vagrant's environment for box commands (no targets), with this lease's dotfile path. */
  vagrantBase(dotfilePath: string, extra?: Partial<VagrantEnvBase>): VagrantEnvBase;
  /** Run fn alone per box while the box's base volume is not in the pool yet. */
  gate<T>(box: string, version: string, pool: string, fn: () => Promise<T>): Promise<T>;
  /** The lease has stopped: the backend forgets it. */
  forget(lease: Lease): void;
}
