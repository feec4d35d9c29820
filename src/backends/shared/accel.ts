// Which accelerator really runs a guest here? /dev/kvm can exist and open while every guest dies
// with "KVM internal error" (nested virtualisation): so boot the floor (kernel + busybox marker
// initrd) under KVM and look for the marker. Cached per process. Shared by the qemu and vagrant
// backends (vagrant-libvirt runs QEMU too) and by the boot benchmark.
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { killOnExit } from '../../cleanup.ts';
import { LabError } from '../../errors.ts';
import { FLOOR_MARKER } from '../../images/initrd.ts';

export const QEMU_BIN = 'qemu-system-x86_64';

export type Accel = 'kvm' | 'tcg';

/** -accel/-cpu pair: KVM with the host CPU, or TCG with every emulated feature. */
export function accelArgs(accel: Accel): string[] {
  return accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max'];
}

/** The floor: the same kernel with the busybox marker initrd, no disk, no network. */
export function floorArgs(a: { accel: Accel; kernel: string; initrd: string; consoleLog: string; memoryMiB?: number }): string[] {
  return [
    ...accelArgs(a.accel),
    '-smp',
    '1',
    '-m',
    String(a.memoryMiB ?? 512),
    '-nodefaults',
    '-display',
    'none',
    '-kernel',
    a.kernel,
    '-initrd',
    a.initrd,
    '-append',
    'console=ttyS0 random.trust_cpu=on panic=-1 rdinit=/init',
    '-serial',
    `file:${a.consoleLog}`,
    '-no-reboot',
  ];
}

export interface FloorRun {
  ok: boolean;
  /** Spawn to marker (or to failure) in ms. */
  ms: number;
  /** Why it failed: QEMU's stderr / console tail, or "timeout". */
  reason: string;
}

/** Boot kernel + floor initrd until the marker shows on the console; QEMU is killed either way. */
export async function runFloor(opts: {
  accel: Accel;
  kernel: string;
  initrd: string;
  workDir: string;
  timeoutMs: number;
  memoryMiB?: number;
  qemu?: string;
  tag?: string;
  /** Aborted: QEMU is killed at once and the run fails with reason 'interrupted'. */
  signal?: AbortSignal;
}): Promise<FloorRun> {
  const consoleLog = join(opts.workDir, `floor-${opts.tag ?? opts.accel}-${process.pid}-${Date.now()}.log`);
  const t0 = performance.now();
  const child = spawn(
    opts.qemu ?? QEMU_BIN,
    floorArgs({ accel: opts.accel, kernel: opts.kernel, initrd: opts.initrd, consoleLog, ...(opts.memoryMiB ? { memoryMiB: opts.memoryMiB } : {}) }),
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const forget = killOnExit(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 64 * 1024) stderr += d.toString('utf8');
  });
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.on('close', () => {
      exited = true;
      resolve();
    });
    child.on('error', (err) => {
      stderr += err.message;
      exited = true;
      resolve();
    });
  });
  let result: FloorRun | null = null;
  while (!result) {
    const text = await readFile(consoleLog, 'utf8').catch(() => '');
    const ms = performance.now() - t0;
    if (text.includes(FLOOR_MARKER)) result = { ok: true, ms, reason: '' };
    else if (opts.signal?.aborted) result = { ok: false, ms, reason: 'interrupted' };
    else if (exited) result = { ok: false, ms, reason: (stderr.trim() || text.trim().split('\n').slice(-5).join('\n') || 'QEMU exited').slice(0, 2000) };
    else if (ms > opts.timeoutMs)
      result = { ok: false, ms, reason: `no marker within ${Math.round(opts.timeoutMs / 1000)} s${stderr ? `: ${stderr.trim().slice(0, 500)}` : ''}` };
    else await new Promise((r) => setTimeout(r, 20));
  }
  if (!exited) child.kill('SIGKILL');
  await exit;
  forget();
  await rm(consoleLog, { force: true });
  return result;
}

export interface AccelProbe {
  accel: Accel;
  reason: string;
}

let cached: Promise<AccelProbe> | null = null;

/**
 * KVM if a guest really boots under it, else TCG. USM_LAB_ACCEL=kvm|tcg forces the answer.
 * The first call's kernel/initrd are used; the result is kept for the whole process.
 */
export function probeAccel(opts: ProbeOptions): Promise<AccelProbe> {
  const p = (cached ??= opts.cacheDir ? probeCached({ ...opts, cacheDir: opts.cacheDir }) : doProbe(opts));
  // An interrupted probe answers nothing: the next call (a test, a later run) probes again.
  p.catch(() => {
    if (cached === p) cached = null;
  });
  return p;
}

interface ProbeOptions {
  kernel: string;
  initrd: string;
  workDir: string;
  env?: NodeJS.ProcessEnv;
  /** Aborted: the probe guest is killed at once and the probe rejects as 'interrupted'. */
  signal?: AbortSignal;
  /** Keep the answer in CACHE/accel-probe.json for the rest of this host's boot. */
  cacheDir?: string;
}

/** What a probe's answer depends on: this boot of the host, its /dev/kvm, and the QEMU binary. */
export interface AccelKey {
  bootId: string;
  kvm: string;
  qemu: string;
}

export async function accelKey(qemu = QEMU_BIN): Promise<AccelKey> {
  const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
  const kvm = await stat('/dev/kvm').then(
    (st) => `${st.rdev}:${st.mode}:${st.ctimeMs}`,
    () => 'missing',
  );
  let bin = 'missing';
  for (const dir of (process.env.PATH ?? '/usr/bin').split(':')) {
    const st = await stat(join(dir, qemu)).catch(() => null);
    if (st) {
      bin = `${join(dir, qemu)}:${st.size}:${st.mtimeMs}`;
      break;
    }
  }
  return { bootId, kvm, qemu: bin };
}

/** The cached answer when it was found on this boot, with this /dev/kvm and this QEMU; else null. */
export async function readAccelCache(file: string, key: AccelKey): Promise<AccelProbe | null> {
  try {
    const c = JSON.parse(await readFile(file, 'utf8')) as { key?: AccelKey; accel?: string; reason?: string; at?: string };
    if (!key.bootId || !c.key || c.key.bootId !== key.bootId || c.key.kvm !== key.kvm || c.key.qemu !== key.qemu) return null;
    if ((c.accel !== 'kvm' && c.accel !== 'tcg') || typeof c.reason !== 'string') return null;
    return { accel: c.accel, reason: `${c.reason} (probed ${c.at ?? 'earlier'} on this boot; cached in ${file})` };
  } catch {
    return null;
  }
}

/**
 * The probe's answer kept in the cache for the rest of this host's boot: a broken KVM costs its
 * 30 s timeout once per boot instead of once per run (and per test file).
 */
async function probeCached(opts: ProbeOptions & { cacheDir: string }): Promise<AccelProbe> {
  const forced = (opts.env ?? process.env).USM_LAB_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return doProbe(opts);
  const file = join(opts.cacheDir, 'accel-probe.json');
  const key = await accelKey();
  const hit = await readAccelCache(file, key);
  if (hit) return hit;
  const r = await doProbe(opts);
  if (key.bootId) {
    await mkdir(opts.cacheDir, { recursive: true }).catch(() => {});
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ key, ...r, at: new Date().toISOString() }, null, 2) + '\n')
      .then(() => rename(tmp, file))
      .catch(() => rm(tmp, { force: true }));
  }
  return r;
}

/** Forget the cached probe (tests). */
export function resetAccelProbe(): void {
  cached = null;
}

async function doProbe(opts: ProbeOptions): Promise<AccelProbe> {
  const forced = (opts.env ?? process.env).USM_LAB_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced, reason: `USM_LAB_ACCEL=${forced}` };
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', reason: '/dev/kvm is missing or not accessible' };
  }
  const r = await runFloor({
    accel: 'kvm',
    kernel: opts.kernel,
    initrd: opts.initrd,
    workDir: opts.workDir,
    timeoutMs: 30_000,
    tag: 'kvm-probe',
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (opts.signal?.aborted) throw new LabError('interrupted', 'interrupted during the KVM probe');
  if (r.ok) return { accel: 'kvm', reason: `a guest booted under KVM in ${(r.ms / 1000).toFixed(1)} s` };
  const line = r.reason.split('\n').find((l) => /KVM|kvm/.test(l)) ?? r.reason.split('\n')[0] ?? '';
  return { accel: 'tcg', reason: `KVM did not boot a guest: ${line.trim()}` };
}
