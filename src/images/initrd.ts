// The tiny initrd: static busybox, the virtio modules of the image's kernel (decompressed, in
// dependency order) and provision/guest/initrd-init.sh as /init. Written as a gzip'd newc cpio
// by this module, so the host needs no cpio.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { LabError } from '../errors.ts';

const run = promisify(execFile);

// ---------- newc cpio ----------

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Buffer; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'char'; path: string; major: number; minor: number; mode?: number };

const pad4 = (n: number) => (4 - (n % 4)) % 4;
const hex8 = (n: number) => n.toString(16).padStart(8, '0');

/** A newc ("070701") archive, every entry owned by root. */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const add = (name: string, mode: number, data: Buffer, rdev: [number, number] = [0, 0], nlink = 1) => {
    const nameBuf = Buffer.from(name + '\0');
    const header = '070701' + [ino++, mode, 0, 0, nlink, 0, data.length, 0, 0, rdev[0], rdev[1], nameBuf.length, 0].map(hex8).join('');
    parts.push(Buffer.from(header), nameBuf, Buffer.alloc(pad4(110 + nameBuf.length)), data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    switch (e.kind) {
      case 'dir':
        add(name, 0o040000 | (e.mode ?? 0o755), Buffer.alloc(0), [0, 0], 2);
        break;
      case 'file':
        add(name, 0o100000 | (e.mode ?? 0o644), e.data);
        break;
      case 'symlink':
        add(name, 0o120000 | 0o777, Buffer.from(e.target));
        break;
      case 'char':
        add(name, 0o020000 | (e.mode ?? 0o600), Buffer.alloc(0), [e.major, e.minor]);
        break;
    }
  }
  add('TRAILER!!!', 0, Buffer.alloc(0), [0, 0], 1);
  return Buffer.concat(parts);
}

// ---------- module dependencies ----------

/** Module name of a path in modules.dep: basename without .ko[.xz|.zst|.gz], '-' as '_'. */
export function moduleName(path: string): string {
  return basename(path)
    .replace(/\.ko(\.(xz|zst|gz))?$/, '')
    .replace(/-/g, '_');
}

export interface ModulePlan {
  /** modules.dep paths (relative to lib/modules/KVER) in load order: dependencies first. */
  load: string[];
  builtin: string[];
  missing: string[];
}

/** Resolve wanted module names against modules.dep and modules.builtin (pure). */
export function planModules(modulesDep: string, modulesBuiltin: string, wanted: readonly string[]): ModulePlan {
  const deps = new Map<string, { path: string; deps: string[] }>();
  for (const line of modulesDep.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line.trim());
    if (!m) continue;
    const path = m[1]!;
    deps.set(moduleName(path), { path, deps: (m[2] ?? '').split(/\s+/).filter(Boolean) });
  }
  const builtinSet = new Set(modulesBuiltin.split('\n').filter(Boolean).map(moduleName));
  const plan: ModulePlan = { load: [], builtin: [], missing: [] };
  const seen = new Set<string>();
  const visit = (path: string) => {
    const name = moduleName(path);
    if (seen.has(name)) return;
    seen.add(name);
    const entry = deps.get(name);
    // modules.dep lists a module's full closure; load the deepest first (modprobe's order).
    for (const d of [...(entry?.deps ?? [])].reverse()) visit(d);
    plan.load.push(entry?.path ?? path);
  };
  for (const w of wanted) {
    const name = w.replace(/-/g, '_');
    const entry = deps.get(name);
    if (entry) visit(entry.path);
    else if (builtinSet.has(name)) plan.builtin.push(name);
    else plan.missing.push(name);
  }
  return plan;
}

// ---------- building ----------

/** True when an ELF64 file has no PT_INTERP program header (statically linked). */
export function isStaticElf(data: Buffer): boolean {
  if (data.length < 64 || data.readUInt32BE(0) !== 0x7f454c46 || data[4] !== 2) return false;
  const phoff = Number(data.readBigUInt64LE(0x20));
  const phentsize = data.readUInt16LE(0x36);
  const phnum = data.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (data.readUInt32LE(phoff + i * phentsize) === 3) return false;
  return true;
}

async function busyboxEntries(busybox: string, applets: readonly string[]): Promise<CpioEntry[]> {
  const data = await readFile(busybox).catch(() => {
    throw new LabError('build-failed', `${busybox} not found: install busybox-static (see provision/host-deps-images.txt)`);
  });
  if (!isStaticElf(data))
    throw new LabError('build-failed', `${busybox} is not a statically linked ELF: install busybox-static (see provision/host-deps-images.txt)`);
  return [
    { kind: 'dir', path: 'bin' },
    { kind: 'file', path: 'bin/busybox', data, mode: 0o755 },
    ...applets.map((a): CpioEntry => ({ kind: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { kind: 'dir', path: 'dev' },
    { kind: 'char', path: 'dev/console', major: 5, minor: 1 },
    { kind: 'dir', path: 'proc' },
    { kind: 'dir', path: 'sys' },
  ];
}

async function decompressModule(path: string): Promise<Buffer> {
  const opts = { timeout: 60_000, encoding: 'buffer' as const, maxBuffer: 256 * 1024 * 1024 };
  if (path.endsWith('.xz')) return (await run('xz', ['-dc', path], opts)).stdout;
  if (path.endsWith('.zst')) return (await run('zstd', ['-dcq', path], opts)).stdout;
  if (path.endsWith('.gz')) return (await run('gzip', ['-dc', path], opts)).stdout;
  return readFile(path);
}

/** Build the boot initrd for the kernel KVER of the root tree TREE; returns the module plan. */
export async function buildBootInitrd(opts: {
  tree: string;
  kver: string;
  out: string;
  initScript: string;
  modules: readonly string[];
  applets: readonly string[];
  busybox?: string;
}): Promise<ModulePlan> {
  const modDir = join(opts.tree, 'lib/modules', opts.kver);
  const [dep, builtin] = await Promise.all([readFile(join(modDir, 'modules.dep'), 'utf8'), readFile(join(modDir, 'modules.builtin'), 'utf8').catch(() => '')]);
  const plan = planModules(dep, builtin, opts.modules);
  if (plan.missing.length) throw new LabError('build-failed', `kernel ${opts.kver} has neither a module nor a built-in driver for: ${plan.missing.join(', ')}`);
  const entries = await busyboxEntries(opts.busybox ?? '/bin/busybox', opts.applets);
  entries.push({ kind: 'dir', path: 'lib' }, { kind: 'dir', path: 'lib/modules' }, { kind: 'dir', path: 'newroot' });
  for (const rel of plan.load) {
    entries.push({ kind: 'file', path: `lib/modules/${moduleName(rel)}.ko`, data: await decompressModule(join(modDir, rel)) });
  }
  entries.push({ kind: 'file', path: 'modules', data: Buffer.from(plan.load.map((p) => moduleName(p) + '\n').join('')) });
  entries.push({ kind: 'file', path: 'init', data: Buffer.from(opts.initScript), mode: 0o755 });
  await writeFile(opts.out, gzipSync(cpioNewc(entries), { level: 6 }));
  return plan;
}

/** The floor initrd: busybox + an /init that prints a marker and powers off. Kernel-independent. */
export async function buildFloorInitrd(opts: { out: string; initScript: string; applets: readonly string[]; busybox?: string }): Promise<void> {
  const entries = await busyboxEntries(opts.busybox ?? '/bin/busybox', opts.applets);
  entries.push({ kind: 'file', path: 'init', data: Buffer.from(opts.initScript), mode: 0o755 });
  await writeFile(opts.out, gzipSync(cpioNewc(entries), { level: 6 }));
}

export const FLOOR_MARKER = 'USM-LAB-FLOOR-OK';
