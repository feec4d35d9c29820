#!/usr/bin/env zx
// Reports across runs. `merge DIR... --out DIR`: one summary from shard folders (--shard K/N).
// Thin: see src/cli/report.ts (merge; compare: src/report/compare.ts).
import { launch } from './launch.mjs';

const { argv } = launch(import.meta.url, { signals: [] });
const { reportMain } = await import('../src/cli/report.ts');
process.exit(await reportMain({ argv, cwd: process.cwd(), stdout: process.stdout, stderr: process.stderr }));
