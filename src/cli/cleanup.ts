// Process-wide teardown for the entry points: whatever backends registered is stopped.
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
