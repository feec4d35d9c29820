// End-to-end tests need real things (root, BPF, QEMU). Outside CI a missing one skips with its
// reason; under CI it FAILS with its reason: CI never passes by skipping.
import { existsSync } from 'node:fs';

/** CI engines set CI to 'true', '1', 'yes'...: any value but '', '0' and 'false' (any case) means CI. */
export function isCI(value: string | undefined): boolean {
  if (value === undefined) return false;
  return !['', '0', 'false'].includes(value.trim().toLowerCase());
}

export const inCI = isCI(process.env.CI);

export function missingForBpf(): string | null {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (BPF programs and uprobes)';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'needs kernel BTF (/sys/kernel/btf/vmlinux)';
  return null;
}
