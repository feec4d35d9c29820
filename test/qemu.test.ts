// The qemu backend: argv builders (tables), port allocation, and one end-to-end boot of the
// bookworm image (build it when not cached) through QemuBackend. Under CI=true the end-to-end
// test FAILS with its reason when it cannot run; elsewhere it skips with the reason.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netdevArg, overlayArgs, qemuPath, vmArgs, type VmArgs } from '../src/backends/qemu/args.ts';
import { accelArgs, floorArgs } from '../src/backends/shared/accel.ts';
import { kernelCmdline } from '../src/backends/shared/cmdline.ts';
import { QemuBackend, Vm, runningVms, stopAllVms } from '../src/backends/qemu/index.ts';
import { consoleTail } from '../src/backends/qemu/vm.ts';
import { reservePort, reservedPorts } from '../src/backends/shared/ports.ts';
import type { Lease } from '../src/backends/types.ts';
import { LabError } from '../src/errors.ts';
import { checkImage, imagePaths, resolveCacheRoot } from '../src/images/manifest.ts';
import { recipeFor, recipeHash } from '../src/images/recipe.ts';
import type { ProgressEvent } from '../src/progress/events.ts';
import { inCI } from './helpers/requirements.ts';

const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8', timeout: 5_000 }).status === 0 || existsSync(`/usr/sbin/${bin}`);

const base: VmArgs = {
  accel: 'tcg',
  cpus: 1,
  memoryMiB: 1024,
  kernel: '/c/vmlinuz',
  initrd: '/c/initrd.img',
  append: kernelCmdline(),
  overlay: '/r/ov.qcow2',
  sshPort: 40022,
  consoleLog: '/r/console.log',
  qmpSocket: '/r/qmp.sock',
  pidFile: '/r/qemu.pid',
};

describe('QEMU argv builders', () => {
  it('builds the whole command line for a TCG guest', () => {
    expect(vmArgs(base)).toEqual([
      '-accel',
      'tcg',
      '-cpu',
      'max',
      '-smp',
      '1',
      '-m',
      '1024',
      '-nodefaults',
      '-display',
      'none',
      '-kernel',
      '/c/vmlinuz',
      '-initrd',
      '/c/initrd.img',
      '-append',
      'root=/dev/vda rw console=ttyS0 net.ifnames=0 random.trust_cpu=on panic=-1',
      '-drive',
      'file=/r/ov.qcow2,if=virtio,format=qcow2,cache=unsafe',
      '-netdev',
      'user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22',
      '-device',
      'virtio-net-pci,netdev=n0',
      '-device',
      'virtio-rng-pci',
      '-serial',
      'file:/r/console.log',
      '-qmp',
      'unix:/r/qmp.sock,server=on,wait=off',
      '-no-reboot',
      '-pidfile',
      '/r/qemu.pid',
    ]);
  });

  const after = (argv: string[], flag: string) => argv[argv.indexOf(flag) + 1];
  it.each([
    [{ accel: 'kvm' as const }, '-accel', 'kvm'],
    [{ accel: 'kvm' as const }, '-cpu', 'host'],
    [{ accel: 'tcg' as const }, '-cpu', 'max'],
    [{ cpus: 2 }, '-smp', '2'],
    [{ memoryMiB: 2048 }, '-m', '2048'],
    [{ sshPort: 2222 }, '-netdev', 'user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22'],
    [{ overlay: '/runs/a,b/ov.qcow2' }, '-drive', 'file=/runs/a,,b/ov.qcow2,if=virtio,format=qcow2,cache=unsafe'],
    [{ append: kernelCmdline(['init=/bin/sh']) }, '-append', 'root=/dev/vda rw console=ttyS0 net.ifnames=0 random.trust_cpu=on panic=-1 init=/bin/sh'],
  ])('%j sets %s %s', (over, flag, want) => {
    expect(after(vmArgs({ ...base, ...over }), flag)).toBe(want);
  });

  it.each([
    [{ sshPort: 0 }, /bad ssh port/],
    [{ sshPort: 70000 }, /bad ssh port/],
    [{ cpus: 0 }, /bad VM size/],
    [{ memoryMiB: 64 }, /bad VM size/],
  ])('rejects %j', (over, re) => {
    expect(() => vmArgs({ ...base, ...over })).toThrow(re);
  });

  it('never forwards anything but 127.0.0.1 and always restricts the guest', () => {
    for (const port of [1, 22, 65535]) expect(netdevArg(port)).toMatch(/^user,id=n0,restrict=on,hostfwd=tcp:127\.0\.0\.1:\d+-:22$/);
  });

  it('accel, floor, overlay and path helpers', () => {
    expect(accelArgs('kvm')).toEqual(['-accel', 'kvm', '-cpu', 'host']);
    expect(accelArgs('tcg')).toEqual(['-accel', 'tcg', '-cpu', 'max']);
    const f = floorArgs({ accel: 'tcg', kernel: '/k', initrd: '/i', consoleLog: '/c' });
    expect(f).toContain('-no-reboot');
    expect(f).not.toContain('-drive');
    expect(f).not.toContain('-netdev');
    expect(f[f.indexOf('-append') + 1]).toMatch(/rdinit=\/init/);
    expect(overlayArgs('/base.qcow2', '/ov.qcow2')).toEqual(['create', '-q', '-f', 'qcow2', '-b', '/base.qcow2', '-F', 'qcow2', '/ov.qcow2']);
    expect(qemuPath('a,b,,c')).toBe('a,,b,,,,c');
  });
});

describe('console tail (what a boot failure shows)', () => {
  const trace = Array.from({ length: 60 }, (_, i) => `[    5.2${i}] ? frame_${i}+0x1/0x2`);
  it('after a kernel panic: the lines that end at the panic, so the cause is not pushed out by the stack dump', () => {
    const log = ['[    1.0] booting', 'initrd: /sbin/no-such-init is missing', '[    5.1] Kernel panic - not syncing: Attempted to kill init!', ...trace].join(
      '\n',
    );
    const t = consoleTail(log, 2);
    expect(t.split('\n')).toEqual([
      'initrd: /sbin/no-such-init is missing',
      '[    5.1] Kernel panic - not syncing: Attempted to kill init!',
      "(60 more lines of the panic's trace in console.log)",
    ]);
  });
  it('without a panic: the last lines', () => {
    expect(consoleTail(['a', 'b', 'c', 'd'].join('\n'), 2)).toBe('c\nd');
    expect(consoleTail('x\nKernel panic - y', 5)).toBe('x\nKernel panic - y');
  });
});

describe('port allocation on 127.0.0.1', () => {
  it('hands out distinct ports to parallel reservations and frees them for QEMU', async () => {
    const rs = await Promise.all(Array.from({ length: 24 }, () => reservePort()));
    const ports = rs.map((r) => r.port);
    expect(new Set(ports).size).toBe(ports.length);
    for (const p of ports) expect(reservedPorts()).toContain(p);
    // After handOff the port is bindable (QEMU can take it) but stays reserved in this process.
    await rs[0]!.handOff();
    const srv = createServer();
    await new Promise<void>((res, rej) => srv.once('error', rej).listen(ports[0], '127.0.0.1', () => res()));
    await new Promise<void>((res) => srv.close(() => res()));
    expect(reservedPorts()).toContain(ports[0]);
    for (const r of rs) r.release();
    for (const p of ports) expect(reservedPorts()).not.toContain(p);
  }, 15_000);
});

// ---------- the VM process, with a fake qemu-system (a shell script) ----------

const FAKE_QEMU = `#!/bin/sh
# Fake qemu-system-x86_64: first call fails like a taken port, later calls write the pid file,
# put $FAKE_CONSOLE on the console and sleep.
while [ $# -gt 0 ]; do
  case "$1" in -pidfile) pid=$2; shift ;; -serial) con=\${2#file:}; shift ;; esac
  shift
done
n=$(cat "$FAKE_STATE" 2>/dev/null || echo 0)
echo $((n + 1)) >"$FAKE_STATE"
if [ "$n" = 0 ]; then echo "qemu: Could not set up host forwarding rule" >&2; exit 1; fi
echo $$ >"$pid"
printf '%s\\n' "$FAKE_CONSOLE" >"$con"
exec sleep 60
`;

const haveQemuImg = has('qemu-img');

// Needs qemu-img for the overlay: outside CI its absence skips with the reason; in CI it fails.
describe.skipIf(!haveQemuImg && !inCI)(`Vm process handling (fake QEMU)${haveQemuImg ? '' : ' (skipped: no qemu-img)'}`, () => {
  it('requirements: qemu-img', () => {
    expect(haveQemuImg, 'the fake-QEMU tests need qemu-img (apt-get install qemu-utils)').toBe(true);
  });
  const dir = mkdtempSync(join(tmpdir(), 'fake-qemu-'));
  const fake = join(dir, 'qemu');
  const baseImg = join(dir, 'base.qcow2');
  writeFileSync(fake, FAKE_QEMU, { mode: 0o755 });
  spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', baseImg, '16M'], { timeout: 10_000 });
  const spec = (name: string) => ({
    name,
    accel: 'tcg' as const,
    cpus: 1,
    memoryMiB: 256,
    kernel: '/k',
    initrd: '/i',
    base: baseImg,
    append: kernelCmdline(),
    runDir: join(dir, name),
    keep: false,
    qemu: fake,
  });

  afterAll(async () => {
    await stopAllVms();
    await rm(dir, { recursive: true, force: true });
  });

  it.runIf(haveQemuImg)(
    'retries with a new port when the forward cannot bind, stops by pid, removes the overlay',
    async () => {
      process.env.FAKE_STATE = join(dir, 'state-retry');
      process.env.FAKE_CONSOLE = 'lab-init: sshd started';
      await mkdir(join(dir, 'retry'), { recursive: true });
      const vm = new Vm(spec('retry'));
      await vm.start();
      expect(readFileSync(process.env.FAKE_STATE, 'utf8').trim()).toBe('2');
      expect(vm.running).toBe(true);
      expect(existsSync(vm.overlay)).toBe(true);
      expect(await vm.waitConsole(/sshd started/, 5_000)).toBe(true);
      expect(runningVms()).toContain(vm);
      const pid = vm.pid;
      await vm.stop(500);
      await vm.stop(500);
      expect(existsSync(`/proc/${pid}`)).toBe(false);
      expect(existsSync(vm.overlay)).toBe(false);
      expect(runningVms()).not.toContain(vm);
    },
    30_000,
  );

  it.runIf(haveQemuImg)(
    'notices a kernel panic on the console',
    async () => {
      process.env.FAKE_STATE = join(dir, 'state-panic');
      writeFileSync(process.env.FAKE_STATE, '1');
      process.env.FAKE_CONSOLE = 'Kernel panic - not syncing: VFS: Unable to mount root fs';
      await mkdir(join(dir, 'panic'), { recursive: true });
      const vm = new Vm(spec('panic'));
      await vm.start();
      const why = await new Promise<string>((res) => vm.onFailure(res));
      expect(why).toBe('kernel panic');
      expect(await vm.waitConsole(/never printed/, 5_000)).toBe(false);
      expect(await vm.consoleTail()).toMatch(/Unable to mount root fs/);
      await vm.stop(500);
      expect(runningVms()).toHaveLength(0);
    },
    30_000,
  );
});

// ---------- end to end ----------

const cacheDir = resolveCacheRoot();

async function missingForQemuE2e(): Promise<string | null> {
  if (process.platform !== 'linux') return 'needs Linux';
  for (const b of ['qemu-system-x86_64', 'qemu-img']) if (!has(b)) return `needs ${b} (provision/host-deps-images.txt)`;
  const cached = await checkImage(imagePaths(cacheDir, 'bookworm'), {
    recipeHash: recipeHash(recipeFor('bookworm')),
    clientKey: readFileOr(join(cacheDir, 'images/id_ed25519.pub')),
    verifyChecksum: false,
  });
  if (!cached.ok) {
    if (process.getuid?.() !== 0) return `the bookworm image is not cached (${cached.reason}) and building it needs root`;
    if (!has('debootstrap')) return 'the bookworm image is not cached and debootstrap is missing (provision/host-deps-images.txt)';
  }
  return null;
}

function readFileOr(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

const missing = await missingForQemuE2e();

describe.skipIf(missing !== null && !inCI)(`qemu end to end (bookworm)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  const runDir = mkdtempSync(join(tmpdir(), 'qemu-e2e-'));
  const events: ProgressEvent[] = [];
  const ctx = (dir: string) => ({ runDir: dir, emit: (e: ProgressEvent) => events.push(e), signal: new AbortController().signal, keep: false, cacheDir });

  afterAll(async () => {
    await stopAllVms();
    await rm(runDir, { recursive: true, force: true });
  }, 60_000);

  it('requirements: qemu, and the image (or root + debootstrap to build it)', () => {
    expect(missing, `the qemu end-to-end test cannot run here: ${missing}`).toBeNull();
  });

  it.runIf(missing === null)(
    'builds or reuses the image, boots it, runs commands over SSH, copies files, stops cleanly',
    async () => {
      const backend = new QemuBackend();
      let lease: Lease | undefined;
      try {
        lease = await backend.up({ name: 'bookworm', backend: 'qemu', suite: 'bookworm' }, ctx(runDir));
        const pid = Number(readFileSync(join(runDir, 'qemu.pid'), 'utf8'));
        expect(pid).toBeGreaterThan(1);
        expect(existsSync(`/proc/${pid}`)).toBe(true);
        expect(['tcg', 'kvm']).toContain(lease.facts.accel);

        const m = lease.machine;
        const uname = await m.exec(['uname', '-r'], { timeoutMs: 30_000 });
        expect(uname.code).toBe(0);
        expect(uname.stdout.trim()).toMatch(/^6\.1\.\d+.*cloud-amd64$/);
        expect(lease.facts.kernel).toBe(uname.stdout.trim());
        const env = await m.exec(['sh', '-c', 'hostname; umask; ip -4 -o addr show eth0; mount'], { timeoutMs: 30_000 });
        expect(env.stdout).toMatch(/^lab-bookworm\n0022\n.*inet 10\.0\.2\.15\/24/);
        for (const fs of ['proc', 'sysfs', 'devtmpfs', 'devpts', 'tracefs', 'debugfs', 'bpf', 'cgroup2']) expect(env.stdout).toContain(` type ${fs} `);
        const ssl = await m.exec(['python3', '-c', 'import ssl; print(ssl.OPENSSL_VERSION)'], { timeoutMs: 60_000 });
        expect(ssl.code, ssl.stderr).toBe(0);
        expect(ssl.stdout).toMatch(/^OpenSSL 3\.0\./);

        const local = join(runDir, 'hello.txt');
        writeFileSync(local, 'hello from the host\n');
        await m.put(local, '/tmp/lab-e2e/hello.txt', { timeoutMs: 60_000 });
        const cat = await m.exec(['cat', 'hello.txt'], { timeoutMs: 30_000, cwd: '/tmp/lab-e2e' });
        expect(cat.stdout).toBe('hello from the host\n');
        await m.exec(['sh', '-c', 'uname -r > /tmp/lab-e2e/kernel.txt'], { timeoutMs: 30_000 });
        await m.get('/tmp/lab-e2e/kernel.txt', join(runDir, 'back/kernel.txt'), { timeoutMs: 60_000 });
        expect(readFileSync(join(runDir, 'back/kernel.txt'), 'utf8').trim()).toBe(uname.stdout.trim());

        await lease.stop();
        await lease.stop(); // idempotent
        expect(existsSync(`/proc/${pid}`), `qemu pid ${pid} still exists after stop()`).toBe(false);
        expect(existsSync(join(runDir, 'bookworm-overlay.qcow2'))).toBe(false);
        expect(runningVms()).toHaveLength(0);
        const steps = events.filter((e) => e.type === 'step-end').map((e) => (e as { step: string }).step);
        expect(steps).toEqual(expect.arrayContaining(['image-check', 'accel', 'qemu-start', 'ssh-wait']));
      } finally {
        await lease?.stop();
      }
    },
    25 * 60_000,
  );

  it.runIf(missing === null)(
    'fails fast with boot-failed and the console tail when the guest cannot boot',
    async () => {
      const dir = join(runDir, 'bad');
      const t0 = Date.now();
      const err = await new QemuBackend({ append: ['init=/sbin/no-such-init'] })
        .up({ name: 'bad', backend: 'qemu', suite: 'bookworm' }, ctx(dir))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LabError);
      expect((err as LabError).kind).toBe('boot-failed');
      expect((err as LabError).detail).toMatch(/no-such-init is missing/);
      expect(Date.now() - t0).toBeLessThan(90_000);
      expect(runningVms()).toHaveLength(0);
    },
    10 * 60_000,
  );
});
