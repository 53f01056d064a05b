#!/usr/bin/env node
// Builds what the npm package runs under plain Node (no esbuild or TypeScript at run time):
//   dist/node/index.js   the Node/Deno entry (src/mod.ts): the engine plus model folders on disk
//   dist/node/cli.js     the `ddim-webgpu` command (sample.ts, the same CLI)
//   dist/node/chunk-*    what the two share
// Their declarations, dist/types/, are emitted by scripts/build-web.mjs (scripts/emit-types.mjs),
// which checks a user of them; `npm run build` and `npm pack` (prepack) run both scripts.
// npm packages (webgpu) stay imports, resolved from the installed package's dependencies. The
// bundles find the bundled model by walking up from their own folder, as the sources do.
//
//   node scripts/build-package.mjs      (npm run build)
import { build } from 'esbuild';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const outdir = resolve(root, 'dist', 'node');
const started = performance.now();

rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { index: resolve(root, 'src', 'mod.ts'), cli: resolve(root, 'sample.ts') },
  outdir,
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  // The sources travel inside the maps, so stack traces point at src/ without shipping it.
  sourcemap: 'linked',
  logLevel: 'warning',
});
const cli = resolve(outdir, 'cli.js');
writeFileSync(cli, `#!/usr/bin/env node\n${readFileSync(cli, 'utf8')}`);
chmodSync(cli, 0o755);
const took = ((performance.now() - started) / 1000).toFixed(1);
console.log(`build-package: dist/node/index.js, dist/node/cli.js (${took}s)`);
