#!/usr/bin/env node
// The package as a user gets it: `npm pack` (which builds it, prepack), the tarball installed
// into an empty temporary project without the network (its one dependency, webgpu, and the
// consumer's TypeScript come from the npm cache, which `npm ci` of this project filled), then:
// its command's --help, `import('ddim-webgpu')` by name in Node, and a strict TypeScript
// consumer compiled against its declarations. No GPU work. Ends with "N passed, N failed".
//
//   node test/package/run.mjs [--keep]      (npm run test:package; --keep leaves the folder)
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..', '..');
const keep = process.argv.includes('--keep');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const work = mkdtempSync(join(tmpdir(), 'ddim-package-'));
const started = performance.now();
let passed = 0;
let failed = 0;

function check(ok, what, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${!ok && detail ? `\n     ${detail.trim().replaceAll('\n', '\n     ')}` : ''}`);
}

/** Runs a command; returns its status, its stdout, and `out`: stdout and stderr together. */
function run(command, args, cwd, env = {}) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env } });
  if (result.error) return { status: -1, stdout: '', out: result.error.message };
  return { status: result.status, stdout: result.stdout, out: `${result.stdout}${result.stderr}` };
}

/**
 * The consumer's lockfile: the tarball, and the packages it and the consumer need, at the versions
 * (and integrity) this project's lockfile has for them.
 */
function consumerLockfile(consumer, tarball) {
  const ours = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')).packages;
  const registry = run(npm, ['config', 'get', 'registry'], root).stdout.trim().replace(/\/?$/, '/');
  const packages = {
    '': { name: consumer.name, dependencies: consumer.dependencies },
    'node_modules/ddim-webgpu': {
      version: manifest.version,
      resolved: `file:../${tarball.filename}`,
      integrity: tarball.integrity,
      license: manifest.license,
      dependencies: manifest.dependencies,
      bin: manifest.bin,
      engines: manifest.engines,
    },
  };
  const add = (name) => {
    const key = `node_modules/${name}`;
    if (packages[key]) return;
    const entry = ours[key];
    if (!entry) throw new Error(`package-lock.json has no ${key} (run npm install)`);
    const { dev: _dev, devOptional: _devOptional, ...kept } = entry;
    // Without `resolved`, npm asks the registry where the tarball is, even with it in the cache.
    packages[key] = { resolved: `${registry}${name}/-/${name.split('/').at(-1)}-${entry.version}.tgz`, ...kept };
    for (const dependency of Object.keys(entry.dependencies ?? {})) add(dependency);
  };
  for (const name of [...Object.keys(manifest.dependencies), ...Object.keys(consumer.dependencies).filter((n) => n !== 'ddim-webgpu')]) {
    add(name);
  }
  return { name: consumer.name, lockfileVersion: 3, requires: true, packages };
}

function* walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else yield path;
  }
}

try {
  // 1. Pack. prepack builds dist/ (the bundles and the declarations).
  const packed = run(npm, ['pack', '--json', '--pack-destination', work, '--loglevel=error'], root);
  let info;
  try {
    // The build's own lines (prepack) come first on stdout; npm's JSON starts on a line of its own.
    info = JSON.parse(packed.stdout.slice(packed.stdout.search(/^\[/m)))[0];
  } catch {
    info = undefined;
  }
  check(packed.status === 0 && !!info, 'npm pack (prepack builds dist/)', packed.out.slice(-3000));
  if (!info) throw new Error('cannot go on without a tarball');
  const files = new Set(info.files.map((f) => f.path));
  const mb = (info.size / 1e6).toFixed(1);
  console.log(`     ${info.filename}: ${mb} MB, ${files.size} files`);
  const wanted = [
    'package.json',
    'README.md',
    'LICENSE',
    'dist/ddim-webgpu.js',
    'dist/ddim-webgpu.d.ts',
    'dist/node/index.js',
    'dist/node/cli.js',
    'dist/types/mod.d.ts',
    'dist/types/index.d.ts',
    'weights/emoji32/config.json',
    'weights/emoji32/diffusion_pytorch_model.safetensors',
    'weights/emoji32/scheduler_config.json',
    'weights/emoji32/NOTICE',
  ];
  const absent = wanted.filter((f) => !files.has(f));
  check(absent.length === 0, 'the tarball has the bundles, declarations, LICENSE and the default model with its NOTICE', absent.join(', '));
  const stray = [...files].filter((f) => /^(test|scripts|src|web|docs|\.ci|build)\//.test(f) || /^dist\/(demo|golden_check)/.test(f));
  check(stray.length === 0, 'the tarball has no tests, scripts, sources or demo page scripts', stray.join(', '));
  check(info.size < 40e6, `the tarball is ${mb} MB (the model is 36 MB of float32), under 40 MB`);

  // 2. Install into an empty project, offline. `npm ci` of this project leaves the packages'
  // tarballs in the npm cache but not their registry metadata, which `npm install` needs to
  // resolve webgpu's own version ranges; so the consumer gets a lockfile with this project's
  // versions of them (as a user's first `npm install` would pin them) and `npm ci --offline`.
  const project = join(work, 'consumer');
  mkdirSync(project);
  const direct = { typescript: manifest.devDependencies.typescript, '@webgpu/types': manifest.devDependencies['@webgpu/types'] };
  const consumer = {
    name: 'consumer',
    private: true,
    type: 'module',
    dependencies: { 'ddim-webgpu': `file:../${info.filename}`, ...direct },
  };
  writeFileSync(join(project, 'package.json'), JSON.stringify(consumer, null, 2));
  writeFileSync(join(project, 'package-lock.json'), JSON.stringify(consumerLockfile(consumer, info), null, 2));
  const installed = run(npm, ['ci', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], project);
  check(
    installed.status === 0,
    "npm ci --offline: the tarball, webgpu and the consumer's typescript and @webgpu/types from the npm cache",
    installed.out,
  );
  const installedAt = join(project, 'node_modules', 'ddim-webgpu');

  // 3. The command.
  const bin = join(project, 'node_modules', '.bin', process.platform === 'win32' ? 'ddim-webgpu.cmd' : 'ddim-webgpu');
  const help = run(bin, ['--help'], project);
  check(help.status === 0 && /^usage: /.test(help.out), 'ddim-webgpu --help', help.out);
  const bad = run(bin, ['--n', 'x'], project);
  check(
    bad.status === 2 && /^error: --n /.test(bad.out) && !/\n\s+at /.test(bad.out),
    'ddim-webgpu --n x: status 2, one error line, no stack',
    bad.out,
  );
  const jpg = run(bin, ['--out', 'x.jpg'], project);
  check(jpg.status === 2 && /PNG/.test(jpg.out), 'ddim-webgpu --out x.jpg is refused (it writes PNG)', jpg.out);

  // 4. Import by name in Node: the engine, the folder reader, and the bundled model found from it.
  const probe = `
    const m = await import('ddim-webgpu');
    const dir = m.defaultModelDir();
    const paths = m.findModelDir(dir);
    const browser = await import('ddim-webgpu/browser');
    console.log(JSON.stringify({
      names: Object.keys(m).sort(),
      dir,
      layout: paths.layout,
      browserHasReader: 'loadModelDir' in browser || 'readModelDir' in browser,
      browserHasPipeline: typeof browser.DdimPipeline,
    }));`;
  const imported = run(process.execPath, ['--input-type=module', '-e', probe], project);
  let seen;
  try {
    seen = JSON.parse(imported.out.trim().split('\n').at(-1));
  } catch {
    seen = undefined;
  }
  const needNames = [
    'DdimPipeline',
    'requestGpu',
    'loadModel',
    'loadModelDir',
    'readModelDir',
    'defaultModelDir',
    'ModelDirError',
    'encodePng',
    'gridRgba',
  ];
  check(
    imported.status === 0 && seen && needNames.every((n) => seen.names.includes(n)),
    `import('ddim-webgpu') in Node: ${needNames.join(', ')}`,
    imported.out,
  );
  check(
    !!seen && relative(installedAt, seen.dir) === join('weights', 'emoji32') && seen.layout === 'flat',
    "defaultModelDir() is the installed package's weights/emoji32",
    JSON.stringify(seen),
  );
  check(
    !!seen && seen.browserHasReader === false && seen.browserHasPipeline === 'function',
    "'ddim-webgpu/browser' is the bundle: the engine without the file-system reader",
    JSON.stringify(seen),
  );

  // 5. The declarations import nothing from node:*, so a consumer needs no @types/node.
  const nodeImports = [...walk(join(installedAt, 'dist', 'types'))].filter((f) => /from ['"]node:/.test(readFileSync(f, 'utf8')));
  check(nodeImports.length === 0, 'the declarations import no node:* module', nodeImports.join(', '));

  // 6. A strict TypeScript consumer, nodenext, with none of this project's settings.
  writeFileSync(
    join(project, 'main.ts'),
    `import { DdimPipeline, type DdimResult, defaultModelDir, loadModelDir, ModelDirError, type ModelFiles, requestGpu } from 'ddim-webgpu';
import { encodePng } from 'ddim-webgpu/browser';

export async function sampleOnce(): Promise<DdimResult> {
  const gpu = await requestGpu({ backend: 'auto' });
  const files: ModelFiles = await loadModelDir(defaultModelDir());
  const pipeline = await DdimPipeline.load(gpu, files, { batch: 2 });
  // @ts-expect-error: steps is a number; were the types \`any\`, this would be an unused directive
  await pipeline.sample({ steps: 'ten' });
  const result = await pipeline.sample({ steps: 10, seed: 1, count: 2, spacing: 'trailing' });
  const png: Uint8Array = await encodePng(new Uint8Array(4), 1, 1);
  if (png.length === 0 || !(new ModelDirError('x') instanceof Error)) throw new Error('unreachable');
  return result;
}
`,
  );
  // TypeScript 6's DOM lib declares WebGPU itself: a consumer needs no @webgpu/types, and this
  // one is checked whole (our declarations included, no skipLibCheck).
  const strict = { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true };
  const configs = {
    'tsconfig.json': { compilerOptions: { ...strict, types: [] }, files: ['main.ts'] },
    // With @webgpu/types (which TypeScript 5 needs), its declarations clash with TypeScript 6's
    // DOM lib (TS6200, in those two files alone), so that setup needs skipLibCheck.
    'tsconfig.webgpu-types.json': {
      compilerOptions: { ...strict, types: ['@webgpu/types'], skipLibCheck: true },
      files: ['main.ts'],
    },
  };
  const tsc = join(project, 'node_modules', 'typescript', 'bin', 'tsc');
  for (const [name, config] of Object.entries(configs)) {
    writeFileSync(join(project, name), JSON.stringify(config, null, 2));
    const compiled = run(process.execPath, [tsc, '-p', name], project);
    const options = Object.entries(config.compilerOptions).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(', ');
    check(compiled.status === 0, `tsc -p ${name} (${options})`, compiled.out);
  }
} catch (error) {
  check(false, 'the package test ran to its end', error.stack ?? String(error));
} finally {
  if (keep) console.log(`     kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
const took = ((performance.now() - started) / 1000).toFixed(1);
console.log(`package test: ${took}s`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
