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
  /** The report folder cannot be written (disk full, quota, read-only): the run's figures are not the fault. */
  | 'output-failed'
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

/** Error codes of a file system that refuses writes: full, over quota, read-only, file too large. */
const OUTPUT_CODES = ['ENOSPC', 'EDQUOT', 'EROFS', 'EFBIG'] as const;

/**
 * The error as an output-failed LabError when it is a refused write (its code, or an internal
 * error whose message names one: a copy into the report folder that failed), else null.
 */
export function outputError(err: unknown, what: string): LabError | null {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const msg = err instanceof Error ? err.message : String(err);
  const named = OUTPUT_CODES.find((c) => c === code || new RegExp(`\\b${c}\\b`).test(msg));
  if (!named) return null;
  if (err instanceof LabError && err.kind !== 'internal') return null;
  const why =
    named === 'ENOSPC'
      ? 'no space left on the device'
      : named === 'EDQUOT'
        ? 'disk quota exceeded'
        : named === 'EROFS'
          ? 'read-only file system'
          : 'file too large';
  return new LabError('output-failed', `cannot write ${what}: ${why} (${msg})`, undefined, { cause: err });
}
