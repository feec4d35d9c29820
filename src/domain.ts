// The names of the domain (DESIGN.md "Words") and the types derived from them: every union of
// the project is one of these, so a new variant, mode or backend is added here once.

export const VARIANTS = ['upstream', 'no-fallback', 'recv-hook', 'scoped'] as const;
export const MODES = ['sequential', 'interleaved', 'writes-only'] as const;
export const SCENARIOS = ['preexisting', 'baseline'] as const;
export const BACKENDS = ['qemu', 'vagrant', 'local'] as const;
/** 'all' traces every process using libssl (as upstream, servers too); 'client' only the client; 'server' only the TLS server (the terminator). */
export const TRACE_SCOPES = ['all', 'client', 'server'] as const;
/**
 * The traced TLS server: python (client/https_server.py, one process per port), or a real
 * terminator from Debian's packages (nginx with one worker, HAProxy with one thread) in front of a
 * plain HTTP backend (client/tls_terminator.py).
 */
export const SERVERS = ['python', 'nginx-proxy', 'haproxy'] as const;
/** The client's libssl calls: SSL_write/SSL_read or SSL_write_ex/SSL_read_ex. */
export const APIS = ['classic', 'ex'] as const;
/** Kernel hooks of the tracer. */
export const HOOKS = ['auto', 'kprobe', 'tracepoint'] as const;
/** How the race client reads a response: full = until it has all of it; single = one SSL_read of up to 4095 bytes per request (as the investigation's clients). */
export const READS = ['full', 'single'] as const;
/** Nagle's algorithm on the HTTPS test servers' sockets (off = TCP_NODELAY, as before this setting). */
export const NAGLE = ['on', 'off'] as const;
/** vCPUs a VM target may have. */
export const CPUS_RANGE = [1, 64] as const;
/** Debian suites the qemu images (and local Vagrant boxes) are built from. */
export const SUITES = ['bullseye', 'bookworm', 'trixie', 'sid'] as const;

export type Variant = (typeof VARIANTS)[number];
export type Mode = (typeof MODES)[number];
export type Scenario = (typeof SCENARIOS)[number];
export type BackendName = (typeof BACKENDS)[number];
export type TraceScope = (typeof TRACE_SCOPES)[number];
export type Api = (typeof APIS)[number];
export type Hook = (typeof HOOKS)[number];
export type Reads = (typeof READS)[number];
export type Nagle = (typeof NAGLE)[number];
export type Suite = (typeof SUITES)[number];
export type Server = (typeof SERVERS)[number];

/** One cell of the matrix: all trials of (target, cpus, server, reads, variant, mode, scenario). */
export interface CellId {
  target: string;
  /** vCPUs of the target's VM (local: this host's CPUs). */
  cpus: number;
  /** The boot the cell ran in: its report folder, `<target>` or `<target>-<N>cpu` (plan.ts instanceName); absent in old reports. */
  boot?: string;
  /** The traced TLS server; absent in reports made before it was a dimension (python). */
  server?: Server;
  reads: Reads;
  /** A model variant (Variant), or an external tracer's label (matrix.yaml tracer.label). */
  variant: Variant | (string & {});
  mode: Mode;
  scenario: Scenario;
}

/** Where the project's sources go on a guest (Machine.workdir), for every VM backend. */
export const GUEST_WORKDIR = '/root/usm-race-lab';

/**
 * The steps of the run protocol as timed per trial (TrialRun.phases, report.json's trials[].phases,
 * `npm run bench:trial`). 'setup' (its own exec before 2026-12) is only in older reports.
 */
export const PHASES = [
  'setup',
  'servers',
  'tracer-load',
  'client-ready',
  'tracer-ready',
  'traffic',
  'settle',
  'tracer-exit',
  'stop',
  'fetch',
  'analysis',
] as const;
export type PhaseName = (typeof PHASES)[number];
export interface Phase {
  name: PhaseName;
  ms: number;
}
