// The libvirt side of the vagrant backend: daemons, /dev/kvm permissions, the storage pool,
// volumes, leftovers and the KVM probe. No printing: progress goes through emit.
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, readFile, readdir, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { LabError } from '../../errors.ts';
import { alive } from '../../images/lock.ts';
import type { Emit } from '../../progress/events.ts';

const pexec = promisify(execFile);
export const LIBVIRT_URI = 'qemu:///system';

export interface CmdResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a host command (argv, no shell) with a timeout; never rejects for a non-zero exit. */
export async function run(cmd: string, args: string[], timeoutMs: number): Promise<CmdResult> {
  try {
    const r = await pexec(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; killed?: boolean; message: string };
    if (typeof e.code === 'string') return { code: null, stdout: '', stderr: `${cmd}: ${e.message}` };
    return {
      code: typeof e.code === 'number' ? e.code : null,
      stdout: e.stdout ?? '',
      stderr: (e.stderr ?? '') + (e.killed ? `\n${cmd} timed out after ${timeoutMs} ms` : ''),
    };
  }
}

export function virsh(args: string[], timeoutMs = 60_000): Promise<CmdResult> {
  return run('virsh', ['-c', LIBVIRT_URI, ...args], timeoutMs);
}

async function virshOk(args: string[], what: string, timeoutMs = 60_000): Promise<string> {
  const r = await virsh(args, timeoutMs);
  if (r.code !== 0) throw new LabError('boot-failed', `${what} failed: virsh ${args.join(' ')} (exit ${r.code})`, r.stderr.trim());
  return r.stdout;
}

// ---- /dev/kvm -------------------------------------------------------------------------------

/**
 * Without udev, /dev/kvm is root-only 0600 and libvirt then re-probes QEMU about 14 times per
 * domain define (56 s each time). Debian's usual setting (group kvm, 0660) makes a define 0.03 s.
 * Returns what was changed, or null when nothing was needed.
 */
export async function fixKvmPermissions(): Promise<string | null> {
  let st;
  try {
    st = await stat('/dev/kvm');
  } catch {
    return null; // no KVM device: TCG only, nothing to fix
  }
  const gid = await groupId('kvm');
  if (gid === null) return null;
  const mode = st.mode & 0o777;
  if (st.gid === gid && (mode & 0o060) === 0o060) return null;
  if (process.getuid?.() !== 0) return `/dev/kvm is ${mode.toString(8)} (group ${st.gid}); as root run: chgrp kvm /dev/kvm && chmod 0660 /dev/kvm`;
  await chown('/dev/kvm', st.uid, gid);
  await chmod('/dev/kvm', 0o660);
  return `/dev/kvm was ${mode.toString(8).padStart(4, '0')} root-only; set group kvm, 0660 (libvirt domain define: 0.03 s instead of ~56 s)`;
}

async function groupId(name: string): Promise<number | null> {
  const text = await readFile('/etc/group', 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2]) return Number(f[2]);
  }
  return null;
}

// ---- daemons --------------------------------------------------------------------------------

/** PIDs of running processes whose command name is `name` (reads /proc; no pgrep). */
export async function pidsOf(name: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(d)) continue;
    const comm = await readFile(`/proc/${d}/comm`, 'utf8').catch(() => '');
    if (comm.trim() === name) out.push(Number(d));
  }
  return out;
}

export interface StartedDaemon {
  name: string;
  pid: number;
  pidFile: string;
}

/**
 * Start virtlogd and libvirtd when they are not running (no systemd here): `-d` with a pid file
 * under runDir; never `-l` (listen on TCP). Returns what this call started, to stop later.
 */
export async function ensureDaemons(runDir: string, emit: Emit, target: string, opts: { answerMs?: number } = {}): Promise<StartedDaemon[]> {
  const started: StartedDaemon[] = [];
  try {
    for (const name of ['virtlogd', 'libvirtd']) {
      if ((await pidsOf(name)).length) continue;
      const pidFile = join(runDir, `${name}.pid`);
      const r = await run(name, ['-d', '-p', pidFile], 30_000);
      if (r.code !== 0)
        throw new LabError(
          'boot-failed',
          `cannot start ${name} (${r.code === null ? 'not run' : `exit ${r.code}`}): ${r.stderr.trim().split('\n').at(-1) || 'no message'}`,
          `${r.stderr.trim()}\n(install: bash provision/host-deps.sh vagrant)`,
        );
      const pid = await waitPidFile(pidFile, 15_000);
      started.push({ name, pid, pidFile });
      emit({ type: 'info', target, message: `started ${name} (pid ${pid}); stopped again at the end of the run` });
    }
    const t0 = Date.now();
    for (;;) {
      const r = await virsh(['version'], 10_000);
      if (r.code === 0) break;
      if (Date.now() - t0 > (opts.answerMs ?? 30_000)) throw new LabError('boot-failed', `libvirtd does not answer on ${LIBVIRT_URI}`, r.stderr.trim());
      await sleep(300);
    }
  } catch (err) {
    // what this call started before the failure is stopped again: nothing of ours is left running
    await stopDaemons(started);
    throw err;
  }
  return started;
}

async function waitPidFile(file: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (pid > 0) return pid;
    if (Date.now() - t0 > timeoutMs) throw new LabError('boot-failed', `no pid in ${file} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Stop daemons this process started: by pid, and only if that pid is still that daemon. */
export async function stopDaemons(started: StartedDaemon[]): Promise<void> {
  for (const d of [...started].reverse()) {
    const comm = await readFile(`/proc/${d.pid}/comm`, 'utf8').catch(() => '');
    if (comm.trim() !== d.name) continue;
    try {
      process.kill(d.pid, 'SIGTERM');
    } catch {
      continue;
    }
    const t0 = Date.now();
    while (Date.now() - t0 < 10_000 && (await readFile(`/proc/${d.pid}/comm`, 'utf8').catch(() => '')).trim() === d.name) await sleep(100);
  }
}

// ---- storage pool ---------------------------------------------------------------------------

/**
 * Where the pool lives: under the cache when the QEMU user (libvirt-qemu) can reach it, else
 * libvirt's own images folder. As root with HOME=/root (0700), QEMU cannot open files under
 * ~/.cache ("Cannot access storage file ... as uid:64055"), so the pool goes to
 * /var/lib/libvirt/images/usm-race-lab there.
 */
export async function choosePoolDir(cacheDir: string): Promise<{ dir: string; why?: string }> {
  const wanted = join(cacheDir, 'libvirt-pool');
  let p = cacheDir;
  for (;;) {
    const st = await stat(p).catch(() => null);
    if (st && (st.mode & 0o001) === 0)
      return { dir: '/var/lib/libvirt/images/usm-race-lab', why: `${p} is not searchable by the QEMU user (mode ${(st.mode & 0o777).toString(8)})` };
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  return { dir: wanted };
}

/** Define, build and start a dir pool when missing (vagrant-libvirt only creates "default"). */
export async function ensurePool(name: string, dir: string): Promise<{ created: boolean; dir: string }> {
  const info = await virsh(['pool-info', name], 30_000);
  let created = false;
  if (info.code !== 0) {
    await virshOk(['pool-define-as', name, 'dir', '--target', dir], `define storage pool ${name}`);
    await virshOk(['pool-build', name], `build storage pool ${name}`);
    created = true;
  }
  if (!/State:\s+running/.test(info.stdout)) {
    const st = await virsh(['pool-start', name], 60_000);
    if (st.code !== 0 && !/already active/.test(st.stderr)) throw new LabError('boot-failed', `cannot start storage pool ${name}`, st.stderr.trim());
  }
  const xml = await virshOk(['pool-dumpxml', name], `read storage pool ${name}`);
  const path = /<path>([^<]+)<\/path>/.exec(xml)?.[1] ?? dir;
  return { created, dir: path };
}

export async function listVolumes(pool: string): Promise<string[]> {
  await virsh(['pool-refresh', pool], 60_000);
  const r = await virsh(['vol-list', pool], 60_000);
  if (r.code !== 0) return [];
  return r.stdout
    .split('\n')
    .slice(2)
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

export async function listDomains(): Promise<string[]> {
  const r = await virsh(['list', '--all', '--name'], 60_000);
  if (r.code !== 0) throw new LabError('internal', 'virsh list failed', r.stderr.trim());
  return r.stdout
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Put a host file into the pool as a raw volume (kernel, initrd: QEMU must be able to read
 * them, which a file in the cache is not, see choosePoolDir). Skipped when it is there already.
 */
export async function uploadToPool(pool: string, volName: string, file: string, format: 'raw' | 'qcow2' = 'raw', capacity?: number): Promise<string> {
  const have = await virsh(['vol-path', '--pool', pool, volName], 30_000);
  if (have.code === 0) return have.stdout.trim();
  const size = capacity ?? (await stat(file)).size;
  await virshOk(['vol-create-as', pool, volName, String(size), '--format', format], `create volume ${volName}`);
  await virshOk(['vol-upload', '--pool', pool, volName, file], `upload ${file} to volume ${volName}`, 300_000);
  return (await virshOk(['vol-path', '--pool', pool, volName], `find volume ${volName}`)).trim();
}

export async function deleteVolume(pool: string, volName: string): Promise<void> {
  await virsh(['vol-delete', '--pool', pool, volName], 60_000);
}

/** Path of a volume, or null. */
export async function volumePath(pool: string, volName: string): Promise<string | null> {
  const r = await virsh(['vol-path', '--pool', pool, volName], 30_000);
  return r.code === 0 ? r.stdout.trim() : null;
}

// ---- leftovers of runs that are gone -------------------------------------------------------

/** A backend instance's domains and overlay volumes: usm-lab-<8 hex>-<target>. */
const RUN_PREFIX = /^(usm-lab-[0-9a-f]{8}-)/;

/**
 * Mark `prefix` as owned by this process (a file in ownersDir: its pid, or `keep <pid>` for a
 * --keep run, whose VMs are meant to outlive it). Returns the unmark (a kept mark stays).
 */
export async function markOwner(ownersDir: string, prefix: string, keep: boolean): Promise<() => Promise<void>> {
  await mkdir(ownersDir, { recursive: true });
  const file = join(ownersDir, `${prefix.replace(/-$/, '')}.pid`);
  await writeFile(file, `${keep ? 'keep ' : ''}${process.pid}\n`);
  return async () => {
    if (!keep) await unlink(file).catch(() => {});
  };
}

/**
 * Domains and overlay volumes of runs that are gone (crashed, SIGKILLed, their host rebooted):
 * named usm-lab-<8 hex>-, with no mark in ownersDir of a live process and none of a --keep run.
 * Destroyed, undefined and deleted; returns the domains removed.
 */
export async function sweepDeadRuns(ownersDir: string, pool: string): Promise<{ domains: string[]; volumes: string[] }> {
  const owned = async (prefix: string): Promise<boolean> => {
    const text = (await readFile(join(ownersDir, `${prefix.replace(/-$/, '')}.pid`), 'utf8').catch(() => '')).trim();
    if (text.startsWith('keep ')) return true;
    const pid = Number(text);
    return pid > 0 && alive(pid);
  };
  const dead = new Map<string, boolean>();
  const isDead = async (name: string): Promise<boolean> => {
    const prefix = RUN_PREFIX.exec(name)?.[1];
    if (!prefix) return false;
    if (!dead.has(prefix)) dead.set(prefix, !(await owned(prefix)));
    return dead.get(prefix)!;
  };
  const domains: string[] = [];
  for (const d of await listDomains()) {
    if (!(await isDead(d))) continue;
    await virsh(['destroy', d], 60_000);
    const u = await virsh(['undefine', d, '--managed-save', '--snapshots-metadata'], 60_000);
    if (u.code !== 0) await virsh(['undefine', d], 60_000);
    domains.push(d);
  }
  const volumes: string[] = [];
  for (const v of await listVolumes(pool)) {
    if (!(await isDead(v))) continue;
    await deleteVolume(pool, v);
    volumes.push(v);
  }
  for (const [prefix, gone] of dead) if (gone) await unlink(join(ownersDir, `${prefix.replace(/-$/, '')}.pid`)).catch(() => {});
  return { domains, volumes };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
