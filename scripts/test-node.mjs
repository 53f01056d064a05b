#!/usr/bin/env node
// The test suite under Node: bundles test/*.test.ts with esbuild (code splitting keeps one copy
// of each engine module), then runs them with uvu.  Filters: node scripts/test-node.mjs golden ddim
import { build } from 'esbuild';
import { embedShaders } from './embed-shaders.mjs';
import { readdirSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = resolve(import.meta.dirname, '..');
// One folder per process, so test runs side by side do not delete each other's bundles.
const outdir = resolve(root, 'build', 'test-node', String(process.pid));
const filters = process.argv.slice(2);
const all = readdirSync(resolve(root, 'test'));
const names = all.filter((f) => f.endsWith('.test.ts')).sort()
  .filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)));
if (names.length === 0) {
  console.error(`no test file matches ${filters.join(' ')}`);
  process.exit(2);
}
// An edited .wgsl is embedded before anything runs.
if (embedShaders()) console.log('embedded the edited shaders into src/shaders.gen.ts');
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: [resolve(root, 'test', 'harness.ts'), ...names.map((n) => resolve(root, 'test', n))],
  outdir,
  outbase: resolve(root, 'test'),
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'inline',
  logLevel: 'warning',
});
const { runSuites } = await import(pathToFileURL(resolve(outdir, 'harness.js')).href);
let code;
try {
  code = await runSuites(names, (n) => import(pathToFileURL(resolve(outdir, n.replace(/\.ts$/, '.js'))).href));
} finally {
  rmSync(outdir, { recursive: true, force: true });
}
process.exit(code);
