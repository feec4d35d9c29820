// The `local` backend: this host, no VM. The project is built in place.
import { LocalMachine } from '../machine/local.ts';
import type { Backend, BackendContext, Lease, TargetSpec } from './types.ts';

export class LocalBackend implements Backend {
  readonly name = 'local' as const;
  constructor(private readonly repoRoot: string) {}

  async up(target: TargetSpec, _ctx: BackendContext): Promise<Lease> {
    const machine = new LocalMachine({ target: target.name, workdir: this.repoRoot });
    return { machine, facts: { accel: 'none (host)' }, stop: () => machine.close() };
  }
}
