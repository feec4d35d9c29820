// scripts/images.mjs: parse flags strictly, call the image functions, map the outcome to an
// exit code (0 ok, 2 usage error, 3 infrastructure failure, 130 interrupted).
import { parseArgs } from 'node:util';
import { ConfigError, LabError, asLabError } from '../errors.ts';
import type { Emit } from '../progress/events.ts';
import { SUITES, type Suite } from '../domain.ts';
import { cleanImages, ensureImage, listImages, parseSuite, resolveCacheRoot } from './index.ts';

export const COMMANDS = ['list', 'build', 'clean'] as const;
type Command = (typeof COMMANDS)[number];

export const IMAGES_HELP = `Usage: npx zx scripts/images.mjs <command> [flags]

Debian images for the qemu backend (debootstrap minbase, cloud kernel, tiny init), cached in
CACHE/images (CACHE: --cache DIR, else $USM_LAB_CACHE, else ~/.cache/usm-race-lab).

Commands:
  list                       what is cached: suite, kernel, OpenSSL, clang, libbpf, bpftool, size
  build --suite S [--rebuild] build S unless a valid image for the current recipe is cached (root)
  clean [--suite S]          remove cached images (all suites without --suite)

Flags:
  --suite S     ${SUITES.join(' | ')}  (build: also a comma-separated list, or "all")
  --rebuild     build even when the cached image is current
  --cache DIR   cache root
  -h, --help    this text
`;

export interface ImagesFlags {
  command: Command | 'help';
  suites: Suite[];
  rebuild: boolean;
  cache?: string;
}

export function parseImagesFlags(argv: readonly string[]): ImagesFlags {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        suite: { type: 'string' },
        rebuild: { type: 'boolean', default: false },
        cache: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    const msg = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new ConfigError(`${msg} (allowed flags: --suite, --rebuild, --cache, --help)`);
  }
  const { values, positionals } = parsed;
  if (values.help) return { command: 'help', suites: [], rebuild: false };
  if (positionals.length !== 1)
    throw new ConfigError(`expected one command (allowed: ${COMMANDS.join(', ')}), got ${positionals.length ? positionals.join(' ') : 'none'}`);
  const command = positionals[0]!;
  if (!(COMMANDS as readonly string[]).includes(command)) throw new ConfigError(`unknown command '${command}' (allowed: ${COMMANDS.join(', ')})`);
  let suites: Suite[] = [];
  if (values.suite !== undefined) suites = values.suite === 'all' ? [...SUITES] : values.suite.split(',').map((s) => parseSuite(s.trim()));
  if (command === 'build' && suites.length === 0) throw new ConfigError(`build needs --suite (allowed: ${SUITES.join(', ')}, or all)`);
  if (command === 'clean' && suites.length > 1) throw new ConfigError('clean takes one --suite (or none for all)');
  if (command === 'list' && (values.suite !== undefined || values.rebuild)) throw new ConfigError('list takes no --suite or --rebuild');
  if (command !== 'build' && values.rebuild) throw new ConfigError('--rebuild only applies to build');
  return { command: command as Command, suites, rebuild: values.rebuild, ...(values.cache ? { cache: values.cache } : {}) };
}

const fmtBytes = (n: number) => (n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)} GiB` : `${(n / 1024 ** 2).toFixed(0)} MiB`);
/** "1:14.0-55.7~deb12u1" -> "14.0" */
const upstream = (v: string | undefined) => (v ?? '?').replace(/^\d+:/, '').replace(/[-+~].*$/, '');

export function formatList(rows: Awaited<ReturnType<typeof listImages>>, cacheRoot: string): string {
  if (!rows.length) return `no images cached in ${cacheRoot}/images\n`;
  const head = ['suite', 'kernel', 'openssl', 'clang', 'libbpf', 'bpftool', 'size', 'built', 'state'];
  const body = rows.map((r) => {
    const m = r.manifest;
    return [
      r.suite,
      m?.kernel ?? '?',
      upstream(m?.versions.openssl),
      upstream(m?.versions.clang),
      upstream(m?.versions.libbpf),
      upstream(m?.versions.bpftool),
      fmtBytes(r.bytes),
      m ? m.builtAt.slice(0, 16).replace('T', ' ') : '-',
      r.problem ? 'corrupt manifest' : !m ? 'incomplete' : r.current ? 'current' : 'stale recipe',
    ];
  });
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(w[i]!))
      .join('  ')
      .trimEnd();
  return [line(head), ...body.map(line)].join('\n') + `\n(cache: ${cacheRoot}/images)\n`;
}

export interface ImagesEnv {
  argv: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  emit: Emit;
  signal: AbortSignal;
}

export async function imagesMain(e: ImagesEnv): Promise<number> {
  let flags: ImagesFlags;
  try {
    flags = parseImagesFlags(e.argv);
  } catch (err) {
    e.stderr.write(`images: ${(err as Error).message}\n\n${IMAGES_HELP}`);
    return 2;
  }
  if (flags.command === 'help') {
    e.stdout.write(IMAGES_HELP);
    return 0;
  }
  const cacheDir = resolveCacheRoot({ ...(flags.cache ? { flag: flags.cache } : {}), env: e.env, cwd: e.cwd });
  try {
    switch (flags.command) {
      case 'list':
        e.stdout.write(formatList(await listImages(cacheDir), cacheDir));
        return 0;
      case 'clean': {
        const removed = await cleanImages(cacheDir, flags.suites[0]);
        e.stdout.write(removed.length ? removed.map((r) => `removed ${r}\n`).join('') : 'nothing to remove\n');
        return 0;
      }
      case 'build':
        for (const suite of flags.suites) {
          const img = await ensureImage(suite, { cacheDir, emit: e.emit, signal: e.signal, rebuild: flags.rebuild, env: e.env });
          const m = img.manifest;
          e.stdout.write(
            `${suite}: ${img.built ? `built in ${m.buildSeconds} s` : 'cached, current'}: kernel ${m.kernel}, OpenSSL ${upstream(m.versions.openssl)}, ${fmtBytes(m.size)} (${img.paths.dir})\n`,
          );
        }
        return 0;
    }
  } catch (err) {
    const le = e.signal.aborted ? new LabError('interrupted', 'interrupted') : asLabError(err);
    e.stderr.write(`images: ${le.kind}: ${le.message}\n${le.detail ? le.detail.replace(/^/gm, '  ') + '\n' : ''}`);
    return le.kind === 'interrupted' ? 130 : le.kind === 'config' ? 2 : 3;
  }
}
