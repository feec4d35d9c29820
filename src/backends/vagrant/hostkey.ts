// Trust on first use for public boxes: read the SSH server's host key once (the handshake is
// stopped right after the key arrives) so SshMachine can pin it for the rest of the run.
import ssh2 from 'ssh2';
import { LabError } from '../../errors.ts';

const { Client } = ssh2;

/** "type base64" of an SSH public key blob (the blob starts with its type string). */
export function keyLine(blob: Buffer): string {
  const n = blob.readUInt32BE(0);
  return `${blob.subarray(4, 4 + n).toString('latin1')} ${blob.toString('base64')}`;
}

export function hostKeyOf(host: string, port: number, timeoutMs: number): Promise<string> {
  const t0 = Date.now();
  const once = () =>
    new Promise<string>((resolve, reject) => {
      const c = new Client();
      let key: string | null = null;
      c.on('error', (e) => (key ? resolve(key) : reject(e)));
      c.on('close', () => (key ? resolve(key) : reject(new Error('closed before a host key'))));
      c.connect({
        host,
        port,
        username: 'probe',
        readyTimeout: Math.max(1_000, Math.min(20_000, timeoutMs - (Date.now() - t0))),
        hostVerifier: (k: Buffer) => {
          key = keyLine(k);
          return false; // stop here: only the key was wanted
        },
      });
    });
  return (async () => {
    let last = '';
    while (Date.now() - t0 < timeoutMs) {
      try {
        return await once();
      } catch (e) {
        last = (e as Error).message;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    throw new LabError('boot-timeout', `no SSH host key from ${host}:${port} within ${timeoutMs / 1000} s`, last);
  })();
}
