#!/usr/bin/env zx
// The model's debug-endpoint look-alike on this host, or its bundle for a guest:
//   npx zx scripts/lookalike.mjs --socket PATH -- bpf/build/usm_tls --variant upstream   (root)
//   npx zx scripts/lookalike.mjs --bundle OUT.cjs       (one file; node >= 12 runs it: `node OUT.cjs --help`)
// The matrix runs it through its external-tracer path (matrix.lookalike.yaml, files: ['@lookalike']).
import { register } from 'tsx/esm/api';

register();
const argv = process.argv.slice(process.argv.findIndex((a) => a.endsWith('lookalike.mjs')) + 1);
if (argv[0] === '--bundle') {
  if (!argv[1] || argv.length > 2) {
    process.stderr.write('usage: npx zx scripts/lookalike.mjs --bundle OUT.cjs\n');
    process.exit(2);
  }
  const { buildBundle } = await import('../src/lookalike/bundle.ts');
  try {
    await buildBundle(argv[1]);
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(3);
  }
  process.stdout.write(`${argv[1]}\n`);
} else {
  const { main } = await import('../src/lookalike/main.ts');
  main(argv);
}
