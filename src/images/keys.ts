// SSH keys of the image cache: one client key pair per cache (authorised for root in every
// image), one host key per image (recorded in its manifest, pinned by clients). Generated with
// ssh2 (no ssh-keygen on the host needed).
import ssh2 from 'ssh2';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

const { utils } = ssh2;

export interface KeyPair {
  /** OpenSSH private key (PEM "OPENSSH PRIVATE KEY"). */
  privateKey: string;
  /** One line: "ssh-ed25519 AAAA... comment". */
  publicKey: string;
}

export function generateEd25519(comment: string): KeyPair {
  const k = utils.generateKeyPairSync('ed25519', { comment });
  return { privateKey: k.private, publicKey: k.public.trim() };
}

/** Writes PATH (0600) and PATH.pub (0644) atomically. */
export async function writeKeyPair(path: string, kp: KeyPair): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(`${tmp}.pub`, kp.publicKey + '\n', { mode: 0o644 });
  await writeFile(tmp, kp.privateKey, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(`${tmp}.pub`, `${path}.pub`);
  await rename(tmp, path);
}

/** The cache's client key pair, created on first use. */
export async function ensureClientKey(path: string): Promise<KeyPair> {
  try {
    const [privateKey, publicKey] = await Promise.all([readFile(path, 'utf8'), readFile(`${path}.pub`, 'utf8')]);
    return { privateKey, publicKey: publicKey.trim() };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const kp = generateEd25519('usm-race-lab');
  await writeKeyPair(path, kp);
  return kp;
}

/** The raw public key blob of an OpenSSH public key line, for comparing with what a server presents. */
export function publicKeyBlob(line: string): Buffer {
  const parsed = utils.parseKey(line.trim());
  if (parsed instanceof Error) throw new Error(`not a public key: ${parsed.message}`);
  const k = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!k) throw new Error('not a public key');
  return k.getPublicSSH();
}
