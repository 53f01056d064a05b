#!/usr/bin/env node
// Runs a TypeScript entry point under Node: esbuild bundles it (npm packages stay external) into
// build/ and this process imports the result. Deno runs the same .ts files directly.
//   node scripts/node.mjs sample.ts [args...]
import { build } from 'esbuild';
import { basename, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [entry, ...args] = process.argv.slice(2);
if (!entry) {
  console.error('usage: node scripts/node.mjs <entry.ts> [args...]');
  process.exit(2);
}
const root = resolve(import.meta.dirname, '..');
const outfile = resolve(root, 'build', 'node', basename(entry).replace(/\.ts$/, '.mjs'));
await build({
  entryPoints: [resolve(entry)],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'inline',
  logLevel: 'warning',
});
process.argv = [process.argv[0], outfile, ...args];
await import(pathToFileURL(outfile).href);
