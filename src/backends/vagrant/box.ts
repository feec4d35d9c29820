// Local Vagrant boxes from the image cache (src/images): a versioned libvirt box per Debian
// suite, added through a catalog (metadata) file so `vagrant box add` records the version.
//
// The images have no bootloader (a bare ext4 file system in a qcow2, direct kernel boot), so the
// box boots the same way: vagrant-libvirt's libvirt.kernel/initrd/cmd_line. The kernel and initrd
// travel inside the box (self-contained) and are put into the storage pool as volumes, because
// QEMU runs as libvirt-qemu and cannot read files under a 0700 home. Their paths, the kernel
// command line and the SSH user/key go to $VAGRANT_HOME/usm-lab-boxes.json, which the Vagrantfile
// reads (one entry per box name).
import { mkdir, readFile, rename, rm, stat, writeFile, copyFile, link } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LabError } from '../../errors.ts';
import { pidLock } from '../../images/lock.ts';
import { sha256File } from '../../images/manifest.ts';
import { deleteVolume, run, uploadToPool } from './libvirt.ts';
import { parseBoxList } from './parse.ts';
import { runVagrant, vagrantError } from './cli.ts';
import { baseVolumeName } from './env.ts';

export const BOOT_FILE = 'usm-lab-boxes.json';

/** What the Vagrantfile needs to boot and reach a local box. */
export interface BootEntry {
  version: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  user: string;
  key: string;
  /** Pinned SSH host key of the image ("ssh-ed25519 AAAA..."). */
  hostKey: string;
  /** QEMU user network with restrict=on (no way out but the port forward). */
  restrict: boolean;
}

export function localBoxName(suite: string): string {
  return `usm-lab/${suite}`;
}

/** Box versions are dotted numbers: 1.YYYYMMDD.HHMMSS from the image's build time. */
export function boxVersionFromDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) throw new LabError('internal', `bad image build time '${iso}'`);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `1.${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}.${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

/** metadata.json of a libvirt box; virtual_size in whole GiB, rounded up. */
export function boxMetadata(virtualSizeBytes: number): { provider: 'libvirt'; format: 'qcow2'; virtual_size: number } {
  return { provider: 'libvirt', format: 'qcow2', virtual_size: Math.max(1, Math.ceil(virtualSizeBytes / 2 ** 30)) };
}

/** The catalog (metadata) file `vagrant box add` reads to learn the name and version. */
export function boxCatalog(o: { name: string; version: string; boxFile: string; sha256: string; description?: string }) {
  return {
    name: o.name,
    description: o.description ?? `${o.name}: built by usm-race-lab`,
    versions: [{ version: o.version, providers: [{ name: 'libvirt', url: pathToFileURL(o.boxFile).href, checksum_type: 'sha256', checksum: o.sha256 }] }],
  };
}

/** Volume names for a box's kernel and initrd in the pool. */
export function bootVolumeNames(name: string, version: string): { kernel: string; initrd: string } {
  const slug = name.replace(/[^A-Za-z0-9_.-]/g, '-');
  return { kernel: `${slug}-${version}-vmlinuz`, initrd: `${slug}-${version}-initrd` };
}

const BOX_VAGRANTFILE = `# usm-race-lab box: a Debian image without a bootloader. It boots by direct kernel boot with
# the vmlinuz/initrd.img beside this file; the repository's Vagrantfile sets libvirt.kernel,
# initrd and cmd_line (from $VAGRANT_HOME/${BOOT_FILE}).
Vagrant.configure('2') do |config|
  config.vm.synced_folder '.', '/vagrant', disabled: true
end
`;

export async function qcow2VirtualSize(path: string): Promise<number> {
  const r = await run('qemu-img', ['info', '--output=json', '-U', path], 60_000);
  if (r.code !== 0) throw new LabError('internal', `qemu-img info ${path} failed`, r.stderr);
  return (JSON.parse(r.stdout) as { 'virtual-size': number })['virtual-size'];
}

/**
 * Write BOXFILE: an uncompressed tar (the qcow2 is compressed enough; gzip would cost a minute)
 * with metadata.json, Vagrantfile, box.img, vmlinuz, initrd.img.
 */
export async function packageBox(o: { disk: string; kernel: string; initrd: string; outFile: string; signal?: AbortSignal }): Promise<void> {
  const stage = `${o.outFile}.${process.pid}.stage`;
  await rm(stage, { recursive: true, force: true });
  await mkdir(stage, { recursive: true });
  try {
    const size = await qcow2VirtualSize(o.disk);
    await writeFile(join(stage, 'metadata.json'), JSON.stringify(boxMetadata(size)) + '\n');
    await writeFile(join(stage, 'Vagrantfile'), BOX_VAGRANTFILE);
    for (const [src, name] of [
      [o.disk, 'box.img'],
      [o.kernel, 'vmlinuz'],
      [o.initrd, 'initrd.img'],
    ] as const) {
      await link(src, join(stage, name)).catch(() => copyFile(src, join(stage, name)));
    }
    const tmp = `${o.outFile}.${process.pid}.tmp`;
    const r = await run('tar', ['-C', stage, '-cf', tmp, 'metadata.json', 'Vagrantfile', 'box.img', 'vmlinuz', 'initrd.img'], 600_000);
    if (r.code !== 0) throw new LabError('internal', `tar of box ${o.outFile} failed`, r.stderr);
    await rename(tmp, o.outFile);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

export interface VagrantEnvBase {
  vagrantHome: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
  logFile?: string;
  signal?: AbortSignal;
}

export async function listBoxes(v: VagrantEnvBase): Promise<{ name: string; provider: string; version: string }[]> {
  const r = await runVagrant(['box', 'list', '--machine-readable'], { cwd: v.cwd, env: v.env, timeoutMs: 60_000, ...(v.signal ? { signal: v.signal } : {}) });
  if (r.code !== 0) throw vagrantError('boot-failed', 'vagrant box list failed', r);
  return parseBoxList(r.stdout);
}

/** `vagrant box add CATALOG` unless NAME VERSION (libvirt) is there already. */
export async function addBox(v: VagrantEnvBase, o: { name: string; version: string; catalog: string }): Promise<boolean> {
  if ((await listBoxes(v)).some((b) => b.name === o.name && b.version === o.version && b.provider === 'libvirt')) return false;
  // --clean: a partial download left by an interrupted add would be "resumed" and fail its checksum.
  const r = await runVagrant(['box', 'add', '--clean', '--machine-readable', '--provider', 'libvirt', o.catalog], {
    cwd: v.cwd,
    env: v.env,
    timeoutMs: 20 * 60_000,
    ...(v.logFile ? { logFile: v.logFile } : {}),
    ...(v.signal ? { signal: v.signal } : {}),
  });
  if (r.code !== 0) throw vagrantError('boot-failed', `vagrant box add ${o.name} ${o.version} failed`, r);
  if (!(await listBoxes(v)).some((b) => b.name === o.name && b.version === o.version))
    throw new LabError('boot-failed', `vagrant box add ${o.name} said ok but the box is not listed`, r.stdout.slice(-2000));
  return true;
}

/** `vagrant box remove`; without force Vagrant refuses while a machine it knows uses the box. */
export async function removeBox(v: VagrantEnvBase, name: string, version: string, force = true): Promise<boolean> {
  const r = await runVagrant(['box', 'remove', ...(force ? ['--force'] : []), '--provider', 'libvirt', '--box-version', version, name], {
    cwd: v.cwd,
    env: v.env,
    timeoutMs: 120_000,
  });
  return r.code === 0;
}

/**
 * Remove older versions of NAME (box, base volume, kernel/initrd volumes). A version some
 * machine still uses is kept (Vagrant refuses to remove it), and so are its volumes.
 */
export async function pruneOldVersions(v: VagrantEnvBase & { pool: string }, name: string, keep: string): Promise<string[]> {
  const removed: string[] = [];
  for (const b of await listBoxes(v)) {
    if (b.name !== name || b.version === keep || b.provider !== 'libvirt') continue;
    if (!(await removeBox(v, name, b.version, false))) continue;
    await deleteVolume(v.pool, baseVolumeName(name, b.version));
    const vols = bootVolumeNames(name, b.version);
    await deleteVolume(v.pool, vols.kernel);
    await deleteVolume(v.pool, vols.initrd);
    removed.push(b.version);
  }
  return removed;
}

export async function readBootFile(vagrantHome: string): Promise<Record<string, BootEntry>> {
  try {
    return JSON.parse(await readFile(join(vagrantHome, BOOT_FILE), 'utf8')) as Record<string, BootEntry>;
  } catch {
    return {};
  }
}

/** Merge one entry into $VAGRANT_HOME/usm-lab-boxes.json (atomic rename). */
export async function writeBootEntry(vagrantHome: string, name: string, entry: BootEntry | null): Promise<void> {
  await mkdir(vagrantHome, { recursive: true });
  const all = await readBootFile(vagrantHome);
  if (entry) all[name] = entry;
  else delete all[name];
  const file = join(vagrantHome, BOOT_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(all, null, 2) + '\n');
  await rename(tmp, file);
}

export interface BoxSource {
  name: string;
  version: string;
  disk: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  user: string;
  keyPath: string;
  hostKey: string;
}

/**
 * Make NAME VERSION usable by the Vagrantfile: package + add the box when missing, put its kernel
 * and initrd into the pool, record the boot entry. Idempotent; returns whether the box was added.
 */
export async function ensureLocalBox(v: VagrantEnvBase & { boxesDir: string; pool: string }, src: BoxSource): Promise<{ added: boolean }> {
  // One at a time per box name: in this process (parallel ups of one suite) and across
  // processes (a lock file holding the pid; a dead holder's lock is taken over).
  const key = `${v.vagrantHome}\0${src.name}`;
  const before = inFlight.get(key) ?? Promise.resolve();
  const mine = before
    .catch(() => {})
    .then(async () => {
      const lock = join(v.boxesDir, `.lock-${src.name.replace(/\//g, '-')}`);
      const release = await pidLock(lock, { ...(v.signal ? { signal: v.signal } : {}), pollMs: 1_000, waitingFor: lock });
      try {
        return await ensureLocalBoxLocked(v, src);
      } finally {
        await release();
      }
    });
  inFlight.set(key, mine);
  try {
    return await mine;
  } finally {
    if (inFlight.get(key) === mine) inFlight.delete(key);
  }
}

const inFlight = new Map<string, Promise<unknown>>();

/** Vagrant's own layout of an added box (a file check instead of a 1 s `vagrant box list`). */
export function boxDir(vagrantHome: string, name: string, version: string): string {
  return join(vagrantHome, 'boxes', name.replace(/\//g, '-VAGRANTSLASH-'), version, 'libvirt');
}

async function ensureLocalBoxLocked(v: VagrantEnvBase & { boxesDir: string; pool: string }, src: BoxSource): Promise<{ added: boolean }> {
  const have =
    (await fileSize(join(boxDir(v.vagrantHome, src.name, src.version), 'metadata.json'))) !== null ||
    (await listBoxes(v)).some((b) => b.name === src.name && b.version === src.version && b.provider === 'libvirt');
  let added = false;
  if (!have) {
    await mkdir(v.boxesDir, { recursive: true });
    const slug = src.name.replace(/\//g, '-');
    const boxFile = join(v.boxesDir, `${slug}-${src.version}.box`);
    const catalog = join(v.boxesDir, `${slug}.json`);
    await packageBox({ disk: src.disk, kernel: src.kernel, initrd: src.initrd, outFile: boxFile });
    try {
      const sum = await sha256File(boxFile);
      await writeFile(catalog, JSON.stringify(boxCatalog({ name: src.name, version: src.version, boxFile, sha256: sum }), null, 2) + '\n');
      added = await addBox(v, { name: src.name, version: src.version, catalog });
    } finally {
      // Vagrant keeps its own copy under VAGRANT_HOME; the tar would only be a third copy.
      await rm(boxFile, { force: true });
    }
  }
  // The base volume vagrant-libvirt would upload on the first `up` (same name, same content):
  // done here so that `vagrant up` times are boot times, and parallel ups never race for it.
  await uploadToPool(v.pool, baseVolumeName(src.name, src.version), src.disk, 'qcow2', await qcow2VirtualSize(src.disk));
  const vols = bootVolumeNames(src.name, src.version);
  const kernel = await uploadToPool(v.pool, vols.kernel, src.kernel);
  const initrd = await uploadToPool(v.pool, vols.initrd, src.initrd);
  const entry: BootEntry = {
    version: src.version,
    kernel,
    initrd,
    cmdline: src.cmdline,
    user: src.user,
    key: src.keyPath,
    hostKey: src.hostKey,
    restrict: true,
  };
  const old = (await readBootFile(v.vagrantHome))[src.name];
  if (JSON.stringify(old) !== JSON.stringify(entry)) await writeBootEntry(v.vagrantHome, src.name, entry);
  if (added) await pruneOldVersions(v, src.name, src.version);
  return { added };
}

/** Is a file there (and how big)? */
export async function fileSize(p: string): Promise<number | null> {
  return (await stat(p).catch(() => null))?.size ?? null;
}
