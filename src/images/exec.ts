// Running host tools for the image build: argv only, output appended to a log file, a timeout on
// every call, and the abort signal kills the tool. Failures carry the log's tail.
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, appendFile, readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { killGroup, killOnExit } from '../cleanup.ts';
import { LabError } from '../errors.ts';

export interface RunOptions {
  /** Log file: the command line and all its output are appended to it. */
  log: string;
  timeoutMs: number;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export async function logTail(file: string, lines = 30): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Run argv, appending output to opts.log; resolves with stdout (also logged). */
export async function runLogged(argv: readonly string[], opts: RunOptions): Promise<string> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new LabError('internal', 'runLogged: empty argv');
  if (opts.signal?.aborted) throw new LabError('interrupted', `interrupted before ${cmd}`);
  await appendFile(opts.log, `\n$ ${argv.join(' ')}\n`);
  return new Promise<string>((resolve, reject) => {
    // Own process group: a timeout or abort stops the tool and everything it started (debootstrap
    // runs dpkg in a chroot), not just the tool itself.
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd, detached: true });
    // Last resort: a tool still running when the process exits is killed with its group.
    const forget = killOnExit(() => killGroup(child.pid, 'SIGKILL'));
    let stdout = '';
    let pending = Promise.resolve();
    const log = (d: Buffer) => {
      pending = pending.then(() => appendFile(opts.log, d)).catch(() => {});
    };
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < 4 * 1024 * 1024) stdout += d.toString('utf8');
      log(d);
    });
    child.stderr.on('data', log);
    let why: 'timeout' | 'abort' | null = null;
    const kill = (w: 'timeout' | 'abort') => {
      why ??= w;
      killGroup(child.pid, 'SIGTERM');
      setTimeout(() => killGroup(child.pid, 'SIGKILL'), 5_000).unref();
    };
    const timer = setTimeout(() => kill('timeout'), opts.timeoutMs);
    const onAbort = () => kill('abort');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    // aborted while the command line was being logged (after the check above): a listener added
    // now never fires, and the tool would run to its end under an interrupted run
    if (opts.signal?.aborted) kill('abort');
    const done = () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    child.on('error', (err) => {
      done();
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      reject(new LabError('build-failed', missing ? `${cmd} not found (install the packages in provision/host-deps-images.txt)` : `${cmd}: ${err.message}`));
    });
    child.on('close', async (code, signal) => {
      done();
      forget();
      await pending;
      await appendFile(opts.log, `[exit ${code ?? signal}]\n`).catch(() => {});
      if (why === 'abort') return reject(new LabError('interrupted', `${cmd} interrupted`));
      if (why === 'timeout')
        return reject(
          Object.assign(new LabError('build-failed', `${cmd} timed out after ${Math.round(opts.timeoutMs / 1000)} s`, await logTail(opts.log)), {
            logFile: opts.log,
          }),
        );
      if (code !== 0)
        return reject(Object.assign(new LabError('build-failed', `${cmd} failed (exit ${code ?? signal})`, await logTail(opts.log)), { logFile: opts.log }));
      resolve(stdout);
    });
  });
}

/** Absolute path of a host tool on PATH (plus the sbin folders), or null. */
export async function findTool(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  const dirs = [...(env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean);
  for (const d of dirs) {
    const p = join(d, name);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}
