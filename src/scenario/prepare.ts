// Get a Machine ready for runs: upload the sources (remote machines), build bpf/ and client/
// with the machine's own toolchain, read its versions, and find the libssl the client uses.
import { writeFile, mkdir } from 'node:fs/promises';
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
}): Promise<Prepared> {
  const { machine: m, emit, logDir } = opts;
  await mkdir(logDir, { recursive: true });
  const prebuilt = opts.builtSources !== undefined && m.workdir !== opts.repoRoot && opts.builtSources === (await sourcesHash(opts.repoRoot));
  if (prebuilt) emit({ type: 'info', target: m.target, message: 'bpf/ and client/ of these sources are already built in the guest: no upload, no build' });
  else await step(emit, m.target, 'upload', () => uploadSources(m, opts.repoRoot, opts.buildTimeoutMs));

  if (!prebuilt)
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
  return {
    facts,
    tools: {
      tracer: `${m.workdir}/bpf/build/usm_tls`,
      client,
      server: `${m.workdir}/client/https_server.py`,
      python: py.stdout.trim() || 'python3',
      libssl,
    },
  };
}
