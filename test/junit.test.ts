// junit.xml: one testsuite per target, one testcase per cell, failure / error / system-out, and
// valid against a strict JUnit schema (test/schema/junit.xsd) with xmllint.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { summarizeCell } from '../src/analysis/cell.ts';
import { readRun } from '../src/report/merge.ts';
import type { CellArtifacts } from '../src/report/artifacts.ts';
import { renderJunit, xmlSafe } from '../src/report/junit.ts';
import type { Manifest } from '../src/report/manifest.ts';
import type { CellView } from '../src/report/view.ts';
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

describe('renderJunit, word for word', () => {
  /** A cell written out by hand: only what junit.xml reads of it. */
  const view = (over: Partial<CellView>): CellView =>
    ({
      target: 'bookworm',
      cpus: 1,
      reads: 'full',
      variant: 'upstream',
      mode: 'interleaved',
      scenario: 'preexisting',
      kernel: '6.1',
      openssl: '3.0',
      status: 'ok',
      misattribution: 0.5,
      misattributionCI: { lo: 0.25, hi: 0.75 },
      wrong: 2,
      captured: 4,
      verdict: { pass: true, expectation: 'wrong rows', reason: '2 wrong rows' },
      ...over,
    }) as CellView;
  const manifest = {
    runId: 'r<1>',
    targets: [
      { name: 'sid', backend: 'vagrant', status: 'boot-failed', facts: { kernel: '6.9', cpus: 4, openssl: '3.5' } },
      { name: 'bookworm', backend: 'qemu', status: 'ok', cpus: 2, facts: { kernel: 'K', openssl: 'O', clang: 16, libbpf: '1.1.2' } },
    ],
  } as unknown as Manifest;

  it('suites by target name (cells of an unlisted target too), their properties and fallbacks, each case with its time, failure or error and output', () => {
    const cells = [
      view({ reads: 'single', server: 'haproxy' }),
      view({ variant: 'scoped', kernel: 'unknown', verdict: { pass: false, expectation: 'no wrong rows', reason: '2 wrong rows' } }),
      view({ mode: 'sequential', verdict: { pass: null, expectation: 'nothing', reason: 'measured' }, misattributionCI: null }),
      view({ target: 'sid', kernel: 'unknown', openssl: 'unknown', status: 'boot-failed', error: 'no ssh', misattribution: null, wrong: 0, captured: 0 }),
      view({
        target: 'trixie',
        cpus: 8,
        kernel: 'T',
        openssl: 'TO',
        status: 'timeout',
        misattribution: null,
        wrong: 0,
        captured: 0,
        verdict: { pass: false, expectation: 'cell runs', reason: 'timeout' },
      }),
    ];
    const artifacts = new Map<string, CellArtifacts>([
      [
        'bookworm/preexisting/interleaved/upstream single haproxy',
        { trials: [{ durationMs: 1500 }, {}, { durationMs: 250 }], logTail: '' } as unknown as CellArtifacts,
      ],
      ['bookworm/preexisting/interleaved/scoped', { trials: [{ durationMs: 0 }], logTail: '' } as unknown as CellArtifacts],
      ['sid/preexisting/interleaved/upstream', { trials: [], logTail: 'boot\x1b[1m log' } as unknown as CellArtifacts],
    ]);
    expect(renderJunit(manifest, cells, artifacts)).toBe(`<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="usm-race-lab r&lt;1>" tests="5" failures="1" errors="2" skipped="0">
  <testsuite name="bookworm" tests="3" failures="1" errors="0" skipped="0">
    <properties>
      <property name="kernel" value="K"/>
      <property name="openssl" value="3.0"/>
      <property name="clang" value="16"/>
      <property name="libbpf" value="1.1.2"/>
      <property name="cpus" value="2"/>
      <property name="backend" value="qemu"/>
      <property name="status" value="ok"/>
    </properties>
    <testcase classname="bookworm.preexisting" name="preexisting/interleaved/scoped">
      <failure message="NOT as expected: expected no wrong rows; got 2 wrong rows" type="verdict"/>
      <system-out><![CDATA[bookworm preexisting/interleaved/scoped: kernel unknown, OpenSSL 3.0
misattribution 50.0 % [25.0-75.0] (2 of 4 rows), status ok, verdict NOT as expected (2 wrong rows)]]></system-out>
    </testcase>
    <testcase classname="bookworm.preexisting" name="preexisting/interleaved/upstream/single/haproxy" time="1.75">
      <system-out><![CDATA[bookworm preexisting/interleaved/upstream/single/haproxy: kernel 6.1, OpenSSL 3.0
misattribution 50.0 % [25.0-75.0] (2 of 4 rows), status ok, verdict as expected (2 wrong rows)]]></system-out>
    </testcase>
    <testcase classname="bookworm.preexisting" name="preexisting/sequential/upstream">
      <system-out><![CDATA[bookworm preexisting/sequential/upstream: kernel 6.1, OpenSSL 3.0
misattribution 50.0 % [15.0-85.0] (2 of 4 rows), status ok, verdict measured (measured)]]></system-out>
    </testcase>
  </testsuite>
  <testsuite name="sid" tests="1" failures="0" errors="1" skipped="0">
    <properties>
      <property name="kernel" value="6.9"/>
      <property name="openssl" value="3.5"/>
      <property name="clang" value="unknown"/>
      <property name="libbpf" value="unknown"/>
      <property name="cpus" value="1"/>
      <property name="backend" value="vagrant"/>
      <property name="status" value="boot-failed"/>
    </properties>
    <testcase classname="sid.preexisting" name="preexisting/interleaved/upstream">
      <error message="boot-failed: no ssh" type="boot-failed"/>
      <system-out><![CDATA[sid preexisting/interleaved/upstream: kernel unknown, OpenSSL unknown
misattribution n/a (0 of 0 rows), status boot-failed, verdict as expected (2 wrong rows)

--- log tail ---
boot[1m log]]></system-out>
    </testcase>
  </testsuite>
  <testsuite name="trixie" tests="1" failures="0" errors="1" skipped="0">
    <properties>
      <property name="kernel" value="T"/>
      <property name="openssl" value="TO"/>
      <property name="clang" value="unknown"/>
      <property name="libbpf" value="unknown"/>
      <property name="cpus" value="8"/>
      <property name="backend" value="unknown"/>
      <property name="status" value="unknown"/>
    </properties>
    <testcase classname="trixie.preexisting" name="preexisting/interleaved/upstream">
      <error message="timeout" type="timeout"/>
      <system-out><![CDATA[trixie preexisting/interleaved/upstream: kernel T, OpenSSL TO
misattribution n/a (0 of 0 rows), status timeout, verdict NOT as expected (timeout)]]></system-out>
    </testcase>
  </testsuite>
</testsuites>
`);
  });

  it("a listed target with no cell: its facts, its vCPUs from the facts when the record has none; 'unknown' for what is missing", () => {
    const m = {
      runId: 'r',
      targets: [{ name: 'sid', backend: 'qemu', status: 'boot-failed', facts: { kernel: '6.9', cpus: 4, clang: null } }],
    } as unknown as Manifest;
    const xml = renderJunit(m, []);
    expect(xml).toContain(
      '<testsuite name="sid" tests="0" failures="0" errors="0" skipped="0">\n    <properties>\n      <property name="kernel" value="6.9"/>\n      <property name="openssl" value="unknown"/>\n      <property name="clang" value="unknown"/>\n      <property name="libbpf" value="unknown"/>\n      <property name="cpus" value="4"/>',
    );
    expect(xml.endsWith('</testsuites>\n')).toBe(true);
  });

  it.each([
    ['\x1b', ''],
    ['\x00\x08\x0b\x0c\x0e\x1f\x7f', '???????'],
    ['\t\n\r', '\t\n\r'],
    ['\uFFFE\uFFFF\uFFFD', '??\uFFFD'],
    ['\uD83D\uDE00', '\uD83D\uDE00'],
    ['a\uD83Db', 'a?b'],
    ['a\uDE00b', 'a?b'],
    ['\uDE00\uD83D', '??'],
  ])('xmlSafe(%j) is %j', (s, safe) => {
    expect(xmlSafe(s)).toBe(safe);
  });
});
