// VM, SSH and scenario code never prints: it emits these typed events. One reporter
// (src/progress/reporter.ts) turns them into spinners and a final table.

export type ProgressEvent =
  | { type: 'step-start'; target: string; step: string; detail?: string }
  | { type: 'step-end'; target: string; step: string; ok: boolean; ms: number; detail?: string; logFile?: string }
  | { type: 'info'; target: string; message: string }
  /** Cells of a boot reused from the folder's previous run; `boot`: whether the others still need the target up. */
  | { type: 'reused'; target: string; cells: number; of: number; boot: boolean }
  | { type: 'warn'; target: string; message: string };

export type Emit = (ev: ProgressEvent) => void;

export const silent: Emit = () => {};

/** Why a step failed although fn returned (its value is data: a failed trial), or null. */
export type StepFailure<T> = (v: T) => { message: string; logFile?: string } | null;

/**
 * Run fn as a named step, emitting step-start/step-end around it. The step fails when fn
 * throws, or when `failed` says so of fn's value (which is returned all the same).
 */
export async function step<T>(emit: Emit, target: string, name: string, fn: () => Promise<T>, detail?: string, failed?: StepFailure<T>): Promise<T> {
  const t0 = Date.now();
  emit({ type: 'step-start', target, step: name, detail });
  try {
    const v = await fn();
    const f = failed?.(v);
    if (f) emit({ type: 'step-end', target, step: name, ok: false, ms: Date.now() - t0, detail: f.message, logFile: f.logFile });
    else emit({ type: 'step-end', target, step: name, ok: true, ms: Date.now() - t0 });
    return v;
  } catch (err) {
    const logFile = (err as { logFile?: string } | null)?.logFile;
    emit({ type: 'step-end', target, step: name, ok: false, ms: Date.now() - t0, detail: err instanceof Error ? err.message : String(err), logFile });
    throw err;
  }
}
