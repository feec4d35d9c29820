#!/usr/bin/env zx
// Reports across runs. `merge DIR... --out DIR`: one summary from shard folders (--shard K/N).
// `compare PREV CUR [--history DIR]`: trend.json/trend.md, exit 1 on a regression (src/report/trend.ts).
import { register } from 'tsx/esm/api';

register();
const { mergeRuns } = await import('../src/report/merge.ts');
const { renderTable } = await import('../src/report/summary.ts');
const args = process.argv.slice(process.argv.findIndex((a) => a.endsWith('report.mjs')) + 1);
const HELP = 'Usage: npx zx scripts/report.mjs merge DIR [DIR...] --out DIR\n  merge the report folders of several shards into one summary.md / summary.json / manifest.json\n       npx zx scripts/report.mjs compare PREV CUR [--history DIR] [--keep K]  (compare --help)\n';
if (args[0] === 'compare') {
  const { compareMain } = await import('../src/report/trend.ts');
  process.exit(await compareMain({ argv: args.slice(1), cwd: process.cwd(), stdout: process.stdout, stderr: process.stderr }));
}
if (args[0] === '--help' || args[0] === '-h') {
  process.stdout.write(HELP);
  process.exit(0);
}
const outAt = args.indexOf('--out');
if (args[0] !== 'merge' || outAt < 0 || !args[outAt + 1]) {
  process.stderr.write(`error: expected: merge DIR... --out DIR\n${HELP}`);
  process.exit(2);
}
const dirs = args.slice(1).filter((_, i) => i + 1 !== outAt && i + 1 !== outAt + 1);
try {
  const { cells } = await mergeRuns(dirs, args[outAt + 1]);
  process.stdout.write(`${renderTable(cells)}\n\nwrote ${args[outAt + 1]}/summary.md\n`);
  process.exit(cells.some((c) => c.status !== 'ok') ? 3 : cells.some((c) => c.verdict.pass === false) ? 1 : 0);
} catch (err) {
  process.stderr.write(`error: ${err.message}\n`);
  process.exit(2);
}
