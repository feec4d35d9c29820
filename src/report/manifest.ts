// What a run records across the matrix (manifest.json: targets, settings) and the investigation's
// figures the reports set beside ours. Types and constants only: every report module may import it.

/** The investigation's figures, set beside ours. */
export const INVESTIGATION = [
  // Quoted as "81 % (810 of 1098)"; 810/1098 is 73.8 % of rows: the 81 % is 810 of the 1000 expected requests.
  {
    run: 'sequential (v1 client, 500 iterations)',
    mode: 'sequential',
    misattribution: 810 / 1098,
    detail: '138 / 408 / 402 / 150 (conn1 right, conn1 wrong, conn2 wrong, conn2 right); quoted as 81 %, which is 810 of the 1000 expected requests',
  },
  {
    run: 'interleaved (v2 client, 200 iterations, VM)',
    mode: 'interleaved',
    misattribution: 267 / 418,
    detail: '67 / 133 / 134 / 84; 418 captured of 400 expected',
  },
  { run: 'baseline: tracer before the connections', mode: 'baseline', misattribution: 0, detail: '80 entries captured' },
] as const;

export interface TargetRecord {
  /** The boot's name: the target's, with -<N>cpu for a VM of N != 1 vCPUs (its report folder). */
  name: string;
  /** The matrix.yaml target it boots (absent in reports written before vCPUs were a dimension). */
  target?: string;
  cpus?: number;
  backend: string;
  status: string;
  error?: string;
  detail?: string;
  facts: Record<string, unknown>;
  /** Cells of this boot reused from the folder's previous run (inputs unchanged, complete); 0 or absent: none. */
  reused?: number;
  /** Boots after the VM died under a cell (at most 1: the target is booted again once for the cells left). */
  reboots?: number;
}

export interface Manifest {
  runId: string;
  tool: { commit: string; dirty: boolean; node: string };
  startedAt: string;
  finishedAt?: string;
  argv: string[];
  seed: number;
  iterations: number;
  iterationsByMode?: Record<string, number>;
  trials: number;
  variants: string[];
  modes: string[];
  scenarios: string[];
  reads?: string[];
  /** The traced TLS servers (absent before they were a dimension: python). */
  servers?: string[];
  nagle?: string;
  settleMs?: number;
  /** The user's own client (--client-src): its path on the host and sha256; absent for ours. */
  client?: { src: string; sha256: string };
  /** The external tracer (matrix.yaml tracer:): its settings, files (host path, sha256) and their sha256; absent for the model. */
  tracer?: {
    label: string;
    expect: string | null;
    argv: string[];
    files: { src: string; name: string; sha256: string }[];
    sha256: string;
    [k: string]: unknown;
  };
  targets: TargetRecord[];
  /** The run this one resumed (--resume, or --out naming an existing run): its cells were reused where their inputs were unchanged. */
  resumedFrom?: { runId: string; startedAt: string };
}
