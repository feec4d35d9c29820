// VM, SSH and scenario code never prints: it emits these typed events. One reporter
// (src/progress/reporter.ts) turns them into spinners and a final table.

export type ProgressEvent =
  | { type: 'step-start'; target: string; step: string; detail?: string }
  | { type: 'step-end'; target: string; step: string; ok: boolean; ms: number; detail?: string; logFile?: string }
  | { type: 'info'; target: string; message: string }
  | { type: 'warn'; target: string; message: string };

export type Emit = (ev: ProgressEvent) => void;

export const silent: Emit = () => {};

/** Run fn as a named step, emitting step-start/step-end around it. */
export async function step<T>(emit: Emit, target: string, name: string, fn: () => Promise<T>, detail?: string): Promise<T> {
  const t0 = Date.now();
  emit({ type: 'step-start', target, step: name, detail });
  try {
    const v = await fn();
    emit({ type: 'step-end', target, step: name, ok: true, ms: Date.now() - t0 });
    return v;
  } catch (err) {
    const logFile = (err as { logFile?: string } | null)?.logFile;
    emit({ type: 'step-end', target, step: name, ok: false, ms: Date.now() - t0, detail: err instanceof Error ? err.message : String(err), logFile });
    throw err;
  }
}
