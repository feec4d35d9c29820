// One target's machine through Vagrant: box, `vagrant up` (snapshot box when one matches),
// ssh-config + status + ssh2, provision + snapshot save, and `vagrant destroy -f` on stop.
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { onCleanup } from '../../cleanup.ts';
import { GUEST_WORKDIR } from '../../domain.ts';
import { LabError, asLabError } from '../../errors.ts';
import { ensureImage, parseSuite } from '../../images/index.ts';
import { SshMachine } from '../../machine/ssh.ts';
import { shellQuote } from '../../machine/types.ts';
import { step, type Emit } from '../../progress/events.ts';
import { sourcesHash, uploadSources } from '../../sources.ts';
import { kernelCmdline } from '../shared/cmdline.ts';
import { reservePort, type PortReservation } from '../shared/ports.ts';
import type { BackendContext, Lease, TargetSpec } from '../types.ts';
import { ensureLocalBox, localBoxName, boxVersionFromDate, type BoxSource, type VagrantEnvBase } from './box.ts';
import { VagrantMachineCtl, vagrantError, type VagrantRunResult } from './cli.ts';
import { domainName, targetEntry, vagrantEnv } from './env.ts';
import { hostKeyOf } from './hostkey.ts';
import { deleteVolume, listDomains, listVolumes, virsh } from './libvirt.ts';
import type { HostState, LeaseHost, VagrantFacts } from './options.ts';
import type { SshConfigEntry } from './parse.ts';
import { SnapshotStore, snapshotKey, type SnapshotRecord } from './snapshot.ts';

/** Exit codes of provision/setup.sh (provision/common.sh) -> what to say. */
export function provisionFailure(code: number | null, target: string, output: string): LabError {
  const tail = output.trim().split('\n').slice(-30).join('\n');
  switch (code) {
    case 3:
      return new LabError('build-failed', `${target}: unsupported distribution for provision/ (Debian/Ubuntu or Fedora/RHEL family needed)`, tail);
    case 4:
      return new LabError('build-failed', `${target}: the box's kernel has no BTF (/sys/kernel/btf/vmlinux); the CO-RE tracer cannot run there`, tail);
    case 5:
      return new LabError('build-failed', `${target}: installing the toolchain failed (apt/dnf)`, tail);
    case 6:
      return new LabError('build-failed', `${target}: building bpf/ or client/ failed`, tail);
    case 7:
      return new LabError('build-failed', `${target}: provision/setup.sh must run as root`, tail);
    default:
      return new LabError('build-failed', `${target}: provision/setup.sh failed (exit ${code})`, tail);
  }
}

interface SnapshotLookup {
  /** Snapshots in use for this target (provisioning on, a local box). */
  snapshots: boolean;
  store: SnapshotStore;
  /** sourcesHash() of the repository ('' without provisioning). */
  sources: string;
  key: string;
  snap: SnapshotRecord | null;
}

export class VagrantLease implements Lease {
  machine!: SshMachine;
  facts!: VagrantFacts;
  hints?: string[];
  private ctl!: VagrantMachineCtl;
  private port: PortReservation | null = null;
  private stopping: Promise<void> | null = null;
  private unregister: (() => void) | null = null;
  private created = false;
  readonly domain: string;
  private readonly dotfilePath: string;
  private readonly log: string;

  constructor(
    private readonly b: LeaseHost,
    private readonly t: TargetSpec,
    private readonly ctx: BackendContext,
    private readonly host: HostState,
  ) {
    this.domain = domainName(b.prefix, t.name);
    this.dotfilePath = join(ctx.runDir, 'vagrant');
    this.log = join(ctx.runDir, 'vagrant.log');
  }

  private env: NodeJS.ProcessEnv = {};

  private get emit(): Emit {
    return this.ctx.emit;
  }

  async start(): Promise<void> {
    const { t, ctx } = this;
    this.unregister = onCleanup(() => this.stop());
    const base = this.b.vagrantBase(this.dotfilePath, { logFile: this.log, signal: ctx.signal });
    const { src, box, boxVersion } = await this.ensureBox(base);
    const found = await this.findSnapshot(base, src, box, boxVersion);
    const { snap } = found;
    const useBox = snap ? snap.box : box;
    const useVersion = snap ? snap.version : boxVersion;

    this.port = await reservePort();
    this.configure(useBox, useVersion);
    const t0 = performance.now();
    await this.up(useBox, useVersion);
    this.machine = await this.ssh(src?.hostKey ?? null);
    const upMs = performance.now() - t0;
    const kernel = (await this.machine.exec(['uname', '-r'], { timeoutMs: 30_000, cwd: '/' })).stdout.trim();
    this.facts = {
      kernel,
      accel: this.host.accel,
      image: t.suite ?? box,
      box: useBox,
      boxVersion: useVersion,
      snapshot: found.snapshots ? (snap ? 'restored' : 'saved') : 'off',
      domain: this.domain,
      sshPort: this.port.port,
      upMs: Math.round(upMs),
      provider: 'libvirt',
      baseBox: box,
      baseBoxVersion: boxVersion,
    };

    if (!snap && this.b.provision) await this.provisionAndSave(found, src, box, boxVersion);
    // bpf/ and client/ of these sources are built in GUEST_WORKDIR (provisioned or restored):
    // the scenario may skip its own upload + build when the hash matches.
    if (this.b.provision && this.facts.snapshot !== 'failed') this.facts.sourcesHash = found.sources;
    if (ctx.keep) this.hints = this.keepHints();
  }

  /** The box: a local one from the suite's image (added when missing), or a public one by name. */
  private async ensureBox(base: VagrantEnvBase): Promise<{ src: BoxSource | null; box: string; boxVersion: string }> {
    const { t, ctx } = this;
    if (t.box) return { src: null, box: t.box, boxVersion: '' };
    if (!t.suite) throw new LabError('config', `target '${t.name}' (backend vagrant) needs a suite or a box`);
    const suite = parseSuite(t.suite);
    const image = await ensureImage(suite, { cacheDir: ctx.cacheDir, emit: this.emit, signal: ctx.signal, target: t.name });
    const box = localBoxName(suite);
    const boxVersion = boxVersionFromDate(image.manifest.builtAt);
    const src: BoxSource = {
      name: box,
      version: boxVersion,
      disk: image.paths.disk,
      kernel: image.paths.kernel,
      initrd: image.paths.initrd,
      cmdline: kernelCmdline(),
      user: 'root',
      keyPath: image.keyPath,
      hostKey: image.manifest.hostKey,
    };
    await step(
      this.emit,
      t.name,
      'box',
      () => ensureLocalBox({ ...base, boxesDir: join(ctx.cacheDir, 'vagrant', 'boxes'), pool: this.host.pool }, src),
      `${box} ${boxVersion}`,
    );
    return { src, box, boxVersion };
  }

  /** A build snapshot of this target with the same box and sources? */
  private async findSnapshot(base: VagrantEnvBase, src: BoxSource | null, box: string, boxVersion: string): Promise<SnapshotLookup> {
    const name = this.t.name;
    const provision = this.b.provision;
    const snapshots = provision && this.b.snapshots && src !== null;
    const store = new SnapshotStore({ dir: join(this.ctx.cacheDir, 'vagrant', 'snapshots'), pool: this.host.pool, v: base });
    const sources = provision ? await sourcesHash(this.b.repoRoot) : '';
    const key = snapshots ? snapshotKey({ sources, box, boxVersion }) : '';
    const snap = snapshots ? await store.find(name, key) : null;
    if (snap)
      this.emit({ type: 'info', target: name, message: `restoring the build snapshot ${snap.box} ${snap.version} (saved ${snap.savedAt}; sources unchanged)` });
    return { snapshots, store, sources, key, snap };
  }

  /** This lease's Vagrant environment (one target on the reserved port) and its command runner. */
  private configure(useBox: string, useVersion: string): void {
    const { t, ctx, host } = this;
    const env = (this.env = vagrantEnv(this.b.env, {
      repoRoot: this.b.repoRoot,
      vagrantHome: this.b.vagrantHome,
      dotfilePath: this.dotfilePath,
      targets: [
        targetEntry(t, { box: useBox, ...(useVersion ? { boxVersion: useVersion } : {}), sshPort: this.port!.port, console: join(ctx.runDir, 'console.log') }),
      ],
      sandboxed: this.b.sandboxed,
      driver: host.driver,
      pool: host.pool,
      prefix: this.b.prefix,
      bootTimeoutS: Math.round(this.bootTimeoutMs() / 1000),
    }));
    this.ctl = new VagrantMachineCtl(t.name, { cwd: this.b.repoRoot, env, logFile: this.log, signal: ctx.signal });
  }

  private async upFailed(r: VagrantRunResult | null, state: string, why?: unknown): Promise<never> {
    const e = r ? vagrantError(r.timedOut ? 'boot-timeout' : 'boot-failed', `vagrant up ${this.t.name}: state ${state}`, r) : asLabError(why, 'boot-failed');
    throw Object.assign(
      new LabError(e.kind, e.message, [e.detail, await consoleTail(join(this.ctx.runDir, 'console.log'))].filter(Boolean).join('\n--- console\n')),
      { logFile: this.log },
    );
  }

  private async up(useBox: string, useVersion: string): Promise<void> {
    await step(
      this.emit,
      this.t.name,
      'vagrant-up',
      async () => {
        await this.port!.handOff();
        this.created = true;
        const r = await this.b.gate(useBox, useVersion, this.host.pool, () => this.ctl.up(['--provider', 'libvirt', '--no-provision'], this.bootTimeoutMs()));
        // node-vagrant alone would call a silent failure a success: the exit code here, the state
        // from `vagrant status --machine-readable` below.
        if (r.code !== 0) await this.upFailed(r, await this.ctl.status().catch(() => 'unknown'));
      },
      `${useBox} ${useVersion}`.trim(),
    );
  }

  private ssh(pinned: string | null): Promise<SshMachine> {
    const name = this.t.name;
    return step(this.emit, name, 'ssh', async () => {
      const sc = await this.ctl.sshConfig().catch(async (err) => this.upFailed(null, await this.ctl.status().catch(() => 'unknown'), err));
      // The state check and the SSH handshake overlap: one is vagrant, the other ssh2.
      const [state, m] = await Promise.allSettled([this.ctl.status(), this.connect(sc, pinned)]);
      if (state.status === 'fulfilled' && state.value === 'running' && m.status === 'fulfilled') return m.value;
      if (m.status === 'fulfilled') await m.value.close();
      if (state.status === 'fulfilled' && state.value !== 'running')
        return this.upFailed(null, state.value, new LabError('boot-failed', `vagrant up ${name} exited 0 but the machine is ${state.value}`));
      throw state.status === 'rejected' ? state.reason : (m as PromiseRejectedResult).reason;
    });
  }

  /** Provision + build after a fresh up; then save the build snapshot (a failure there is a warning). */
  private async provisionAndSave(found: SnapshotLookup, src: BoxSource | null, box: string, boxVersion: string): Promise<void> {
    const name = this.t.name;
    const p0 = performance.now();
    await step(this.emit, name, 'provision', () => this.provision());
    this.facts.provisionMs = Math.round(performance.now() - p0);
    if (!found.snapshots || !src) return;
    const s0 = performance.now();
    try {
      await step(this.emit, name, 'snapshot-save', () =>
        found.store.save({ target: name, key: found.key, ctl: this.ctl, domain: this.domain, base: src, baseBox: box, baseVersion: boxVersion }),
      );
      this.facts.snapshotMs = Math.round(performance.now() - s0);
    } catch (err) {
      // A run does not fail because its snapshot could not be kept; the next run rebuilds.
      this.facts.snapshot = 'failed';
      this.emit({ type: 'warn', target: name, message: `build snapshot not saved: ${asLabError(err).message}` });
    }
  }

  private bootTimeoutMs(): number {
    return this.ctx.bootTimeoutMs ?? (this.host.accel === 'kvm' ? 5 * 60_000 : 15 * 60_000);
  }

  /** ssh2 with ssh-config's host, port, user and key; host key pinned (local) or recorded. */
  private async connect(sc: SshConfigEntry, pinned: string | null): Promise<SshMachine> {
    const keyFile = sc.identityFiles[0];
    if (!keyFile) throw new LabError('boot-failed', `${this.t.name}: vagrant ssh-config names no IdentityFile`);
    const privateKey = await readFile(keyFile);
    let hostKey = pinned;
    if (!hostKey) {
      // Public boxes: the host key is generated on the box's first boot; record it on first
      // connect (trust on first use) and pin it for the rest of the run.
      hostKey = await hostKeyOf(sc.hostName, sc.port, 60_000);
      this.emit({ type: 'info', target: this.t.name, message: `recorded SSH host key on first connect: ${hostKey.slice(0, 40)}...` });
    }
    let m = await SshMachine.connect({
      target: this.t.name,
      workdir: GUEST_WORKDIR,
      host: sc.hostName,
      port: sc.port,
      username: sc.user,
      privateKey,
      hostKey,
      deadlineMs: 120_000,
      signal: this.ctx.signal,
    });
    if (sc.user !== 'root') m = await this.becomeRoot(m, sc.hostName, sc.port, privateKey, hostKey);
    await m.exec(['mkdir', '-p', GUEST_WORKDIR], { timeoutMs: 30_000, cwd: '/' });
    return m;
  }

  /** Public boxes log in as vagrant; the tracer needs root: authorise the same key for root. */
  private async becomeRoot(m: SshMachine, host: string, port: number, privateKey: Buffer, hostKey: string): Promise<SshMachine> {
    const r = await m.exec(
      [
        'sudo',
        '-n',
        'sh',
        '-c',
        'mkdir -p /root/.ssh && chmod 700 /root/.ssh && cat "$HOME/.ssh/authorized_keys" >> /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys',
      ],
      { timeoutMs: 60_000, cwd: '/' },
    );
    await m.close();
    if (r.code !== 0) throw new LabError('boot-failed', `${this.t.name}: cannot authorise the key for root (sudo -n failed)`, r.stderr);
    return SshMachine.connect({
      target: this.t.name,
      workdir: GUEST_WORKDIR,
      host,
      port,
      username: 'root',
      privateKey,
      hostKey,
      deadlineMs: 60_000,
      signal: this.ctx.signal,
    });
  }

  /** Upload bpf/, client/, provision/ and run provision/setup.sh (packages, BTF check, build). */
  private async provision(): Promise<void> {
    const m = this.machine;
    await uploadSources(m, this.b.repoRoot, 10 * 60_000);
    const r = await m.exec(['sh', `${GUEST_WORKDIR}/provision/setup.sh`, '--workdir', GUEST_WORKDIR], { timeoutMs: 30 * 60_000, cwd: GUEST_WORKDIR });
    const out = `${r.stdout}${r.stderr}`;
    await appendFile(join(this.ctx.runDir, 'provision.log'), out);
    if (r.timedOut) throw new LabError('build-failed', `${this.t.name}: provision/setup.sh timed out`, out.slice(-3000));
    if (r.code !== 0) throw Object.assign(provisionFailure(r.code, this.t.name, out), { logFile: join(this.ctx.runDir, 'provision.log') });
    await m.exec(['sync'], { timeoutMs: 60_000, cwd: '/' });
  }

  private keepHints(): string[] {
    const e = this.env;
    const vars = [
      'VAGRANT_HOME',
      'VAGRANT_DOTFILE_PATH',
      'USM_LAB_VAGRANT_TARGETS',
      'USM_LAB_SANDBOXED',
      'USM_LAB_LIBVIRT_DRIVER',
      'USM_LAB_POOL',
      'USM_LAB_PREFIX',
    ]
      .map((k) => `${k}=${shellQuote(e[k] ?? '')}`)
      .join(' ');
    return [
      `${this.t.name}: ssh -p ${this.port?.port} root@127.0.0.1, or: cd ${this.b.repoRoot} && ${vars} vagrant ssh ${this.t.name}`,
      `${this.t.name}: when done: the same variables + vagrant destroy -f ${this.t.name}`,
    ];
  }

  /** vagrant destroy -f, checked with status and virsh; then free the port. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    try {
      await this.machine?.close().catch(() => {});
      if (this.ctx.keep && this.machine) return;
      if (!this.created || !this.ctl) return;
      await step(this.emit, this.t.name, 'vagrant-destroy', async () => {
        // Wait for anything queued (an up being interrupted) before destroying.
        await this.ctl.queue.idle();
        const r = await this.ctl.destroy(5 * 60_000);
        const state = await this.ctl.status().catch(() => 'unknown');
        // Belt and braces: whatever vagrant says, no domain or overlay of this lease stays.
        if ((await listDomains().catch(() => [] as string[])).includes(this.domain)) {
          await virsh(['destroy', this.domain], 60_000);
          await virsh(['undefine', this.domain, '--snapshots-metadata', '--remove-all-storage'], 60_000);
        }
        if ((await listVolumes(this.host.pool)).includes(`${this.domain}.img`)) await deleteVolume(this.host.pool, `${this.domain}.img`);
        if (r.code !== 0 || state !== 'not_created') {
          this.emit({
            type: 'warn',
            target: this.t.name,
            message: `vagrant destroy ${this.t.name}: exit ${r.code}, state ${state}; removed the domain with virsh instead`,
          });
        }
      });
    } finally {
      this.port?.release();
      this.unregister?.();
      this.b.forget(this);
    }
  }
}

async function consoleTail(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').slice(-25).join('\n');
}
