// Benchmark: TLS round trips/s of race_client with no tracer and with each variant loaded, on
// this host, client and servers pinned to one CPU (waking an idle CPU is slow here). Medians of
// several repetitions, side by side in one run, and the ratio to "no tracer".
import { LocalMachine } from '../machine/local.ts';
import { VARIANTS, type Variant } from '../domain.ts';
import { startProc, stopProc, signalProc, waitExit, waitForLine, type BgProc } from '../scenario/procs.ts';
import { LabError } from '../errors.ts';
import { median } from './stats.ts';

export interface ThroughputRow {
  tracer: 'none' | Variant;
  rtPerSec: number[];
  median: number;
  ratio: number;
}

/** `elapsed_ms=<n> requests=<n>` printed by race_client after DONE. */
export function parseElapsed(out: string): { ms: number; requests: number } | null {
  const m = /^elapsed_ms=(\d+(?:\.\d+)?) requests=(\d+)$/m.exec(out);
  return m ? { ms: Number(m[1]), requests: Number(m[2]) } : null;
}

export async function measureThroughput(opts: {
  repoRoot: string;
  iterations: number;
  repeats: number;
  cpu: number;
  ports: [number, number];
  variants?: readonly Variant[];
  log?: (s: string) => void;
}): Promise<ThroughputRow[]> {
  const m = new LocalMachine({ workdir: opts.repoRoot });
  const dir = (await m.exec(['mktemp', '-d', '/tmp/usm-bench-XXXXXX'], { timeoutMs: 5_000 })).stdout.trim();
  const pin = ['taskset', '-c', String(opts.cpu)];
  const libssl = /libssl\.so[^\s]*\s+=>\s+(\S+)/.exec((await m.exec(['ldd', `${opts.repoRoot}/client/build/race_client`], { timeoutMs: 10_000 })).stdout)?.[1];
  if (!libssl) throw new LabError('build-failed', 'cannot find the libssl of client/build/race_client (build it: make -C client)');
  const servers: BgProc[] = [];
  const rows: ThroughputRow[] = [];
  try {
    for (const port of opts.ports) {
      const s = await startProc(m, {
        name: `server-${port}`,
        dir,
        kind: 'server-failed',
        argv: [...pin, 'python3', `${opts.repoRoot}/client/https_server.py`, '--ports', String(port), '--quiet'],
      });
      servers.push(s);
      await waitForLine(m, s, new RegExp(`^LISTENING ${port}$`), 30_000);
    }
    const configs: ('none' | Variant)[] = ['none', ...(opts.variants ?? VARIANTS)];
    const samples = new Map(configs.map((c) => [c, [] as number[]]));
    // Round-robin over the configurations, so drift on a shared machine hits all of them alike.
    for (let r = 0; r < opts.repeats; r++) {
      for (const cfg of configs) {
        const rate = await oneRun(m, { ...opts, dir, pin, libssl, cfg, tag: `${cfg}-${r}` });
        samples.get(cfg)!.push(rate);
        opts.log?.(`  ${cfg.padEnd(12)} run ${r + 1}: ${rate.toFixed(0)} round trips/s`);
      }
    }
    const base = median(samples.get('none')!);
    for (const cfg of configs) {
      const xs = samples.get(cfg)!;
      rows.push({ tracer: cfg, rtPerSec: xs, median: median(xs), ratio: median(xs) / base });
    }
  } finally {
    for (const s of servers) await stopProc(m, s);
    await m.exec(['rm', '-rf', dir], { timeoutMs: 10_000 });
  }
  return rows;
}

async function oneRun(
  m: LocalMachine,
  o: { repoRoot: string; iterations: number; ports: [number, number]; dir: string; pin: string[]; libssl: string; cfg: 'none' | Variant; tag: string },
): Promise<number> {
  let tracer: BgProc | undefined;
  const client = await startProc(m, {
    name: `client-${o.tag}`,
    dir: o.dir,
    kind: 'client-failed',
    argv: [
      ...o.pin,
      `${o.repoRoot}/client/build/race_client`,
      '127.0.0.1',
      String(o.ports[0]),
      '127.0.0.1',
      String(o.ports[1]),
      String(o.iterations),
      '--sequential',
    ],
  });
  try {
    await waitForLine(m, client, /^READY(:\d+)+$/, 30_000);
    if (o.cfg !== 'none') {
      tracer = await startProc(m, {
        name: `tracer-${o.tag}`,
        dir: o.dir,
        kind: 'tracer-failed',
        argv: [`${o.repoRoot}/bpf/build/usm_tls`, '--variant', o.cfg, '--libssl', o.libssl, '--out', '/dev/null'],
      });
      await waitForLine(m, tracer, /^READY$/, 60_000);
    }
    await signalProc(m, client, 'USR1');
    const st = await waitExit(m, client, 600_000);
    if (st.rc !== 0) throw new LabError('client-failed', `client exited ${st.rc}`, st.err);
    const e = parseElapsed(st.out);
    if (!e) throw new LabError('client-failed', `client printed no elapsed_ms line (stdout: ${JSON.stringify(st.out.slice(-300))})`);
    return e.requests / (e.ms / 1000);
  } finally {
    if (tracer) await stopProc(m, tracer, { signal: 'INT' });
    await stopProc(m, client);
  }
}
