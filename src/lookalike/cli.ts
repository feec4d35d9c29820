// The look-alike's entry point (what the bundle runs): node usm-lookalike.cjs ARGS.
import { main } from './main.ts';

main(process.argv.slice(2));
