// Expand targets x scenarios x modes x variants x trials into runs, in a seeded order.
import type { CellId, Mode, Scenario, Variant } from '../domain.ts';
import type { TargetSpec } from '../backends/types.ts';

export interface PlanInput {
  targets: TargetSpec[];
  variants: Variant[];
  modes: Mode[];
  scenarios: Scenario[];
  trials: number;
  seed: number;
  /** Run only shard k of n (1-based): targets are dealt round-robin. */
  shard?: { k: number; n: number };
}

export interface TargetPlan {
  target: TargetSpec;
  cells: CellId[];
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
  const targets = p.shard ? p.targets.filter((_, i) => i % p.shard!.n === p.shard!.k - 1) : p.targets;
  return targets.map((target, ti) => {
    const cells: CellId[] = [];
    for (const scenario of p.scenarios) for (const mode of p.modes) for (const variant of p.variants) cells.push({ target: target.name, scenario, mode, variant });
    // A seeded order per target: no variant always runs first on a warm or cold machine.
    return { target, cells: shuffle(cells, rng(p.seed + ti)) };
  });
}
