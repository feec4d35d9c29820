// SSH keys of the image cache: one client key pair per cache (authorised for root in every
// image), one host key per image (recorded in its manifest, pinned by clients). Generated with
// ssh2 (no ssh-keygen on the host needed).
import ssh2 from 'ssh2';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pidLock } from './lock.ts';

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
    if (!(utils.parseKey(k.private) instanceof Error) && !(utils.parseKey(k.public) instanceof Error)) return { privateKey: k.private, publicKey: k.public.trim() };
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

/**
 * What is on disk at PATH and PATH.pub: a pair whose halves match; or a usable private key whose
 * .pub is missing or another key's (left by a crash between the two renames, or edited); or nothing.
 */
async function readKeyPair(path: string): Promise<{ pair: KeyPair } | { privateOnly: KeyPair } | null> {
  const [privateKey, pub] = await Promise.all([readOrNull(path), readOrNull(`${path}.pub`)]);
  const derived = privateKey === null ? null : publicLineOf(privateKey);
  if (privateKey === null || derived === null) return null;
  const publicKey = pub?.trim() ?? '';
  if (publicKey && sameKey(publicKey, derived)) return { pair: { privateKey, publicKey } };
  return { privateOnly: { privateKey, publicKey: derived } };
}

function sameKey(a: string, b: string): boolean {
  try {
    return publicKeyBlob(a).equals(publicKeyBlob(b));
  } catch {
    return false;
  }
}

// One creation per key path at a time in this process (targets of one run ask together), and a
// lock file across processes (two runs on one cache): everyone returns the key that is on disk.
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
  const found = await readKeyPair(path);
  if (found && 'pair' in found) return found.pair;
  const release = await pidLock(join(dirname(path), `.lock-${basename(path)}`), { pollMs: 50, waitingFor: 'the cache client key' });
  try {
    // Another process may have created it while we waited for the lock: read again, under it.
    const again = await readKeyPair(path);
    if (again && 'pair' in again) return again.pair;
    // Keep a private key that lost its .pub: images built with it stay valid.
    const kp = again ? again.privateOnly : generateEd25519('usm-race-lab');
    await writeKeyPair(path, kp);
    return kp;
  } finally {
    await release();
  }
}

/** The raw public key blob of an OpenSSH public key line, for comparing with what a server presents. */
export function publicKeyBlob(line: string): Buffer {
  const parsed = utils.parseKey(line.trim());
  if (parsed instanceof Error) throw new Error(`not a public key: ${parsed.message}`);
  const k = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!k) throw new Error('not a public key');
  return k.getPublicSSH();
}
