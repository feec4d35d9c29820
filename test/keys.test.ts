// The files the image cache creates on first use (the client key pair, the floor initrd): created
// once per cache, the same for every caller, when several targets of one run or several runs
// ask at the same moment (issue 15). No VM, no root.
import { describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureFloorInitrd } from '../src/images/index.ts';
import { isStaticElf } from '../src/images/initrd.ts';
import { ensureClientKey, generateEd25519, publicKeyBlob } from '../src/images/keys.ts';
import { cachePaths } from '../src/images/manifest.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tmp = () => mkdtempSync(join(tmpdir(), 'keys-test-'));
const mode = (p: string) => statSync(p).mode & 0o777;
/** Whatever is left in the images folder besides the files that should be there. */
const leftovers = (dir: string, keep: string[]) => readdirSync(dir).filter((e) => !keep.includes(e));

describe('generateEd25519', () => {
  it('every key pair parses (ssh2 alone gets one in 256 wrong: a 31-byte public key)', () => {
    // 1500 draws: without the retry, at least one bad pair appears with probability 1 - (255/256)^1500 = 99.7 %.
    for (let i = 0; i < 1500; i++) {
      const kp = generateEd25519('t');
      expect(publicKeyBlob(kp.publicKey)).toHaveLength(51); // 4 + 11 ("ssh-ed25519") + 4 + 32
      expect(ssh2.utils.parseKey(kp.privateKey)).not.toBeInstanceOf(Error);
    }
  });
});

describe('the cache client key, created on first use', () => {
  it('N concurrent callers in one process on an empty cache all get the same key, the one on disk', async () => {
    const cp = cachePaths(tmp());
    const keys = await Promise.all(Array.from({ length: 8 }, () => ensureClientKey(cp.clientKey)));
    expect(new Set(keys.map((k) => k.publicKey)).size).toBe(1);
    expect(new Set(keys.map((k) => k.privateKey)).size).toBe(1);
    expect(readFileSync(cp.clientKeyPub, 'utf8').trim()).toBe(keys[0]!.publicKey);
    expect(readFileSync(cp.clientKey, 'utf8')).toBe(keys[0]!.privateKey);
    expect(mode(cp.clientKey)).toBe(0o600);
    expect(mode(cp.clientKeyPub)).toBe(0o644);
    expect(leftovers(cp.images, ['id_ed25519', 'id_ed25519.pub'])).toEqual([]);
    // Later calls read it back.
    expect((await ensureClientKey(cp.clientKey)).publicKey).toBe(keys[0]!.publicKey);
  });

  it('0600 / 0644 whatever the umask', async () => {
    const cp = cachePaths(tmp());
    const old = process.umask(0o077);
    try {
      await ensureClientKey(cp.clientKey);
    } finally {
      process.umask(old);
    }
    expect(mode(cp.clientKey)).toBe(0o600);
    expect(mode(cp.clientKeyPub)).toBe(0o644);
  });

  it('two processes racing on an empty cache both succeed with the same key', async () => {
    const dir = tmp();
    const cp = cachePaths(dir);
    // Each child says "ready" once tsx has loaded, then waits for "go" on stdin, so both call
    // ensureClientKey (4 times at once each) at the same moment however slow the start-up.
    const script = join(dir, 'child.mts');
    await writeFile(
      script,
      [
        `import { ensureClientKey } from ${JSON.stringify(join(root, 'src/images/keys.ts'))};`,
        `process.stdout.write('ready\\n');`,
        `await new Promise((r) => process.stdin.once('data', r));`,
        `const keys = await Promise.all([1, 2, 3, 4].map(() => ensureClientKey(process.argv[2])));`,
        `process.stdout.write(JSON.stringify(keys.map((k) => k.publicKey)) + '\\n');`,
        `process.exit(0);`,
      ].join('\n'),
    );
    const children = [0, 1].map(() => {
      const c = spawn(process.execPath, ['--import', 'tsx/esm', script, cp.clientKey], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      c.stdout.on('data', (d: Buffer) => (out += d));
      c.stderr.on('data', (d: Buffer) => (err += d));
      const ready = new Promise<void>((res, rej) => {
        c.stdout.on('data', () => out.includes('ready\n') && res());
        c.on('exit', () => rej(new Error(`child exited before ready: ${err}`)));
      });
      const done = new Promise<{ code: number | null; out: string; err: string }>((res) => c.on('exit', (code) => res({ code, out, err })));
      return { c, ready, done };
    });
    await Promise.all(children.map((x) => x.ready));
    for (const x of children) x.c.stdin.write('go\n');
    const results = await Promise.all(children.map((x) => x.done));
    for (const r of results) expect(r, r.err).toMatchObject({ code: 0 });
    const seen = results.flatMap((r) => JSON.parse(r.out.split('\n')[1]!) as string[]);
    expect(seen).toHaveLength(8);
    expect(new Set(seen)).toEqual(new Set([readFileSync(cp.clientKeyPub, 'utf8').trim()]));
    expect(mode(cp.clientKey)).toBe(0o600);
    expect(mode(cp.clientKeyPub)).toBe(0o644);
    expect(leftovers(cp.images, ['id_ed25519', 'id_ed25519.pub'])).toEqual([]);
  }, 60_000);

  it('a private key whose .pub is missing or another key is not returned as a pair', async () => {
    const cp = cachePaths(tmp());
    const a = await ensureClientKey(cp.clientKey);
    const other = await ensureClientKey(cachePaths(tmp()).clientKey);
    await writeFile(cp.clientKeyPub, other.publicKey + '\n');
    const b = await ensureClientKey(cp.clientKey);
    expect(publicKeyBlob(b.publicKey)).not.toEqual(publicKeyBlob(other.publicKey));
    // The pair on disk is consistent again (the private key was kept, its public half rewritten).
    expect(b.privateKey).toBe(a.privateKey);
    expect(b.publicKey).toBe(a.publicKey);
    expect(readFileSync(cp.clientKeyPub, 'utf8').trim()).toBe(a.publicKey);
    await rm(cp.clientKeyPub);
    expect(await ensureClientKey(cp.clientKey)).toEqual(a);
    expect(mode(cp.clientKeyPub)).toBe(0o644);
  });

  it('a private key that is not one is an error naming the file, not a new key', async () => {
    const cp = cachePaths(tmp());
    await ensureClientKey(cp.clientKey);
    await writeFile(cp.clientKey, 'garbage\n');
    await expect(ensureClientKey(cp.clientKey)).rejects.toThrow(`${cp.clientKey} is not an OpenSSH private key`);
    expect(readFileSync(cp.clientKey, 'utf8')).toBe('garbage\n');
  });
});

const staticBusybox = existsSync('/bin/busybox') && isStaticElf(readFileSync('/bin/busybox'));

describe.skipIf(!staticBusybox)('the floor initrd, built on first use', () => {
  it('N concurrent callers in one process on an empty cache all succeed with one file', async () => {
    const cp = cachePaths(tmp());
    const paths = await Promise.all(Array.from({ length: 4 }, () => ensureFloorInitrd(join(cp.images, '..'))));
    expect(new Set(paths)).toEqual(new Set([cp.floorInitrd]));
    expect(statSync(cp.floorInitrd).size).toBeGreaterThan(1000);
    expect(leftovers(cp.images, ['floor-initrd.img', 'floor-initrd.img.src'])).toEqual([]);
  });
});
