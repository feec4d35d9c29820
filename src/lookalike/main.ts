// The model's debug-endpoint look-alike: runs the model's loader (bpf/build/usm_tls, any argv
// after `--`), reads its JSON lines, and answers GET /network_tracer/debug/http_monitoring over a
// unix socket (or 127.0.0.1:PORT) with the rows of upstream's HTTP layer, as system-probe does.
// The HTTP layer is src/analysis/transactions.ts (DebugEndpoint): the one the matrix's own
// analysis uses. Bundled for guests (src/lookalike/bundle.ts), whose node may be Debian 11's 12:
// plain `child_process`/`http` module names (no `node:` prefix) and no API newer than node 12.
//
//   node usm-lookalike.cjs (--socket PATH | --port N) [--path P] -- LOADER [ARG...]
//
// stderr: the loader's log (each line behind `loader: `), one line per query, READY once the
// socket answers.
// SIGINT/SIGTERM: the socket closes, the loader gets SIGINT (it drains and writes its stats), exit.
import { spawn, type ChildProcess } from 'child_process';
import { existsSync, lstatSync, mkdirSync, unlinkSync } from 'fs';
import { dirname } from 'path';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'http';
import { createInterface } from 'readline';
import { parseTracerOutput } from '../analysis/events.ts';
import { DEBUG_PATH, DebugEndpoint } from '../analysis/transactions.ts';

export const USAGE = `Usage: node usm-lookalike.cjs (--socket PATH | --port N) [--path P] -- LOADER [ARG...]

The model's debug-endpoint look-alike: starts LOADER (the model's loader, bpf/build/usm_tls with
its flags, e.g. --variant upstream --libssl PATH), and answers GET P (default ${DEBUG_PATH})
with the rows of upstream's HTTP layer over the loader's events, as system-probe's debug endpoint
does. A query drains: the next one returns only newer rows.
  --socket PATH   serve on this unix socket (its folder is made; a stale socket there is replaced)
  --port N        serve on 127.0.0.1:N instead
  --path P        the endpoint's path
stderr: the loader's log, a line per query, READY once the endpoint answers.`;

export interface LookalikeArgs {
  socket?: string;
  port?: number;
  path: string;
  loader: string[];
}

/** The command line; throws an Error naming what is wrong. */
export function parseLookalikeArgs(argv: readonly string[]): LookalikeArgs | 'help' {
  const out: LookalikeArgs = { path: DEBUG_PATH, loader: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v === '') throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--') {
      out.loader = argv.slice(i + 1);
      break;
    } else if (a === '-h' || a === '--help') return 'help';
    else if (a === '--socket') out.socket = value();
    else if (a === '--port') {
      const v = value();
      const n = Number(v);
      if (!/^\d+$/.test(v) || n < 1 || n > 65535) throw new Error(`--port ${v}: a port number (1..65535) is wanted`);
      out.port = n;
    } else if (a === '--path') {
      const v = value();
      if (!v.startsWith('/')) throw new Error(`--path ${v}: an absolute HTTP path (/...) is wanted`);
      out.path = v;
    } else throw new Error(`unknown argument '${a}' (the loader's command line goes after --)`);
  }
  if ((out.socket === undefined) === (out.port === undefined)) throw new Error('give one of --socket PATH or --port N');
  if (out.loader.length === 0) throw new Error('give the loader to run after -- (e.g. -- bpf/build/usm_tls --variant upstream)');
  return out;
}

/** CLOCK_MONOTONIC in ns: bpf_ktime_get_ns's clock, which the events' ts are on. */
function nowNs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e9 + ns;
}

export function runLookalike(args: LookalikeArgs): void {
  const log = (line: string) => process.stderr.write(`usm-lookalike: ${line}\n`);
  const endpoint = new DebugEndpoint();
  let server: Server | null = null;
  let stopping = false;
  const loader: ChildProcess = spawn(args.loader[0]!, args.loader.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });

  const removeSocket = () => {
    if (args.socket === undefined) return;
    try {
      if (lstatSync(args.socket).isSocket()) unlinkSync(args.socket);
    } catch {
      // gone already
    }
  };
  const finish = (code: number) => {
    removeSocket();
    process.exit(code);
  };
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    log(`${why}: stopping the loader`);
    if (server) server.close();
    if (loader.exitCode === null && loader.signalCode === null) loader.kill('SIGINT');
    else finish(0);
    setTimeout(() => {
      log('the loader did not exit within 15 s of SIGINT: killed');
      loader.kill('SIGKILL');
    }, 15_000).unref();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));

  loader.on('error', (err) => {
    log(`cannot start the loader ${args.loader[0]}: ${err.message}`);
    finish(1);
  });
  loader.on('exit', (code, sig) => {
    const how = sig ? `signal ${sig}` : `code ${code}`;
    if (stopping) {
      log(`the loader exited (${how}) after ${endpoint.eventCount} events and ${endpoint.queries} queries`);
      finish(code === 0 ? 0 : 1);
    } else {
      log(`the loader exited on its own (${how}): the endpoint goes away with it`);
      if (server) server.close();
      finish(1);
    }
  });
  createInterface({ input: loader.stdout! }).on('line', (line) => {
    for (const ev of parseTracerOutput(line).events) endpoint.add(ev);
  });
  createInterface({ input: loader.stderr! }).on('line', (line) => {
    process.stderr.write(`loader: ${line}\n`);
    if (line.trim() === 'READY' && !server && !stopping) server = serve();
  });

  const serve = (): Server => {
    const srv = createServer((req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '').split('?')[0];
      if (req.method !== 'GET' || path !== args.path) {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end(`not found: ${req.method} ${path} (this endpoint answers GET ${args.path})\n`);
        return;
      }
      const rows = endpoint.query(nowNs());
      log(`query ${endpoint.queries}: ${rows.length} rows (${endpoint.eventCount} events so far)`);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(rows));
    });
    srv.on('error', (err: Error) => {
      log(`cannot serve on ${args.socket ?? `127.0.0.1:${args.port}`}: ${err.message}`);
      stop('serve failed');
    });
    if (args.socket !== undefined) {
      if (existsSync(args.socket) && !lstatSync(args.socket).isSocket()) {
        log(`${args.socket} exists and is not a socket: not replaced`);
        stop('serve failed');
        return srv;
      }
      removeSocket();
      // e.g. the investigation's /opt/datadog-agent/run/sysprobe.sock on a machine without the agent
      mkdirSync(dirname(args.socket), { recursive: true });
      srv.listen(args.socket, () => {
        log(`listening on ${args.socket}`);
        process.stderr.write('READY\n');
      });
    } else
      srv.listen(args.port, '127.0.0.1', () => {
        log(`listening on 127.0.0.1:${args.port}`);
        process.stderr.write('READY\n');
      });
    return srv;
  };
}

export function main(argv: readonly string[]): void {
  let args: LookalikeArgs | 'help';
  try {
    args = parseLookalikeArgs(argv);
  } catch (err) {
    process.stderr.write(`usm-lookalike: ${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  runLookalike(args);
}
