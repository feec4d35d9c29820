// `npx zx scripts/images.mjs box --suite S`: make the local Vagrant box of a suite usable by hand
// (image built if needed, box added with its version, kernel/initrd in the storage pool, boot
// entry written), then print how to use it. Returns an exit code (0 ok, 2 usage, 3 failure,
// 130 interrupted).
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { ConfigError, asLabError } from '../../errors.ts';
import { SUITES, type Suite } from '../../domain.ts';
import { ensureImage, parseSuite, resolveCacheRoot } from '../../images/index.ts';
import { step, type Emit } from '../../progress/events.ts';
import { kernelCmdline } from '../shared/cmdline.ts';
import { boxVersionFromDate, ensureLocalBox, localBoxName } from './box.ts';
import { vagrantEnv } from './env.ts';
import { choosePoolDir, ensureDaemons, ensurePool, fixKvmPermissions } from './libvirt.ts';
import { POOL_NAME } from './index.ts';

export const BOX_HELP = `Usage: npx zx scripts/images.mjs box --suite S [--cache DIR]

Adds the Vagrant box usm-lab/S (libvirt, versioned from the image's build time) built from the
cached Debian image of suite S (built first if missing), puts its kernel and initrd into the
storage pool ${POOL_NAME}, and prints how to use it with the repository's Vagrantfile.
Starts virtlogd/libvirtd when they are not running and leaves them running (it says so).

Flags:
  --suite S     ${SUITES.join(' | ')} (or a comma-separated list, or "all")
  --cache DIR   cache root (default: $USM_LAB_CACHE, else ~/.cache/usm-race-lab)
  -h, --help    this text
`;

export function parseBoxFlags(argv: readonly string[]): { help: true } | { help: false; suites: Suite[]; cache?: string } {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: { suite: { type: 'string' }, cache: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
    });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message.replace(/\. To specify a positional argument.*$/s, '')} (allowed flags: --suite, --cache, --help)`);
  }
  const v = parsed.values;
  if (v.help) return { help: true };
  if (!v.suite) throw new ConfigError(`box needs --suite (allowed: ${SUITES.join(', ')}, or all)`);
  const suites = v.suite === 'all' ? [...SUITES] : v.suite.split(',').map((s) => parseSuite(s.trim()));
  return { help: false, suites, ...(v.cache ? { cache: v.cache } : {}) };
}

export async function boxMain(e: {
  argv: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  repoRoot: string;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  emit: Emit;
  signal: AbortSignal;
}): Promise<number> {
  try {
    const f = parseBoxFlags(e.argv);
    if (f.help) {
      e.stdout.write(BOX_HELP);
      return 0;
    }
    const cacheDir = resolveCacheRoot({ ...(f.cache ? { flag: f.cache } : {}), env: e.env, cwd: e.cwd });
    const vagrantHome = join(cacheDir, 'vagrant.d');
    const kvm = await fixKvmPermissions();
    if (kvm) e.emit({ type: 'info', target: 'box', message: kvm });
    const started = await ensureDaemons(join(cacheDir, 'vagrant'), e.emit, 'box');
    const chosen = await choosePoolDir(cacheDir);
    const pool = await ensurePool(POOL_NAME, chosen.dir);
    const env = vagrantEnv(e.env, {
      repoRoot: e.repoRoot,
      vagrantHome,
      dotfilePath: join(cacheDir, 'vagrant', 'dot'),
      targets: [],
      sandboxed: true,
      driver: 'qemu',
      pool: POOL_NAME,
      prefix: 'usm-lab-',
    });
    for (const suite of f.suites) {
      const image = await ensureImage(suite, { cacheDir, emit: e.emit, signal: e.signal, target: suite });
      const name = localBoxName(suite);
      const version = boxVersionFromDate(image.manifest.builtAt);
      const r = await step(
        e.emit,
        suite,
        'box',
        () =>
          ensureLocalBox(
            { vagrantHome, env, cwd: e.repoRoot, signal: e.signal, boxesDir: join(cacheDir, 'vagrant', 'boxes'), pool: POOL_NAME },
            {
              name,
              version,
              disk: image.paths.disk,
              kernel: image.paths.kernel,
              initrd: image.paths.initrd,
              cmdline: kernelCmdline(),
              user: 'root',
              keyPath: image.keyPath,
              hostKey: image.manifest.hostKey,
            },
          ),
        `${name} ${version}`,
      );
      e.stdout.write(`${name} ${version} (libvirt): ${r.added ? 'added' : 'already added'}; kernel ${image.manifest.kernel}\n`);
    }
    e.stdout.write(`\nstorage pool ${POOL_NAME}: ${pool.dir}${chosen.why ? ` (${chosen.why})` : ''}\n`);
    for (const d of started) e.stdout.write(`started ${d.name} (pid ${d.pid}); left running for vagrant; stop it with: kill ${d.pid}\n`);
    e.stdout.write(
      `\nBy hand (sandboxed: QEMU user network, SSH on 127.0.0.1):\n  cd ${e.repoRoot}\n  export VAGRANT_HOME=${vagrantHome}\n  vagrant up ${f.suites[0]} && vagrant ssh ${f.suites[0]}\n  vagrant destroy -f ${f.suites[0]}\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      e.stderr.write(`error: ${err.message}\n(see box --help)\n`);
      return 2;
    }
    const le = asLabError(err);
    e.stderr.write(`error: ${le.kind}: ${le.message}\n${le.detail ? `${le.detail}\n` : ''}`);
    return e.signal.aborted ? 130 : 3;
  }
}
