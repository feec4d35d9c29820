// Fault case 16: values with shell metacharacters. A matrix.yaml target named `x;touch pwned` is
// rejected (exit 2, file:line:column); a --config / --cache path with `$(...)` is one argument
// (the error names it literally); nothing is executed. The run folder case with a real run is
// in local.test.ts (every local fault run writes to a folder named with `$(...)`, `;` and backquotes).
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './harness.ts';

const cwd = mkdtempSync(join(tmpdir(), 'fault-meta-'));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

function matrix(args: string[]) {
  // From a folder of its own: a `touch pwned` that ran would leave its file here (or in the repository).
  const r = spawnSync(join(REPO, 'node_modules', '.bin', 'zx'), [join(REPO, 'scripts', 'matrix.mjs'), ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

function nothingRan(): void {
  expect(readdirSync(cwd).filter((f) => f.startsWith('pwned'))).toEqual([]);
  for (const f of ['pwned', 'pwned2', 'pwned3']) expect(existsSync(join(REPO, f)), f).toBe(false);
}

describe('shell metacharacters in the matrix and in paths (fault case 16)', () => {
  it("a target named 'x;touch pwned' and a suite '$(touch pwned2)' are rejected with file:line:column; nothing runs", () => {
    const file = join(cwd, 'm.yaml');
    writeFileSync(
      file,
      [
        'targets:',
        '  "x;touch pwned": { backend: qemu, suite: bookworm }',
        '  ok: { backend: qemu, suite: "$(touch pwned2)" }',
        'default_targets: ["x;touch pwned", ok]',
        '',
      ].join('\n'),
    );
    const r = matrix(['--config', file]);
    expect(r.code, r.out).toBe(2);
    expect(r.out).toMatch(/m\.yaml:2:\d+.*target name 'x;touch pwned' must be/);
    expect(r.out).toMatch(/m\.yaml:3:\d+.*\$\(touch pwned2\)/);
    nothingRan();
  });

  it('a --config path with $(...) and backquotes is one argument: the error names it as given', () => {
    const path = join(cwd, 'conf-$(touch pwned)-`touch pwned2`.yaml');
    const r = matrix(['--config', path]);
    expect(r.code, r.out).toBe(2);
    expect(r.out).toContain('conf-$(touch pwned)-`touch pwned2`.yaml');
    nothingRan();
  });

  it('--targets with ; and $(...) is rejected as an unknown target, not run', () => {
    const r = matrix(['--targets', 'bookworm;touch pwned,$(touch pwned2)']);
    expect(r.code, r.out).toBe(2);
    expect(r.out).toMatch(/bookworm;touch pwned/);
    nothingRan();
  });
});
