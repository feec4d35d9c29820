// junit.xml: one testsuite per target, one testcase per cell, failure / error / system-out, and
// valid against a strict JUnit schema (test/schema/junit.xsd) with xmllint.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { summarizeCell } from '../src/analysis/cell.ts';
import { readRun } from '../src/report/merge.ts';
import { renderJunit, xmlSafe } from '../src/report/junit.ts';
import { writeSummary } from '../src/report/summary.ts';
import { inCI } from './helpers/requirements.ts';
import { copyFixture, editCell } from './helpers/report-fixture.ts';

const XSD = new URL('./schema/junit.xsd', import.meta.url).pathname;
const haveXmllint = spawnSync('xmllint', ['--version']).status === 0;

function xmllint(file: string): { ok: boolean; out: string } {
  const r = spawnSync('xmllint', ['--noout', '--schema', XSD, file], { encoding: 'utf8', timeout: 30_000 });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

async function fixtureJunit(edit?: (dir: string) => void): Promise<{ dir: string; xml: string }> {
  const dir = copyFixture('junit-');
  edit?.(dir);
  const { manifest, cells } = await readRun(dir);
  await writeSummary(dir, manifest, cells);
  return { dir, xml: readFileSync(join(dir, 'junit.xml'), 'utf8') };
}

describe('junit.xml', () => {
  it('one testsuite per target with its properties, one testcase per cell; error with the failure kind and the log tail', async () => {
    const { xml } = await fixtureJunit();
    const suites = [...xml.matchAll(/<testsuite name="([^"]+)" tests="(\d+)" failures="(\d+)" errors="(\d+)"/g)].map((m) => m.slice(1));
    expect(suites).toEqual([
      ['bullseye', '8', '0', '8'],
      ['local', '8', '0', '1'],
    ]);
    for (const p of ['kernel', 'openssl', 'clang', 'libbpf', 'cpus']) expect(xml).toContain(`<property name="${p}"`);
    expect(xml).toContain('<property name="kernel" value="6.18.44-fc-v1045"/>');
    expect(xml).toContain('<property name="cpus" value="2"/>'); // bullseye's facts
    expect(xml.match(/<testcase /g)).toHaveLength(16);
    expect(xml).toContain('<error message="boot-timeout: no SSH within 360 s" type="boot-timeout"/>');
    expect(xml).toMatch(
      /name="preexisting\/interleaved\/scoped"[^>]*>\s*<error message="tracer-failed: [^"]*" type="tracer-failed"\/>\s*<system-out><!\[CDATA\[[^]*BPF program load failed: Permission denied/,
    );
  });

  it('a verdict that is not as expected is a failure (not an error); an ok cell has neither', async () => {
    const { xml } = await fixtureJunit((dir) =>
      editCell(dir, 'local/preexisting-sequential-scoped', (r) => {
        // as if the fix had let wrong rows through: re-summarised so the verdict is computed, not typed in
        const t = r.trials[0]!;
        t.attribution = { ...t.attribution!, wrong: 5, correct: t.attribution!.correct - 5 };
        r.cell = summarizeCell(r.cell, { kernel: r.cell.kernel, openssl: r.cell.openssl }, r.trials);
      }),
    );
    expect(xml).toMatch(
      /name="preexisting\/sequential\/scoped"[^>]*>\s*<failure message="NOT as expected: expected no wrong rows, capture >= 95 %; got 5 wrong rows[^"]*" type="verdict"\/>/,
    );
    expect(xml).toMatch(/name="preexisting\/sequential\/upstream" time="[\d.]+">\s*<system-out>/);
  });

  it.skipIf(!haveXmllint && !inCI)(
    `validates against the JUnit schema${haveXmllint ? '' : ' (skipped: no xmllint; bash provision/host-deps.sh report)'}`,
    async () => {
      const { dir } = await fixtureJunit();
      const r = xmllint(join(dir, 'junit.xml'));
      expect(r.ok, r.out).toBe(true);
      // the schema is not vacuous: a testcase with two failures and a suite without counts are refused
      writeFileSync(
        join(dir, 'bad.xml'),
        '<testsuites><testsuite name="x" tests="1" failures="2" errors="0"><testcase name="a"><failure type="v"/><failure type="v"/></testcase></testsuite><testsuite name="y"/></testsuites>',
      );
      const bad = xmllint(join(dir, 'bad.xml'));
      expect(bad.ok).toBe(false);
      expect(bad.out).toMatch(/failure.*not expected|attribute 'tests' is required/);
    },
  );

  it('guest text with control characters and markup stays valid XML', async () => {
    expect(xmlSafe('a\x1b[31mred\x1b[0m\x00b\uD800c')).toBe('a[31mred[0m?b?c');
    const { manifest, cells } = await readRun(copyFixture('junit-ctl-'));
    const c = { ...cells.find((x) => x.status === 'tracer-failed')!, error: 'boom \x07 <b>"x"</b> ]]> & done' };
    const xml = renderJunit(manifest, [c]);
    expect(xml).not.toMatch(/[\x00-\x08\x0B\x0C\x0E-\x1F]/);
    expect(xml).toContain('message="tracer-failed: boom ? &lt;b>&quot;x&quot;&lt;/b> ]]> &amp; done"');
    if (haveXmllint) {
      const f = join(copyFixture('junit-ctl2-'), 'j.xml');
      writeFileSync(f, xml);
      expect(xmllint(f).ok, xmllint(f).out).toBe(true);
    }
  });
});
