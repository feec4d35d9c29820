// One QEMU process: overlay on the cached base image, spawn, watch for exit and kernel panics,
// stop (QMP quit, then SIGKILL by pid). Every VM registers with src/cleanup.ts (stopped by the
// entry points' stopAll()); runningVms/stopAllVms list and stop this process's VMs (tests).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { killOnExit, onCleanup } from '../../cleanup.ts';
import { LabError } from '../../errors.ts';
import { QEMU_BIN, type Accel } from '../shared/accel.ts';
import { reservePort, type PortReservation } from '../shared/ports.ts';
import { overlayArgs, vmArgs } from './args.ts';
import { qmpCommand } from './qmp.ts';

const run = promisify(execFile);

export interface VmSpec {
  name: string;
  accel: Accel;
  cpus: number;
  memoryMiB: number;
  kernel: string;
  initrd: string;
  /** Cached base image (qcow2): only read, never written. */
  base: string;
  append: string;
  /** Folder for the overlay, console.log, qemu.log, pid file. */
  runDir: string;
  /** Leave the overlay on stop and let the VM outlive this process. */
  keep: boolean;
  qemu?: string;
  /**
   * Test hook (fault case 9, $USM_LAB_TEST_SQUAT_FORWARD): once the first port is handed off, this
   * process binds it itself until it exits and writes its number to this file, so that QEMU's
   * forward finds it taken, as when another program takes it between the reservation and QEMU.
   */
  testSquatPortFile?: string;
}

/** The hook's sockets: held until the process exits (unref: they keep nothing alive). */
const squatters: Server[] = [];

const live = new Set<Vm>();

/** Stop every VM this process started (for SIGINT handlers and test teardown). */
export async function stopAllVms(): Promise<void> {
  await Promise.allSettled([...live].map((vm) => vm.stop()));
}

export function runningVms(): readonly Vm[] {
  return [...live];
}

/**
 * The part of a console log a person needs: its last `lines` lines, or, after a kernel panic,
 * the `lines` lines that end at the panic (what went wrong comes before it; the stack dump after
 * it pushed the cause out of a plain tail). The rest stays in console.log.
 */
export function consoleTail(text: string, lines = 40): string {
  const all = text.trimEnd().split('\n');
  const panic = all.findIndex((l) => /Kernel panic/.test(l));
  if (panic < 0 || panic === all.length - 1) return all.slice(-lines).join('\n');
  const cut = all.slice(Math.max(0, panic + 1 - lines), panic + 1);
  return [...cut, `(${all.length - panic - 1} more lines of the panic's trace in console.log)`].join('\n');
}

export class Vm {
  readonly overlay: string;
  readonly consoleLog: string;
  readonly qemuLog: string;
  readonly pidFile: string;
  qmpSocket = '';
  port = 0;
  /** Ports whose forward QEMU could not bind (taken meanwhile): each one started QEMU again on another. */
  readonly portsTaken: number[] = [];
  pid = 0;
  /** performance.now() when QEMU was spawned (boot timing). */
  spawnedAt = 0;
  /** Set once QEMU has exited, or the console shows a kernel panic. */
  failure: string | null = null;
  private child: ChildProcess | null = null;
  private reservation: PortReservation | null = null;
  private exited: Promise<void> = Promise.resolve();
  private hasExited = false;
  private watcher: NodeJS.Timeout | null = null;
  private stopping: Promise<void> | null = null;
  private sockDir: string | null = null;
  private failureListeners: ((why: string) => void)[] = [];
  private unregisterCleanup: () => void = () => {};
  private consoleText = '';
  private consoleWaiters = new Set<{ re: RegExp; done: (ok: boolean) => void }>();

  constructor(readonly spec: VmSpec) {
    this.overlay = join(spec.runDir, `${spec.name}-overlay.qcow2`);
    this.consoleLog = join(spec.runDir, 'console.log');
    this.qemuLog = join(spec.runDir, 'qemu.log');
    this.pidFile = join(spec.runDir, 'qemu.pid');
  }

  /** Create the overlay and start QEMU (does not wait for the guest). */
  async start(): Promise<void> {
    await rm(this.overlay, { force: true });
    try {
      await run('qemu-img', overlayArgs(this.spec.base, this.overlay), { timeout: 30_000 });
    } catch (err) {
      throw new LabError('boot-failed', `${this.spec.name}: qemu-img create failed: ${(err as Error).message}`);
    }
    // A unix socket path must fit in 108 bytes: fall back to a short folder in /tmp.
    this.qmpSocket = join(this.spec.runDir, 'qmp.sock');
    if (Buffer.byteLength(this.qmpSocket) > 100) {
      this.sockDir = await mkdtemp(join(tmpdir(), 'usm-qmp-'));
      this.qmpSocket = join(this.sockDir, 'qmp.sock');
    }
    live.add(this);
    // The entry points' stopAll() (src/cleanup.ts) stops this VM too, unless it is kept; and
    // if the process exits without stopping it, QEMU is killed by pid.
    if (!this.spec.keep) {
      const unregister = onCleanup(() => this.stop());
      const forget = killOnExit(() => this.killByPid());
      this.unregisterCleanup = () => {
        unregister();
        forget();
      };
    }
    // The port could be taken by another program between handOff and QEMU's bind: retry.
    for (let i = 0; ; i++) {
      await this.spawnOnce(i === 0);
      const bound = await this.waitBindOk();
      if (bound) break;
      this.portsTaken.push(this.port);
      this.reservation?.release();
      if (i >= 2) throw new LabError('boot-failed', `${this.spec.name}: QEMU could not bind a port forward (3 tries)`, await this.logsTail());
    }
    this.watch();
  }

  private async spawnOnce(first: boolean): Promise<void> {
    this.reservation = await reservePort();
    this.port = this.reservation.port;
    this.failure = null;
    this.hasExited = false;
    this.consoleText = '';
    await rm(this.consoleLog, { force: true });
    await rm(this.pidFile, { force: true });
    const args = vmArgs({
      ...this.spec,
      overlay: this.overlay,
      sshPort: this.port,
      consoleLog: this.consoleLog,
      qmpSocket: this.qmpSocket,
      pidFile: this.pidFile,
    });
    const log = openSync(this.qemuLog, 'a');
    await this.reservation.handOff();
    if (first && this.spec.testSquatPortFile) await squat(this.port, this.spec.testSquatPortFile);
    // Own process group (the terminal's Ctrl-C does not reach QEMU) only when someone handles
    // SIGINT and stops us; otherwise QEMU dies with us on Ctrl-C. Kept VMs always detach.
    const detached = this.spec.keep || process.listenerCount('SIGINT') > 0;
    this.spawnedAt = performance.now();
    const child = spawn(this.spec.qemu ?? QEMU_BIN, args, { stdio: ['ignore', log, log], detached });
    closeSync(log);
    this.child = child;
    this.pid = child.pid ?? 0;
    if (this.spec.keep) child.unref();
    this.exited = new Promise<void>((resolve) => {
      child.on('error', (err) => {
        this.onExit(`QEMU could not start: ${err.message}`);
        resolve();
      });
      child.on('exit', (code, sig) => {
        this.onExit(`QEMU exited (${sig ?? `code ${code}`})`);
        resolve();
      });
    });
  }

  /**
   * False when QEMU died right away because the forwarded port was taken. QEMU sets up its
   * network after writing the pid file, so watch a little past it (this does not delay the
   * guest: the SSH wait starts much later).
   */
  private async waitBindOk(): Promise<boolean> {
    const t0 = Date.now();
    let pidSeenAt = 0;
    while (Date.now() - t0 < 3_000) {
      if (this.hasExited) {
        const log = await readFile(this.qemuLog, 'utf8').catch(() => '');
        return !/host forwarding rule|Address already in use/i.test(log);
      }
      if (!pidSeenAt && (await stat(this.pidFile).catch(() => null))) pidSeenAt = Date.now();
      if (pidSeenAt && Date.now() - pidSeenAt > 200) return true;
      await new Promise((r) => setTimeout(r, 25));
    }
    return true;
  }

  private onExit(why: string): void {
    this.hasExited = true;
    this.fail(why);
  }

  private fail(why: string): void {
    if (this.failure) return;
    this.failure = why;
    for (const l of this.failureListeners.splice(0)) l(why);
  }

  /** Resolves never; calls back once the VM failed (exit or panic). */
  onFailure(fn: (why: string) => void): void {
    if (this.failure) fn(this.failure);
    else this.failureListeners.push(fn);
  }

  /** Poll the console (every 50 ms) for a kernel panic and for the patterns waitConsole asks for. */
  private watch(): void {
    let offset = 0;
    let busy = false;
    this.watcher = setInterval(async () => {
      if (busy) return;
      busy = true;
      try {
        const fh = await open(this.consoleLog, 'r');
        try {
          const { size } = await fh.stat();
          if (size <= offset) return;
          const buf = Buffer.alloc(size - offset);
          await fh.read(buf, 0, buf.length, offset);
          offset = size;
          // Keep a tail large enough for any line we look for.
          this.consoleText = (this.consoleText + buf.toString('utf8')).slice(-65536);
          if (/Kernel panic/.test(this.consoleText)) this.fail('kernel panic');
          for (const w of [...this.consoleWaiters]) if (w.re.test(this.consoleText)) w.done(true);
        } finally {
          await fh.close();
        }
      } catch {
        /* not created yet */
      } finally {
        busy = false;
      }
    }, 50);
    this.watcher.unref();
  }

  /** Resolves true once the console matches re; false on timeout or when the VM fails. */
  waitConsole(re: RegExp, timeoutMs: number): Promise<boolean> {
    if (re.test(this.consoleText)) return Promise.resolve(true);
    if (this.failure) return Promise.resolve(false);
    return new Promise((resolve) => {
      const w = {
        re,
        done: (ok: boolean) => {
          clearTimeout(t);
          this.consoleWaiters.delete(w);
          resolve(ok);
        },
      };
      const t = setTimeout(() => w.done(false), timeoutMs);
      this.consoleWaiters.add(w);
      this.onFailure(() => w.done(false));
    });
  }

  async consoleTail(lines = 40): Promise<string> {
    return consoleTail(await readFile(this.consoleLog, 'utf8').catch(() => ''), lines);
  }

  async logsTail(): Promise<string> {
    const q = (await readFile(this.qemuLog, 'utf8').catch(() => '')).trim();
    const c = await this.consoleTail();
    return [q && `--- qemu.log\n${q.split('\n').slice(-10).join('\n')}`, c && `--- console.log (tail)\n${c}`].filter(Boolean).join('\n');
  }

  get running(): boolean {
    return this.child !== null && !this.hasExited;
  }

  /** QMP quit, SIGKILL after a grace period, free the port, remove the overlay unless keep. Idempotent. */
  stop(graceMs = 5_000): Promise<void> {
    this.stopping ??= this.doStop(graceMs);
    return this.stopping;
  }

  private async doStop(graceMs: number): Promise<void> {
    if (this.watcher) clearInterval(this.watcher);
    if (this.running) {
      const quit = await qmpCommand(this.qmpSocket, 'quit', Math.min(3_000, graceMs));
      if (!quit || !(await this.waitExit(graceMs))) {
        this.killByPid();
        await this.waitExit(5_000);
      }
    }
    this.reservation?.release();
    live.delete(this);
    this.unregisterCleanup();
    await rm(this.pidFile, { force: true });
    if (this.sockDir) await rm(this.sockDir, { recursive: true, force: true });
    else await rm(this.qmpSocket, { force: true }).catch(() => {});
    if (!this.spec.keep) await rm(this.overlay, { force: true });
  }

  private waitExit(ms: number): Promise<boolean> {
    if (this.hasExited) return Promise.resolve(true);
    return Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
  }

  private killByPid(): void {
    if (!this.pid) return;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** The fault-suite hook: bind 127.0.0.1:port in this process (until it exits) and say which port in `file`. */
async function squat(port: number, file: string): Promise<void> {
  const s = createServer();
  await new Promise<void>((resolve, reject) => s.once('error', reject).listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve()));
  s.unref();
  squatters.push(s);
  await writeFile(file, `${port}\n`);
}
