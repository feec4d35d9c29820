// Entry logic of scripts/report.mjs: `merge DIR... --out DIR` -> one summary; returns an exit
// code (exitCodeFor of the merged cells; 2 for bad arguments or folders).
import { parseArgs } from 'node:util';
import { ConfigError } from '../errors.ts';
import { exitCodeFor } from '../matrix.ts';
import { mergeRuns } from '../report/merge.ts';
import { renderTable } from '../report/summary.ts';
import { compareMain } from '../report/compare.ts';

export const REPORT_HELP =
  'Usage: npx zx scripts/report.mjs merge DIR [DIR...] --out DIR\n  merge the report folders of several shards into one summary.md / summary.json / manifest.json\n       npx zx scripts/report.mjs compare PREV CUR [--history DIR] [--keep K]  (compare --help)\n';

export function parseReportFlags(argv: readonly string[]): { help: true } | { help: false; dirs: string[]; out: string } {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], strict: true, allowPositionals: true, options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message.split('\n')[0]} (valid flags: --out, --help)`);
  }
  const { values, positionals } = parsed;
  if (values.help) return { help: true };
  if (positionals[0] !== 'merge' || !values.out) throw new ConfigError('expected: merge DIR... --out DIR');
  return { help: false, dirs: positionals.slice(1), out: values.out };
}

export async function reportMain(e: { argv: string[]; cwd?: string; stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }): Promise<number> {
  if (e.argv[0] === 'compare') return compareMain({ argv: e.argv.slice(1), cwd: e.cwd ?? process.cwd(), stdout: e.stdout, stderr: e.stderr });
  try {
    const f = parseReportFlags(e.argv);
    if (f.help) {
      e.stdout.write(REPORT_HELP);
      return 0;
    }
    const { cells } = await mergeRuns(f.dirs, f.out);
    e.stdout.write(`${renderTable(cells)}\n\nwrote ${f.out}/summary.md\n`);
    return exitCodeFor(cells, false);
  } catch (err) {
    e.stderr.write(`error: ${(err as Error).message}\n${err instanceof ConfigError && err.message.startsWith('expected') ? REPORT_HELP : ''}`);
    return 2;
  }
}
