// The machine's load during a benchmark (src/bench/load.ts): /proc/stat and /proc/self/stat as
// the kernel writes them, the cores busy by the run and by other work, and the quiet verdict.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { formatLoad, loadBetween, measured, parseProcStat, parseSelfStat, QUIET_OTHER_CORES, sampleCpu, type CpuSample } from '../src/bench/load.ts';
import { formatTrialBench, phaseStats } from '../src/bench/trial.ts';

const STAT = [
  'cpu  1000 20 300 5000 40 5 6 7 900 0',
  'cpu0 500 10 150 2500 20 2 3 3 450 0',
  'cpu1 500 10 150 2500 20 3 3 4 450 0',
  'intr 12345 0 0',
  'ctxt 999',
].join('\n');

const sample = (busy: number, total: number, ours: number, cpus = 2): CpuSample => ({ busy, total, ours, cpus });

describe('the load a benchmark ran under', () => {
  it('reads /proc/stat: busy = user+nice+system+irq+softirq+steal (guest is inside user), total adds idle and iowait, one cpuN line a CPU', () => {
    expect(parseProcStat(STAT)).toEqual({ busy: 1000 + 20 + 300 + 5 + 6 + 7, total: 1000 + 20 + 300 + 5000 + 40 + 5 + 6 + 7, cpus: 2 });
    // an old kernel's four fields
    expect(parseProcStat('cpu 1 2 3 4\ncpu0 1 2 3 4\n')).toEqual({ busy: 6, total: 10, cpus: 1 });
  });

  it.each([
    ['', 'empty'],
    ['intr 1 2 3', 'another line first'],
    ['cpu  1 2 x 4', 'a field not a number'],
    ['cpu  1 2', 'too few fields'],
  ])('refuses a /proc/stat that is not one: %j (%s)', (text) => {
    expect(() => parseProcStat(text)).toThrow(/not \/proc\/stat/);
  });

  it('reads utime+stime+cutime+cstime of /proc/PID/stat, also when the command name has spaces and parentheses', () => {
    // fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime priority ...
    const line = '4242 (node (a) b) S 1 4242 4242 0 -1 4194304 100 200 3 4 11 22 33 44 20 0 12 0 5 1000 50';
    expect(parseSelfStat(line)).toBe(11 + 22 + 33 + 44);
    expect(() => parseSelfStat('4242 (node) S 1 2 3')).toThrow(/not a \/proc\/PID\/stat line/);
    expect(() => parseSelfStat('4242 (node) S 1 4242 4242 0 -1 4194304 100 200 3 4 11 -2 33 44 20')).toThrow(/not a \/proc\/PID\/stat line/);
  });

  it('turns two samples into average cores: all busy, ours, the rest', () => {
    // 1000 ticks of 2 CPUs passed: 800 busy (1.6 cores), 700 of them ours (1.4)
    expect(loadBetween(sample(100, 1000, 50), sample(900, 2000, 750))).toEqual({ busyCores: 1.6, oursCores: 1.4, otherCores: 0.2, cpus: 2 });
    // ours is never more than the machine's busy time (ticks of children reaped late)
    expect(loadBetween(sample(0, 0, 0), sample(500, 1000, 800))).toEqual({ busyCores: 1, oursCores: 1, otherCores: 0, cpus: 2 });
    // no time passed: nothing to say
    expect(loadBetween(sample(5, 10, 1), sample(5, 10, 1))).toEqual({ busyCores: 0, oursCores: 0, otherCores: 0, cpus: 2 });
  });

  it('calls a run quiet up to QUIET_OTHER_CORES of other work, and says how much otherwise', () => {
    expect(QUIET_OTHER_CORES).toBe(0.2);
    expect(formatLoad({ busyCores: 1.75, oursCores: 1.55, otherCores: 0.2, cpus: 2 })).toBe(
      'machine: 1.75 of 2 cores busy on average, 1.55 by this run, 0.20 by other work (quiet)',
    );
    expect(formatLoad({ busyCores: 2, oursCores: 1.1, otherCores: 0.9, cpus: 2 })).toBe(
      'machine: 2.00 of 2 cores busy on average, 1.10 by this run, 0.90 by other work (NOT quiet: other work took 0.90 of 2 cores; timings taken under load are not comparable)',
    );
  });

  it('counts the CPU time of a child this process waited for as ours (qemu is such a child)', () => {
    const hz = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim());
    expect(hz).toBeGreaterThan(0);
    return (async () => {
      const a = await sampleCpu();
      // a child that spins until it has used 0.4 s of CPU and reports what it used
      const spin = 'const c=()=>{const u=process.cpuUsage();return u.user+u.system};while(c()<4e5);console.log(c())';
      const r = spawnSync(process.execPath, ['-e', spin], {
        encoding: 'utf8',
      });
      const childTicks = (Number(r.stdout.trim()) / 1e6) * hz;
      expect(childTicks).toBeGreaterThan(0.3 * hz);
      const b = await sampleCpu();
      expect(b.ours - a.ours).toBeGreaterThanOrEqual(Math.floor(childTicks * 0.8));
      expect(b.busy - a.busy).toBeGreaterThanOrEqual(Math.floor(childTicks * 0.8));
      expect(b.cpus).toBeGreaterThanOrEqual(1);
    })();
  });

  it('measured: the result of the function, its wall time and the load meanwhile (a child spinning 0.3 s of CPU is ours)', async () => {
    const spin = 'const c=()=>{const u=process.cpuUsage();return u.user+u.system};while(c()<3e5);';
    const m = await measured(async () => {
      await new Promise((r) => setTimeout(r, 50));
      return spawnSync(process.execPath, ['-e', spin]).status;
    });
    expect(m.result).toBe(0);
    expect(m.wallMs).toBeGreaterThanOrEqual(300);
    expect(m.load.oursCores).toBeGreaterThan(0);
    expect(m.load.busyCores).toBeGreaterThanOrEqual(m.load.oursCores);
  });

  it("bench:trial prints each target's load and the matrix's", () => {
    const load = { busyCores: 1.8, oursCores: 1.7, otherCores: 0.1, cpus: 2 };
    const out = formatTrialBench([{ target: 'bookworm', cell: 'c', trials: 1, ok: 1, statuses: ['ok'], wallMs: 9000, rows: phaseStats([]), load }], {
      wallMs: 230_000,
      cells: 64,
      ok: 64,
      exitCode: 0,
      load: { ...load, otherCores: 0.6 },
    });
    expect(out).toContain(
      'bookworm: c, 1/1 trials ok (ok), whole target run 9.00 s\nmachine: 1.80 of 2 cores busy on average, 1.70 by this run, 0.10 by other work (quiet)\n',
    );
    expect(out).toContain(
      'Default matrix: 64/64 cells ok, exit 0, wall 230.00 s (3.8 min)\nmachine: 1.80 of 2 cores busy on average, 1.70 by this run, 0.60 by other work (NOT quiet',
    );
  });
});
