// The structure reads one way down (docs/architecture.md): no import from a lower floor to a
// higher one (or sideways between units of one floor), and no circle of files in src/.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backUpImports, cycles, importGraph, verdict } from './helpers/import-graph.ts';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

describe('layering of src/', () => {
  const edges = importGraph(SRC);

  it('reads the graph (static, type-only, re-export and dynamic imports)', () => {
    expect(edges.length).toBeGreaterThan(100);
    expect(edges).toContainEqual({ from: 'backends/index.ts', to: 'backends/qemu/index.ts' });
  });

  it('no import runs back up the floors or sideways, and every file has a floor', () => {
    expect(backUpImports(edges).map((e) => `${e.why}: ${e.from} -> ${e.to}`)).toEqual([]);
  });

  it('no cycle', () => {
    expect(cycles(edges)).toEqual([]);
  });

  it('the check itself: up, sideways, inside a unit, between sibling backends', () => {
    expect(verdict('cli/matrix.ts', 'matrix.ts')).toBeNull();
    expect(verdict('matrix.ts', 'cli/flags.ts')).toBe('up');
    expect(verdict('backends/vagrant/lease.ts', 'scenario/prepare.ts')).toBe('sideways');
    expect(verdict('backends/vagrant/lease.ts', 'backends/qemu/ports.ts')).toBe('sideways');
    expect(verdict('backends/vagrant/lease.ts', 'backends/shared/ports.ts')).toBeNull();
    expect(verdict('backends/shared/ports.ts', 'backends/index.ts')).toBe('up');
    expect(verdict('analysis/cell.ts', 'analysis/attribution.ts')).toBeNull();
    expect(verdict('nowhere.ts', 'domain.ts')).toBe('unplaced: nowhere.ts');
    expect(
      cycles([
        { from: 'a.ts', to: 'b.ts' },
        { from: 'b.ts', to: 'a.ts' },
        { from: 'b.ts', to: 'c.ts' },
      ]),
    ).toEqual([['a.ts', 'b.ts']]);
  });
});
