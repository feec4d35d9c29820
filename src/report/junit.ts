// junit.xml across the matrix, for CI test reports: one testsuite per target (properties: kernel,
// OpenSSL, clang, libbpf, cpus), one testcase per cell. A verdict that is not as expected is a
// <failure>; a cell that could not run is an <error> whose type is the failure kind (boot, build,
// tracer, client...); system-out carries the log tail. Built with junit-report-builder (it writes
// the Jenkins/Ant shape and escapes attributes and CDATA).
import junitModule, { type Builder } from 'junit-report-builder';
import type { CellArtifacts } from './artifacts.ts';
import { verdictWord } from './cell.ts';
import type { Manifest } from './manifest.ts';
import { cellKey, colOf, rateWithInterval, rowOf, sortCells, type CellView } from './view.ts';

/** XML 1.0 forbids most control characters; guest logs have them (ANSI colours, NULs). */
export function xmlSafe(s: string): string {
  return s
    .replace(/\x1b/g, '')
    .replace(/[\x00-\x08\x0B\x0C\x0E-\x1F\x7F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '?');
}

// The package is CommonJS (module.exports = the builder) but its types declare `export default`:
// under Node's ESM interop the default import is the builder itself.
const junit = junitModule as unknown as Builder;

const fact = (facts: Record<string, unknown> | undefined, k: string) => (facts?.[k] === undefined || facts[k] === null ? 'unknown' : String(facts[k]));

export function renderJunit(manifest: Manifest, cells: readonly CellView[], artifacts: ReadonlyMap<string, CellArtifacts> = new Map()): string {
  const b = junit.newBuilder();
  b.name(xmlSafe(`usm-race-lab ${manifest.runId}`));
  const sorted = sortCells(cells);
  const targets = [...new Set([...manifest.targets.map((t) => t.name), ...sorted.map(rowOf)])].sort();
  for (const name of targets) {
    const rec = manifest.targets.find((t) => t.name === name);
    const mine = sorted.filter((c) => rowOf(c) === name);
    const suite = b.testSuite().name(xmlSafe(name));
    const first = mine[0];
    suite
      .property('kernel', xmlSafe(first && first.kernel !== 'unknown' ? first.kernel : fact(rec?.facts, 'kernel')))
      .property('openssl', xmlSafe(first && first.openssl !== 'unknown' ? first.openssl : fact(rec?.facts, 'openssl')))
      .property('clang', xmlSafe(fact(rec?.facts, 'clang')))
      .property('libbpf', xmlSafe(fact(rec?.facts, 'libbpf')))
      .property('cpus', String(rec?.cpus ?? first?.cpus ?? fact(rec?.facts, 'cpus')))
      .property('backend', xmlSafe(rec?.backend ?? 'unknown'))
      .property('status', xmlSafe(rec?.status ?? 'unknown'));
    for (const c of mine) {
      const a = artifacts.get(cellKey(c));
      const tc = suite
        .testCase()
        .className(xmlSafe(`${name}.${c.scenario}`))
        // variant, then " single" and a terminator as more path segments: every cell its own name
        .name(xmlSafe(`${c.scenario}/${c.mode}/${colOf(c).replace(/ /g, '/')}`));
      const ms = (a?.trials ?? []).reduce((s, t) => s + (t.durationMs ?? 0), 0);
      if (ms > 0) tc.time(ms / 1000);
      if (c.status !== 'ok') {
        tc.error(xmlSafe(`${c.status}${c.error ? `: ${c.error}` : ''}`), c.status);
      } else if (c.verdict.pass === false) {
        tc.failure(xmlSafe(`${verdictWord(false)}: expected ${c.verdict.expectation}; got ${c.verdict.reason}`), 'verdict');
      }
      const out = [
        `${c.target} ${c.scenario}/${c.mode}/${colOf(c).replace(/ /g, '/')}: kernel ${c.kernel}, OpenSSL ${c.openssl}`,
        `misattribution ${rateWithInterval(c)} (${c.wrong} of ${c.captured} rows), status ${c.status}, verdict ${verdictWord(c.verdict.pass)} (${c.verdict.reason})`,
      ];
      if (a?.logTail) out.push('', '--- log tail ---', a.logTail);
      tc.standardOutput(xmlSafe(out.join('\n')));
    }
  }
  return b.build() + '\n';
}
