// SSH keys of the image cache: one client key pair per cache (authorised for root in every
// image), one host key per image (recorded in its manifest, pinned by clients). Generated with
// ssh2 (no ssh-keygen on the host needed).
import ssh2 from 'ssh2';
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { LabError } from '../errors.ts';

const { utils } = ssh2;

export interface KeyPair {
  /** OpenSSH private key (PEM "OPENSSH PRIVATE KEY"). */
  privateKey: string;
  /** One line: "ssh-ed25519 AAAA... comment". */
  publicKey: string;
}

export function generateEd25519(comment: string): KeyPair {
  // ssh2 strips the leading zero bytes of an ed25519 public key as if it were a number
  // (mscdex/ssh2#1390, #1513, open in 1.17.0): one key in 256 comes out 31 bytes long, and
  // neither ssh2 nor OpenSSH can read it. Draw again until both halves parse.
  for (let i = 0; i < 16; i++) {
    const k = utils.generateKeyPairSync('ed25519', { comment });
    if (!(utils.parseKey(k.private) instanceof Error) && !(utils.parseKey(k.public) instanceof Error))
      return { privateKey: k.private, publicKey: k.public.trim() };
  }
  throw new Error('ssh2 generated 16 malformed ed25519 key pairs in a row');
}

/** A temporary name beside `path` that no other writer uses (pid alone is shared by a process's callers). */
const tmpName = (path: string) => `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;

/** Writes `path` atomically with `mode` (whatever the umask). */
async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = tmpName(path);
  try {
    await writeFile(tmp, data, { mode });
    await chmod(tmp, mode);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Writes PATH (0600) and PATH.pub (0644) atomically, the private key first. */
export async function writeKeyPair(path: string, kp: KeyPair): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeAtomic(path, kp.privateKey, 0o600);
  await writeAtomic(`${path}.pub`, kp.publicKey + '\n', 0o644);
}

/** The public line of an OpenSSH private key, or null when it is not one. */
function publicLineOf(privateKey: string): string | null {
  const k = utils.parseKey(privateKey);
  const key = Array.isArray(k) ? k[0] : k;
  if (!key || key instanceof Error || !key.isPrivateKey()) return null;
  return `${key.type} ${key.getPublicSSH().toString('base64')}${key.comment ? ` ${key.comment}` : ''}`;
}

const readOrNull = (p: string) =>
  readFile(p, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });

function sameKey(a: string, b: string): boolean {
  try {
    return publicKeyBlob(a).equals(publicKeyBlob(b));
  } catch {
    return false;
  }
}

// One creation per key path at a time in this process (the targets of a run ask together).
// Across processes the private key is the one source of truth and is created with link(2), which
// fails if the name exists: exactly one creator wins, complete, and every caller reads the
// winner's key. The .pub file is derived from it, so any caller may (re)write it.
const creating = new Map<string, Promise<KeyPair>>();

/** The cache's client key pair, created on first use; the same pair for every concurrent caller. */
export function ensureClientKey(path: string): Promise<KeyPair> {
  const abs = resolve(path);
  const running = creating.get(abs);
  if (running) return running;
  const p = ensureClientKeyOnce(abs).finally(() => creating.delete(abs));
  creating.set(abs, p);
  return p;
}

async function ensureClientKeyOnce(path: string): Promise<KeyPair> {
  let privateKey = await readOrNull(path);
  if (privateKey === null) {
    await mkdir(dirname(path), { recursive: true });
    const tmp = tmpName(path);
    try {
      await writeFile(tmp, generateEd25519('usm-race-lab').privateKey, { mode: 0o600 });
      await chmod(tmp, 0o600);
      await link(tmp, path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err; // another process created it first: use theirs
      });
    } finally {
      await rm(tmp, { force: true });
    }
    privateKey = await readFile(path, 'utf8');
  }
  const publicKey = publicLineOf(privateKey);
  if (publicKey === null)
    throw new LabError('internal', `${path} is not an OpenSSH private key (remove it and ${path}.pub to create a new pair; the images are rebuilt for it)`);
  // Keep an existing .pub of this key as it is (images record its exact line); write a missing or
  // wrong one (a crash before it was written, an edit).
  const pub = (await readOrNull(`${path}.pub`))?.trim();
  if (pub && sameKey(pub, publicKey)) return { privateKey, publicKey: pub };
  await writeAtomic(`${path}.pub`, publicKey + '\n', 0o644);
  return { privateKey, publicKey };
}

/** The raw public key blob of an OpenSSH public key line, for comparing with what a server presents. */
export function publicKeyBlob(line: string): Buffer {
  const parsed = utils.parseKey(line.trim());
  if (parsed instanceof Error) throw new Error(`not a public key: ${parsed.message}`);
  const k = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!k) throw new Error('not a public key');
  return k.getPublicSSH();
}
