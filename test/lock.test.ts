// pidLock across processes: at most one holder at any moment, even when several processes race
// for a free lock (the lock file used to be empty between its O_EXCL create and the pid write,
// and a racer took that for a dead holder's lock: two owners, two builds in one cache folder).
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

describe('pidLock between processes', () => {
  it('four processes taking one lock 10 times each never hold it together; no temporary file is left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pidlock-'));
    const lock = join(dir, '.lock-x');
    const log = join(dir, 'log');
    const script = join(dir, 'child.mts');
    // Each child says "ready" once tsx has loaded, then waits for "go", so all race at one moment.
    writeFileSync(
      script,
      [
        `import { appendFileSync } from 'node:fs';`,
        `import { pidLock } from ${JSON.stringify(join(root, 'src/images/lock.ts'))};`,
        `process.stdout.write('ready\\n');`,
        `await new Promise((r) => process.stdin.once('data', r));`,
        `for (let i = 0; i < 10; i++) {`,
        `  const release = await pidLock(process.argv[2], { pollMs: 1, waitingFor: 'x' });`,
        `  appendFileSync(process.argv[3], 'S ' + process.pid + '\\n');`,
        `  await new Promise((r) => setTimeout(r, 2));`,
        `  appendFileSync(process.argv[3], 'E ' + process.pid + '\\n');`,
        `  await release();`,
        `}`,
        `process.exit(0);`,
      ].join('\n'),
    );
    const children = [0, 1, 2, 3].map(() => {
      const c = spawn(process.execPath, ['--import', 'tsx/esm', script, lock, log], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      c.stdout.on('data', (d: Buffer) => (out += d));
      c.stderr.on('data', (d: Buffer) => (err += d));
      const ready = new Promise<void>((res, rej) => {
        c.stdout.on('data', () => out.includes('ready\n') && res());
        c.on('exit', () => rej(new Error(`child exited before ready: ${err}`)));
      });
      const done = new Promise<{ code: number | null; err: string }>((res) => c.on('exit', (code) => res({ code, err })));
      return { c, ready, done };
    });
    await Promise.all(children.map((x) => x.ready));
    for (const x of children) x.c.stdin.write('go\n');
    for (const r of await Promise.all(children.map((x) => x.done))) expect(r, r.err).toMatchObject({ code: 0 });
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(80);
    // Strictly S p, E p, S q, E q ...: a start never follows a start.
    for (let i = 0; i < lines.length; i += 2) {
      const [s, e] = [lines[i]!.split(' '), lines[i + 1]!.split(' ')];
      expect([s[0], e[0], e[1]], `lines ${i}-${i + 1}`).toEqual(['S', 'E', s[1]]);
    }
    expect(readdirSync(dir).sort()).toEqual(['child.mts', 'log']);
  }, 60_000);
});

describe('tryPidLock', () => {
  it('takes a free lock, reports a live holder without waiting, takes over a dead one', async () => {
    const { pidLock, tryPidLock } = await import('../src/images/lock.ts');
    const dir = mkdtempSync(join(tmpdir(), 'trylock-'));
    const lock = join(dir, '.run.lock');
    const held = await pidLock(lock, { pollMs: 1, waitingFor: 'x' });
    const t0 = Date.now();
    expect(await tryPidLock(lock)).toEqual({ holder: process.pid });
    expect(Date.now() - t0).toBeLessThan(1_000);
    await held();
    const got = await tryPidLock(lock);
    expect('release' in got).toBe(true);
    if ('release' in got) await got.release();
    // a holder that is gone (pid 2^22 + 1 is above pid_max's default): taken over
    writeFileSync(lock, String(4194305));
    const over = await tryPidLock(lock);
    expect('release' in over).toBe(true);
    expect(readFileSync(lock, 'utf8')).toBe(String(process.pid));
    if ('release' in over) await over.release();
    expect(readdirSync(dir)).toEqual([]);
  });
});
