// The process's one teardown registry, below every stage: whatever must not outlive a run (VMs,
// leases, daemons, host tools) registers here. The entry points call stopAll() on Ctrl-C and at
// the end; killOnExit is the last resort when the process exits without that.
type Stopper = () => Promise<void>;
const stoppers = new Set<Stopper>();

export function onCleanup(fn: Stopper): () => void {
  stoppers.add(fn);
  return () => stoppers.delete(fn);
}

export async function stopAll(): Promise<void> {
  const all = [...stoppers];
  stoppers.clear();
  await Promise.allSettled(all.map((f) => f()));
}

type Kill = () => void;
const exitKills = new Set<Kill>();
let exitHookInstalled = false;

/** Run `kill` if the process exits while it is registered (exit handlers must be sync). */
export function killOnExit(kill: Kill): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const k of exitKills) k();
    });
  }
  exitKills.add(kill);
  return () => exitKills.delete(kill);
}

/** Signal a process group (a child spawned with detached: true and everything it started). */
export function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, sig);
  } catch {
    /* already gone */
  }
}
