// The host packages a run needs, installed by provision/host-deps.sh (idempotent, says what it
// installs; not root: prints the apt-get line and fails). One place for matrix.mjs and for the
// vagrant backend used on its own (benchmarks, tests).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { LabError, type FailureKind } from './errors.ts';

/** Run host-deps.sh for `groups`; its stdout goes to `out` as it comes. Rejects with `kind`. */
export function ensureHostPackages(repoRoot: string, groups: readonly string[], o: { kind: FailureKind; out?: NodeJS.WritableStream }): Promise<void> {
  const cmd = `provision/host-deps.sh ${groups.join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(repoRoot, 'provision', 'host-deps.sh'), ...groups], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 40 * 60_000 });
    let log = '';
    child.stdout.on('data', (d: Buffer) => {
      log += d;
      o.out?.write(d);
    });
    child.stderr.on('data', (d: Buffer) => (log += d));
    child.on('error', (e) => reject(new LabError(o.kind, `cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code, signal) =>
      code === 0 ? resolve() : reject(new LabError(o.kind, `host packages are missing (${cmd} exited ${code ?? signal})`, log.trim())),
    );
  });
}
