// Parsing of the tracer's JSON lines (bpf/usm_tls) and the client's stdout.

/**
 * One tracer line: a TLS buffer (SSL_read/SSL_write data, at most 208 bytes, each byte one char
 * U+0000-U+00FF after JSON.parse) or a termination (fn SSL_shutdown or tcp_close, len 0,
 * data ''), with the tuple the tracer attributed it to. ts is bpf_ktime_get_ns.
 */
export interface TlsEvent {
  ts: number;
  pid: number;
  tid: number;
  comm: string;
  fn: string;
  ctx: string;
  len: number;
  family: number;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
  via: string;
  data: string;
  truncated?: boolean;
}

export interface TracerMeta {
  variant?: string;
  hook?: string;
  libssl?: string;
  kernel?: string;
  libbpf?: string;
  [k: string]: unknown;
}

export interface TracerStats {
  calls?: Record<string, number>;
  attributed?: number;
  dropped_no_tuple?: number;
  slot_writes?: number;
  slot_overwrites?: number;
  slot_consumed?: number;
  ringbuf_drops?: number;
  /** bpf_ktime_get_ns() when the stats line was written (the flush): the debug query's "now". */
  ktime_ns?: number;
  [k: string]: unknown;
}

export interface TracerOutput {
  meta: TracerMeta | null;
  events: TlsEvent[];
  stats: TracerStats | null;
  /** Lines that were not valid JSON of a known shape (1-based line numbers). */
  badLines: number[];
}

/** Event fns that end a connection's HTTP state (upstream: SSL_shutdown, and FIN/RST via tcp_close). */
export const TERMINATION_FNS: readonly string[] = ['SSL_shutdown', 'tcp_close'];

export function isTermination(ev: Pick<TlsEvent, 'fn'>): boolean {
  return TERMINATION_FNS.includes(ev.fn);
}

const EVENT_KEYS = ['ts', 'pid', 'tid', 'fn', 'sport', 'dport', 'saddr', 'daddr', 'data'] as const;

export function parseTracerOutput(text: string): TracerOutput {
  const out: TracerOutput = { meta: null, events: [], stats: null, badLines: [] };
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      out.badLines.push(i + 1);
      return;
    }
    if (!obj || typeof obj !== 'object') {
      out.badLines.push(i + 1);
      return;
    }
    const o = obj as Record<string, unknown>;
    if (o.meta && typeof o.meta === 'object') out.meta = o.meta as TracerMeta;
    else if (o.stats && typeof o.stats === 'object') out.stats = o.stats as TracerStats;
    else if (EVENT_KEYS.every((k) => k in o)) out.events.push(o as unknown as TlsEvent);
    else out.badLines.push(i + 1);
  });
  return out;
}

export interface Conn {
  /** 1-based connection number, as in the request path conn<k>. */
  k: number;
  lport: number;
  rport: number;
}

export interface ClientOutput {
  conns: Conn[];
  done: boolean;
  ok: number[];
  fail: number[];
}

/** READY:<l1>:<r1>:<l2>:<r2>[:...] then, after the run, DONE and `conn<k> ok=N fail=M ...` lines. */
export function parseClientOutput(text: string): ClientOutput {
  const res: ClientOutput = { conns: [], done: false, ok: [], fail: [] };
  for (const line of text.split('\n')) {
    const t = line.trim();
    const ready = /^READY((?::\d+)+)$/.exec(t);
    if (ready?.[1]) {
      const nums = ready[1].slice(1).split(':').map(Number);
      res.conns = [];
      for (let i = 0; i + 1 < nums.length; i += 2) {
        res.conns.push({ k: i / 2 + 1, lport: nums[i]!, rport: nums[i + 1]! });
      }
      continue;
    }
    if (t === 'DONE') {
      res.done = true;
      continue;
    }
    // the investigation's v1 client: DONE:<ok1>:<fail1>:<ok2>:<fail2>
    const counts = /^DONE((?::\d+)+)$/.exec(t);
    if (counts?.[1]) {
      res.done = true;
      const nums = counts[1].slice(1).split(':').map(Number);
      for (let i = 0; i + 1 < nums.length; i += 2) {
        res.ok[i / 2] = nums[i]!;
        res.fail[i / 2] = nums[i + 1]!;
      }
      continue;
    }
    const c = /^conn(\d+) ok=(\d+) fail=(\d+)/.exec(t);
    if (c && res.done) {
      const k = Number(c[1]);
      res.ok[k - 1] = Number(c[2]);
      res.fail[k - 1] = Number(c[3]);
    }
  }
  return res;
}
