// Build snapshots: after the first provision + build of a target, its disk is saved so later
// runs start from it instead of provisioning and building again.
//
// A libvirt snapshot lives inside the run's overlay volume and `vagrant destroy` deletes it with
// the domain, so it cannot outlive the run by itself. So: `vagrant snapshot save` (1-2 s, the
// guest keeps running), copy the disk as it was at that snapshot out of the overlay
// (`qemu-img convert -U -l snapshot.name=...`, flattened onto the box image), and add it as a box
// `usm-lab-snap/<target>`. A later run whose key matches boots that box without provisioning.
// The key covers the base box (name + version) and the contents of bpf/, client/, provision/:
// change any of them and the snapshot is rebuilt (and the old one removed).
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../../errors.ts';
import { ensureLocalBox, readBootFile, removeBox, writeBootEntry, type BoxSource, type VagrantEnvBase } from './box.ts';
import { bootVolumeNames, boxDir, fileSize } from './box.ts';
import type { VagrantMachineCtl } from './cli.ts';
import { baseVolumeName } from './env.ts';
import { deleteVolume, run, volumePath } from './libvirt.ts';

export const SNAPSHOT_NAME = 'usm-built';

export function snapshotKey(o: { sources: string; box: string; boxVersion: string }): string {
  return createHash('sha256').update(`${o.box}\0${o.boxVersion}\0${o.sources}`).digest('hex').slice(0, 16);
}

export function snapshotBoxName(target: string): string {
  return `usm-lab-snap/${target}`;
}

export interface SnapshotRecord {
  key: string;
  box: string;
  version: string;
  baseBox: string;
  baseVersion: string;
  savedAt: string;
}

type Index = Record<string, SnapshotRecord>;

async function readIndex(file: string): Promise<Index> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Index;
  } catch {
    return {};
  }
}

async function writeIndex(file: string, idx: Index): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(idx, null, 2) + '\n');
  await rename(tmp, file);
}

export class SnapshotStore {
  constructor(private readonly o: { dir: string; pool: string; v: VagrantEnvBase }) {}

  private get indexFile(): string {
    return join(this.o.dir, 'snapshots.json');
  }

  /** The usable snapshot for TARGET with KEY: recorded, still added, with its boot entry. */
  async find(target: string, key: string): Promise<SnapshotRecord | null> {
    const rec = (await readIndex(this.indexFile))[target];
    if (!rec || rec.key !== key) return null;
    const boot = (await readBootFile(this.o.v.vagrantHome))[rec.box];
    if (!boot || boot.version !== rec.version) return null;
    if ((await fileSize(join(boxDir(this.o.v.vagrantHome, rec.box, rec.version), 'box.img'))) === null) return null;
    return rec;
  }

  /**
   * Save the running machine's disk as TARGET's snapshot box. The guest has synced; `ctl` is the
   * machine's controller, `domain` its libvirt name; `base` says how the snapshot box boots.
   */
  async save(o: {
    target: string;
    key: string;
    ctl: VagrantMachineCtl;
    domain: string;
    base: BoxSource;
    baseBox: string;
    baseVersion: string;
  }): Promise<SnapshotRecord> {
    await mkdir(this.o.dir, { recursive: true });
    const saved = await o.ctl.snapshot('save', SNAPSHOT_NAME, 5 * 60_000, ['--force']);
    if (saved.code !== 0)
      throw new LabError(
        'internal',
        `vagrant snapshot save ${o.target} ${SNAPSHOT_NAME} failed (exit ${saved.code})`,
        saved.stdout.slice(-2000) + saved.stderr,
      );
    const names = await o.ctl.snapshots();
    if (!names.includes(SNAPSHOT_NAME))
      throw new LabError(
        'internal',
        `vagrant snapshot save ${o.target} exited 0 but the snapshot list has no ${SNAPSHOT_NAME} (${names.join(', ') || 'empty'})`,
      );
    const overlay = await volumePath(this.o.pool, `${o.domain}.img`);
    if (!overlay) throw new LabError('internal', `no volume ${o.domain}.img in pool ${this.o.pool}`);
    const disk = join(this.o.dir, `${o.target}-${o.key}.qcow2`);
    // -U: QEMU holds the image open; the snapshot's clusters no longer change, so reading them
    // while the guest runs is safe. The output is flattened (no backing file).
    const c = await run('qemu-img', ['convert', '-U', '-O', 'qcow2', '-l', `snapshot.name=${SNAPSHOT_NAME}`, overlay, `${disk}.tmp`], 10 * 60_000);
    if (c.code !== 0) throw new LabError('internal', `qemu-img convert of ${overlay} at snapshot ${SNAPSHOT_NAME} failed`, c.stderr);
    await rename(`${disk}.tmp`, disk);
    const box = snapshotBoxName(o.target);
    const version = `1.${Math.floor(Date.now() / 1000)}`;
    try {
      await ensureLocalBox({ ...this.o.v, boxesDir: this.o.dir, pool: this.o.pool }, { ...o.base, name: box, version, disk });
    } finally {
      await rm(disk, { force: true });
    }
    const idx = await readIndex(this.indexFile);
    const old = idx[o.target];
    const rec: SnapshotRecord = { key: o.key, box, version, baseBox: o.baseBox, baseVersion: o.baseVersion, savedAt: new Date().toISOString() };
    idx[o.target] = rec;
    await writeIndex(this.indexFile, idx);
    if (old && old.version !== version) await this.removeVersion(old.box, old.version);
    return rec;
  }

  /** Forget a snapshot box version: the box, its base volume and boot volumes. */
  async removeVersion(box: string, version: string): Promise<void> {
    await removeBox(this.o.v, box, version);
    await deleteVolume(this.o.pool, baseVolumeName(box, version));
    const vols = bootVolumeNames(box, version);
    await deleteVolume(this.o.pool, vols.kernel);
    await deleteVolume(this.o.pool, vols.initrd);
    const boot = (await readBootFile(this.o.v.vagrantHome))[box];
    if (boot?.version === version) await writeBootEntry(this.o.v.vagrantHome, box, null);
  }
}
