// Typed errors: each names the stage that failed, so a report says what failed instead of 0 %.
// Only the entry points map them to exit codes (exitCodeFor in src/matrix.ts; see docs/architecture.md).

export type FailureKind =
  | 'config'
  | 'boot-failed'
  | 'boot-timeout'
  | 'build-failed'
  | 'tracer-failed'
  | 'client-failed'
  | 'server-failed'
  | 'timeout'
  | 'no-traffic'
  /** The VM went away under a cell (QEMU exited or was killed, a kernel panic): the console tail says how. */
  | 'vm-died'
  | 'interrupted'
  | 'internal';

export class LabError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    /** Extra text worth showing (console tail, compiler output, verifier log). */
    readonly detail?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'LabError';
  }
}

export class ConfigError extends LabError {
  constructor(message: string, detail?: string) {
    super('config', message, detail);
    this.name = 'ConfigError';
  }
}

export function asLabError(err: unknown, fallback: FailureKind = 'internal'): LabError {
  if (err instanceof LabError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new LabError(fallback, msg, undefined, { cause: err });
}

/**
 * The line of a process's log that says why it failed: the last `failed to <verb> <what>: <why>`
 * line (the loader's and the client's convention: "failed to attach uprobe SSL_read_ex in PATH:
 * symbol not found", "failed to load BPF program P: ... (verifier log in FILE)"), else null.
 */
export function failureLine(log: string | undefined): string | null {
  const lines = (log ?? '').split('\n').map((l) => l.trim());
  return lines.filter((l) => l.startsWith('failed to ')).at(-1) ?? null;
}

/** The error's message, with its detail's failure line appended when the message does not say it already. */
export function messageWithReason(e: LabError): string {
  const line = failureLine(e.detail);
  return line && !e.message.includes(line) ? `${e.message}: ${line}` : e.message;
}
