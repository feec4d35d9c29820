// What the tool passes to the Vagrantfile: pure functions (tested with `vagrant validate`).
import type { TargetSpec } from '../types.ts';

/** One entry of USM_LAB_VAGRANT_TARGETS (the Vagrantfile's header documents the keys). */
export interface VagrantTargetEntry {
  name: string;
  box: string;
  box_version?: string;
  suite?: string;
  memory?: number;
  cpus?: number;
  ssh_port?: number;
  console?: string;
}

export function targetEntry(t: TargetSpec, o: { box: string; boxVersion?: string; sshPort?: number; console?: string }): VagrantTargetEntry {
  const e: VagrantTargetEntry = { name: t.name, box: o.box };
  if (o.boxVersion) e.box_version = o.boxVersion;
  if (t.suite) e.suite = t.suite;
  e.memory = t.memoryMiB ?? 1024;
  e.cpus = t.cpus ?? 1;
  if (o.sshPort !== undefined) e.ssh_port = o.sshPort;
  if (o.console) e.console = o.console;
  return e;
}

export interface VagrantEnvOptions {
  /** Folder with the Vagrantfile (the repository root). */
  repoRoot: string;
  vagrantHome: string;
  /** Where Vagrant keeps machine state (.vagrant); one per run and target. */
  dotfilePath: string;
  targets: VagrantTargetEntry[];
  sandboxed: boolean;
  driver: 'kvm' | 'qemu';
  pool: string;
  /** Domain name prefix; names the run's domains and overlay volumes. */
  prefix: string;
  bootTimeoutS?: number;
}

/** The environment for every vagrant command of one machine. */
export function vagrantEnv(base: NodeJS.ProcessEnv, o: VagrantEnvOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  // Never let a caller's settings for another project leak in.
  for (const k of Object.keys(env)) if (k.startsWith('USM_LAB_') && k !== 'USM_LAB_CACHE') delete env[k];
  Object.assign(env, {
    VAGRANT_HOME: o.vagrantHome,
    VAGRANT_CWD: o.repoRoot,
    VAGRANT_DOTFILE_PATH: o.dotfilePath,
    VAGRANT_DEFAULT_PROVIDER: 'libvirt',
    VAGRANT_CHECKPOINT_DISABLE: '1',
    VAGRANT_NO_COLOR: '1',
    VAGRANT_SUPPRESS_RUBY_WARNINGS: '1',
    USM_LAB_VAGRANT_TARGETS: JSON.stringify(o.targets),
    USM_LAB_SANDBOXED: o.sandboxed ? '1' : '0',
    USM_LAB_LIBVIRT_DRIVER: o.driver,
    USM_LAB_POOL: o.pool,
    USM_LAB_PREFIX: o.prefix,
  });
  if (o.bootTimeoutS) env.USM_LAB_BOOT_TIMEOUT = String(o.bootTimeoutS);
  return env;
}

/** Name of the libvirt domain vagrant-libvirt creates (default_prefix + machine name). */
export function domainName(prefix: string, machine: string): string {
  return (prefix + machine).replace(/[^-a-z0-9_.]/gi, '');
}

/** The base volume vagrant-libvirt uploads a box image into (handle_box_image.rb). */
export function baseVolumeName(box: string, version: string): string {
  return `${box.replace(/\//g, '-VAGRANTSLASH-')}_vagrant_box_image_${version}_box.img`;
}
