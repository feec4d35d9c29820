// What an image is made of, as data: the Debian packages per suite, the guest-side scripts and
// the initrd's modules. The recipe hash covers all of it (and the build code's version), so a
// cached image is rebuilt exactly when one of them changes.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SUITES, type Suite } from '../domain.ts';
import { ConfigError } from '../errors.ts';

/** Bump when the build code changes what it produces (layout, mkfs options, initrd shape). */
export const BUILD_CODE_VERSION = 1;

/** Guest-side scripts, in provision/guest/. */
export const GUEST_DIR = fileURLToPath(new URL('../../provision/guest/', import.meta.url));
export const GUEST_SCRIPTS = ['init.sh', 'initrd-init.sh', 'configure-tree.sh', 'floor-init.sh'] as const;

const BASE = ['linux-image-cloud-amd64', 'openssh-server', 'openssl', 'python3', 'iproute2', 'procps', 'kmod', 'ca-certificates'];
const TOOLCHAIN = ['gcc', 'libc6-dev', 'make', 'pkg-config', 'clang', 'llvm', 'libbpf-dev', 'libssl-dev', 'libelf-dev', 'zlib1g-dev', 'bpftool'];

/**
 * The real TLS terminators (--server nginx-proxy, haproxy). bullseye and bookworm's `nginx` is a
 * choice among flavours (debootstrap does not resolve alternatives): nginx-light is the small one;
 * trixie and sid have one `nginx` package.
 */
const SERVERS_OLD = ['nginx-light', 'haproxy'];
const SERVERS_NEW = ['nginx', 'haproxy'];

/**
 * The debug-endpoint look-alike (an external tracer that answers as system-probe does): Debian's
 * node runs its bundle (bullseye's is 12, hence the bundle's target), and curl is how the
 * investigation (and the external-tracer path) queries a debug endpoint over a unix socket.
 */
const ENDPOINT = ['nodejs', 'curl'];

/**
 * Packages per suite. The kernel package depends on "initramfs-tools | linux-initramfs-tool";
 * debootstrap does not resolve alternatives, so it is named where it is the one to take. sid's
 * kernel pulls dracut instead, and naming initramfs-tools there makes debootstrap fail.
 */
export const PACKAGES: Record<Suite, readonly string[]> = {
  bullseye: [...BASE, 'initramfs-tools', ...TOOLCHAIN, ...SERVERS_OLD, ...ENDPOINT],
  bookworm: [...BASE, 'initramfs-tools', ...TOOLCHAIN, ...SERVERS_OLD, ...ENDPOINT],
  trixie: [...BASE, 'initramfs-tools', ...TOOLCHAIN, ...SERVERS_NEW, ...ENDPOINT],
  sid: [...BASE, ...TOOLCHAIN, ...SERVERS_NEW, ...ENDPOINT],
};

/** Kernel modules the tiny initrd loads (with their dependencies), unless built in. */
export const INITRD_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_net', 'virtio_rng', 'ext4'] as const;

/** Busybox applets linked in the initrd (what initrd-init.sh and floor-init.sh call). */
export const INITRD_APPLETS = [
  'sh',
  'mount',
  'umount',
  'insmod',
  'switch_root',
  'usleep',
  'sleep',
  'cat',
  'mkdir',
  'ln',
  'ip',
  'poweroff',
  'echo',
  'ls',
] as const;

/** Free space added to the root file system beyond what the tree uses (guest builds, runs). */
export const FREE_SPACE_MIB = 2048;

/** Versions recorded in the manifest: field name -> Debian package read with dpkg-query. */
export const VERSION_PACKAGES = {
  kernelPackage: 'linux-image-cloud-amd64',
  openssl: 'openssl',
  libssl: 'libssl-dev',
  clang: 'clang',
  libbpf: 'libbpf-dev',
  bpftool: 'bpftool',
  python: 'python3',
  openssh: 'openssh-server',
  gcc: 'gcc',
  nginx: 'nginx-common',
  haproxy: 'haproxy',
  node: 'nodejs',
} as const;

export interface Recipe {
  suite: Suite;
  packages: readonly string[];
  initrdModules: readonly string[];
  initrdApplets: readonly string[];
  freeSpaceMiB: number;
  buildCodeVersion: number;
  /** Contents of the guest-side scripts by file name. */
  scripts: Record<string, string>;
}

export function parseSuite(s: string): Suite {
  if ((SUITES as readonly string[]).includes(s)) return s as Suite;
  throw new ConfigError(`unknown suite '${s}' (allowed: ${SUITES.join(', ')})`);
}

export function readGuestScripts(dir = GUEST_DIR): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of GUEST_SCRIPTS) out[f] = readFileSync(`${dir}${dir.endsWith('/') ? '' : '/'}${f}`, 'utf8');
  return out;
}

export function recipeFor(suite: Suite, scripts: Record<string, string> = readGuestScripts()): Recipe {
  return {
    suite,
    packages: PACKAGES[suite],
    initrdModules: INITRD_MODULES,
    initrdApplets: INITRD_APPLETS,
    freeSpaceMiB: FREE_SPACE_MIB,
    buildCodeVersion: BUILD_CODE_VERSION,
    scripts,
  };
}

/** sha256 over a canonical form of the recipe (sorted keys): same recipe, same hash. */
export function recipeHash(r: Recipe): string {
  const canon = JSON.stringify({
    suite: r.suite,
    packages: [...r.packages],
    initrdModules: [...r.initrdModules],
    initrdApplets: [...r.initrdApplets],
    freeSpaceMiB: r.freeSpaceMiB,
    buildCodeVersion: r.buildCodeVersion,
    scripts: Object.keys(r.scripts)
      .sort()
      .map((k) => [k, r.scripts[k]]),
  });
  return createHash('sha256').update(canon).digest('hex');
}
