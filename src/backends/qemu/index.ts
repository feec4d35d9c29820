// The qemu backend: ensure the suite's image, pick the accelerator (a real KVM boot, else TCG),
// boot the image's kernel + tiny initrd on a throw-away overlay, wait for SSH with the pinned
// host key, hand back an SshMachine. Every VM is registered with src/cleanup.ts.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GUEST_WORKDIR } from '../../domain.ts';
import { ConfigError, LabError } from '../../errors.ts';
import { ensureFloorInitrd, ensureImage, parseSuite, type Image } from '../../images/index.ts';
import { step } from '../../progress/events.ts';
import { probeAccel, type Accel } from '../shared/accel.ts';
import type { Backend, BackendContext, Lease, TargetSpec } from '../types.ts';
import { bootVm } from './boot.ts';
import type { Vm } from './vm.ts';

export { stopAllVms, runningVms, Vm } from './vm.ts';

export { bootVm, type BootOptions, type Booted } from './boot.ts';

export interface QemuBackendOptions {
  /** Rebuild images even when cached (matrix --rebuild). */
  rebuild?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Extra kernel command-line arguments. */
  append?: string[];
  /** Spawn-to-SSH deadline when the context gives none (default 60 s under KVM, 180 s under TCG). */
  bootTimeoutMs?: number;
  /** Test hook (fault case 9): see VmSpec.testSquatPortFile. */
  testSquatPortFile?: string;
}

export interface QemuFacts {
  kernel: string;
  accel: Accel;
  accelReason: string;
  image: string;
  imageManifest: Record<string, unknown>;
  sshPort: number;
  bootSeconds: number;
  [k: string]: unknown;
}

export class QemuBackend implements Backend {
  readonly name = 'qemu' as const;
  constructor(private readonly opts: QemuBackendOptions = {}) {}

  async up(target: TargetSpec, ctx: BackendContext): Promise<Lease> {
    if (!target.suite) throw new ConfigError(`target '${target.name}' (backend qemu) needs a suite`);
    const suite = parseSuite(target.suite);
    const { emit, signal } = ctx;
    const env = this.opts.env ?? process.env;
    await mkdir(ctx.runDir, { recursive: true });

    const image: Image = await ensureImage(suite, { cacheDir: ctx.cacheDir, emit, signal, rebuild: this.opts.rebuild ?? false, target: target.name, env });
    const probe = await step(emit, target.name, 'accel', async () =>
      probeAccel({ kernel: image.paths.kernel, initrd: await ensureFloorInitrd(ctx.cacheDir), workDir: ctx.runDir, cacheDir: ctx.cacheDir, env, signal }),
    );
    emit({ type: 'info', target: target.name, message: `accelerator: ${probe.accel} (${probe.reason})` });
    if (signal.aborted) throw new LabError('interrupted', 'interrupted before boot');

    const deadlineMs = ctx.bootTimeoutMs ?? this.opts.bootTimeoutMs ?? (probe.accel === 'kvm' ? 60_000 : 180_000);
    const { vm, machine } = await bootVm({
      name: target.name,
      image,
      accel: probe.accel,
      cpus: target.cpus ?? 1,
      memoryMiB: target.memoryMiB ?? 1024,
      runDir: ctx.runDir,
      keep: ctx.keep,
      append: this.opts.append ?? [],
      deadlineMs,
      signal,
      emit,
      ...(this.opts.testSquatPortFile ? { testSquatPortFile: this.opts.testSquatPortFile } : {}),
    });
    const stop = () => vm.stop();
    const bootSeconds = Math.round((performance.now() - vm.spawnedAt) / 100) / 10;

    let kernel = '';
    try {
      const r = await machine.exec(['uname', '-r'], { timeoutMs: 30_000, cwd: '/' });
      kernel = r.stdout.trim();
      await machine.exec(['mkdir', '-p', GUEST_WORKDIR], { timeoutMs: 30_000, cwd: '/' });
    } catch (err) {
      await machine.close();
      await stop();
      throw new LabError('boot-failed', `${target.name}: SSH answered but exec failed: ${(err as Error).message}`, await vm.logsTail());
    }

    const m = image.manifest;
    const facts: QemuFacts = {
      kernel,
      accel: probe.accel,
      accelReason: probe.reason,
      image: `${suite} (recipe ${m.recipeHash.slice(0, 12)}, built ${m.builtAt})`,
      imageManifest: { suite: m.suite, kernel: m.kernel, versions: m.versions, recipeHash: m.recipeHash, sha256: m.sha256, builtAt: m.builtAt, size: m.size },
      // a cached image found stale or damaged and rebuilt by this boot: the target's record says so
      ...(image.rebuiltBecause ? { imageRebuilt: image.rebuiltBecause } : {}),
      sshPort: vm.port,
      bootSeconds,
    };
    const knownHosts = join(ctx.runDir, 'known_hosts');
    await writeFile(knownHosts, `[127.0.0.1]:${vm.port} ${m.hostKey}\n`);
    const hints = [
      `ssh -i ${image.keyPath} -p ${vm.port} -o UserKnownHostsFile=${knownHosts} root@127.0.0.1`,
      `stop: kill ${vm.pid}  (overlay ${vm.overlay}, console ${vm.consoleLog})`,
    ];
    let stopped = false;
    return {
      machine,
      facts,
      hints,
      died: () => vmDeath(vm, target.name, machine),
      stop: async () => {
        if (stopped) return;
        stopped = true;
        // Peak memory of this VM's qemu over the whole run (VmHWM), before it goes away.
        const peak = await peakRssMiB(vm.pid);
        if (peak !== null) facts.peakRssMiB = peak;
        await machine.close().catch(() => {});
        await stop();
      },
    };
  }
}

/** How long a failed trial waits for QEMU's exit to be seen (its SSH connection may close first). */
const DEATH_SETTLE_MS = 2_000;

/**
 * null while the VM runs and answers; else why it is gone, with the console tail: 'vm-died' when
 * QEMU exited or the kernel panicked; 'timeout' when QEMU runs but the guest stopped answering
 * (SSH keepalives lost: a hung guest, a stopped QEMU), and then the VM is killed here.
 */
export async function vmDeath(vm: Vm, name: string, machine?: { readonly connected: boolean }): Promise<LabError | null> {
  if (!vm.failure)
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, DEATH_SETTLE_MS);
      vm.onFailure(() => {
        clearTimeout(t);
        resolve();
      });
    });
  if (!vm.failure && machine && !machine.connected) {
    const tail = await vm.logsTail();
    await vm.stop();
    return new LabError(
      'timeout',
      `${name}: the VM stopped answering (its SSH connection was lost: keepalives unanswered, or the session dropped) and was killed (pid ${vm.pid})`,
      tail,
    );
  }
  if (!vm.failure) return null;
  return new LabError('vm-died', `${name}: the VM died mid-cell: ${vm.failure} (pid ${vm.pid})`, await vm.logsTail());
}

/** VmHWM of a live process in MiB, or null when it cannot be read. */
export async function peakRssMiB(pid: number): Promise<number | null> {
  if (!pid) return null;
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kib = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
  return kib ? Math.round(Number(kib) / 1024) : null;
}
