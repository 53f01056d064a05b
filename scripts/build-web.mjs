#!/usr/bin/env node
// Builds the browser side into dist/:
//   dist/ddim-webgpu.js     the engine as one ESM bundle (src/index.ts; shaders are embedded through
//                           src/shaders.gen.ts), with its types in dist/ddim-webgpu.d.ts (and dist/types/)
//   dist/demo.js            the demo page's script (web/demo.ts)
//   dist/golden_check.js    the browser test's page script (web/golden_check.ts)
// The two page scripts import the engine from ./ddim-webgpu.js at run time, so the pages run the
// very bundle that is shipped. Then the browser code is type-checked with Deno (skip: --no-check).
//
//   node scripts/build-web.mjs [--no-check]      (npm run build)
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { embedShaders } from './embed-shaders.mjs';
import { emitTypes } from './emit-types.mjs';

const root = resolve(import.meta.dirname, '..');
const dist = resolve(root, 'dist');
const engineEntry = resolve(root, 'src', 'index.ts');
const check = !process.argv.includes('--no-check');
// An edited .wgsl is embedded before the bundle is made.
if (embedShaders()) console.log('build-web: embedded the edited shaders into src/shaders.gen.ts');
const started = performance.now();

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: 'linked',
  logLevel: 'warning',
  metafile: true,
};

// The engine. src/gpu/device.ts reaches node:* and 'webgpu' only under Node and Deno, through
// dynamic imports: node:* stays external (never evaluated in a browser) and 'webgpu' is imported
// through a variable, which bundlers do not follow. The checks below keep it that way.
const engine = await build({
  ...common,
  entryPoints: [engineEntry],
  outfile: resolve(dist, 'ddim-webgpu.js'),
  external: ['node:*'],
  // No @ts-self-types directive: Deno would not resolve the declarations' './x.js' imports to their
  // .d.ts; Deno users import the sources (src/mod.ts, the JSR package) instead. TypeScript finds
  // ddim-webgpu.d.ts beside the bundle.
});
assertBrowserOnly(engine.metafile);

// The pages' scripts: the engine's entry resolves to the bundle, loaded by the browser beside them.
const engineAsBundle = {
  name: 'engine-as-bundle',
  setup(b) {
    b.onResolve({ filter: /(^|\/)src\/index\.ts$/ }, (args) => {
      const target = resolve(args.resolveDir, args.path);
      if (target !== engineEntry) return undefined;
      return { path: './ddim-webgpu.js', external: true };
    });
  },
};
const pages = await build({
  ...common,
  entryPoints: [resolve(root, 'web', 'demo.ts'), resolve(root, 'web', 'golden_check.ts')],
  outdir: dist,
  plugins: [engineAsBundle],
});
assertBrowserOnly(pages.metafile);
for (const [file, output] of Object.entries(pages.metafile.outputs)) {
  if (file.endsWith('.map')) continue;
  const engineModules = Object.keys(output.inputs).filter((input) => input.startsWith('src/'));
  if (engineModules.length > 0) {
    throw new Error(`${file} bundles engine modules (${engineModules.join(', ')}) instead of importing ./ddim-webgpu.js`);
  }
}

// Type declarations: the bundle's types are those of src/index.ts, emitted by TypeScript into
// dist/types/ (scripts/emit-types.mjs), so dist/ stands alone (no path back to src/).
emitTypes();
const declarations = resolve(dist, 'ddim-webgpu.d.ts');
writeFileSync(
  declarations,
  [
    "// Types of ddim-webgpu.js, which esbuild bundles from src/index.ts: that module's declarations.",
    "export * from './types/index.js';",
    '',
  ].join('\n'),
);

const took = ((performance.now() - started) / 1000).toFixed(1);
const size = (file) => (engine.metafile.outputs[file]?.bytes ?? pages.metafile.outputs[file]?.bytes ?? 0);
console.log(
  `build-web: dist/ddim-webgpu.js ${
    (size('dist/ddim-webgpu.js') / 1024).toFixed(0)
  } KiB, dist/demo.js, dist/golden_check.js, dist/ddim-webgpu.d.ts (${took}s)`,
);

if (check) typeCheck();

/** Fails the build if an output imports a Node module statically or bundles the 'webgpu' package. */
function assertBrowserOnly(metafile) {
  for (const [file, output] of Object.entries(metafile.outputs)) {
    for (const imp of output.imports ?? []) {
      if (imp.path.startsWith('node:') && imp.kind !== 'dynamic-import') {
        throw new Error(`${file} imports ${imp.path} statically: it would fail to load in a browser`);
      }
    }
    const fromNodeModules = Object.keys(output.inputs).filter((input) => input.includes('node_modules/'));
    if (fromNodeModules.length > 0) {
      throw new Error(`${file} bundles npm packages (${fromNodeModules.join(', ')}); the browser bundle must not`);
    }
  }
}

/**
 * Type-checks the browser code (the pages, which import the engine) with Deno's TypeScript
 * against the DOM's types; then a user of the bundle's .d.ts (test/browser/types_check.ts) with
 * the TypeScript compiler, strict and without skipLibCheck, so the emitted declarations are
 * checked whole (Deno does not map a .d.ts's './x.js' imports to './x.d.ts' as TypeScript does). The project's deno.json serves Deno's own
 * runtime, so a config for the browser is written into build/. skipLibCheck: TypeScript's DOM lib
 * and @webgpu/types both declare WebGPU, slightly differently; the engine needs the latter's
 * GPUBufferUsage and friends. node:* get minimal ambient types: device.ts reaches them only
 * outside browsers.
 */
function typeCheck() {
  const dir = resolve(root, 'build', 'web-check');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    resolve(dir, 'deno.json'),
    JSON.stringify(
      {
        compilerOptions: { lib: ['esnext', 'dom', 'dom.iterable'], strict: true, skipLibCheck: true },
      },
      null,
      2,
    ),
  );
  writeFileSync(
    resolve(dir, 'node-modules.d.ts'),
    [
      "declare module 'node:fs' { export function existsSync(path: string): boolean; }",
      "declare module 'node:path' { export function join(...parts: string[]): string; export function dirname(path: string): string; }",
      "declare module 'node:url' { export function fileURLToPath(url: string | URL): string; }",
      '',
    ].join('\n'),
  );
  writeFileSync(
    resolve(dir, 'check.ts'),
    [
      `/// <reference path="${relative(dir, resolve(root, 'node_modules/@webgpu/types/dist/index.d.ts'))}" />`,
      '/// <reference path="./node-modules.d.ts" />',
      `import '${relative(dir, resolve(root, 'web/demo.ts'))}';`,
      `import '${relative(dir, resolve(root, 'web/golden_check.ts'))}';`,
      '',
    ].join('\n'),
  );
  const deno = resolve(root, 'node_modules', '.bin', 'deno');
  const result = spawnSync(deno, ['check', '--quiet', '--config', resolve(dir, 'deno.json'), resolve(dir, 'check.ts')], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, NO_COLOR: '1' },
  });
  if (result.error) throw new Error(`could not run ${deno}: ${result.error.message}`);
  if (result.status !== 0) {
    console.error('build-web: type check failed (browser code against the DOM types); `--no-check` skips it');
    process.exit(1);
  }
  // TypeScript 6's DOM lib declares WebGPU itself, so this config needs no @webgpu/types.
  writeFileSync(
    resolve(dir, 'tsconfig.json'),
    JSON.stringify(
      {
        compilerOptions: {
          strict: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          lib: ['es2023', 'dom', 'dom.iterable'],
          types: [],
          noEmit: true,
        },
        files: [resolve(root, 'test', 'browser', 'types_check.ts')],
      },
      null,
      2,
    ),
  );
  const tsc = resolve(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const declarations = spawnSync(process.execPath, [tsc, '-p', resolve(dir, 'tsconfig.json')], { cwd: root, stdio: 'inherit' });
  if (declarations.status !== 0) {
    console.error('build-web: type check failed (a user of dist/ddim-webgpu.d.ts); `--no-check` skips it');
    process.exit(1);
  }
  console.log('build-web: type check ok (web/*.ts, src/ through src/index.ts; dist/ddim-webgpu.d.ts with tsc)');
}
