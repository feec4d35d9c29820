// One command at a time per Vagrant machine. node-vagrant's own queue runs queued commands
// last-in-first-out and hands back no process for them; Vagrant itself refuses a second command
// on a locked machine. So every command on one machine goes through one of these: strictly in
// the order they were asked for, a failure does not stop the ones after it.

export class CommandQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  /** Run fn after every previously queued fn has settled; resolves/rejects with fn's result. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    this.pending++;
    const result = this.tail.then(fn, fn);
    this.tail = result.then(
      () => {
        this.pending--;
      },
      () => {
        this.pending--;
      },
    );
    return result;
  }

  /** Commands queued or running. */
  get size(): number {
    return this.pending;
  }

  /** Resolves when everything queued so far has settled. */
  idle(): Promise<void> {
    return this.tail.then(() => undefined);
  }
}
