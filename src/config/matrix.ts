// matrix.yaml: loaded with the yaml package and validated; every error names file:line:column
// and what is allowed.
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node, type Document } from 'yaml';
import { ConfigError } from '../errors.ts';
import { APIS, BACKENDS, HOOKS, MODES, SCENARIOS, SUITES, TRACE_SCOPES, VARIANTS, type Api, type BackendName, type Hook, type Mode, type Scenario, type TraceScope, type Variant } from '../domain.ts';
import type { TargetSpec } from '../backends/types.ts';

export interface MatrixDefaults {
  variants: Variant[];
  modes: Mode[];
  scenarios: Scenario[];
  iterations: number;
  trials: number;
  ports: number[];
  trace: TraceScope;
  api: Api;
  hook: Hook;
  memory: number;
  seed: number;
}

export interface MatrixConfig {
  file: string;
  defaults: MatrixDefaults;
  targets: TargetSpec[];
  /** Targets run when no --targets and no --backend local is given. */
  defaultTargets: string[];
  vagrant: { sandboxed: boolean };
}

export const BUILTIN_DEFAULTS: MatrixDefaults = {
  variants: [...VARIANTS],
  modes: ['sequential', 'interleaved'],
  scenarios: ['preexisting', 'baseline'],
  iterations: 200,
  trials: 1,
  ports: [18001, 18002],
  trace: 'all',
  api: 'classic',
  hook: 'auto',
  memory: 1024,
  seed: 1,
};

type Where = (node: Node | null | undefined) => string;

export async function loadMatrix(file: string): Promise<MatrixConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read matrix file ${file}: ${(err as Error).message}`);
  }
  return parseMatrix(text, file);
}

export function parseMatrix(text: string, file: string): MatrixConfig {
  const lc = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const where: Where = (node) => {
    const off = node?.range?.[0];
    if (off === undefined) return file;
    const p = lc.linePos(off);
    return `${file}:${p.line}:${p.col}`;
  };
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const p = lc.linePos(e.pos[0]);
    throw new ConfigError(`${file}${p ? `:${p.line}:${p.col}` : ''}: ${e.message.split('\n')[0]}`);
  }
  const root = doc.contents;
  if (!isMap(root)) throw new ConfigError(`${where(root)}: the matrix file must be a mapping with keys defaults, targets, default_targets, vagrant`);
  const fail = (node: Node | null | undefined, msg: string): never => {
    throw new ConfigError(`${where(node)}: ${msg}`);
  };

  const checkKeys = (map: Node, allowed: readonly string[], what: string) => {
    if (!isMap(map)) fail(map, `${what} must be a mapping (keys: ${allowed.join(', ')})`);
    for (const pair of (map as { items: { key: unknown }[] }).items) {
      const k = pair.key as Node;
      const name = isScalar(k) ? String(k.value) : '?';
      if (!allowed.includes(name)) fail(k, `unknown key '${name}' in ${what} (allowed: ${allowed.join(', ')})`);
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
    const v = str(n, what);
    if (!allowed.includes(v as T)) fail(n, `unknown ${what} '${v}' (allowed: ${allowed.join(', ')})`);
    return v as T;
  };
  const seq = (n: Node, what: string): Node[] => {
    if (!isSeq(n) || n.items.length === 0) fail(n, `${what} must be a non-empty list`);
    return (n as { items: Node[] }).items;
  };

  checkKeys(root, ['defaults', 'targets', 'default_targets', 'vagrant'], 'the matrix file');
  const d: MatrixDefaults = { ...BUILTIN_DEFAULTS };
  const dn = get(root, 'defaults');
  if (dn) {
    checkKeys(dn, ['variants', 'modes', 'scenarios', 'iterations', 'trials', 'ports', 'trace', 'api', 'hook', 'memory', 'seed'], 'defaults');
    const f = (k: string) => get(dn, k);
    if (f('variants')) d.variants = seq(f('variants')!, 'defaults.variants').map((n) => enumOne(n, 'variant', VARIANTS));
    if (f('modes')) d.modes = seq(f('modes')!, 'defaults.modes').map((n) => enumOne(n, 'mode', MODES));
    if (f('scenarios')) d.scenarios = seq(f('scenarios')!, 'defaults.scenarios').map((n) => enumOne(n, 'scenario', SCENARIOS));
    if (f('iterations')) d.iterations = num(f('iterations')!, 'defaults.iterations', 1, 1_000_000);
    if (f('trials')) d.trials = num(f('trials')!, 'defaults.trials', 1, 1000);
    if (f('ports')) {
      d.ports = seq(f('ports')!, 'defaults.ports').map((n) => num(n, 'a port', 1024, 65535));
      if (d.ports.length < 2) fail(f('ports'), 'defaults.ports needs at least two ports');
    }
    if (f('trace')) d.trace = enumOne(f('trace')!, 'trace scope', TRACE_SCOPES);
    if (f('api')) d.api = enumOne(f('api')!, 'api', APIS);
    if (f('hook')) d.hook = enumOne(f('hook')!, 'hook', HOOKS);
    if (f('memory')) d.memory = num(f('memory')!, 'defaults.memory (MiB)', 256, 65536);
    if (f('seed')) d.seed = num(f('seed')!, 'defaults.seed', 0, 2 ** 32 - 1);
  }

  const tn = get(root, 'targets');
  if (!tn) fail(root, "missing key 'targets'");
  if (!isMap(tn)) fail(tn, 'targets must be a mapping of name -> { backend, suite | box, memory, cpus }');
  const targets: TargetSpec[] = [];
  for (const pair of (tn as unknown as { items: { key: Node; value: Node }[] }).items) {
    const name = str(pair.key, 'a target name');
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) fail(pair.key, `target name '${name}' must be lower-case letters, digits, '.', '_' or '-'`);
    const v = pair.value;
    checkKeys(v, ['backend', 'suite', 'box', 'memory', 'cpus'], `target '${name}'`);
    const bn = get(v, 'backend');
    if (!bn) fail(v, `target '${name}' needs a backend (allowed: ${BACKENDS.join(', ')})`);
    const backend = enumOne(bn!, 'backend', BACKENDS) as BackendName;
    const t: TargetSpec = { name, backend };
    const sn = get(v, 'suite');
    if (sn) t.suite = enumOne(sn, 'suite', SUITES);
    const box = get(v, 'box');
    if (box) t.box = str(box, 'box');
    if (backend === 'qemu' && !t.suite) fail(v, `target '${name}' (backend qemu) needs a suite (allowed: ${SUITES.join(', ')})`);
    if (backend === 'vagrant' && !t.suite && !t.box) fail(v, `target '${name}' (backend vagrant) needs a suite (a local box built from it) or a box`);
    const mem = get(v, 'memory');
    t.memoryMiB = mem ? num(mem, 'memory (MiB)', 256, 65536) : d.memory;
    const cpus = get(v, 'cpus');
    if (cpus) t.cpus = num(cpus, 'cpus', 1, 64);
    targets.push(t);
  }
  if (!targets.some((t) => t.name === 'local')) targets.push({ name: 'local', backend: 'local' });

  let defaultTargets = targets.filter((t) => t.backend !== 'local').map((t) => t.name);
  const dt = get(root, 'default_targets');
  if (dt) {
    defaultTargets = seq(dt, 'default_targets').map((n) => {
      const v = str(n, 'a target name');
      if (!targets.some((t) => t.name === v)) fail(n, `unknown target '${v}' (defined: ${targets.map((t) => t.name).join(', ')})`);
      return v;
    });
  }
  const vagrant = { sandboxed: true };
  const vn = get(root, 'vagrant');
  if (vn) {
    checkKeys(vn, ['sandboxed'], 'vagrant');
    const sb = get(vn, 'sandboxed');
    if (sb) vagrant.sandboxed = bool(sb, 'vagrant.sandboxed');
  }
  return { file, defaults: d, targets, defaultTargets, vagrant };
}
