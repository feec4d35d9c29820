// The guest kernel's command line, for every backend that boots an image's kernel directly
// (qemu; vagrant's local boxes carry it in their metadata).

/**
 * root=/dev/vda rw: the initrd mounts the virtio disk itself. random.trust_cpu=on with -cpu max
 * avoids entropy stalls (even on 5.10). panic=-1 + -no-reboot: a panic stops QEMU at once.
 */
export function kernelCmdline(extra: readonly string[] = []): string {
  return ['root=/dev/vda', 'rw', 'console=ttyS0', 'net.ifnames=0', 'random.trust_cpu=on', 'panic=-1', ...extra].join(' ');
}
