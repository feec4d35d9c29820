// Expand targets x cpus x servers x reads x scenarios x modes x variants into cells, in a seeded order:
// one target instance (one boot) per (target, cpus).
import type { CellId, Mode, Reads, Scenario, Server, Variant } from '../domain.ts';
import type { TargetSpec } from '../backends/types.ts';

export interface PlanInput {
  targets: TargetSpec[];
  /** Model variants, or an external tracer's label. */
  variants: CellId['variant'][];
  modes: Mode[];
  scenarios: Scenario[];
  reads: Reads[];
  /** The traced TLS servers (default: python only). */
  servers?: Server[];
  /** vCPU counts per target name (one boot each); a target without an entry boots with its own cpus (default 1). */
  cpus: Readonly<Record<string, readonly number[]>>;
  trials: number;
  seed: number;
  /** Run only shard k of n (1-based): targets are dealt round-robin. */
  shard?: { k: number; n: number };
}

export interface TargetPlan {
  /** The target with the vCPU count of this boot. */
  target: TargetSpec;
  /** Report folder and progress name of this boot: the target's name, with -<N>cpu when a VM has N != 1. */
  instance: string;
  cells: CellId[];
}

export function instanceName(t: Pick<TargetSpec, 'name' | 'backend'>, cpus: number): string {
  return t.backend === 'local' || cpus === 1 ? t.name : `${t.name}-${cpus}cpu`;
}

/** mulberry32: small, fast, good enough to shuffle a run order reproducibly. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(arr: readonly T[], rand: () => number): T[] {
  const a = [...arr];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export function planMatrix(p: PlanInput): TargetPlan[] {
  // Shards deal targets (not boots): every cpus count of a target runs on the same shard.
  const targets = p.shard ? p.targets.filter((_, i) => i % p.shard!.n === p.shard!.k - 1) : p.targets;
  const boots = targets.flatMap((t) => (p.cpus[t.name] ?? [t.cpus ?? 1]).map((cpus) => ({ ...t, cpus })));
  return boots.map((target, ti) => {
    const boot = instanceName(target, target.cpus);
    // A seeded order per boot: no variant always runs first on a warm or cold machine. One server's
    // cells run together (the servers are started once per server, not at each change: 15-30 s
    // in a TCG guest); with one server this is the order of the whole list, as before servers.
    const rand = rng(p.seed + ti);
    const cells: CellId[] = [];
    for (const server of p.servers ?? ['python']) {
      const group: CellId[] = [];
      for (const reads of p.reads)
        for (const scenario of p.scenarios)
          for (const mode of p.modes)
            for (const variant of p.variants) group.push({ target: target.name, cpus: target.cpus, boot, server, reads, scenario, mode, variant });
      cells.push(...shuffle(group, rand));
    }
    return { target, instance: boot, cells };
  });
}
