// matrix.yaml: loaded with the yaml package and validated as a whole: every error is reported at
// once, in file order, each naming file:line:column and what is allowed.
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node, type Document } from 'yaml';
import { ConfigError } from '../errors.ts';
import {
  APIS,
  BACKENDS,
  CPUS_RANGE,
  HOOKS,
  MODES,
  NAGLE,
  READS,
  SCENARIOS,
  SERVERS,
  SUITES,
  TRACE_SCOPES,
  VARIANTS,
  type Api,
  type BackendName,
  type Hook,
  type Mode,
  type Nagle,
  type Reads,
  type Scenario,
  type Server,
  type TraceScope,
  type Variant,
} from '../domain.ts';
import type { TargetSpec } from '../backends/types.ts';
import { DEBUG_PATH } from '../analysis/transactions.ts';
import type { ExternalTracerRun } from '../scenario/run.ts';

export interface MatrixDefaults {
  variants: Variant[];
  modes: Mode[];
  scenarios: Scenario[];
  iterations: number;
  /** Requests per connection for some modes (matrix.yaml `iterations: { sequential: 500, interleaved: 200 }`); the others take `iterations`. */
  iterationsByMode: Partial<Record<Mode, number>>;
  trials: number;
  ports: number[];
  trace: TraceScope;
  api: Api;
  hook: Hook;
  memory: number;
  seed: number;
  /** How the client reads responses, one cell set per value (distinct, in the order given). */
  reads: Reads[];
  /** The traced TLS servers, one cell set per value (distinct, in the order given). */
  servers: Server[];
  nagle: Nagle;
  /** vCPU counts for every VM target without its own (distinct, in the order given). */
  cpus: number[];
}

export interface MatrixConfig {
  file: string;
  defaults: MatrixDefaults;
  targets: TargetSpec[];
  /**
   * vCPU counts per qemu/vagrant target (its own cpus, else defaults.cpus; distinct, in the order
   * given). No entry for local targets. TargetSpec.cpus is the first of them.
   */
  targetCpus: Record<string, number[]>;
  /** Targets run when no --targets and no --backend local is given. */
  defaultTargets: string[];
  vagrant: { sandboxed: boolean };
  /**
   * The user's own client (`client: { src: FILE.c }`), built in each target and run with the
   * investigation's CLI; src as written, resolved against the matrix file's folder. null: ours.
   */
  client: { src: string } | null;
  /** The tracer: null = the model (bpf/usm_tls, with the variants); else an external one (`tracer:`). */
  tracer: TracerConfig | null;
}

/** Names in a tracer's argv and query socket, replaced per target: see TracerConfig.argv. */
export const TRACER_PLACEHOLDERS = ['{files}', '{workdir}', '{libssl}'] as const;
/** A `files:` entry naming the model's debug-endpoint look-alike, bundled from src/ at the run's start. */
export const LOOKALIKE_FILE = '@lookalike';

/**
 * An external tracer (system-probe, or anything with a debug endpoint), as matrix.yaml's `tracer:`
 * gives it. Its cells' variant is its label; it is started and stopped by the run protocol in
 * place of the model, and its query's answer is the trial's http_monitoring.json.
 */
export interface TracerConfig extends ExternalTracerRun {
  /** Shown as the cells' variant: lower-case letters, digits, '.', '_', '-'; not a model variant's name. */
  label: string;
  /** Judge its cells as this model variant's are (upstream: the race must show; scoped: a fix); null: measured only. */
  expect: Variant | null;
  /** Host files uploaded to {files} in each target, as written (relative to the matrix file), or LOOKALIKE_FILE. */
  files: string[];
  /** Its command line, one argument an item (never a shell string); {files} {workdir} {libssl} are replaced per target. */
  argv: string[];
}

export const BUILTIN_DEFAULTS: MatrixDefaults = {
  variants: [...VARIANTS],
  modes: ['sequential', 'interleaved'],
  scenarios: ['preexisting', 'baseline'],
  iterations: 200,
  iterationsByMode: {},
  trials: 1,
  ports: [18001, 18002],
  trace: 'all',
  api: 'classic',
  hook: 'auto',
  memory: 1024,
  seed: 1,
  reads: ['full'],
  servers: ['python'],
  nagle: 'off',
  cpus: [1],
};

const DEFAULT_KEYS = [
  'variants',
  'modes',
  'scenarios',
  'iterations',
  'trials',
  'ports',
  'trace',
  'api',
  'hook',
  'memory',
  'seed',
  'reads',
  'server',
  'nagle',
  'cpus',
] as const;
const TARGET_KEYS = ['backend', 'suite', 'box', 'memory', 'cpus'] as const;
/** The matrix file's top-level keys. */
const TOP_KEYS = ['defaults', 'targets', 'default_targets', 'vagrant', 'client', 'tracer'] as const;
const TRACER_KEYS = ['label', 'expect', 'files', 'argv', 'ready', 'query', 'settle_ms', 'stop'] as const;

type Where = (node: Node | null | undefined) => string;
interface Problem {
  /** Offset in the file (-1: none), to sort by position. */
  off: number;
  text: string;
}

/** Thrown by a check to give up on the value it reads (the problem is already recorded). */
const INVALID = Symbol('invalid');

export async function loadMatrix(file: string): Promise<MatrixConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read matrix file ${file}: ${(err as Error).message}`);
  }
  return parseMatrix(text, file);
}

/** One ConfigError for every problem, one per line, in file order. */
function configError(file: string, problems: Problem[]): ConfigError {
  const lines = [...new Set([...problems].sort((a, b) => a.off - b.off).map((p) => p.text))];
  return new ConfigError(lines.length === 1 ? lines[0]! : `${file}: ${lines.length} errors\n${lines.join('\n')}`);
}

/** Validates the whole file and reports every problem at once (a ConfigError naming each file:line:column). */
export function parseMatrix(text: string, file: string): MatrixConfig {
  const lc = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const at = (off: number | undefined) => {
    if (off === undefined) return file;
    const p = lc.linePos(off);
    return `${file}:${p.line}:${p.col}`;
  };
  const where: Where = (node) => at(node?.range?.[0]);
  const problems: Problem[] = [];
  const report = (node: Node | null | undefined, msg: string) => problems.push({ off: node?.range?.[0] ?? -1, text: `${where(node)}: ${msg}` });
  const fail = (node: Node | null | undefined, msg: string): never => {
    report(node, msg);
    throw INVALID;
  };
  /** f's value, or undefined when it gave up (and recorded why). */
  const check = <T>(f: () => T): T | undefined => {
    try {
      return f();
    } catch (err) {
      if (err === INVALID) return undefined;
      throw err;
    }
  };

  if (doc.errors.length) {
    for (const e of doc.errors) problems.push({ off: e.pos[0], text: `${at(e.pos[0])}: ${e.message.split('\n')[0]}` });
    throw configError(file, problems);
  }
  const root = doc.contents;
  if (!isMap(root)) throw configError(file, [{ off: -1, text: `${where(root)}: the matrix file must be a mapping with keys ${TOP_KEYS.join(', ')}` }]);

  const checkKeys = (map: Node | null | undefined, allowed: readonly string[], what: string) => {
    if (!isMap(map)) fail(map, `${what} must be a mapping (keys: ${allowed.join(', ')})`);
    for (const pair of (map as { items: { key: unknown }[] }).items) {
      const k = pair.key as Node;
      const name = isScalar(k) ? String(k.value) : '?';
      if (!allowed.includes(name)) report(k, `unknown key '${name}' in ${what} (allowed: ${allowed.join(', ')})`);
    }
  };
  const get = (map: Node, key: string): Node | undefined => (isMap(map) ? (map.get(key, true) as Node | undefined) : undefined);
  const str = (n: Node, what: string): string => {
    if (!isScalar(n) || typeof n.value !== 'string') fail(n, `${what} must be a string`);
    return (n as { value: string }).value;
  };
  const num = (n: Node, what: string, min: number, max: number): number => {
    if (!isScalar(n) || typeof n.value !== 'number' || !Number.isInteger(n.value)) fail(n, `${what} must be a whole number (${min}..${max})`);
    const v = (n as { value: number }).value;
    if (v < min || v > max) fail(n, `${what} is ${v}, out of range (allowed: ${min}..${max})`);
    return v;
  };
  const bool = (n: Node, what: string): boolean => {
    if (!isScalar(n) || typeof n.value !== 'boolean') fail(n, `${what} must be true or false`);
    return (n as { value: boolean }).value;
  };
  const enumOne = <T extends string>(n: Node, what: string, allowed: readonly T[]): T => {
    // `nagle: false`, `trace: 1`: name what is allowed, not only that a string was wanted.
    if (isScalar(n) && n.value !== null && typeof n.value !== 'string') fail(n, `unknown ${what} '${String(n.value)}' (allowed: ${allowed.join(', ')})`);
    const v = str(n, what);
    if (!allowed.includes(v as T)) fail(n, `unknown ${what} '${v}' (allowed: ${allowed.join(', ')})`);
    return v as T;
  };
  const seq = (n: Node, what: string): Node[] => {
    if (!isSeq(n) || n.items.length === 0) fail(n, `${what} must be a non-empty list`);
    return (n as { items: Node[] }).items;
  };
  /** Every item checked (each bad one reported); gives up if any was bad. */
  const list = <T>(n: Node, what: string, item: (i: Node) => T): T[] => {
    const out = seq(n, what).map((i) => check(() => item(i)));
    if (out.some((v) => v === undefined)) throw INVALID;
    return out as T[];
  };
  const cpusOf = (n: Node, what: string): number[] => {
    const [min, max] = CPUS_RANGE;
    if (isSeq(n)) return [...new Set(list(n, what, (i) => num(i, what, min, max)))];
    if (!isScalar(n) || typeof n.value !== 'number') fail(n, `${what} must be a whole number (${min}..${max}) or a list of them (e.g. [1, 2])`);
    return [num(n, what, min, max)];
  };

  checkKeys(root, TOP_KEYS, 'the matrix file');
  const d: MatrixDefaults = { ...BUILTIN_DEFAULTS };
  const dn = get(root, 'defaults');
  if (dn) {
    check(() => {
      checkKeys(dn, DEFAULT_KEYS, 'defaults');
      const field = <K extends keyof MatrixDefaults>(k: K, read: (n: Node) => MatrixDefaults[K]) => {
        const n = get(dn, k);
        const v = n ? check(() => read(n)) : undefined;
        if (v !== undefined) d[k] = v;
      };
      field('variants', (n) => list(n, 'defaults.variants', (i) => enumOne(i, 'variant', VARIANTS)));
      field('modes', (n) => list(n, 'defaults.modes', (i) => enumOne(i, 'mode', MODES)));
      field('scenarios', (n) => list(n, 'defaults.scenarios', (i) => enumOne(i, 'scenario', SCENARIOS)));
      const iterN = get(dn, 'iterations');
      if (iterN && isMap(iterN)) {
        // Per mode, as the investigation ran them (sequential 500, interleaved 200); a mode not named keeps the number.
        check(() => {
          checkKeys(iterN, MODES, 'defaults.iterations');
          const byMode: Partial<Record<Mode, number>> = {};
          for (const m of MODES) {
            const n = get(iterN, m);
            const v = n ? check(() => num(n, `defaults.iterations.${m}`, 1, 1_000_000)) : undefined;
            if (v !== undefined) byMode[m] = v;
          }
          d.iterationsByMode = byMode;
        });
      } else field('iterations', (n) => num(n, 'defaults.iterations', 1, 1_000_000));
      field('trials', (n) => num(n, 'defaults.trials', 1, 1000));
      field('ports', (n) => {
        const ports = list(n, 'defaults.ports', (i) => num(i, 'a port', 1024, 65535));
        if (ports.length < 2) fail(n, 'defaults.ports needs at least two ports');
        // Each port is one HTTPS server: a port twice would fail only when the second server starts.
        const items = (n as { items: Node[] }).items;
        const twice = ports.findIndex((p, i) => ports.indexOf(p) !== i);
        if (twice !== -1) fail(items[twice], `port ${ports[twice]} is named twice in defaults.ports (one HTTPS server and one connection per port)`);
        return ports;
      });
      field('trace', (n) => enumOne(n, 'trace scope', TRACE_SCOPES));
      field('api', (n) => enumOne(n, 'api', APIS));
      field('hook', (n) => enumOne(n, 'hook', HOOKS));
      field('memory', (n) => num(n, 'defaults.memory (MiB)', 256, 65536));
      field('seed', (n) => num(n, 'defaults.seed', 0, 2 ** 32 - 1));
      field('reads', (n) => (isSeq(n) ? [...new Set(list(n, 'defaults.reads', (i) => enumOne(i, 'reads', READS)))] : [enumOne(n, 'reads', READS)]));
      // `server:` (as the flag --server): one value or a list, each a cell set of its own
      const sv = get(dn, 'server');
      const servers = sv
        ? check(() => (isSeq(sv) ? [...new Set(list(sv, 'defaults.server', (i) => enumOne(i, 'server', SERVERS)))] : [enumOne(sv, 'server', SERVERS)]))
        : undefined;
      if (servers !== undefined) d.servers = servers;
      field('nagle', (n) => enumOne(n, 'nagle', NAGLE));
      field('cpus', (n) => cpusOf(n, 'defaults.cpus'));
    });
  }

  const targets: TargetSpec[] = [];
  const targetCpus: Record<string, number[]> = {};
  /** Every name under targets, valid or not (so default_targets does not repeat their errors). */
  const defined: string[] = [];
  const tn = get(root, 'targets');
  if (!tn) report(root, "missing key 'targets'");
  else if (!isMap(tn)) report(tn, 'targets must be a mapping of name -> { backend, suite | box, memory, cpus }');
  else {
    for (const pair of (tn as unknown as { items: { key: Node; value: Node | null }[] }).items) {
      check(() => {
        const name = str(pair.key, 'a target name');
        defined.push(name);
        if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) report(pair.key, `target name '${name}' must be lower-case letters, digits, '.', '_' or '-'`);
        const v = pair.value ?? pair.key;
        checkKeys(v, TARGET_KEYS, `target '${name}'`);
        const bn = get(v, 'backend');
        if (!bn) report(v, `target '${name}' needs a backend (allowed: ${BACKENDS.join(', ')})`);
        const backend = bn && check(() => enumOne(bn, 'backend', BACKENDS) as BackendName);
        const sn = get(v, 'suite');
        const suite = sn && check(() => enumOne(sn, 'suite', SUITES));
        const bx = get(v, 'box');
        const box = bx && check(() => str(bx, 'box'));
        const mem = get(v, 'memory');
        const memoryMiB = mem ? check(() => num(mem, 'memory (MiB)', 256, 65536)) : d.memory;
        const cn = get(v, 'cpus');
        const cpus = cn && check(() => cpusOf(cn, `target '${name}' cpus`));
        if (backend === 'qemu' && !sn) report(v, `target '${name}' (backend qemu) needs a suite (allowed: ${SUITES.join(', ')})`);
        if (backend === 'vagrant' && !sn && !bx) report(v, `target '${name}' (backend vagrant) needs a suite (a local box built from it) or a box`);
        if (backend === 'local' && cn) report(cn, `target '${name}' (backend local) takes no cpus: it runs on this host, whose CPU count the report records`);
        if (!backend || (sn && !suite) || (bx && !box) || memoryMiB === undefined || (cn && !cpus)) return;
        const t: TargetSpec = { name, backend };
        if (suite) t.suite = suite;
        if (box) t.box = box;
        t.memoryMiB = memoryMiB;
        if (backend !== 'local') {
          const c = cpus || [...d.cpus];
          targetCpus[name] = c;
          t.cpus = c[0]!;
        }
        targets.push(t);
      });
    }
  }
  if (!defined.includes('local')) {
    defined.push('local');
    targets.push({ name: 'local', backend: 'local' });
  }

  let defaultTargets = targets.filter((t) => t.backend !== 'local').map((t) => t.name);
  const dt = get(root, 'default_targets');
  if (dt) {
    const names = check(() =>
      list(dt, 'default_targets', (n) => {
        const v = str(n, 'a target name');
        if (!defined.includes(v)) fail(n, `unknown target '${v}' (defined: ${defined.join(', ')})`);
        return v;
      }),
    );
    if (names) defaultTargets = names;
  }
  const vagrant = { sandboxed: true };
  const vn = get(root, 'vagrant');
  if (vn) {
    check(() => {
      checkKeys(vn, ['sandboxed'], 'vagrant');
      const sb = get(vn, 'sandboxed');
      const v = sb && check(() => bool(sb, 'vagrant.sandboxed'));
      if (v !== undefined) vagrant.sandboxed = v;
    });
  }
  let client: MatrixConfig['client'] = null;
  const cln = get(root, 'client');
  if (cln) {
    check(() => {
      if (!isMap(cln)) fail(cln, 'client must be a mapping { src: FILE.c } (your own client, built in each target)');
      checkKeys(cln, ['src'], 'client');
      const sn = get(cln, 'src');
      if (!sn) fail(cln, 'client needs src: the C file of your client (built in each target with its cc and OpenSSL)');
      const src = check(() => str(sn!, 'client.src'));
      if (src !== undefined) {
        if (!src.endsWith('.c')) fail(sn, `client.src '${src}' must be a C file (FILE.c)`);
        client = { src };
      }
    });
  }
  let tracer: TracerConfig | null = null;
  const trn = get(root, 'tracer');
  if (trn) {
    check(() => {
      if (isScalar(trn) && trn.value === 'model') return;
      if (!isMap(trn)) fail(trn, "tracer must be 'model' (the default) or a mapping { label, argv, ready, query, ... } (an external tracer)");
      checkKeys(trn, TRACER_KEYS, 'tracer');
      const need = (k: string, what: string) => get(trn, k) ?? fail(trn, `tracer needs ${k}: ${what}`);
      const label = check(() => {
        const n = need('label', "its name, shown as the cells' variant");
        const v = str(n, 'tracer.label');
        if (!/^[a-z0-9][a-z0-9._-]*$/.test(v)) fail(n, `tracer.label '${v}' must be lower-case letters, digits, '.', '_' or '-'`);
        if ((VARIANTS as readonly string[]).includes(v)) fail(n, `tracer.label '${v}' is a model variant's name: give the external tracer a name of its own`);
        return v;
      });
      const en = get(trn, 'expect');
      const expect = en ? check(() => enumOne(en, 'tracer.expect (the model variant whose verdict applies)', VARIANTS)) : null;
      const fn = get(trn, 'files');
      const files = fn ? check(() => list(fn, 'tracer.files', (i) => str(i, 'a tracer file'))) : [];
      const argv = check(() => {
        const n = need('argv', 'its command line, one argument an item');
        if (isScalar(n)) fail(n, 'tracer.argv must be a list of arguments (never a shell string): e.g. [./system-probe, run, --config, ./system-probe.yaml]');
        return list(n, 'tracer.argv', (i) => {
          if (!isScalar(i) || (typeof i.value !== 'string' && typeof i.value !== 'number')) fail(i, 'an argument of tracer.argv must be a string');
          return String((i as { value: string | number }).value);
        });
      });
      const ready = check((): { r: TracerConfig['ready']; timeoutMs: number | null } => {
        const n = need('ready', 'how to know it is ready: { log: REGEX } (a line of its output) or { socket: true } (its query answers)');
        checkKeys(n, ['log', 'socket', 'timeout_ms'], 'tracer.ready');
        const ln = get(n, 'log');
        const sn = get(n, 'socket');
        const tn = get(n, 'timeout_ms');
        const timeoutMs = tn ? (check(() => num(tn, 'tracer.ready.timeout_ms', 1000, 3_600_000)) ?? null) : null;
        if (!!ln === !!sn) fail(n, 'tracer.ready needs one of log: REGEX or socket: true');
        if (ln) {
          const re = str(ln, 'tracer.ready.log');
          try {
            new RegExp(re);
          } catch (err) {
            fail(ln, `tracer.ready.log is not a valid regex: ${(err as Error).message}`);
          }
          return { r: { log: re }, timeoutMs };
        }
        if (bool(sn!, 'tracer.ready.socket') !== true) fail(sn, 'tracer.ready.socket must be true (or give log: REGEX)');
        return { r: { socket: true }, timeoutMs };
      });
      const query = check((): TracerConfig['query'] => {
        const n = need('query', 'where its debug endpoint answers: { socket: PATH } or { port: N }, and path');
        checkKeys(n, ['socket', 'port', 'path', 'timeout_ms'], 'tracer.query');
        const sn = get(n, 'socket');
        const pn = get(n, 'port');
        if (!!sn === !!pn) fail(n, 'tracer.query needs one of socket: PATH (a unix socket) or port: N (on 127.0.0.1)');
        const path = get(n, 'path') ? str(get(n, 'path')!, 'tracer.query.path') : DEBUG_PATH;
        if (!path.startsWith('/')) fail(get(n, 'path'), `tracer.query.path '${path}' must be an absolute HTTP path (/...)`);
        const tn = get(n, 'timeout_ms');
        const timeoutMs = tn ? num(tn, 'tracer.query.timeout_ms', 1000, 600_000) : 30_000;
        if (sn) {
          const socket = str(sn, 'tracer.query.socket');
          if (!socket.startsWith('/') && !socket.startsWith('{'))
            fail(sn, `tracer.query.socket '${socket}' must be an absolute path in the target (or start with {files})`);
          return { socket, path, timeoutMs };
        }
        return { port: num(pn!, 'tracer.query.port', 1, 65535), path, timeoutMs };
      });
      const sm = get(trn, 'settle_ms');
      const settleMs = sm ? check(() => num(sm, 'tracer.settle_ms', 0, 600_000)) : 2000;
      const stop = check((): TracerConfig['stop'] => {
        const n = get(trn, 'stop');
        if (!n) return { signal: 'INT', timeoutMs: 30_000 };
        checkKeys(n, ['signal', 'timeout_ms'], 'tracer.stop');
        const sg = get(n, 'signal');
        const tn = get(n, 'timeout_ms');
        return {
          signal: sg ? enumOne(sg, 'tracer.stop.signal', ['INT', 'TERM'] as const) : 'INT',
          timeoutMs: tn ? num(tn, 'tracer.stop.timeout_ms', 1000, 600_000) : 30_000,
        };
      });
      if (label === undefined || expect === undefined || files === undefined || argv === undefined || !ready || !query || settleMs === undefined || !stop)
        return;
      tracer = { label, expect, files, argv, ready: ready.r, readyTimeoutMs: ready.timeoutMs, query, settleMs, stop };
    });
  }
  if (problems.length) throw configError(file, problems);
  return { file, defaults: d, targets, targetCpus, defaultTargets, vagrant, client, tracer };
}
