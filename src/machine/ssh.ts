// Machine over SSH with ssh2 (no ssh binary): pinned host key, connect-with-retry for boot
// waiting, exec with a per-command deadline that kills the remote process group, sftp copies.
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig, SFTPWrapper } from 'ssh2';
import { timingSafeEqual } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readlink, rm, symlink } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { LabError } from '../errors.ts';
import { publicKeyBlob } from '../images/keys.ts';
import { shellJoin, shellQuote, type ExecOptions, type ExecResult, type Machine } from './types.ts';

const { Client } = ssh2;
const MAX_CAPTURE = 16 * 1024 * 1024;
const DEFAULT_COPY_TIMEOUT_MS = 10 * 60_000;

export interface SshConnectOptions {
  target: string;
  workdir: string;
  host: string;
  port: number;
  username: string;
  privateKey: string | Buffer;
  /** The server's public host key ("ssh-ed25519 AAAA..."): any other key is refused. */
  hostKey: string;
  /** Keep retrying (refused, reset, no banner yet) until this many ms have passed. */
  deadlineMs: number;
  signal?: AbortSignal;
  /** Per-attempt handshake timeout (default 20 s, capped by the deadline). */
  attemptTimeoutMs?: number;
  /** Pause between attempts (default 250 ms). */
  retryDelayMs?: number;
  /** Called before each attempt; throw to stop retrying (e.g. the VM died). */
  check?: () => void;
}

/**
 * The remote side of exec: print the shell's pid (sshd makes each session's shell a session and
 * process group leader, so the pid is also the group to kill), then cd and exec argv. Every
 * argument goes through shellQuote.
 */
export function remoteCommand(argv: readonly string[], cwd: string): string {
  if (argv.length === 0) throw new Error('exec: empty argv');
  return `echo $$; cd ${shellQuote(cwd)} && exec ${shellJoin(argv)}`;
}

export class SshMachine implements Machine {
  readonly target: string;
  readonly workdir: string;
  private closed = false;

  private constructor(
    private readonly client: InstanceType<typeof Client>,
    opts: { target: string; workdir: string },
  ) {
    this.target = opts.target;
    this.workdir = opts.workdir;
    client.on('close', () => {
      this.closed = true;
    });
  }

  /** False once the connection closed (closed here, or lost: the guest stopped answering SSH keepalives). */
  get connected(): boolean {
    return !this.closed;
  }

  /** Connect, retrying until the server answers with the pinned host key or the deadline passes. */
  static async connect(opts: SshConnectOptions): Promise<SshMachine> {
    const pinned = publicKeyBlob(opts.hostKey);
    const t0 = Date.now();
    let last = 'no attempt';
    let attempts = 0;
    for (;;) {
      if (opts.signal?.aborted) throw new LabError('interrupted', `interrupted while connecting to ${opts.target}`);
      opts.check?.();
      const left = opts.deadlineMs - (Date.now() - t0);
      if (left <= 0) break;
      attempts++;
      const r = await attempt(opts, pinned, Math.max(1_000, Math.min(opts.attemptTimeoutMs ?? 20_000, left)));
      if (r.ok) return new SshMachine(r.client, opts);
      if (r.hostKeyMismatch)
        throw new LabError(
          'boot-failed',
          `${opts.target}: SSH host key of ${opts.host}:${opts.port} does not match the pinned key; refusing to connect`,
          r.error,
        );
      if (r.authFailed)
        throw new LabError('boot-failed', `${opts.target}: SSH authentication as ${opts.username} failed on ${opts.host}:${opts.port}`, r.error);
      last = r.error;
      await sleep(Math.min(opts.retryDelayMs ?? 250, Math.max(0, opts.deadlineMs - (Date.now() - t0))), opts.signal);
    }
    throw new LabError(
      'boot-timeout',
      `${opts.target}: no SSH on ${opts.host}:${opts.port} within ${Math.round(opts.deadlineMs / 1000)} s (${attempts} attempts)`,
      `last error: ${last}`,
    );
  }

  exec(argv: readonly string[], opts: ExecOptions): Promise<ExecResult> {
    const command = remoteCommand(argv, opts.cwd ?? this.workdir);
    return new Promise<ExecResult>((resolve, reject) => {
      if (this.closed) return reject(new LabError('internal', `${this.target}: SSH connection is closed`));
      this.client.exec(command, (err, ch) => {
        if (err) return reject(new LabError('internal', `${this.target}: cannot open an exec channel: ${err.message}`));
        this.drive(ch, opts, resolve, reject);
      });
    });
  }

  private drive(ch: ClientChannel, opts: ExecOptions, resolve: (r: ExecResult) => void, reject: (e: Error) => void): void {
    let head = '';
    let pid: number | null = null;
    let stdout = '';
    let stderr = '';
    let code: number | null = null;
    let signal: string | null = null;
    let timedOut = false;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (timedOut) resolve({ code: null, signal: signal ?? 'SIGKILL', stdout, stderr, timedOut });
      else if (code === null && signal === null)
        reject(new LabError('internal', `${this.target}: SSH channel closed without an exit status (connection lost?)`, stderr.slice(-2000)));
      else resolve({ code, signal, stdout, stderr, timedOut });
    };
    ch.on('data', (d: Buffer) => {
      if (pid === null) {
        head += d.toString('utf8');
        const nl = head.indexOf('\n');
        if (nl < 0) return;
        pid = Number(head.slice(0, nl)) || -1;
        stdout = head.slice(nl + 1);
        head = '';
        return;
      }
      if (stdout.length < MAX_CAPTURE) stdout += d.toString('utf8');
    });
    ch.stderr.on('data', (d: Buffer) => {
      if (stderr.length < MAX_CAPTURE) stderr += d.toString('utf8');
    });
    ch.on('exit', (c: number | null, sig?: string) => {
      if (c !== null && c !== undefined) code = c;
      else if (sig) signal = sig.startsWith('SIG') ? sig : `SIG${sig}`;
    });
    ch.on('close', finish);
    ch.on('error', () => {});
    const timer = setTimeout(() => {
      timedOut = true;
      const killed = pid && pid > 1 ? this.killGroup(pid) : Promise.resolve();
      void killed.finally(() => {
        ch.close();
        // The channel's close normally follows at once; do not wait on a dead connection.
        setTimeout(finish, 2_000).unref();
      });
    }, opts.timeoutMs);
    if (opts.input !== undefined) ch.end(opts.input);
    else ch.end();
  }

  /** Kill a remote process group on a fresh channel (best effort, 10 s). `kill -9 -PGID` is the form dash and bash both accept. */
  private killGroup(pid: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, 10_000);
      const done = () => {
        clearTimeout(t);
        resolve();
      };
      try {
        this.client.exec(`kill -9 -${pid} 2>/dev/null || kill -9 ${pid} 2>/dev/null; true`, (err, ch) => {
          if (err) return done();
          ch.on('close', done)
            .on('data', () => {})
            .on('error', done);
          ch.stderr.on('data', () => {});
        });
      } catch {
        done();
      }
    });
  }

  async put(localPath: string, remotePath: string, opts?: { timeoutMs?: number }): Promise<void> {
    await this.withSftp(`put ${localPath} -> ${remotePath}`, opts?.timeoutMs, (sftp) => sftpPut(sftp, localPath, remotePath));
  }

  async get(remotePath: string, localPath: string, opts?: { timeoutMs?: number }): Promise<void> {
    await this.withSftp(`get ${remotePath} -> ${localPath}`, opts?.timeoutMs, (sftp) => sftpGet(sftp, remotePath, localPath));
  }

  private withSftp(what: string, timeoutMs: number | undefined, fn: (s: SFTPWrapper) => Promise<void>): Promise<void> {
    const ms = timeoutMs ?? DEFAULT_COPY_TIMEOUT_MS;
    return new Promise<void>((resolve, reject) => {
      if (this.closed) return reject(new LabError('internal', `${this.target}: SSH connection is closed`));
      this.client.sftp((err, sftp) => {
        if (err) return reject(new LabError('internal', `${this.target}: cannot start sftp: ${err.message}`));
        const timer = setTimeout(() => {
          sftp.end();
          reject(new LabError('timeout', `${this.target}: ${what} did not finish within ${Math.round(ms / 1000)} s`));
        }, ms);
        fn(sftp).then(
          () => {
            clearTimeout(timer);
            sftp.end();
            resolve();
          },
          (e: unknown) => {
            clearTimeout(timer);
            sftp.end();
            reject(e instanceof LabError ? e : new LabError('internal', `${this.target}: ${what}: ${(e as Error).message}`));
          },
        );
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2_000);
      this.client.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      this.client.end();
    });
  }
}

type Attempt = { ok: true; client: InstanceType<typeof Client> } | { ok: false; error: string; hostKeyMismatch?: boolean; authFailed?: boolean };

function attempt(opts: SshConnectOptions, pinned: Buffer, timeoutMs: number): Promise<Attempt> {
  return new Promise((resolve) => {
    const client = new Client();
    let mismatch = false;
    let done = false;
    const settle = (a: Attempt) => {
      if (done) return;
      done = true;
      clearTimeout(hard);
      if (!a.ok) client.end();
      resolve(a);
    };
    // readyTimeout covers the handshake; this covers a TCP connect that never completes.
    const hard = setTimeout(() => settle({ ok: false, error: `no answer within ${Math.round(timeoutMs / 1000)} s` }), timeoutMs + 2_000);
    client.on('ready', () => settle({ ok: true, client }));
    client.on('error', (err: Error & { level?: string }) => {
      if (mismatch) return settle({ ok: false, error: err.message, hostKeyMismatch: true });
      if (err.level === 'client-authentication') return settle({ ok: false, error: err.message, authFailed: true });
      settle({ ok: false, error: err.message });
    });
    client.on('close', () => settle({ ok: false, error: 'connection closed before the handshake finished' }));
    const cfg: ConnectConfig = {
      host: opts.host,
      port: opts.port,
      username: opts.username,
      privateKey: opts.privateKey,
      readyTimeout: timeoutMs,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
      hostVerifier: (key: Buffer) => {
        const ok = key.length === pinned.length && timingSafeEqual(key, pinned);
        if (!ok) mismatch = true;
        return ok;
      },
    };
    try {
      client.connect(cfg);
    } catch (err) {
      settle({ ok: false, error: (err as Error).message });
    }
  });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}

// ---------- sftp: recursive copies (files keep their mode, symlinks stay symlinks) ----------

type Cb<T> = (err: Error | null | undefined, v: T) => void;
const call = <T>(fn: (cb: Cb<T>) => void): Promise<T> => new Promise((res, rej) => fn((err, v) => (err ? rej(err) : res(v))));

async function remoteMkdirP(sftp: SFTPWrapper, dir: string): Promise<void> {
  const parts = dir.split('/').filter(Boolean);
  let cur = '';
  for (const p of parts) {
    cur += '/' + p;
    const st = await call<ssh2.Stats | null>((cb) => sftp.stat(cur, (e, s) => cb(null, e ? null : s)));
    if (st?.isDirectory()) continue;
    if (st) throw new Error(`${cur} exists and is not a directory`);
    await call<void>((cb) => sftp.mkdir(cur, (e) => cb(e, undefined)));
  }
}

/** Runs fn over items with at most n at once. */
async function pool<T>(items: readonly T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  const worker = async () => {
    while (i < items.length) await fn(items[i++]!);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

/** Copy a local file or directory to remote (the copy is named remote, like cp -r to a new name). */
export async function sftpPut(sftp: SFTPWrapper, local: string, remote: string): Promise<void> {
  await remoteMkdirP(sftp, posix.dirname(remote));
  const put = async (l: string, r: string): Promise<void> => {
    const st = await lstat(l);
    const mode = st.mode & 0o7777;
    if (st.isSymbolicLink()) {
      const target = await readlink(l);
      await call<void>((cb) => sftp.unlink(r, () => cb(null, undefined)));
      await call<void>((cb) => sftp.symlink(target, r, (e) => cb(e, undefined)));
    } else if (st.isDirectory()) {
      await remoteMkdirP(sftp, r);
      await call<void>((cb) => sftp.chmod(r, mode, (e) => cb(e, undefined)));
      await pool(await readdir(l), 4, (e) => put(join(l, e), posix.join(r, e)));
    } else if (st.isFile()) {
      await call<void>((cb) => sftp.fastPut(l, r, { mode }, (e) => cb(e, undefined)));
      await call<void>((cb) => sftp.chmod(r, mode, (e) => cb(e, undefined)));
    }
  };
  await put(local, remote);
}

/** Copy a remote file or directory to local (the copy is named local). */
export async function sftpGet(sftp: SFTPWrapper, remote: string, local: string): Promise<void> {
  await mkdir(dirname(local), { recursive: true });
  const get = async (r: string, l: string): Promise<void> => {
    const st = await call<ssh2.Stats>((cb) => sftp.lstat(r, cb));
    const mode = st.mode & 0o7777;
    if (st.isSymbolicLink()) {
      const target = await call<string>((cb) => sftp.readlink(r, cb));
      await rm(l, { force: true });
      await symlink(target, l);
    } else if (st.isDirectory()) {
      await mkdir(l, { recursive: true });
      const entries = await call<ssh2.FileEntryWithStats[]>((cb) => sftp.readdir(r, cb));
      await pool(
        entries.map((e) => e.filename).filter((f) => f !== '.' && f !== '..'),
        4,
        (f) => get(posix.join(r, f), join(l, f)),
      );
      await chmod(l, mode);
    } else {
      await call<void>((cb) => sftp.fastGet(r, l, (e) => cb(e, undefined)));
      await chmod(l, mode);
    }
  };
  await get(remote, local);
}
