// End-to-end tests need real things (root, BPF, QEMU). Outside CI a missing one skips with its
// reason; under CI=true it FAILS with its reason: CI never passes by skipping.
import { existsSync } from 'node:fs';

export const inCI = process.env.CI === 'true';

export function missingForBpf(): string | null {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (BPF programs and uprobes)';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'needs kernel BTF (/sys/kernel/btf/vmlinux)';
  return null;
}
