// The launcher lines every script shares: load TypeScript (tsx), the script's own arguments,
// the repository root, and Ctrl-C / SIGTERM mapped to an abort. A second signal forces the
// exit, after `onForce` when given; `force: false` keeps aborting instead.
//
// A signal to the TOP process only (what `timeout`, CI runners and `kill <pid of npx>` do) must
// stop the run too. `npx zx x.mjs` is npm -> sh -c -> node: npm forwards SIGINT/SIGTERM to its
// child, but dash catches SIGINT while it waits (node never sees it) and dies of SIGTERM (node
// is orphaned and runs on). Two layers: the repository's .npmrc sets `script-shell=/bin/bash`,
// which execs a one-command -c string, so npm's child IS node and gets the signal; and, should
// a shell still sit between, node watches its parent: reparented (the parent died) = SIGHUP.
import { register } from 'tsx/esm/api';
import { constants } from 'node:os';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** How often the parent is checked (ms): a cancelled job's VMs stop within seconds. */
const PARENT_POLL_MS = 500;
/**
 * One Ctrl-C can arrive twice: the terminal signals the whole group (npm and node), and npm
 * forwards its copy to node. A repeat of the first signal this soon is that copy, not "again to force".
 */
const SAME_SIGNAL_MS = 1_000;

/**
 * @param {string} scriptUrl import.meta.url of the script
 * @param {{ message?: (sig: string) => string, onInterrupt?: () => void, onForce?: () => Promise<unknown>, force?: boolean, signals?: NodeJS.Signals[], watchParent?: boolean }} [o]
 * @returns {{ argv: string[], repoRoot: string, signal: AbortSignal, exitCode: (code: number) => number }}
 *   exitCode maps the "interrupted" code 130 to 128 + the number of the signal that arrived
 *   (130 SIGINT, 143 SIGTERM, 129 parent gone), as a shell reports a process killed by it.
 */
export function launch(scriptUrl, o = {}) {
  register();
  const file = fileURLToPath(scriptUrl);
  const name = basename(file);
  const argv = process.argv.slice(process.argv.findIndex((a) => a.endsWith(name)) + 1);
  const repoRoot = dirname(dirname(file));
  const ac = new AbortController();
  let interrupts = 0;
  let firstAt = 0;
  /** @type {NodeJS.Signals | null} */
  let first = null;
  const exitCode = (code) => (code === 130 && first ? 128 + (constants.signals[first] ?? 2) : code);
  const onSignal = (sig) => {
    if (first === sig && Date.now() - firstAt < SAME_SIGNAL_MS) return;
    if (!first) {
      first = sig;
      firstAt = Date.now();
    }
    if (++interrupts > 1 && o.force !== false) {
      if (o.onForce) void o.onForce().finally(() => process.exit(exitCode(130)));
      else process.exit(exitCode(130));
      return;
    }
    ac.abort();
    if (interrupts > 1) return;
    if (o.message) process.stderr.write(o.message(sig));
    o.onInterrupt?.();
  };
  const signals = o.signals ?? ['SIGINT', 'SIGTERM'];
  for (const s of signals) process.on(s, onSignal);
  if (signals.length && o.watchParent !== false) {
    const parent = process.ppid;
    const t = setInterval(() => {
      if (process.ppid === parent) return;
      clearInterval(t);
      process.stderr.write(`\nparent process ${parent} is gone (the job was cancelled?)\n`);
      onSignal('SIGHUP');
    }, PARENT_POLL_MS);
    t.unref();
  }
  return { argv, repoRoot, signal: ac.signal, exitCode };
}
