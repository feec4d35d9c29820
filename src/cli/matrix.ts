// Entry logic of scripts/matrix.mjs: flags -> config -> run -> table; returns an exit code.
import { homedir } from 'node:os';
import { relative } from 'node:path';
import { loadMatrix } from '../config/matrix.ts';
import { backendLoader } from '../backends/index.ts';
import { ConfigError, asLabError } from '../errors.ts';
import { ensureHostPackages } from '../hostdeps.ts';
import { runMatrix } from '../matrix.ts';
import { readPreviousRun } from '../plan/resume.ts';
import { createReporter } from '../progress/reporter.ts';
import { renderFeb5Md } from '../report/feb5.ts';
import { renderTable } from '../report/summary.ts';
import { HELP, parseMatrixFlags } from './flags.ts';
import { matrixFile, resolveRun } from './run.ts';

export interface CliEnv {
  argv: string[];
  cwd: string;
  repoRoot: string;
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  signal: AbortSignal;
}

export async function matrixMain(e: CliEnv): Promise<number> {
  try {
    const flags = parseMatrixFlags(e.argv);
    if (flags.help) {
      e.stdout.write(HELP);
      return 0;
    }
    const cfg = await loadMatrix(matrixFile(flags, e));
    const run = resolveRun(cfg, flags, { cwd: e.cwd, home: e.env.HOME ?? homedir(), ...(e.env.USM_LAB_CACHE ? { cacheEnv: e.env.USM_LAB_CACHE } : {}) });
    // --resume DIR names a report folder (exit 2 otherwise), checked before the host is touched.
    if (run.resume === 'required') await readPreviousRun(run.outDir, true);
    const groups = new Set(['build']);
    for (const t of run.targets) if (t.backend !== 'local') groups.add('images').add(t.backend === 'vagrant' ? 'vagrant' : 'images');
    // a terminator on this host: Debian's nginx and HAProxy (the images have them already)
    if (run.targets.some((t) => t.backend === 'local') && run.servers.some((s) => s !== 'python')) groups.add('servers');
    await ensureHostPackages(e.repoRoot, [...groups], { kind: 'build-failed', out: e.stderr });
    const reporter = createReporter(e.stderr);
    let result;
    try {
      result = await runMatrix(run, {
        repoRoot: e.repoRoot,
        backends: backendLoader(e.repoRoot, {
          rebuild: run.rebuild,
          sandboxed: cfg.vagrant.sandboxed,
          cacheDir: run.cacheDir,
          installHostDeps: false,
          // Test hook (test/faults): extra guest kernel arguments, one list, never through a shell.
          append: (e.env.USM_LAB_TEST_APPEND ?? '').split(' ').filter(Boolean),
          bootTimeoutMs: Number(e.env.USM_LAB_TEST_BOOT_TIMEOUT_S ?? 0) * 1000 || undefined,
          ...(e.env.USM_LAB_TEST_SQUAT_FORWARD ? { squatForwardFile: e.env.USM_LAB_TEST_SQUAT_FORWARD } : {}),
        }),
        // Test hook (test/faults): the libssl the tracer probes (one path, never through a shell).
        ...(e.env.USM_LAB_TEST_LIBSSL ? { testLibssl: e.env.USM_LAB_TEST_LIBSSL } : {}),
        emit: reporter.emit,
        signal: e.signal,
        argv: e.argv,
      });
    } finally {
      reporter.stop();
    }
    e.stdout.write(`\n${renderTable(result.cells)}\n\n`);
    const feb5 = renderFeb5Md(result.cells);
    if (feb5) e.stdout.write(`${feb5}\n`);
    if (result.outputError)
      e.stderr.write(
        `error: ${result.outputError.kind}: ${result.outputError.message}\n(the table above is every cell of the run; ${result.outDir} holds only what was written before)\n`,
      );
    else e.stdout.write(`report: ${relative(e.cwd, result.outDir) || '.'}/summary.md\n`);
    for (const h of result.hints) e.stdout.write(`keep: ${h}\n`);
    return result.exitCode;
  } catch (err) {
    if (err instanceof ConfigError) {
      e.stderr.write(`error: ${err.message}\n(see --help)\n`);
      return 2;
    }
    const le = asLabError(err);
    e.stderr.write(`error: ${le.kind}: ${le.message}\n${le.detail ? `${le.detail}\n` : ''}`);
    return e.signal.aborted ? 130 : 3;
  }
}
