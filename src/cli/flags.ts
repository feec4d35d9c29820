// Flags of scripts/matrix.mjs: parsed strictly, checked before anything boots; every error
// says what is allowed.
import { parseArgs } from 'node:util';
import { ConfigError } from '../errors.ts';
import {
  APIS,
  BACKENDS,
  CPUS_RANGE,
  HOOKS,
  MODES,
  NAGLE,
  READS,
  SERVERS,
  SCENARIOS,
  TRACE_SCOPES,
  VARIANTS,
  type Api,
  type BackendName,
  type Hook,
  type Mode,
  type Nagle,
  type Reads,
  type Server,
  type Scenario,
  type TraceScope,
  type Variant,
} from '../domain.ts';

export interface MatrixFlags {
  help: boolean;
  config?: string;
  backend?: BackendName;
  targets?: string[];
  variants?: Variant[];
  modes?: Mode[];
  scenarios?: Scenario[];
  iterations?: number;
  trials?: number;
  out?: string;
  parallel?: number;
  keep: boolean;
  trace?: TraceScope;
  api?: Api;
  hook?: Hook;
  seed?: number;
  ports?: number[];
  reads?: Reads[];
  servers?: Server[];
  clientSrc?: string;
  nagle?: Nagle;
  cpus?: number[];
  cache?: string;
  rebuild: boolean;
  resume?: string;
  force: boolean;
  shard?: { k: number; n: number };
}

export const HELP = `Usage: npx zx scripts/matrix.mjs [flags]

Runs the pre-existing-connection scenario on every target of the matrix (matrix.yaml) and
writes per-kernel misattribution reports to reports/<run-id>/ (reports/latest points at it).

Flags (each overrides matrix.yaml; lists are comma-separated):
  --config FILE         matrix file (default: matrix.yaml at the repository root). Its tracer:
                        runs your own tracer (system-probe, any debug endpoint) instead of the
                        model: matrix.system-probe.yaml (fill in its paths), matrix.lookalike.yaml
                        (the model's look-alike through the same path); README "Your own tracer"
  --backend B           run the targets with this backend: ${BACKENDS.join(' | ')}
                        (local = this host only, no VM; needs root and BPF)
  --targets T,...       only these targets (names from matrix.yaml, or "local")
  --variants V,...      ${VARIANTS.join(', ')} (the model's; with an external tracer the
                        cells' variant is its label)
  --modes M,...         ${MODES.join(', ')}
  --scenarios S,...     ${SCENARIOS.join(', ')}
  --iterations N        requests per connection per trial (default from matrix.yaml)
  --trials N            trials per cell
  --out DIR             report folder (default reports/<run-id>); a folder that holds a run
                        is resumed (as --resume DIR)
  --resume DIR          resume the run in DIR (it must be a report folder): a cell whose inputs
                        are unchanged (its id, iterations, trials, ports, trace, api, hook, nagle,
                        the sources of bpf/ client/ provision/, the target's image, box or host
                        kernel and libssl) and whose report is complete is reused, not rerun;
                        a target with every cell reused does not boot. Writes to DIR: with --out,
                        --out must name DIR too
  --force               rerun every cell, even those --resume (or --out) would reuse
  --parallel N          targets run at once (default: number of cores)
  --keep                leave VMs running afterwards and print how to reach them
  --trace SCOPE         ${TRACE_SCOPES.join(' | ')}: trace every libssl user (as upstream), only the
                        client, or only the TLS server (the terminator)
  --api A               ${APIS.join(' | ')}: client uses SSL_write/SSL_read or SSL_write_ex/SSL_read_ex
  --hook H              ${HOOKS.join(' | ')}: kernel hooks of the tracer
  --ports P,...         HTTPS server ports, one connection each (default 18001,18002)
  --reads R,...         ${READS.join(', ')}: the client reads each response whole, or with ONE
                        SSL_read of up to 4095 bytes per request as the investigation's clients
  --server S,...        ${SERVERS.join(', ')}: the traced TLS server, one cell set each:
                        ours (one process per port), or nginx (one worker) / HAProxy (one
                        thread) from Debian's packages terminating TLS in front of a plain
                        HTTP backend (local: bash provision/host-deps.sh servers)
  --client-src FILE.c   your own client instead of ours: built in each target (cc -O2 FILE -lssl
                        -lcrypto) and run with the investigation's CLI (HOST1 PORT1 HOST2 PORT2
                        ITERATIONS --MODE; READY:..., SIGUSR1, DONE); two ports. Its requests name
                        conn<k>-iter<i> in the path; its own truth is n/a
  --nagle N             ${NAGLE.join(' | ')}: Nagle's algorithm on the HTTPS servers (on = Python's
                        default, as the investigation's server script; off = TCP_NODELAY)
  --cpus N,...          vCPUs of every VM target, one boot per value (${CPUS_RANGE[0]}..${CPUS_RANGE[1]});
                        local runs on this host's CPUs, recorded
  --seed N              seed of the run order (recorded in manifest.json)
  --cache DIR           image cache (default ~/.cache/usm-race-lab, or $USM_LAB_CACHE)
  --rebuild             rebuild the images even when cached
  --shard K/N           run only the K-th of N shards of the targets (for CI job matrices)
  -h, --help            this text

Exit codes: 0 every cell ran and met its expectation; 1 a verdict was not as expected;
2 bad flags or matrix file; 3 a target or cell failed (boot, build, tracer, client); 130 interrupted.
`;

function list<T extends string>(flag: string, raw: string | undefined, allowed?: readonly T[]): T[] | undefined {
  if (raw === undefined) return undefined;
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) throw new ConfigError(`--${flag} needs at least one value${allowed ? ` (allowed: ${allowed.join(', ')})` : ''}`);
  if (allowed) {
    for (const it of items) {
      if (!allowed.includes(it as T)) throw new ConfigError(`--${flag}: unknown value '${it}' (allowed: ${allowed.join(', ')})`);
    }
  }
  return [...new Set(items)] as T[];
}

/** --flag's value, one of `allowed` (undefined when absent); a ConfigError listing them otherwise. */
export function one<T extends string>(flag: string, raw: string | undefined, allowed: readonly T[]): T | undefined {
  if (raw === undefined) return undefined;
  if (!allowed.includes(raw as T)) throw new ConfigError(`--${flag}: unknown value '${raw}' (allowed: ${allowed.join(', ')})`);
  return raw as T;
}

/** --flag's value as a whole number in min..max (undefined when absent); a ConfigError saying the range otherwise. */
export function int(flag: string, raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`--${flag}: '${raw}' is not a whole number (allowed: ${min}..${max})`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(`--${flag}: ${n} is out of range (allowed: ${min}..${max})`);
  return n;
}

/** --flag's comma-separated whole numbers in min..max, distinct, in the order given (undefined when absent). */
function ints(flag: string, raw: string | undefined, min: number, max: number): number[] | undefined {
  const items = list(flag, raw);
  return items && [...new Set(items.map((x) => int(flag, x, min, max)!))];
}

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  config: { type: 'string' },
  backend: { type: 'string' },
  targets: { type: 'string' },
  variants: { type: 'string' },
  modes: { type: 'string' },
  scenarios: { type: 'string' },
  iterations: { type: 'string' },
  trials: { type: 'string' },
  out: { type: 'string' },
  parallel: { type: 'string' },
  keep: { type: 'boolean' },
  trace: { type: 'string' },
  api: { type: 'string' },
  hook: { type: 'string' },
  ports: { type: 'string' },
  reads: { type: 'string' },
  server: { type: 'string' },
  'client-src': { type: 'string' },
  nagle: { type: 'string' },
  cpus: { type: 'string' },
  seed: { type: 'string' },
  cache: { type: 'string' },
  rebuild: { type: 'boolean' },
  resume: { type: 'string' },
  force: { type: 'boolean' },
  shard: { type: 'string' },
} as const;

export const FLAG_NAMES = Object.keys(OPTIONS);

export function parseMatrixFlags(argv: readonly string[]): MatrixFlags {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new ConfigError(`${msg} (valid flags: ${FLAG_NAMES.map((f) => `--${f}`).join(' ')})`);
  }
  const s = (k: string) => values[k] as string | undefined;
  let shard: MatrixFlags['shard'];
  if (s('shard') !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(s('shard')!);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > Number(m[2])) throw new ConfigError(`--shard: '${s('shard')}' must be K/N with 1 <= K <= N (e.g. 2/4)`);
    shard = { k: Number(m[1]), n: Number(m[2]) };
  }
  const ports = list('ports', s('ports'))?.map((p) => {
    const n = int('ports', p, 1024, 65535)!;
    return n;
  });
  if (ports && ports.length < 2) throw new ConfigError('--ports: give at least two ports (the race needs two connections on one thread)');
  const f: MatrixFlags = {
    help: values.help === true,
    keep: values.keep === true,
    rebuild: values.rebuild === true,
    force: values.force === true,
    config: s('config'),
    backend: one('backend', s('backend'), BACKENDS),
    targets: list('targets', s('targets')),
    variants: list('variants', s('variants'), VARIANTS),
    modes: list('modes', s('modes'), MODES),
    scenarios: list('scenarios', s('scenarios'), SCENARIOS),
    iterations: int('iterations', s('iterations'), 1, 1_000_000),
    trials: int('trials', s('trials'), 1, 1000),
    out: s('out'),
    parallel: int('parallel', s('parallel'), 1, 64),
    trace: one('trace', s('trace'), TRACE_SCOPES),
    api: one('api', s('api'), APIS),
    hook: one('hook', s('hook'), HOOKS),
    seed: int('seed', s('seed'), 0, 2 ** 32 - 1),
    ports,
    reads: list('reads', s('reads'), READS),
    servers: list('server', s('server'), SERVERS),
    clientSrc: s('client-src'),
    nagle: one('nagle', s('nagle'), NAGLE),
    cpus: ints('cpus', s('cpus'), CPUS_RANGE[0], CPUS_RANGE[1]),
    cache: s('cache'),
    resume: s('resume'),
    shard,
  };
  return f;
}
