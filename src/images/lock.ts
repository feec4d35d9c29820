// An exclusive lock between processes: an O_EXCL file holding the owner's pid. A lock whose
// holder is dead (SIGKILL, power loss) is taken over. Used for the image cache (one build per
// suite) and the Vagrant box cache (one `vagrant box add` per box).
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { LabError } from '../errors.ts';

export interface PidLockOptions {
  signal?: AbortSignal;
  /** Poll interval while another live process holds the lock. */
  pollMs: number;
  /** What the interruption error names while waiting. */
  waitingFor: string;
  /** Called once, when the lock is first found held by a live process. */
  onWait?: (holder: number) => void;
}

/** Take the lock at `path`; resolves to its release. */
export async function pidLock(path: string, o: PidLockOptions): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
  let told = false;
  for (;;) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => unlink(path).catch(() => {});
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (!holder || !alive(holder)) {
      await unlink(path).catch(() => {});
      continue;
    }
    if (!told) o.onWait?.(holder);
    told = true;
    if (o.signal?.aborted) throw new LabError('interrupted', `interrupted while waiting for ${o.waitingFor}`);
    await new Promise((r) => setTimeout(r, o.pollMs));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
