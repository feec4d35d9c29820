// The import graph of src/ and the floors it must respect (docs/architecture.md). Read with
// TypeScript's own pre-processor, so static, type-only, re-export and dynamic imports all count.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/** A floor is a list of units (a folder 'x/' or a file 'x.ts', relative to its parent). */
export type Floors = readonly (readonly string[])[];

/**
 * The one table of the stage order, top down: a unit may import its own files and any unit on
 * a lower floor; never one on its own floor or above. Scripts (scripts/) sit above all of it.
 */
export const FLOORS: Floors = [
  ['bench/'],
  ['cli/'],
  ['matrix.ts'],
  ['config/', 'plan/'],
  ['backends/', 'scenario/'],
  ['sources.ts'],
  ['machine/', 'report/', 'lookalike/'],
  ['images/', 'analysis/', 'hostdeps.ts'],
  ['errors.ts', 'progress/', 'cleanup.ts', 'domain.ts'],
];

/** Floors inside a unit: the backends share what sits below them, and never import each other. */
export const INNER: Readonly<Record<string, Floors>> = {
  'backends/': [['index.ts'], ['local.ts', 'qemu/', 'vagrant/'], ['shared/', 'types.ts']],
};

export interface Edge {
  from: string;
  to: string;
}

/** Every .ts file under dir, as a path relative to dir with '/' separators. */
export function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

/** Edges between files of dir (relative imports only; packages and node: are not ours). */
export function importGraph(dir: string): Edge[] {
  const edges: Edge[] = [];
  for (const from of sourceFiles(dir)) {
    const info = ts.preProcessFile(readFileSync(join(dir, from), 'utf8'), true, true);
    for (const f of info.importedFiles) {
      if (!f.fileName.startsWith('.')) continue;
      const to = relative(dir, resolve(dir, dirname(from), f.fileName))
        .split(sep)
        .join('/');
      edges.push({ from, to: posix.normalize(to) });
    }
  }
  return edges;
}

function place(path: string, floors: Floors): { unit: string; floor: number } | undefined {
  for (const [floor, units] of floors.entries()) {
    for (const unit of units) {
      if (unit.endsWith('/') ? path.startsWith(unit) : path === unit) return { unit, floor };
    }
  }
  return undefined;
}

/** Why an import breaks the floors ('up', 'sideways', 'unplaced'), or null when it may stand. */
export function verdict(from: string, to: string, floors: Floors = FLOORS, inner = INNER): string | null {
  const a = place(from, floors);
  const b = place(to, floors);
  if (!a) return `unplaced: ${from}`;
  if (!b) return `unplaced: ${to}`;
  if (a.unit === b.unit) {
    const sub = inner[a.unit];
    return sub ? verdict(from.slice(a.unit.length), to.slice(a.unit.length), sub, {}) : null;
  }
  if (b.floor > a.floor) return null;
  return b.floor < a.floor ? 'up' : 'sideways';
}

/** Imports that run back up (or sideways) the floors. */
export function backUpImports(edges: readonly Edge[]): (Edge & { why: string })[] {
  return edges.flatMap((e) => {
    const why = verdict(e.from, e.to);
    return why ? [{ ...e, why }] : [];
  });
}

/** Circles of files (strongly connected components of more than one file, or a self-import). */
export function cycles(edges: readonly Edge[]): string[][] {
  const next = new Map<string, Set<string>>();
  for (const e of edges) {
    if (!next.has(e.from)) next.set(e.from, new Set());
    if (!next.has(e.to)) next.set(e.to, new Set());
    next.get(e.from)!.add(e.to);
  }
  // Tarjan's algorithm.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of next.get(v)!) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || next.get(v)!.has(v)) out.push(scc.sort());
    }
  };
  for (const v of next.keys()) if (!idx.has(v)) visit(v);
  return out;
}
