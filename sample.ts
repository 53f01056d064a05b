/**
 * The command line: sample images from a diffusers DDPM UNet with DDIM on WebGPU, and encode,
 * decode, interpolate or predict eps (see `--help`).
 *
 *   deno run -P sample.ts [COMMAND] [options]    (Deno: -P grants the permissions in deno.json)
 *   npm run sample -- [COMMAND] [options]        (Node: node scripts/node.mjs sample.ts ...)
 *   npx ddim-webgpu [COMMAND] [options]          (the npm package: dist/node/cli.js, built from this)
 */
import { statSync } from 'node:fs';
import process from 'node:process';
import { missingPermissionsMessage } from './src/cli/deno_permissions.ts';
import { main } from './src/cli/main.ts';
import { needsStderrRelay, runWithStderrRelay } from './src/cli/stderr_relay.ts';

const argv = process.argv.slice(2);
const wantsHelp = argv.includes('--help') || argv.includes('-h');
const missing = wantsHelp ? undefined : missingPermissionsMessage();
if (missing) {
  process.stderr.write(`${missing}\n`);
  process.exit(2);
}

// `npm run` (and `deno task`) run in the project's root; relative paths on the command line mean
// the folder the user ran it from, which both record in INIT_CWD. The default model is found
// from this file's location, so it does not depend on the working directory.
// (--help reads nothing, so it runs without permissions too.)
const initCwd = wantsHelp ? undefined : process.env.INIT_CWD;
if (initCwd && initCwd !== process.cwd() && statSync(initCwd, { throwIfNoEntry: false })?.isDirectory()) process.chdir(initCwd);

// Node with stderr on a file or socket runs the command in a child, to keep Dawn's notes off it.
const relayed = !wantsHelp && needsStderrRelay() ? runWithStderrRelay(argv) : undefined;
process.exit(relayed ? await relayed : await main(argv));
