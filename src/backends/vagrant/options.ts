// The vagrant backend's options, facts and shared constants.
import type { TargetFacts } from '../types.ts';
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
