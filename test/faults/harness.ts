// The fault suite's harness: start `npx zx scripts/matrix.mjs` as a user does (npx the top
// process, in its own process group so a signal meant for it never reaches vitest), follow its
// progress lines, inject a fault through what a user sees (PIDs, ports, progress), and check
// what is left: processes whose command line names the run's folder (qemu's overlay and console
// live there, the node process has it in --out), the run's overlays and temporary folders.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, afterEach } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inCI } from '../helpers/requirements.ts';
import { pidLock } from '../../src/images/lock.ts';
import { cachePaths, checkImage, imagePaths, resolveCacheRoot } from '../../src/images/manifest.ts';
import { recipeFor, recipeHash } from '../../src/images/recipe.ts';

export const REPO = join(import.meta.dirname, '..', '..');
/** The host-wide lock every local-backend run with a tracer takes (other users of this machine run them too). */
export const LOCAL_LOCK = '/tmp/usm-local.lock';

const has = (bin: string) => spawnSync('sh', ['-c', 'command -v "$1" || test -x "/usr/sbin/$1"', 'sh', bin], { timeout: 5_000 }).status === 0;

/** Why the local-backend fault cases cannot run here, or null. */
export function missingForLocal(): string | null {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (BPF programs and uprobes)';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'needs kernel BTF (/sys/kernel/btf/vmlinux)';
  if (!has('flock')) return 'needs flock (util-linux)';
  return null;
}

/** Why the qemu fault cases cannot run here, or null. */
export function missingForQemu(): string | null {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (image build and BPF in the guest)';
  if (!has('qemu-system-x86_64')) return 'needs qemu-system-x86_64 (bash provision/host-deps.sh images)';
  return null;
}

/** Outside CI a missing requirement skips; under CI=true the case runs and fails with the reason. */
export const skipUnless = (missing: string | null) => missing !== null && !inCI;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() at the exit. */
  at: number;
}

export class MatrixRun {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  private waiters: { re: RegExp; done: () => void }[] = [];

  constructor(
    readonly args: string[],
    readonly outDir: string,
    env: NodeJS.ProcessEnv = {},
  ) {
    this.child = spawn('npx', ['zx', 'scripts/matrix.mjs', ...args, '--out', outDir], {
      cwd: REPO,
      env: { ...process.env, USM_LAB_ACCEL: 'tcg', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      for (const w of [...this.waiters]) if (w.re.test(this.stderr)) w.done();
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  }

  /**
   * A run with the local backend: its tracer attaches uprobes to the host's libssl and its servers
   * take 18001/18002, so it holds the host-wide lock (flock /tmp/usm-local.lock) from its start to
   * its exit. The lock is held by a process of its own, so npx stays the top of the run's tree (a
   * signal to the run's group does not hit flock).
   */
  static async local(args: string[], outDir: string, env: NodeJS.ProcessEnv = {}): Promise<MatrixRun> {
    const holder = spawn('flock', [LOCAL_LOCK, 'sh', '-c', 'echo locked; exec sleep 86400'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.once('data', () => resolve());
      holder.once('exit', (code) => reject(new Error(`flock ${LOCAL_LOCK} exited (${code})`)));
    });
    const release = () => {
      try {
        process.kill(-holder.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    };
    const r = new MatrixRun(args, outDir, env);
    r.releases.push(release);
    void r.exited.then(release);
    return r;
  }

  /** Run when the test lets go of the run (afterEach), whatever happened. */
  readonly releases: (() => void)[] = [];

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves once stderr (the progress lines) matches re; rejects after timeoutMs or at the exit. */
  waitFor(re: RegExp, timeoutMs: number): Promise<void> {
    if (re.test(this.stderr)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = {
        re,
        done: () => {
          clearTimeout(t);
          this.waiters = this.waiters.filter((x) => x !== w);
          resolve();
        },
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`no ${re} within ${timeoutMs} ms\n${this.log()}`));
      }, timeoutMs);
      this.waiters.push(w);
      void this.exited.then(() => {
        if (this.waiters.includes(w)) {
          clearTimeout(t);
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`exited before ${re}\n${this.log()}`));
        }
      });
    });
  }

  /** Waits for the exit at most timeoutMs (then kills the group and fails). */
  async exit(timeoutMs: number): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.kill();
        reject(new Error(`still running after ${timeoutMs} ms\n${this.log()}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Last resort in afterEach: SIGKILL the group we started (npx and what stayed in its group). */
  kill(): void {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    for (const r of this.releases.splice(0)) r();
  }

  log(): string {
    return `--- stdout\n${this.stdout.slice(-3000)}\n--- stderr\n${this.stderr.slice(-5000)}`;
  }

  summary(): { target: string; status: string; error?: string; [k: string]: unknown }[] {
    return JSON.parse(readFileSync(join(this.outDir, 'summary.json'), 'utf8'));
  }
}

interface ProcInfo {
  pid: number;
  ppid: number;
  cmdline: string;
}

export function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${d}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      out.push({ pid: Number(d), ppid, cmdline });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** Every live process under pid (children, grandchildren, ...). */
export function descendants(pid: number): ProcInfo[] {
  const all = processes();
  const found: ProcInfo[] = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    for (const c of all) if (c.ppid === p) (found.push(c), todo.push(c.pid));
  }
  return found;
}

/** The run's qemu process(es) (their command line names the run's folder). */
export function qemuOf(outDir: string): ProcInfo[] {
  return processes().filter((p) => p.cmdline.startsWith('qemu-system') && p.cmdline.includes(outDir));
}

/** Live processes that belong to the run: qemu, node (--out), guest-side tools, by the run's folder. */
export function leftoverProcesses(outDir: string): string[] {
  return processes()
    .filter((p) => p.pid !== process.pid && p.cmdline.includes(outDir))
    .map((p) => `${p.pid} ${p.cmdline.slice(0, 200)}`);
}

/** Overlays of the run, and QMP socket folders in /tmp made since `since` (ms) that no live qemu uses. */
export function leftoverFiles(outDir: string, since = 0): string[] {
  const left: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/overlay\.qcow2$|qmp\.sock$|qemu\.pid$/.test(e.name)) left.push(p);
    }
  };
  if (existsSync(outDir)) walk(outDir);
  const live = processes().map((p) => p.cmdline);
  for (const e of readdirSync(tmpdir())) {
    if (!e.startsWith('usm-qmp-')) continue;
    const p = join(tmpdir(), e);
    let mtime = 0;
    try {
      mtime = statSync(p).mtimeMs;
    } catch {
      continue;
    }
    if (mtime >= since && !live.some((c) => c.includes(p))) left.push(p);
  }
  return left;
}

/** Polls until no process of the run is left, or timeoutMs: what is still there. */
export async function waitNoLeftovers(outDir: string, timeoutMs: number): Promise<string[]> {
  const t0 = Date.now();
  for (;;) {
    const left = leftoverProcesses(outDir);
    if (left.length === 0 || Date.now() - t0 > timeoutMs) return left;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The run id (manifest.json, written before the first boot), or null before it exists. */
export function runIdOf(outDir: string): string | null {
  try {
    return (JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')) as { runId: string }).runId;
  } catch {
    return null;
  }
}

/** The run's folder on a local target (the trials' files, the background processes' pid files). */
export const localRunDir = (runId: string) => `/tmp/usm-lab-${runId}`;

/**
 * Background processes of a local run (servers, client, tracer) run in their own sessions (setsid),
 * so they are no descendants of npx: follow their pid files in the run's folder instead. Polls
 * until stopped; `pids` holds every one seen, `find` waits for one by name.
 */
export class LocalPids {
  readonly pids = new Map<string, number>();
  private timer: NodeJS.Timeout;
  constructor(private readonly r: MatrixRun) {
    this.timer = setInterval(() => this.scan(), 50);
  }
  private scan(): void {
    const id = runIdOf(this.r.outDir);
    if (!id || !existsSync(localRunDir(id))) return;
    try {
      for (const f of readdirSync(localRunDir(id), { recursive: true, encoding: 'utf8' })) {
        if (!f.endsWith('.pid')) continue;
        const pid = Number(readFileSync(join(localRunDir(id), f), 'utf8').trim());
        if (pid > 0) this.pids.set(f, pid);
      }
    } catch {
      /* removed meanwhile */
    }
  }
  /** The pid of the first live process whose pid file is `${name}.pid` or `${name}-<anything>.pid` (a session's tracer-1-upstream.pid). */
  async find(name: string, timeoutMs: number): Promise<number> {
    const t0 = Date.now();
    for (;;) {
      for (const [f, pid] of this.pids) if (isPidFileOf(f, name) && alive(pid)) return pid;
      if (Date.now() - t0 > timeoutMs) throw new Error(`no live ${name} within ${timeoutMs} ms\n${this.r.log()}`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
  /** The processes seen that are still alive. */
  alive(): string[] {
    return [...this.pids].filter(([, pid]) => alive(pid)).map(([f, pid]) => `${pid} (${f})`);
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

/** Is f (a path in the run's folder) the pid file of a process named `name`, or of `name-<variant>`? */
export function isPidFileOf(f: string, name: string): boolean {
  const base = f.slice(f.lastIndexOf('/') + 1);
  return base === `${name}.pid` || (base.startsWith(`${name}-`) && base.endsWith('.pid'));
}

export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** TCP/UDP listeners of a process as `ss` sees them: their local addresses (e.g. 127.0.0.1:40123). */
export function listenersOf(pid: number): string[] {
  const r = spawnSync('ss', ['-H', '-ltunp'], { encoding: 'utf8', timeout: 10_000 });
  return r.stdout
    .split('\n')
    .filter((l) => l.includes(`pid=${pid},`))
    .map((l) => l.trim().split(/\s+/)[4] ?? '');
}

// ---- a private image cache (never the shared one: other users rebuild and boot from it) ----

/** Where a current bookworm image is copied from: $USM_LAB_FAULT_IMAGE_SOURCE, else the cache the toolkit would use. */
export const IMAGE_SOURCE = resolveCacheRoot({ env: { ...process.env, USM_LAB_CACHE: process.env.USM_LAB_FAULT_IMAGE_SOURCE ?? process.env.USM_LAB_CACHE } });
const wantImage = () => ({ recipeHash: recipeHash(recipeFor('bookworm')), clientKey: readFileSync(cachePaths(IMAGE_SOURCE).clientKeyPub, 'utf8') });

/** Why no bookworm image of the current recipe can be copied from IMAGE_SOURCE, or null. */
export async function missingImageToCopy(): Promise<string | null> {
  if (!existsSync(cachePaths(IMAGE_SOURCE).clientKeyPub)) return `no image cache to copy in ${IMAGE_SOURCE}`;
  const s = await checkImage(imagePaths(IMAGE_SOURCE, 'bookworm'), { ...wantImage(), verifyChecksum: false });
  return s.ok ? null : `no current bookworm image to copy in ${IMAGE_SOURCE} (${s.reason}): npx zx scripts/images.mjs build --suite bookworm`;
}

/** Is the bookworm image in `root` whole and current (checksum verified)? */
export async function imageOk(root: string): Promise<boolean> {
  return (await checkImage(imagePaths(root, 'bookworm'), wantImage())).ok;
}

/**
 * A cache in `root` holding a copy of IMAGE_SOURCE's bookworm image (copied under its build lock:
 * never an image half replaced by another process's build), key pair, floor initrd and
 * accelerator probe.
 */
export async function copyImageCache(root: string): Promise<string> {
  const from = cachePaths(IMAGE_SOURCE).images;
  const to = cachePaths(root).images;
  mkdirSync(join(to, 'bookworm'), { recursive: true });
  const release = await pidLock(join(from, '.lock-bookworm'), { pollMs: 2_000, waitingFor: 'the bookworm image' });
  try {
    for (const f of readdirSync(join(from, 'bookworm'))) copyFileSync(join(from, 'bookworm', f), join(to, 'bookworm', f));
  } finally {
    await release();
  }
  for (const f of ['id_ed25519', 'id_ed25519.pub', 'floor-initrd.img', 'floor-initrd.img.src'])
    if (existsSync(join(from, f))) copyFileSync(join(from, f), join(to, f));
  if (existsSync(join(IMAGE_SOURCE, 'accel-probe.json'))) copyFileSync(join(IMAGE_SOURCE, 'accel-probe.json'), join(root, 'accel-probe.json'));
  return root;
}

/** Build folders, old images and locks a build leaves in a cache when it does not clean up. */
export const cacheLeftovers = (root: string) => readdirSync(cachePaths(root).images).filter((e) => /^\.(build|old|lock)-/.test(e));

/**
 * What a fault test file starts, stopped after each test and removed after the file: its matrix
 * runs (killed with their process group), the background processes a LocalPids watcher saw (a
 * failed case's processes have sessions of their own, outside npx's group: stopped by pid), and
 * its temporary folders (tempDir).
 */
export function tracked(): { runs: MatrixRun[]; watchers: LocalPids[]; dirs: string[]; tempDir: (prefix: string) => string } {
  const runs: MatrixRun[] = [];
  const watchers: LocalPids[] = [];
  const dirs: string[] = [];
  afterEach(() => {
    for (const r of runs.splice(0)) r.kill();
    for (const w of watchers.splice(0)) {
      w.stop();
      for (const pid of w.pids.values())
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
    }
  });
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const tempDir = (prefix: string) => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
  return { runs, watchers, dirs, tempDir };
}
