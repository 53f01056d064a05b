#!/usr/bin/env node
// Declaration files for the package, emitted from the sources by the TypeScript compiler (a dev
// dependency, used for this only): dist/types/ mirrors src/ with one .d.ts per module that the
// entry points reach, so a consumer's plain `tsc` (strict, moduleResolution nodenext, with
// @webgpu/types) compiles against them with none of this project's settings. The sources import
// each other by their .ts names (as Deno wants); in the declarations those become .js, which a
// consumer resolves to the .d.ts beside them. docs/packaging.md says why it is done this way.
//
//   node scripts/emit-types.mjs      (scripts/build-web.mjs runs it)
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = resolve(import.meta.dirname, '..');

/** The modules whose declarations (and everything they import) are emitted. */
export const TYPE_ENTRIES = ['src/mod.ts', 'src/index.ts'];

export function emitTypes() {
  const started = performance.now();
  const work = resolve(root, 'build', 'types');
  const out = resolve(root, 'dist', 'types');
  rmSync(work, { recursive: true, force: true });
  rmSync(out, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const config = {
    compilerOptions: {
      target: 'es2022',
      module: 'nodenext',
      moduleResolution: 'nodenext',
      // The engine runs against the DOM's and WebGPU's globals; node:* is reached only from the
      // Node/Deno entry, and none of it shows in a public signature (the emitted files import no
      // node:* module, which the package test checks).
      lib: ['es2023', 'dom', 'dom.iterable'],
      types: ['@webgpu/types', 'node'],
      typeRoots: [resolve(root, 'node_modules', '@types'), resolve(root, 'node_modules')],
      strict: true,
      // TypeScript's DOM lib and @webgpu/types both declare WebGPU, slightly differently.
      skipLibCheck: true,
      allowImportingTsExtensions: true,
      rewriteRelativeImportExtensions: true,
      declaration: true,
      emitDeclarationOnly: true,
      stripInternal: true,
      rootDir: resolve(root, 'src'),
      outDir: resolve(work, 'out'),
    },
    files: TYPE_ENTRIES.map((entry) => resolve(root, entry)),
  };
  const configFile = resolve(work, 'tsconfig.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const tsc = resolve(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', configFile], { cwd: root, stdio: 'inherit' });
  if (result.error) throw new Error(`could not run ${tsc}: ${result.error.message}`);
  if (result.status !== 0) throw new Error('emit-types: tsc failed (see above)');

  let files = 0;
  for (const file of walk(resolve(work, 'out'))) {
    const target = resolve(out, relative(resolve(work, 'out'), file));
    mkdirSync(resolve(target, '..'), { recursive: true });
    writeFileSync(target, rewriteSpecifiers(readFileSync(file, 'utf8')));
    files++;
  }
  const took = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`emit-types: ${files} declaration files in ${relative(root, out)}/ (${took}s)`);
}

/** './x.ts' -> './x.js' in import and export specifiers and import() types; others stay. */
export function rewriteSpecifiers(text) {
  return text.replace(/((?:from\s+|import\s*\(\s*)['"])(\.{1,2}\/[^'"]*?)\.ts(['"])/g, '$1$2.js$3');
}

function* walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.name.endsWith('.d.ts')) yield path;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) emitTypes();
