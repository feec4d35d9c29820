// SshMachine against an in-process ssh2 Server speaking the real protocol: exec runs `sh -c` on
// this host in its own session (as sshd does), sftp maps to a temporary folder.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import type { Connection, SFTPWrapper } from 'ssh2';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabError } from '../src/errors.ts';
import { generateEd25519, publicKeyBlob } from '../src/images/keys.ts';
import { SshMachine, remoteCommand } from '../src/machine/ssh.ts';
import { shellJoin, shellQuote } from '../src/machine/types.ts';
import { reservePort } from '../src/backends/shared/ports.ts';

const { Server, utils } = ssh2;
const { STATUS_CODE } = utils.sftp;

const hostKey = generateEd25519('test-host');
const clientKey = generateEd25519('test-client');
const otherKey = generateEd25519('someone-else');

// ---------- a small SSH server: publickey auth, exec via sh -c, sftp on the local fs ----------

function serveSftp(sftp: SFTPWrapper): void {
  const handles = new Map<number, { fh?: fsp.FileHandle; dir?: string; listed?: boolean }>();
  let next = 1;
  const handle = (h: { fh?: fsp.FileHandle; dir?: string }) => {
    const id = next++;
    handles.set(id, h);
    const b = Buffer.alloc(4);
    b.writeUInt32BE(id);
    return b;
  };
  const get = (b: Buffer) => handles.get(b.readUInt32BE(0));
  const attrs = (s: import('node:fs').Stats) => ({
    mode: s.mode,
    uid: s.uid,
    gid: s.gid,
    size: s.size,
    atime: Math.floor(s.atimeMs / 1000),
    mtime: Math.floor(s.mtimeMs / 1000),
  });
  const fail = (id: number, err: unknown) =>
    sftp.status(id, (err as NodeJS.ErrnoException).code === 'ENOENT' ? STATUS_CODE.NO_SUCH_FILE : STATUS_CODE.FAILURE, String(err));
  const ok = (id: number, p: Promise<unknown>) =>
    p.then(
      () => sftp.status(id, STATUS_CODE.OK),
      (e) => fail(id, e),
    );
  sftp
    .on('REALPATH', (id, p) => sftp.name(id, [{ filename: p, longname: p, attrs: {} as never }]))
    .on('STAT', (id, p) =>
      fsp.stat(p).then(
        (s) => sftp.attrs(id, attrs(s)),
        (e) => fail(id, e),
      ),
    )
    .on('LSTAT', (id, p) =>
      fsp.lstat(p).then(
        (s) => sftp.attrs(id, attrs(s)),
        (e) => fail(id, e),
      ),
    )
    .on('FSTAT', (id, h) =>
      get(h)!
        .fh!.stat()
        .then(
          (s) => sftp.attrs(id, attrs(s)),
          (e) => fail(id, e),
        ),
    )
    .on('MKDIR', (id, p) => ok(id, fsp.mkdir(p)))
    .on('SETSTAT', (id, p, a) => ok(id, a.mode !== undefined ? fsp.chmod(p, a.mode & 0o7777) : Promise.resolve()))
    .on('FSETSTAT', (id, h, a) => ok(id, a.mode !== undefined ? get(h)!.fh!.chmod(a.mode & 0o7777) : Promise.resolve()))
    .on('REMOVE', (id, p) => ok(id, fsp.unlink(p)))
    .on('SYMLINK', (id, link, target) => ok(id, fsp.symlink(target, link)))
    .on('READLINK', (id, p) =>
      fsp.readlink(p).then(
        (t) => sftp.name(id, [{ filename: t, longname: t, attrs: {} as never }]),
        (e) => fail(id, e),
      ),
    )
    .on('OPEN', (id, p, flags, a) => {
      const mode = utils.sftp.flagsToString(flags) ?? 'r';
      fsp.open(p, mode, a.mode ?? 0o644).then(
        (fh) => sftp.handle(id, handle({ fh })),
        (e) => fail(id, e),
      );
    })
    .on('WRITE', (id, h, off, data) => ok(id, get(h)!.fh!.write(data, 0, data.length, off)))
    .on('READ', (id, h, off, len) => {
      const buf = Buffer.alloc(len);
      get(h)!
        .fh!.read(buf, 0, len, off)
        .then(
          ({ bytesRead }) => (bytesRead ? sftp.data(id, buf.subarray(0, bytesRead)) : sftp.status(id, STATUS_CODE.EOF)),
          (e) => fail(id, e),
        );
    })
    .on('OPENDIR', (id, p) =>
      fsp.stat(p).then(
        () => sftp.handle(id, handle({ dir: p })),
        (e) => fail(id, e),
      ),
    )
    .on('READDIR', async (id, h) => {
      const d = get(h)!;
      if (d.listed) return sftp.status(id, STATUS_CODE.EOF);
      d.listed = true;
      const names = await fsp.readdir(d.dir!);
      const list = await Promise.all(names.map(async (n) => ({ filename: n, longname: n, attrs: attrs(await fsp.lstat(join(d.dir!, n))) })));
      sftp.name(id, list);
    })
    .on('CLOSE', (id, h) => {
      const d = get(h);
      handles.delete(h.readUInt32BE(0));
      ok(id, d?.fh ? d.fh.close() : Promise.resolve());
    });
}

function onClient(client: Connection): void {
  const allowed = publicKeyBlob(clientKey.publicKey);
  client.on('authentication', (ctx) => {
    if (ctx.method !== 'publickey' || !ctx.key.data.equals(allowed)) return ctx.reject(['publickey']);
    if (!ctx.signature) return ctx.accept();
    const k = utils.parseKey(clientKey.publicKey);
    const key = Array.isArray(k) ? k[0] : k;
    if (key && !(key instanceof Error) && ctx.blob && key.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) ctx.accept();
    else ctx.reject();
  });
  client.on('error', () => {});
  client.on('ready', () => {
    client.on('session', (acceptSession) => {
      const session = acceptSession();
      session.on('exec', (accept, _reject, info) => {
        const stream = accept();
        // Like sshd: the command's shell leads its own session and process group.
        const child = spawn('sh', ['-c', info.command], { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
        child.stdout.pipe(stream, { end: false });
        child.stderr.pipe(stream.stderr, { end: false });
        stream.on('data', (d: Buffer) => child.stdin.write(d));
        stream.on('end', () => child.stdin.end());
        child.stdin.on('error', () => {});
        stream.on('error', () => {});
        child.on('close', (code, sig) => {
          if (sig) stream.exit(sig.replace(/^SIG/, ''), false, '');
          else stream.exit(code ?? 255);
          stream.end();
        });
      });
      session.on('sftp', (accept) => serveSftp(accept()));
    });
  });
}

async function startServer(port = 0): Promise<{ port: number; close: () => Promise<void> }> {
  const server = new Server({ hostKeys: [hostKey.privateKey] }, onClient);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  const addr = server.address();
  return { port: typeof addr === 'object' && addr ? addr.port : port, close: () => new Promise((r) => server.close(() => r())) };
}

const connectOpts = (port: number) => ({
  target: 'test',
  workdir: tmpdir(),
  host: '127.0.0.1',
  port,
  username: 'root',
  privateKey: clientKey.privateKey,
  hostKey: hostKey.publicKey,
  deadlineMs: 10_000,
});

// ---------- tests ----------

describe('shellQuote', () => {
  const cases = [
    '',
    'plain',
    'a b',
    "it's",
    '"double"',
    '$HOME',
    '`id`',
    '$(id)',
    'a\nb',
    'tab\there',
    '*',
    '~',
    'back\\slash',
    "'",
    "''",
    '-n',
    'é ü',
    ';rm -rf /;',
    '!bang',
    '%s',
  ];
  it('round-trips every argument through a real sh -c', () => {
    const r = spawnSync('sh', ['-c', `printf '%s\\0' ${shellJoin(cases)}`], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(0);
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(cases);
  }, 15_000);

  it.each([
    ['simple', 'simple'],
    ['', "''"],
    ['a b', "'a b'"],
    ["it's", "'it'\\''s'"],
  ])('quotes %j as %s', (arg, want) => {
    expect(shellQuote(arg)).toBe(want);
  });

  it('builds the remote command from argv, never from a joined string', () => {
    expect(remoteCommand(['echo', 'a b', "c'd"], '/work dir')).toBe("echo $$; cd '/work dir' && exec echo 'a b' 'c'\\''d'");
    expect(() => remoteCommand([], '/')).toThrow(/empty argv/);
  });
});

describe('SshMachine over a real SSH server', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  let m: SshMachine;
  const dir = mkdtempSync(join(tmpdir(), 'ssh-test-'));

  beforeAll(async () => {
    srv = await startServer();
    m = await SshMachine.connect(connectOpts(srv.port));
  }, 30_000);
  afterAll(async () => {
    await m?.close();
    await srv?.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('exec returns exit codes, stdout and stderr, and keeps argv intact', async () => {
    const r = await m.exec(['sh', '-c', 'echo out; echo err >&2; exit 3'], { timeoutMs: 10_000 });
    expect(r).toEqual({ code: 3, signal: null, stdout: 'out\n', stderr: 'err\n', timedOut: false });
    const args = ['a b', "it's", '$HOME', '`id`', ''];
    const echo = await m.exec(['printf', '%s|', ...args], { timeoutMs: 10_000 });
    expect(echo.stdout).toBe(args.join('|') + '|');
  }, 20_000);

  it('exec runs in cwd and feeds input', async () => {
    const r = await m.exec(['sh', '-c', 'pwd; cat'], { timeoutMs: 10_000, cwd: dir, input: 'hello\n' });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${dir}\nhello\n`);
    const bad = await m.exec(['true'], { timeoutMs: 10_000, cwd: join(dir, 'missing') });
    // a real exit code (cd failed), not null: null would mean killed or timed out
    expect(bad.code).toBeGreaterThan(0);
    expect(bad).toMatchObject({ signal: null, timedOut: false });
    expect(bad.stderr).toContain(join(dir, 'missing'));
  }, 20_000);

  it('a timeout kills the remote process group, children included', async () => {
    const pidFile = join(dir, 'pids');
    const t0 = Date.now();
    const r = await m.exec(['sh', '-c', `sleep 60 & echo $$ $! > ${pidFile}; wait`], { timeoutMs: 1_000 });
    expect(r.timedOut).toBe(true);
    expect(r.code).toBeNull();
    expect(Date.now() - t0).toBeLessThan(8_000);
    const [shPid, sleepPid] = readFileSync(pidFile, 'utf8').trim().split(' ').map(Number);
    await new Promise((res) => setTimeout(res, 300));
    for (const pid of [shPid!, sleepPid!])
      expect(existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '), `pid ${pid} still running`).toBe(false);
  }, 20_000);

  it('reports a command killed by a signal', async () => {
    const r = await m.exec(['sh', '-c', 'kill -TERM $$'], { timeoutMs: 10_000 });
    expect(r.code).toBeNull();
    expect(r.signal).toBe('SIGTERM');
  }, 20_000);

  it('puts and gets a directory tree (modes and symlinks kept)', async () => {
    const src = join(dir, 'src');
    await fsp.mkdir(join(src, 'sub/deeper'), { recursive: true });
    await fsp.writeFile(join(src, 'a.txt'), 'alpha\n');
    await fsp.writeFile(join(src, 'sub/run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    await fsp.writeFile(join(src, 'sub/deeper/big.bin'), Buffer.alloc(300_000, 7));
    await fsp.symlink('a.txt', join(src, 'link'));
    const remote = join(dir, 'remote/nested/copy');
    await m.put(src, remote, { timeoutMs: 20_000 });
    expect(readFileSync(join(remote, 'a.txt'), 'utf8')).toBe('alpha\n');
    expect(statSync(join(remote, 'sub/run.sh')).mode & 0o777).toBe(0o755);
    expect(statSync(join(remote, 'sub/deeper/big.bin')).size).toBe(300_000);
    expect(readlinkSync(join(remote, 'link'))).toBe('a.txt');

    const back = join(dir, 'back');
    await m.get(remote, back, { timeoutMs: 20_000 });
    expect(readFileSync(join(back, 'a.txt'), 'utf8')).toBe('alpha\n');
    expect(statSync(join(back, 'sub/run.sh')).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(back, 'sub/deeper/big.bin')).equals(Buffer.alloc(300_000, 7))).toBe(true);
    expect(lstatSync(join(back, 'link')).isSymbolicLink()).toBe(true);

    await m.put(join(src, 'a.txt'), join(dir, 'single.txt'));
    await m.get(join(dir, 'single.txt'), join(dir, 'single-back.txt'));
    expect(readFileSync(join(dir, 'single-back.txt'), 'utf8')).toBe('alpha\n');
  }, 30_000);

  it('runs exec channels in parallel on one connection', async () => {
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => m.exec(['sh', '-c', `sleep 0.2; echo ${i}`], { timeoutMs: 10_000 })));
    expect(rs.map((r) => r.stdout.trim())).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
  }, 20_000);
});

describe('SshMachine.connect', () => {
  it('refuses a server whose host key is not the pinned one, without retrying to the deadline', async () => {
    const srv = await startServer();
    try {
      const t0 = Date.now();
      const err = await SshMachine.connect({ ...connectOpts(srv.port), hostKey: otherKey.publicKey, deadlineMs: 20_000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LabError);
      expect((err as LabError).message).toMatch(/does not match the pinned key/);
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      await srv.close();
    }
  }, 20_000);

  it('refuses a client key the server does not authorise', async () => {
    const srv = await startServer();
    try {
      const err = await SshMachine.connect({ ...connectOpts(srv.port), privateKey: otherKey.privateKey }).catch((e: unknown) => e);
      expect((err as LabError).message).toMatch(/authentication/);
    } finally {
      await srv.close();
    }
  }, 20_000);

  it('retries until the server comes up (boot waiting)', async () => {
    const res = await reservePort();
    await res.handOff();
    let srv: Awaited<ReturnType<typeof startServer>> | undefined;
    const later = new Promise<void>((r) =>
      setTimeout(async () => {
        srv = await startServer(res.port);
        r();
      }, 1_500),
    );
    try {
      const m = await SshMachine.connect({ ...connectOpts(res.port), deadlineMs: 15_000 });
      const r = await m.exec(['echo', 'up'], { timeoutMs: 5_000 });
      expect(r.stdout).toBe('up\n');
      await m.close();
    } finally {
      await later;
      await srv?.close();
      res.release();
    }
  }, 30_000);

  it('gives up with boot-timeout at the deadline', async () => {
    const res = await reservePort();
    await res.handOff();
    try {
      const t0 = Date.now();
      const err = await SshMachine.connect({ ...connectOpts(res.port), deadlineMs: 1_500 }).catch((e: unknown) => e);
      expect((err as LabError).kind).toBe('boot-timeout');
      expect(Date.now() - t0).toBeLessThan(6_000);
    } finally {
      res.release();
    }
  }, 20_000);
});
