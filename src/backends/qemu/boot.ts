// Boot an image to SSH: start QEMU on an overlay, connect with the pinned host key, fail early
// when QEMU exits or the kernel panics. Shared by the backend and bench-boot.
import { GUEST_WORKDIR } from '../../domain.ts';
import { LabError, asLabError } from '../../errors.ts';
import type { Image } from '../../images/index.ts';
import { SshMachine } from '../../machine/ssh.ts';
import { silent, step, type Emit } from '../../progress/events.ts';
import type { Accel } from '../shared/accel.ts';
import { kernelCmdline } from '../shared/cmdline.ts';
import { Vm } from './vm.ts';

/** sshd -D -e logs this when it listens (OpenSSH 8.4 to 10.x). */
export const SSHD_LISTENING = /Server listening on \S+ port 22\b/;
/** Connect anyway after this long without the console line (a console that says nothing). */
const SSH_GATE_MS = 60_000;

export interface BootOptions {
  name: string;
  image: Image;
  accel: Accel;
  cpus: number;
  memoryMiB: number;
  runDir: string;
  keep: boolean;
  append?: readonly string[];
  /** Spawn to SSH ready. */
  deadlineMs: number;
  signal: AbortSignal;
  emit?: Emit;
  /** Test hook: see VmSpec.testSquatPortFile. */
  testSquatPortFile?: string;
}

export interface Booted {
  vm: Vm;
  machine: SshMachine;
  /** QEMU spawn to an authenticated SSH session, in ms. */
  bootMs: number;
}

/** On failure the VM is stopped and the error carries qemu.log + the console tail. */
export async function bootVm(o: BootOptions): Promise<Booted> {
  const emit = o.emit ?? silent;
  const vm = new Vm({
    name: o.name,
    accel: o.accel,
    cpus: o.cpus,
    memoryMiB: o.memoryMiB,
    kernel: o.image.paths.kernel,
    initrd: o.image.paths.initrd,
    base: o.image.paths.disk,
    append: kernelCmdline(o.append ?? []),
    runDir: o.runDir,
    keep: o.keep,
    ...(o.testSquatPortFile ? { testSquatPortFile: o.testSquatPortFile } : {}),
  });
  try {
    await step(emit, o.name, 'qemu-start', () => vm.start(), o.accel);
    for (const p of vm.portsTaken)
      emit({
        type: 'warn',
        target: o.name,
        message: `the SSH forward's port 127.0.0.1:${p} was taken before QEMU could bind it: QEMU started again on ${vm.port}`,
      });
    const machine = await step(emit, o.name, 'ssh-wait', () => waitForSsh(vm, o.image, o.name, o.deadlineMs, o.signal), `127.0.0.1:${vm.port}`);
    return { vm, machine, bootMs: performance.now() - vm.spawnedAt };
  } catch (err) {
    const tail = await vm.logsTail();
    await vm.stop();
    if (o.signal.aborted) throw new LabError('interrupted', `${o.name}: interrupted during boot`);
    const e = asLabError(err, 'boot-failed');
    throw new LabError(e.kind, e.message, [e.detail, tail].filter(Boolean).join('\n'), { cause: err });
  }
}

/** SSH with the pinned host key; rejects as soon as QEMU exits or the kernel panics. */
async function waitForSsh(vm: Vm, image: Image, name: string, deadlineMs: number, signal: AbortSignal): Promise<SshMachine> {
  const ac = new AbortController();
  const onAbort = () => ac.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  let failed: (why: string) => void = () => {};
  const failure = new Promise<never>((_, reject) => {
    failed = (why) => reject(new LabError('boot-failed', `${name}: ${why} before SSH answered`));
  });
  failure.catch(() => {});
  vm.onFailure((why) => failed(why));
  const aborted = new Promise<never>((_, reject) =>
    ac.signal.addEventListener('abort', () => reject(new LabError('interrupted', `${name}: interrupted during boot`)), { once: true }),
  );
  aborted.catch(() => {});
  let connecting: Promise<SshMachine> | undefined;
  try {
    // Connecting before the guest's network is up costs seconds: QEMU's user network accepts at
    // once, and its SYN to the guest is lost and retried with back-off. So wait until sshd says
    // it listens (the images' init runs it with -e: its log goes to the console), or SSH_GATE_MS.
    await Promise.race([vm.waitConsole(SSHD_LISTENING, Math.min(SSH_GATE_MS, deadlineMs)), failure, aborted]);
    const left = deadlineMs - (performance.now() - vm.spawnedAt);
    connecting = SshMachine.connect({
      target: name,
      workdir: GUEST_WORKDIR,
      host: '127.0.0.1',
      port: vm.port,
      username: 'root',
      privateKey: image.key.privateKey,
      hostKey: image.manifest.hostKey,
      deadlineMs: Math.max(1_000, left),
      retryDelayMs: 100,
      signal: ac.signal,
    });
    return await Promise.race([connecting, failure]);
  } catch (err) {
    ac.abort();
    connecting?.then(
      (m) => m.close(),
      () => {},
    );
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
