// QEMU command lines as pure functions (tested with tables). Direct kernel boot of the image's
// kernel + tiny initrd; the disk is a throw-away overlay; user networking restricted to one
// port forward on 127.0.0.1. The accelerator's arguments and the kernel command line are in
// ../shared/ (the vagrant backend boots the same kernels).
import { accelArgs, type Accel } from '../shared/accel.ts';

export interface VmArgs {
  accel: Accel;
  cpus: number;
  memoryMiB: number;
  kernel: string;
  initrd: string;
  /** Kernel command line (see kernelCmdline). */
  append: string;
  overlay: string;
  /** Host port forwarded from 127.0.0.1 to the guest's port 22. */
  sshPort: number;
  consoleLog: string;
  qmpSocket: string;
  pidFile: string;
}

export function netdevArg(sshPort: number): string {
  if (!Number.isInteger(sshPort) || sshPort < 1 || sshPort > 65535) throw new RangeError(`bad ssh port ${sshPort}`);
  return `user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${sshPort}-:22`;
}

/** QEMU options are comma-separated: a comma inside a path is written twice. */
export function qemuPath(p: string): string {
  return p.replace(/,/g, ',,');
}

export function vmArgs(a: VmArgs): string[] {
  if (a.cpus < 1 || a.memoryMiB < 128) throw new RangeError(`bad VM size: ${a.cpus} vCPUs, ${a.memoryMiB} MiB`);
  return [
    ...accelArgs(a.accel),
    '-smp',
    String(a.cpus),
    '-m',
    String(a.memoryMiB),
    '-nodefaults',
    '-display',
    'none',
    '-kernel',
    a.kernel,
    '-initrd',
    a.initrd,
    '-append',
    a.append,
    '-drive',
    `file=${qemuPath(a.overlay)},if=virtio,format=qcow2,cache=unsafe`,
    '-netdev',
    netdevArg(a.sshPort),
    '-device',
    'virtio-net-pci,netdev=n0',
    '-device',
    'virtio-rng-pci',
    '-serial',
    `file:${a.consoleLog}`,
    '-qmp',
    `unix:${qemuPath(a.qmpSocket)},server=on,wait=off`,
    '-no-reboot',
    '-pidfile',
    a.pidFile,
  ];
}

export function overlayArgs(base: string, overlay: string): string[] {
  return ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay];
}
