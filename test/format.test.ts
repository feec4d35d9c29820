// One C style for bpf/ and client/ (.clang-format). The TypeScript's style is checked by
// `npm run format:check` (Prettier) in npm test before vitest runs.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { inCI } from './helpers/requirements.ts';

const have = spawnSync('clang-format', ['--version'], { timeout: 10_000 }).status === 0;
const files = ['bpf', 'client'].flatMap((d) =>
  readdirSync(d)
    .filter((f) => /\.[ch]$/.test(f))
    .map((f) => `${d}/${f}`),
);

describe.skipIf(!have && !inCI)(`C style${have ? '' : ' (skipped: no clang-format; bash provision/host-deps.sh report)'}`, () => {
  it('clang-format is installed (provision/host-deps.sh report)', () => {
    expect(have, 'clang-format is missing: bash provision/host-deps.sh report').toBe(true);
  });

  it.runIf(have).each(files)('%s follows .clang-format', (f) => {
    const r = spawnSync('clang-format', ['--dry-run', '--Werror', f], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, `${f} is not formatted (clang-format -i ${f}):\n${r.stderr.slice(0, 2000)}`).toBe(0);
  });

  it('covers both C trees', () => {
    expect(files).toEqual(expect.arrayContaining(['bpf/usm_tls.bpf.c', 'bpf/usm_tls.c', 'bpf/usm_tls.h', 'client/race_client.c']));
  });
});
