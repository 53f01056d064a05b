/**
 * The command line: sample images from a diffusers DDPM UNet with DDIM on WebGPU, and encode,
 * decode, interpolate or predict eps (see `--help`).
 *
 *   npx deno run -A sample.ts [COMMAND] [options]
 *   npm run sample -- [COMMAND] [options]        (Node: node scripts/node.mjs sample.ts ...)
 */
import { statSync } from 'node:fs';
import process from 'node:process';
import { main } from './src/cli/main.ts';

// `npm run` (and `deno task`) run in the project's root; relative paths on the command line mean
// the folder the user ran it from, which both record in INIT_CWD. The default model is found
// from this file's location, so it does not depend on the working directory.
const initCwd = process.env.INIT_CWD;
if (initCwd && initCwd !== process.cwd() && statSync(initCwd, { throwIfNoEntry: false })?.isDirectory()) process.chdir(initCwd);

process.exit(await main(process.argv.slice(2)));
