// Backend registry: loaded on demand, so `--backend local` needs nothing of QEMU or Vagrant.
import { LabError } from '../errors.ts';
import { LocalBackend } from './local.ts';
import type { BackendName } from '../domain.ts';
import type { Backend } from './types.ts';

export interface BackendOptions {
  /** Rebuild images even when cached. */
  rebuild?: boolean;
  /** Vagrant without any libvirt network (QEMU user-mode NIC, hostfwd on 127.0.0.1). */
  sandboxed?: boolean;
  cacheDir?: string;
  /** The vagrant backend installs its host packages itself unless the caller did (default true). */
  installHostDeps?: boolean;
  /** Extra guest kernel arguments for the qemu backend (the fault suite's hook, $USM_LAB_TEST_APPEND). */
  append?: string[];
  /** Boot (spawn to SSH) deadline of the qemu backend in ms (the fault suite's hook, $USM_LAB_TEST_BOOT_TIMEOUT_S). */
  bootTimeoutMs?: number;
  /** The first SSH forward's port is taken by this process before QEMU binds it (the fault suite's hook, $USM_LAB_TEST_SQUAT_FORWARD: the file gets the port). */
  squatForwardFile?: string;
}

export function backendLoader(repoRoot: string, opts: BackendOptions = {}): (name: BackendName) => Promise<Backend> {
  const cache = new Map<BackendName, Promise<Backend>>();
  return (name) => {
    let b = cache.get(name);
    if (!b) {
      b = load(name, repoRoot, opts);
      cache.set(name, b);
    }
    return b;
  };
}

async function load(name: BackendName, repoRoot: string, opts: BackendOptions): Promise<Backend> {
  switch (name) {
    case 'local':
      return new LocalBackend(repoRoot);
    case 'qemu': {
      const { QemuBackend } = await import('./qemu/index.ts');
      return new QemuBackend({
        rebuild: opts.rebuild ?? false,
        ...(opts.append?.length ? { append: opts.append } : {}),
        ...(opts.bootTimeoutMs ? { bootTimeoutMs: opts.bootTimeoutMs } : {}),
        ...(opts.squatForwardFile ? { testSquatPortFile: opts.squatForwardFile } : {}),
      });
    }
    case 'vagrant': {
      if (!opts.cacheDir) throw new LabError('internal', 'the vagrant backend needs the cache folder');
      const { VagrantBackend } = await import('./vagrant/index.ts');
      return new VagrantBackend({
        repoRoot,
        cacheDir: opts.cacheDir,
        sandboxed: opts.sandboxed ?? true,
        ...(opts.installHostDeps === false ? { installHostDeps: false } : {}),
      });
    }
  }
}
