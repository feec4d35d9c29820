// Free ports on 127.0.0.1 for QEMU's SSH forward. A reservation binds port 0 (the kernel picks
// a free port) and holds the socket until just before QEMU starts (handOff); the port stays
// reserved in this process until release(), so parallel VMs never get the same one.
import { createServer, type Server } from 'node:net';

const reserved = new Set<number>();

export interface PortReservation {
  readonly port: number;
  /** Close the placeholder socket so QEMU can bind the port (call right before spawning). */
  handOff(): Promise<void>;
  /** Forget the port (VM stopped). Idempotent. */
  release(): void;
}

function listen(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.once('error', reject);
    s.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => resolve(s));
  });
}

export async function reservePort(): Promise<PortReservation> {
  for (let i = 0; i < 50; i++) {
    const server = await listen();
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    if (!port || reserved.has(port)) {
      server.close();
      continue;
    }
    reserved.add(port);
    let open = true;
    return {
      port,
      handOff: () =>
        new Promise<void>((resolve) => {
          if (!open) return resolve();
          open = false;
          server.close(() => resolve());
        }),
      release: () => {
        if (open) {
          open = false;
          server.close();
        }
        reserved.delete(port);
      },
    };
  }
  throw new Error('no free port on 127.0.0.1 after 50 tries');
}

export function reservedPorts(): number[] {
  return [...reserved];
}
