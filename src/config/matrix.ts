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
  if (!isMap(root))
    throw configError(file, [
      { off: -1, text: `${where(root)}: the matrix file must be a mapping with keys defaults, targets, default_targets, vagrant, client` },
    ]);

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

  checkKeys(root, ['defaults', 'targets', 'default_targets', 'vagrant', 'client'], 'the matrix file');
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
  if (problems.length) throw configError(file, problems);
  return { file, defaults: d, targets, targetCpus, defaultTargets, vagrant, client };
}
