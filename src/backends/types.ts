// A backend brings a target up and hands back a Machine; it knows nothing of scenarios.
import type { LabError } from '../errors.ts';
import type { Machine } from '../machine/types.ts';
import type { BackendName } from '../domain.ts';
import type { Emit } from '../progress/events.ts';

export interface TargetSpec {
  /** Unique name in the matrix (e.g. "bookworm", "local"). */
  name: string;
  backend: BackendName;
  /** Debian suite for qemu/vagrant images built from Debian's packages. */
  suite?: string;
  /** Vagrant box name (vagrant backend, public boxes). */
  box?: string;
  /** Guest memory in MiB (default 1024). */
  memoryMiB?: number;
  /** vCPUs (default 1). */
  cpus?: number;
}

export interface BackendContext {
  /** Host directory for this target's logs in the run (console.log, build.log ...). */
  runDir: string;
  emit: Emit;
  /** Aborted on Ctrl-C / fatal error: backends stop booting and tear down. */
  signal: AbortSignal;
  /** Leave the VM running after the run (print how to reach it). */
  keep: boolean;
  /** Root of the image / key cache (default ~/.cache/usm-race-lab). */
  cacheDir: string;
  /** Boot deadline in ms. */
  bootTimeoutMs?: number;
}

/** What a backend reports about a running target (recorded in manifest.json). */
export interface TargetFacts {
  kernel?: string;
  accel?: string;
  image?: string;
  [k: string]: unknown;
}

export interface Lease {
  machine: Machine;
  facts: TargetFacts;
  /** Stop the VM and free everything it holds. Idempotent; safe to call after a failed boot. */
  stop(): Promise<void>;
  /** With --keep: how to reach the target (one line per hint). */
  hints?: string[];
  /**
   * Asked after a failed trial: null while the machine runs; else why it is gone, with the console
   * tail: 'vm-died' (QEMU exited, was killed, panicked) or 'timeout' (the guest stopped answering;
   * the VM is then killed). Either way the target is booted again for the cells left. Backends
   * without a VM of their own (local) leave it out.
   */
  died?(): Promise<LabError | null>;
}

export interface Backend {
  readonly name: BackendName;
  up(target: TargetSpec, ctx: BackendContext): Promise<Lease>;
}
