// Minimal QMP client: capabilities handshake, then one command. Used to quit QEMU cleanly.
import { connect } from 'node:net';

/** Send {"execute": command} over the QMP socket; resolves when QEMU answered or closed. */
export function qmpCommand(socketPath: string, command: string, timeoutMs = 3_000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(socketPath);
    let buf = '';
    let stage: 'greeting' | 'caps' | 'cmd' = 'greeting';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('error', () => done(false));
    sock.on('close', () => done(stage === 'cmd'));
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let msg: { QMP?: unknown; return?: unknown; error?: unknown };
        try {
          msg = JSON.parse(line);
        } catch {
          continue;
        }
        if (stage === 'greeting' && msg.QMP) {
          stage = 'caps';
          sock.write('{"execute":"qmp_capabilities"}\n');
        } else if (stage === 'caps' && (msg.return !== undefined || msg.error !== undefined)) {
          stage = 'cmd';
          sock.write(JSON.stringify({ execute: command }) + '\n');
        } else if (stage === 'cmd' && (msg.return !== undefined || msg.error !== undefined)) {
          done(msg.return !== undefined);
        }
      }
    });
  });
}
