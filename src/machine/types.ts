// The one interface the scenario sees. Backends (local, qemu, vagrant) implement it; nothing
// above this layer knows which one it runs on.

export interface ExecOptions {
  /** Hard deadline for the command; on expiry the command is killed and timedOut is true. */
  timeoutMs: number;
  /** Working directory on the machine (absolute). Default: the machine's workdir. */
  cwd?: string;
  /** Bytes written to the command's stdin, then stdin is closed. */
  input?: string;
}

export interface ExecResult {
  /** Exit code; null when killed by a signal or on timeout. */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface Machine {
  /** The target's name (matrix.yaml key, or "local"). */
  readonly target: string;
  /** Absolute directory on the machine where the project's bpf/, client/, provision/ live. */
  readonly workdir: string;
  /**
   * Run argv[0] with argv[1..] as separate arguments. Over SSH every argument is quoted by
   * shellQuote(); never pass a pre-joined command string.
   */
  exec(argv: readonly string[], opts: ExecOptions): Promise<ExecResult>;
  /** Copy a local file or directory (recursively) to an absolute path on the machine. */
  put(localPath: string, remotePath: string, opts?: { timeoutMs?: number }): Promise<void>;
  /** Copy a file or directory (recursively) from the machine to a local path. */
  get(remotePath: string, localPath: string, opts?: { timeoutMs?: number }): Promise<void>;
  /** Close connections held by this Machine object (does NOT stop the VM; the backend does). */
  close(): Promise<void>;
}

/** POSIX shell single-quoting of one argument: the only way argv crosses an SSH exec. */
export function shellQuote(arg: string): string {
  if (arg === '') return "''";
  if (/^[A-Za-z0-9_\/.,:=@%+-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shellJoin(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}
