// Running Vagrant: through node-vagrant (up, halt, destroy) and, where node-vagrant cannot be
// made reliable, the vagrant CLI with --machine-readable (status, ssh-config, snapshots, boxes).
// Both go through one per-machine CommandQueue, take argv arrays (never shell strings), have a
// timeout, honour an AbortSignal and append everything Vagrant prints to a log file.
//
// node-vagrant 1.5.0 defects handled here (see VM-RECIPES.md):
// - a failing command with empty stderr resolves as success: we read the child's exit code
//   ourselves, and callers verify the effect with `vagrant status --machine-readable`;
// - snapshot save/restore/delete pass "snapshot save" as ONE argument (vagrant prints usage and
//   exits 1, reported as success): snapshots go through the CLI with separate arguments;
// - halt always forces power-off: halt is given its flags explicitly;
// - box list / global-status ignore cwd/env: boxes go through the CLI with our env;
// - two commands at once on one machine run out of order (LIFO) and `proc` is undefined for a
//   queued up/ssh: never two at once (CommandQueue), and we use the child `_run` returns;
// - it never uses --machine-readable: status/ssh-config/snapshot list use the CLI with it.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { LabError } from '../../errors.ts';
import { parseErrorExit, parseSshConfig, parseStatus, type MachineState, type SshConfigEntry } from './parse.ts';
import { CommandQueue } from './queue.ts';

export interface VagrantRunOptions {
  /** Folder with the Vagrantfile (VAGRANT_CWD is also set in env). */
  cwd: string;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Everything printed is appended here, prefixed with the command line. */
  logFile?: string;
}

export interface VagrantRunResult {
  argv: string[];
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  aborted: boolean;
  ms: number;
}

const MAX_CAPTURE = 8 * 1024 * 1024;

/** Run `vagrant ARGV...` (no shell). Never rejects for a non-zero exit: the caller decides. */
export function runVagrant(argv: string[], o: VagrantRunOptions): Promise<VagrantRunResult> {
  // Own process group: vagrant starts ruby and ssh children that a timeout must take along.
  const child = spawn('vagrant', argv, { cwd: o.cwd, env: o.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  return watchChild(child, argv, o);
}

/** Collect output, enforce the timeout and the abort signal, log, resolve on close. */
export function watchChild(child: ChildProcess, argv: string[], o: Pick<VagrantRunOptions, 'timeoutMs' | 'signal' | 'logFile'>): Promise<VagrantRunResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let aborted = false;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < MAX_CAPTURE) stdout += d;
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < MAX_CAPTURE) stderr += d;
    });
    const kill = () => {
      // Vagrant traps one SIGINT to clean up (and a second one to quit); TERM then KILL the group.
      killGroup(child, 'SIGTERM');
      setTimeout(() => killGroup(child, 'SIGKILL'), 10_000).unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, o.timeoutMs);
    const onAbort = () => {
      aborted = true;
      kill();
    };
    if (o.signal?.aborted) onAbort();
    else o.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err) => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      reject(
        new LabError(
          'internal',
          `cannot run vagrant ${argv.join(' ')}: ${err.message} (is vagrant installed? bash provision/host-deps.sh vagrant)`,
          undefined,
          { cause: err },
        ),
      );
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      const r: VagrantRunResult = { argv, code, stdout, stderr, timedOut, aborted, ms: Date.now() - t0 };
      const done = () => resolve(r);
      if (!o.logFile) return done();
      const head = `\n$ vagrant ${argv.join(' ')}   [exit ${timedOut ? 'timeout' : aborted ? 'aborted' : code}, ${(r.ms / 1000).toFixed(1)} s]\n`;
      appendFile(o.logFile, head + squashProgress(stdout) + (stderr ? `--- stderr\n${squashProgress(stderr)}` : '')).then(done, done);
    });
  });
}

/** Vagrant redraws "Progress: N%" thousands of times per upload: keep the last one. */
export function squashProgress(text: string): string {
  return text.replace(/(?:\x1b\[K)?(?:\r)?Progress: [^\n\r\x1b]*(?=(?:\x1b\[K)?\r?Progress: )/g, '');
}

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      /* already gone */
    }
  }
}

/** A failed vagrant command as a LabError: the error-exit row's message, else stderr's tail. */
export function vagrantError(kind: LabError['kind'], what: string, r: VagrantRunResult): LabError {
  const why = r.timedOut ? `timed out after ${(r.ms / 1000).toFixed(0)} s` : r.aborted ? 'interrupted' : `exit ${r.code}`;
  const exit = parseErrorExit(r.stdout);
  const detail = exit ? `${exit.kind}: ${exit.message}` : (r.stderr || r.stdout).trim().split('\n').slice(-30).join('\n');
  return new LabError(r.aborted ? 'interrupted' : kind, `${what} (${why})`, detail);
}

// ---- node-vagrant ---------------------------------------------------------------------------

/** The part of node-vagrant 1.5.0's Machine we use. `_run` is internal but the only entry that
 * hands back the child process (needed for timeouts and exit codes); pinned by package.json. */
interface NodeVagrantMachine {
  _run(command: string[], cb: (err: unknown, out?: string) => void): ChildProcess | undefined;
  _runningCommand?: boolean;
}
interface NodeVagrantModule {
  create(opts: { cwd: string; env: NodeJS.ProcessEnv }): NodeVagrantMachine;
}
const nodeVagrant = createRequire(import.meta.url)('node-vagrant') as NodeVagrantModule;

/**
 * One Vagrant machine of one project (cwd + env). Every command, whichever way it runs, goes
 * through this object's queue.
 */
export class VagrantMachineCtl {
  readonly queue = new CommandQueue();
  private readonly nv: NodeVagrantMachine;

  constructor(
    readonly name: string,
    private readonly o: { cwd: string; env: NodeJS.ProcessEnv; logFile?: string; signal?: AbortSignal },
  ) {
    this.nv = nodeVagrant.create({ cwd: o.cwd, env: o.env });
  }

  /** Through node-vagrant: `vagrant up NAME ARGS...`. The only command the abort signal stops:
   * teardown (destroy, status) must still run after Ctrl-C. */
  up(args: string[], timeoutMs: number): Promise<VagrantRunResult> {
    return this.queue.run(() => this.viaNodeVagrant(['up', this.name, ...args], timeoutMs, this.o.signal));
  }

  /** Through node-vagrant: `vagrant destroy -f NAME` (it adds -f itself). */
  destroy(timeoutMs: number): Promise<VagrantRunResult> {
    return this.queue.run(() => this.viaNodeVagrant(['destroy', '-f', this.name], timeoutMs));
  }

  /** Through node-vagrant, with our own flags (its halt() always forces); then the state must
   * be shutoff per `vagrant status --machine-readable`. */
  async halt(force: boolean, timeoutMs: number): Promise<VagrantRunResult> {
    const r = await this.queue.run(() => this.viaNodeVagrant(['halt', ...(force ? ['-f'] : []), this.name], timeoutMs));
    const state = await this.status();
    if (r.code !== 0 || state !== 'shutoff') throw vagrantError('internal', `vagrant halt ${this.name}: state ${state}`, r);
    return r;
  }

  /** CLI: the machine's state from `vagrant status NAME --machine-readable`. */
  status(timeoutMs = 60_000): Promise<MachineState> {
    return this.queue.run(async () => {
      const r = await this.cli(['status', this.name, '--machine-readable'], timeoutMs);
      const state = parseStatus(r.stdout).get(this.name);
      if (r.code !== 0 || !state) throw vagrantError('internal', `vagrant status ${this.name} failed`, r);
      return state;
    });
  }

  /** CLI: `vagrant ssh-config NAME`, parsed. */
  sshConfig(timeoutMs = 60_000): Promise<SshConfigEntry> {
    return this.queue.run(async () => {
      const r = await this.cli(['ssh-config', this.name], timeoutMs);
      if (r.code !== 0) throw vagrantError('boot-failed', `vagrant ssh-config ${this.name} failed`, r);
      const e = parseSshConfig(r.stdout).find((x) => x.host === this.name);
      if (!e) throw new LabError('boot-failed', `vagrant ssh-config ${this.name} printed no Host ${this.name} block`, r.stdout);
      return e;
    });
  }

  /** CLI, separate arguments: `vagrant snapshot save|restore|delete NAME SNAPSHOT`. */
  snapshot(verb: 'save' | 'restore' | 'delete', snapshot: string, timeoutMs: number, extra: string[] = []): Promise<VagrantRunResult> {
    return this.queue.run(() => this.cli(['snapshot', verb, ...extra, this.name, snapshot, '--machine-readable'], timeoutMs));
  }

  /** CLI: snapshot names (`vagrant snapshot list NAME --machine-readable`). */
  snapshots(timeoutMs = 60_000): Promise<string[]> {
    return this.queue.run(async () => {
      const r = await this.cli(['snapshot', 'list', this.name, '--machine-readable'], timeoutMs);
      if (r.code !== 0) throw vagrantError('internal', `vagrant snapshot list ${this.name} failed`, r);
      return parseSnapshotList(r.stdout);
    });
  }

  private cli(argv: string[], timeoutMs: number): Promise<VagrantRunResult> {
    return runVagrant(argv, { cwd: this.o.cwd, env: this.o.env, timeoutMs, ...(this.o.logFile ? { logFile: this.o.logFile } : {}) });
  }

  private viaNodeVagrant(argv: string[], timeoutMs: number, signal?: AbortSignal): Promise<VagrantRunResult> {
    if (this.nv._runningCommand) throw new LabError('internal', `node-vagrant is busy on ${this.name} (commands must go through the queue)`);
    // node-vagrant spawns without a process group; its callback hides exit codes when stderr is
    // empty, so the child's own 'close' event is what we trust.
    const child = this.nv._run(argv, () => {});
    if (!child) throw new LabError('internal', `node-vagrant queued vagrant ${argv.join(' ')} instead of running it`);
    return watchChild(child, argv, { timeoutMs, ...(signal ? { signal } : {}), ...(this.o.logFile ? { logFile: this.o.logFile } : {}) });
  }
}

/** `vagrant snapshot list --machine-readable`: names from `ui,detail` or `ui,output` rows. */
export function parseSnapshotList(text: string): string[] {
  const names: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^\d+,[^,]*,ui,(?:detail|output|info),(.*)$/.exec(line);
    if (!m) continue;
    const v = m[1]!.replace(/%!\(VAGRANT_COMMA\)/g, ',').trim();
    if (!v || /^==>|No snapshots have been taken yet|^Snapshot/i.test(v)) continue;
    names.push(v);
  }
  return names;
}
