// The launcher lines every script shares: load TypeScript (tsx), the script's own arguments,
// the repository root, and Ctrl-C / SIGTERM mapped to an abort. A second signal forces the
// exit (130), after `onForce` when given; `force: false` keeps aborting instead.
import { register } from 'tsx/esm/api';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * @param {string} scriptUrl import.meta.url of the script
 * @param {{ message?: (sig: string) => string, onInterrupt?: () => void, onForce?: () => Promise<unknown>, force?: boolean, signals?: NodeJS.Signals[] }} [o]
 */
export function launch(scriptUrl, o = {}) {
  register();
  const file = fileURLToPath(scriptUrl);
  const name = basename(file);
  const argv = process.argv.slice(process.argv.findIndex((a) => a.endsWith(name)) + 1);
  const repoRoot = dirname(dirname(file));
  const ac = new AbortController();
  let interrupts = 0;
  const onSignal = (sig) => {
    if (++interrupts > 1 && o.force !== false) {
      if (o.onForce) void o.onForce().finally(() => process.exit(130));
      else process.exit(130);
      return;
    }
    ac.abort();
    if (interrupts > 1) return;
    if (o.message) process.stderr.write(o.message(sig));
    o.onInterrupt?.();
  };
  for (const s of o.signals ?? ['SIGINT', 'SIGTERM']) process.on(s, onSignal);
  return { argv, repoRoot, signal: ac.signal };
}
