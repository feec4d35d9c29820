// Backend registry: loaded on demand, so `--backend local` needs nothing of QEMU or Vagrant.
import { LabError } from '../errors.ts';
import { LocalBackend } from './local.ts';
import type { Backend, BackendName } from './types.ts';

export function backendLoader(repoRoot: string): (name: BackendName) => Promise<Backend> {
  const cache = new Map<BackendName, Promise<Backend>>();
  return (name) => {
    let b = cache.get(name);
    if (!b) {
      b = load(name, repoRoot);
      cache.set(name, b);
    }
    return b;
  };
}

async function load(name: BackendName, repoRoot: string): Promise<Backend> {
  switch (name) {
    case 'local':
      return new LocalBackend(repoRoot);
    case 'qemu':
    case 'vagrant':
      throw new LabError('internal', `backend ${name} is not available in this build`);
  }
}
