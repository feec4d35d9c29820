// Get a Machine ready for runs: upload the sources (remote machines), build bpf/ and client/
// with the machine's own toolchain, read its versions, and find the libssl the client uses.
import { createHash } from 'node:crypto';
import { readFile, writeFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../errors.ts';
import type { Machine } from '../machine/types.ts';
import { step, type Emit } from '../progress/events.ts';
import { sourcesHash, uploadSources } from '../sources.ts';
import type { Tools } from './run.ts';

export interface MachineFacts {
  kernel?: string;
  distro?: string;
  openssl?: string;
  clang?: string;
  gcc?: string;
  libbpf?: string;
  bpftool?: string;
  python?: string;
  btf?: string;
  kprobes?: string;
  libssl?: string;
  [k: string]: unknown;
}

export interface Prepared {
  tools: Tools;
  facts: MachineFacts;
}

export async function prepareMachine(opts: {
  machine: Machine;
  repoRoot: string;
  /** Host folder for this target's logs (build.log, facts.json). */
  logDir: string;
  emit: Emit;
  buildTimeoutMs: number;
  /** sourcesHash() of what the backend already built in the machine's workdir (vagrant snapshots). */
  builtSources?: string;
  /**
   * Keep the build output here (CACHE/builds), keyed by the sources and the guest's toolchain and
   * kernel: the next run of the same image and sources restores it instead of building again.
   */
  buildCacheDir?: string;
}): Promise<Prepared> {
  const { machine: m, emit, logDir } = opts;
  await mkdir(logDir, { recursive: true });
  const prebuilt = opts.builtSources !== undefined && m.workdir !== opts.repoRoot && opts.builtSources === (await sourcesHash(opts.repoRoot));
  if (prebuilt) emit({ type: 'info', target: m.target, message: 'bpf/ and client/ of these sources are already built in the guest: no upload, no build' });
  else await step(emit, m.target, 'upload', () => uploadSources(m, opts.repoRoot, opts.buildTimeoutMs));

  // A remote machine's build output, cached on the host by what it depends on: the sources and
  // the guest's packages, kernel release and kernel BTF (vmlinux.h is made from it).
  const cacheable = !prebuilt && opts.buildCacheDir !== undefined && m.workdir !== opts.repoRoot;
  let cacheFile: string | undefined;
  if (cacheable) {
    const id = await m.exec(['sh', '-c', '{ uname -r; dpkg-query -W 2>/dev/null; sha256sum /sys/kernel/btf/vmlinux 2>/dev/null; } | sha256sum'], {
      timeoutMs: 60_000,
    });
    const guest = id.code === 0 ? id.stdout.trim().split(/\s+/)[0] : '';
    if (guest && /^[0-9a-f]{64}$/.test(guest)) {
      const key = createHash('sha256')
        .update(`${await sourcesHash(opts.repoRoot)}\0${guest}`)
        .digest('hex')
        .slice(0, 32);
      cacheFile = join(opts.buildCacheDir!, `${key}.tar`);
    }
  }
  const restored =
    cacheFile !== undefined &&
    (await step(emit, m.target, 'build-cache', async () => {
      if (!(await stat(cacheFile!).catch(() => null))) return false;
      const remote = `/tmp/usm-lab-build-${process.pid}.tar`;
      await m.put(cacheFile!, remote, { timeoutMs: opts.buildTimeoutMs });
      const x = await m.exec(
        ['sh', '-c', 'tar -C "$1" -xf "$2" && rm -f "$2" && test -x "$1/bpf/build/usm_tls" && test -x "$1/client/build/race_client"', 'sh', m.workdir, remote],
        {
          timeoutMs: opts.buildTimeoutMs,
        },
      );
      if (x.code !== 0) {
        emit({ type: 'warn', target: m.target, message: `the cached build ${cacheFile} did not restore (${x.stderr.trim() || `exit ${x.code}`}): building` });
        return false;
      }
      await writeFile(
        join(logDir, 'build.log'),
        `restored from the build cache: ${cacheFile}\n(same sources, same guest packages, kernel and BTF; delete the file to build again)\n`,
      );
      return true;
    }));
  if (restored) emit({ type: 'info', target: m.target, message: `bpf/ and client/ restored from the build cache (${cacheFile}): no build` });

  if (!prebuilt && !restored)
    await step(emit, m.target, 'build', async () => {
      let log = '';
      for (const d of ['bpf', 'client']) {
        const r = await m.exec(['make', '-C', `${m.workdir}/${d}`], { timeoutMs: opts.buildTimeoutMs });
        log += `$ make -C ${d}\n${r.stdout}${r.stderr}\n[exit ${r.timedOut ? 'timeout' : r.code}]\n`;
        await writeFile(join(logDir, 'build.log'), log);
        if (r.code !== 0) {
          const err = new LabError(
            'build-failed',
            `make -C ${d} ${r.timedOut ? 'timed out' : `failed (exit ${r.code})`} on ${m.target}`,
            (r.stderr || r.stdout).trim().split('\n').slice(-40).join('\n'),
          );
          Object.assign(err, { logFile: join(logDir, 'build.log') });
          throw err;
        }
      }
    });

  if (cacheFile && !restored)
    await saveBuild(m, cacheFile, opts.buildTimeoutMs).catch((err: unknown) =>
      emit({ type: 'warn', target: m.target, message: `could not keep the build in ${cacheFile}: ${(err as Error).message}` }),
    );

  // The facts (versions, libssl, python) of a restored build were read on the same packages,
  // kernel and BTF when it was made: kept beside it, they need no round trips either.
  const factsFile = cacheFile?.replace(/\.tar$/, '.facts.json');
  const kept = restored && factsFile ? await readKeptFacts(factsFile) : null;
  if (kept) {
    emit({ type: 'info', target: m.target, message: `facts read with the cached build (${factsFile})` });
    await writeFile(join(logDir, 'facts.json'), JSON.stringify(kept.facts, null, 2) + '\n');
    return { facts: kept.facts, tools: toolsOf(m, kept.python, kept.facts.libssl!) };
  }

  const facts = await step(emit, m.target, 'facts', async (): Promise<MachineFacts> => {
    const r = await m.exec(['sh', `${m.workdir}/provision/facts.sh`], { timeoutMs: 60_000 });
    let f: MachineFacts = {};
    try {
      f = JSON.parse(r.stdout.trim()) as MachineFacts;
    } catch {
      throw new LabError('build-failed', `provision/facts.sh printed no JSON on ${m.target}`, r.stderr);
    }
    return f;
  });

  const client = `${m.workdir}/client/build/race_client`;
  const ldd = await m.exec(['ldd', client], { timeoutMs: 30_000 });
  const libssl = /libssl\.so[^\s]*\s+=>\s+(\S+)/.exec(ldd.stdout)?.[1];
  if (!libssl) throw new LabError('build-failed', `cannot find the libssl that ${client} uses (ldd said: ${ldd.stdout.trim() || ldd.stderr.trim()})`);
  facts.libssl = libssl;
  await writeFile(join(logDir, 'facts.json'), JSON.stringify(facts, null, 2) + '\n');

  const py = await m.exec(['sh', '-c', 'if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi'], { timeoutMs: 15_000 });
  const python = py.stdout.trim() || 'python3';
  if (factsFile && (await stat(cacheFile!).catch(() => null))) {
    const tmp = `${factsFile}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ facts, python }, null, 2) + '\n')
      .then(() => rename(tmp, factsFile))
      .catch(() => rm(tmp, { force: true }));
  }
  return { facts, tools: toolsOf(m, python, libssl) };
}

function toolsOf(m: Machine, python: string, libssl: string): Tools {
  return {
    tracer: `${m.workdir}/bpf/build/usm_tls`,
    client: `${m.workdir}/client/build/race_client`,
    server: `${m.workdir}/client/https_server.py`,
    terminator: `${m.workdir}/client/tls_terminator.py`,
    python,
    libssl,
  };
}

async function readKeptFacts(file: string): Promise<{ facts: MachineFacts; python: string } | null> {
  try {
    const k = JSON.parse(await readFile(file, 'utf8')) as { facts?: MachineFacts; python?: unknown };
    if (!k.facts || typeof k.facts.libssl !== 'string' || typeof k.python !== 'string') return null;
    return { facts: k.facts, python: k.python };
  } catch {
    return null;
  }
}

/** bpf/build and client/build of the machine's workdir into the host's build cache (whole or not at all). */
async function saveBuild(m: Machine, file: string, timeoutMs: number): Promise<void> {
  const remote = `/tmp/usm-lab-build-${process.pid}.tar`;
  const t = await m.exec(['tar', '-C', m.workdir, '-cf', remote, 'bpf/build', 'client/build'], { timeoutMs });
  if (t.code !== 0) throw new Error(t.stderr.trim() || `tar exited ${t.code}`);
  await mkdir(join(file, '..'), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await m.get(remote, tmp, { timeoutMs });
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
    await m.exec(['rm', '-f', remote], { timeoutMs: 30_000 }).catch(() => {});
  }
}

/**
 * The user's own client (--client-src FILE.c): uploaded to `dir` on the machine and built there
 * with the machine's cc and OpenSSL (`cc -O2 -o NAME FILE -lssl -lcrypto`); its path. A compile
 * error is build-failed with the compiler's tail (and the whole output in client-build.log).
 */
export async function buildExternalClient(opts: {
  machine: Machine;
  src: string;
  dir: string;
  logDir: string;
  emit: Emit;
  timeoutMs: number;
}): Promise<string> {
  const { machine: m } = opts;
  const file = opts.src.slice(opts.src.lastIndexOf('/') + 1);
  // the process name (comm, 15 characters at most) that --trace client filters on
  const name =
    file
      .replace(/\.c$/, '')
      .replace(/[^A-Za-z0-9_.-]/g, '_')
      .slice(0, 15) || 'client';
  const remoteSrc = `${opts.dir}/${file}`;
  const bin = `${opts.dir}/${name}`;
  return step(opts.emit, m.target, 'client-build', async () => {
    const mk = await m.exec(['mkdir', '-p', opts.dir], { timeoutMs: 30_000 });
    if (mk.code !== 0) throw new LabError('build-failed', `cannot create ${opts.dir} on ${m.target}: ${mk.stderr.trim()}`);
    await m.put(opts.src, remoteSrc, { timeoutMs: opts.timeoutMs });
    const argv = ['cc', '-O2', '-o', bin, remoteSrc, '-lssl', '-lcrypto'];
    const r = await m.exec(argv, { timeoutMs: opts.timeoutMs });
    await writeFile(join(opts.logDir, 'client-build.log'), `$ ${argv.join(' ')}\n${r.stdout}${r.stderr}\n[exit ${r.timedOut ? 'timeout' : r.code}]\n`);
    if (r.code !== 0) {
      const err = new LabError(
        'build-failed',
        `your client ${file} ${r.timedOut ? 'did not build in time' : `did not compile (cc exited ${r.code})`} on ${m.target}`,
        (r.stderr || r.stdout).trim().split('\n').slice(-30).join('\n'),
      );
      Object.assign(err, { logFile: join(opts.logDir, 'client-build.log') });
      throw err;
    }
    return bin;
  });
}

/**
 * The external tracer's files (matrix.yaml tracer.files) into `dir` on the machine (its {files}),
 * with their mode bits (a binary stays executable). A file that cannot be copied is tracer-failed:
 * the target's cells say so.
 */
export async function uploadTracerFiles(
  m: Machine,
  files: readonly { src: string; name: string; mode: number }[],
  dir: string,
  emit: Emit,
  timeoutMs: number,
): Promise<void> {
  await step(emit, m.target, 'tracer-upload', async () => {
    const mk = await m.exec(['mkdir', '-p', dir], { timeoutMs: 30_000 });
    if (mk.code !== 0) throw new LabError('tracer-failed', `cannot create ${dir} on ${m.target}: ${mk.stderr.trim() || `exit ${mk.code}`}`);
    for (const f of files) {
      const to = `${dir}/${f.name}`;
      await m.put(f.src, to, { timeoutMs }).catch((err: unknown) => {
        throw new LabError('tracer-failed', `cannot copy the tracer's file ${f.src} to ${to} on ${m.target}: ${(err as Error).message}`);
      });
      const ch = await m.exec(['chmod', (f.mode & 0o777).toString(8), to], { timeoutMs: 30_000 });
      if (ch.code !== 0) throw new LabError('tracer-failed', `cannot chmod ${to} on ${m.target}: ${ch.stderr.trim() || `exit ${ch.code}`}`);
    }
  });
}
