// How busy the machine was while a benchmark ran, and how much of that was the benchmark itself.
// A TCG guest's speed is whatever CPU it gets: the same code measured 218-246 s (quiet) and
// 348-541 s (beside another session's mutation run) for the warm default matrix. Under the
// kernel's autogroup scheduling `nice` does not shield a benchmark from another terminal's work,
// so a figure is only worth quoting with the load it was taken under.
import { readFile } from 'node:fs/promises';

/** The kernel's CPU counters (clock ticks): all CPUs together, and this process with its reaped children. */
export interface CpuSample {
  /** Ticks the CPUs spent on anything but idle and iowait. */
  busy: number;
  /** All ticks of all CPUs. */
  total: number;
  cpus: number;
  /** utime + stime + cutime + cstime of this process: its own, and that of every child it waited for (qemu among them). */
  ours: number;
}

/** /proc/stat's first line (`cpu  user nice system idle iowait irq softirq steal guest guest_nice`) and its cpuN count. */
export function parseProcStat(text: string): Pick<CpuSample, 'busy' | 'total' | 'cpus'> {
  const lines = text.split('\n');
  const f = /^cpu\s+(.*)$/
    .exec(lines[0] ?? '')?.[1]
    ?.trim()
    .split(/\s+/)
    .map(Number);
  if (!f || f.length < 4 || f.some((x) => !Number.isFinite(x))) throw new Error(`not /proc/stat: ${JSON.stringify(lines[0] ?? '')}`);
  // guest and guest_nice are already counted in user and nice
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  const cpus = lines.filter((l) => /^cpu\d+\s/.test(l)).length;
  return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal, cpus: Math.max(1, cpus) };
}

/** /proc/PID/stat's utime + stime + cutime + cstime (fields 14-17; the command name may hold spaces and parentheses). */
export function parseSelfStat(text: string): number {
  const rest = text
    .slice(text.lastIndexOf(')') + 2)
    .trim()
    .split(/\s+/);
  // rest[0] is field 3 (state): fields 14-17 are rest[11..14]
  const f = rest.slice(11, 15).map(Number);
  if (f.length !== 4 || f.some((x) => !Number.isInteger(x) || x < 0)) throw new Error(`not a /proc/PID/stat line: ${JSON.stringify(text.slice(0, 80))}`);
  return f.reduce((a, b) => a + b, 0);
}

export async function sampleCpu(proc = '/proc'): Promise<CpuSample> {
  const [stat, self] = await Promise.all([readFile(`${proc}/stat`, 'utf8'), readFile(`${proc}/self/stat`, 'utf8')]);
  return { ...parseProcStat(stat), ours: parseSelfStat(self) };
}

/** Average cores busy between two samples: all of them, ours (this process and its waited-for children), and the rest. */
export interface Load {
  busyCores: number;
  oursCores: number;
  otherCores: number;
  cpus: number;
}

export function loadBetween(a: CpuSample, b: CpuSample): Load {
  const total = b.total - a.total;
  if (total <= 0) return { busyCores: 0, oursCores: 0, otherCores: 0, cpus: b.cpus };
  const cores = (ticks: number) => Math.round((Math.max(0, ticks) / total) * b.cpus * 100) / 100;
  const busy = b.busy - a.busy;
  const ours = Math.min(busy, b.ours - a.ours);
  return { busyCores: cores(busy), oursCores: cores(ours), otherCores: cores(busy - ours), cpus: b.cpus };
}

/** Run `fn` and say how long it took and how busy the machine was meanwhile. */
export async function measured<T>(fn: () => Promise<T>): Promise<{ result: T; wallMs: number; load: Load }> {
  const cpu0 = await sampleCpu();
  const t0 = Date.now();
  const result = await fn();
  const wallMs = Date.now() - t0;
  return { result, wallMs, load: loadBetween(cpu0, await sampleCpu()) };
}

/** Other work above this share of one core makes a timing a figure taken under load. */
export const QUIET_OTHER_CORES = 0.2;

/** One line for a benchmark's output: the load, and whether the figure was taken on a quiet machine. */
export function formatLoad(l: Load): string {
  const verdict =
    l.otherCores <= QUIET_OTHER_CORES
      ? 'quiet'
      : `NOT quiet: other work took ${l.otherCores.toFixed(2)} of ${l.cpus} cores; timings taken under load are not comparable`;
  return `machine: ${l.busyCores.toFixed(2)} of ${l.cpus} cores busy on average, ${l.oursCores.toFixed(2)} by this run, ${l.otherCores.toFixed(2)} by other work (${verdict})`;
}
