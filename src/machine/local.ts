// Machine on this host: exec without a shell (argv stays argv), put/get are copies.
import { spawn } from 'node:child_process';
import { cp, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { killGroup } from '../cleanup.ts';
import type { ExecOptions, ExecResult, Machine } from './types.ts';

const MAX_CAPTURE = 16 * 1024 * 1024;

export class LocalMachine implements Machine {
  readonly target: string;
  readonly workdir: string;
  private readonly live = new Set<number>();

  constructor(opts: { target?: string; workdir: string }) {
    this.target = opts.target ?? 'local';
    this.workdir = opts.workdir;
  }

  exec(argv: readonly string[], opts: ExecOptions): Promise<ExecResult> {
    const [cmd, ...args] = argv;
    if (!cmd) return Promise.reject(new Error('exec: empty argv'));
    return new Promise((resolve, reject) => {
      // Own process group, so a timeout kills the command and everything it started.
      const child = spawn(cmd, args, { cwd: opts.cwd ?? this.workdir, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      const pid = child.pid;
      if (pid) this.live.add(pid);
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        if (stdout.length < MAX_CAPTURE) stdout += d;
      });
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        if (stderr.length < MAX_CAPTURE) stderr += d;
      });
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup(pid, 'SIGKILL');
      }, opts.timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        if (pid) this.live.delete(pid);
        reject(err);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (pid) this.live.delete(pid);
        resolve({ code: timedOut ? null : code, signal, stdout, stderr, timedOut });
      });
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input ?? '');
    });
  }

  async put(localPath: string, remotePath: string): Promise<void> {
    if (localPath === remotePath) return;
    await mkdir(dirname(remotePath), { recursive: true });
    await cp(localPath, remotePath, { recursive: true });
  }

  async get(remotePath: string, localPath: string): Promise<void> {
    if (localPath === remotePath) return;
    await mkdir(dirname(localPath), { recursive: true });
    await cp(remotePath, localPath, { recursive: true });
  }

  async close(): Promise<void> {
    for (const pid of this.live) killGroup(pid, 'SIGKILL');
    this.live.clear();
  }
}
