// The accelerator probe's answer is kept for the rest of the host's boot (shared/accel.ts): a
// broken KVM costs its 30 s timeout once per boot, not once per run. What must hold: the answer
// is reused only on the same boot, /dev/kvm and QEMU binary, and a damaged file is ignored.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accelKey, readAccelCache, type AccelKey } from '../src/backends/shared/accel.ts';

const dir = mkdtempSync(join(tmpdir(), 'accel-cache-'));
const file = join(dir, 'accel-probe.json');
const put = (key: AccelKey, extra: Record<string, unknown> = {}) =>
  writeFileSync(file, JSON.stringify({ key, accel: 'tcg', reason: 'KVM did not boot a guest: no marker within 30 s', at: '2026-12-01T12:00:00Z', ...extra }));

describe('accelerator probe cache', () => {
  it('the key names this boot, /dev/kvm and the QEMU binary', async () => {
    const k = await accelKey();
    expect(k.bootId).toMatch(/^[0-9a-f-]{36}$/);
    expect(k.kvm).not.toBe('');
    expect(k.qemu).not.toBe('');
    // a binary that is not on PATH is 'missing', so a later install changes the key
    expect((await accelKey('no-such-qemu-binary')).qemu).toBe('missing');
  });

  it('reuses an answer of the same boot, kvm device and QEMU, and says where it came from', async () => {
    const k = await accelKey();
    put(k);
    const hit = await readAccelCache(file, k);
    expect(hit?.accel).toBe('tcg');
    expect(hit?.reason).toMatch(/no marker within 30 s \(probed 2026-12-01T12:00:00Z on this boot; cached in .*accel-probe\.json\)/);
  });

  it.each([
    ['another boot', { bootId: '00000000-0000-0000-0000-000000000000' }],
    ['another /dev/kvm', { kvm: 'missing' }],
    ['another QEMU', { qemu: '/usr/bin/qemu-system-x86_64:1:2' }],
  ])('probes again after %s', async (_what, change) => {
    const k = await accelKey();
    put({ ...k, ...change });
    expect(await readAccelCache(file, k)).toBeNull();
  });

  it('ignores a damaged or foreign file, and a key without a boot id', async () => {
    const k = await accelKey();
    writeFileSync(file, '{"key": ');
    expect(await readAccelCache(file, k)).toBeNull();
    put(k, { accel: 'hvf' });
    expect(await readAccelCache(file, k)).toBeNull();
    put(k);
    expect(await readAccelCache(file, { ...k, bootId: '' })).toBeNull();
    expect(await readAccelCache(join(dir, 'none.json'), k)).toBeNull();
  });
});
