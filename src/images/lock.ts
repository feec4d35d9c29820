// An exclusive lock between processes: a file holding the owner's pid, created whole by link(2)
// from a private temporary file (an O_EXCL create is empty until its pid is written, and a
// second process reading it then took it for a dead holder's: two owners). A lock whose holder
// is dead (SIGKILL, power loss) is taken over. Used for the image cache (one build per suite),
// the floor initrd and the Vagrant box cache (one `vagrant box add` per box).
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
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
  let told = false;
  return (await lockLoop(path, async (holder) => {
    if (!told) o.onWait?.(holder);
    told = true;
    if (o.signal?.aborted) throw new LabError('interrupted', `interrupted while waiting for ${o.waitingFor}`);
    await new Promise((r) => setTimeout(r, o.pollMs));
    return true;
  }))!;
}

/**
 * Take the lock at `path` if no live process holds it: its release, or the pid of the live holder
 * (nothing waited for). For what a second process must not share at all (a report folder).
 */
export async function tryPidLock(path: string): Promise<{ release: () => Promise<void> } | { holder: number }> {
  let held = 0;
  const release = await lockLoop(path, async (holder) => {
    held = holder;
    return false;
  });
  return release ? { release } : { holder: held };
}

/** link(2) the pid file into place; a dead holder's lock is taken over; a live one's: onHeld says whether to try again. */
async function lockLoop(path: string, onHeld: (holder: number) => Promise<boolean>): Promise<(() => Promise<void>) | null> {
  await mkdir(dirname(path), { recursive: true });
  const mine = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(mine, String(process.pid));
  try {
    for (;;) {
      try {
        await link(mine, path);
        return () => unlink(path).catch(() => {});
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const text = await readFile(path, 'utf8').catch(() => null);
      if (text === null) continue; // released meanwhile
      const holder = Number(text.trim());
      if (!holder || !alive(holder)) {
        // Take over a dead holder's lock: only if it is still that holder's (another waiter may have taken it over already).
        if ((await readFile(path, 'utf8').catch(() => null)) === text) await unlink(path).catch(() => {});
        continue;
      }
      if (!(await onHeld(holder))) return null;
    }
  } finally {
    await unlink(mine).catch(() => {});
  }
}

/** Whether process pid lives (a pid another user's process holds counts as alive). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
