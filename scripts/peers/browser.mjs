#!/usr/bin/env node
// The engine beside onnxruntime-web in headless Chromium (Debian's; its WebGPU here is
// SwiftShader, a CPU implementation, so this takes minutes): emoji32's forward and a DDIM sample
// through each, in one page, on the page's navigator.gpu. Not part of `npm test`.
//   npm run bench:browser -- [--batch N] [--steps S] [--repeats R] [--warmup W] [--json FILE]
// Environment: CHROMIUM (default /usr/bin/chromium), BENCH_BROWSER_TIMEOUT_S (default 1800).
import { build } from 'esbuild';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { MOUNTS, startServer } from '../serve.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const pageDir = resolve(root, 'build', 'peers-page');
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const timeoutS = Number(process.env.BENCH_BROWSER_TIMEOUT_S ?? 1800);

const USAGE = 'usage: npm run bench:browser -- [--batch N] [--steps S] [--repeats R] [--warmup W] [--json FILE]';
const query = new URLSearchParams();
let jsonFile;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const flag = argv[i];
  if (flag === '-h' || flag === '--help') {
    console.log(USAGE);
    process.exit(0);
  }
  const value = argv[++i];
  if (flag === '--json' && value) {
    jsonFile = resolve(value);
  } else if (['--batch', '--steps', '--repeats', '--warmup'].includes(flag)) {
    const n = Number(value);
    if (!Number.isInteger(n) || n < (flag === '--warmup' ? 0 : 1)) fail(`${flag} takes a whole number, got ${value ?? 'nothing'}`, 2);
    query.set(flag.slice(2), String(n));
  } else {
    fail(`unknown option ${flag}\n${USAGE}`, 2);
  }
}
if (!existsSync(executablePath)) {
  fail(`no Chromium at ${executablePath}: apt-get install -y --no-install-recommends chromium (or set CHROMIUM)`);
}
const ortDist = resolve(root, 'node_modules', 'onnxruntime-web', 'dist');
const peersDir = resolve(root, '..', 'shared', 'peers');
if (!existsSync(ortDist)) fail('node_modules/onnxruntime-web is missing: npm install');
if (!existsSync(resolve(peersDir, 'emoji32.onnx'))) fail(`${peersDir}/emoji32.onnx is missing`);

mkdirSync(pageDir, { recursive: true });
await build({
  entryPoints: [resolve(import.meta.dirname, 'page.ts')],
  outfile: resolve(pageDir, 'page.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  external: ['node:*'], // device.ts imports them only under Node and Deno (as scripts/build-web.mjs does)
  logLevel: 'warning',
});
writeFileSync(
  resolve(pageDir, 'index.html'),
  '<!doctype html><meta charset="utf-8"><title>engine vs onnxruntime-web</title>' +
    '<pre id="status"></pre><pre id="result"></pre><script type="module" src="page.js"></script>\n',
);
// The page, ORT's files (as a site would host them) and the ONNX models, beside the weights.
MOUNTS.unshift(['/peers-page/', pageDir], ['/ort/', ortDist], ['/peers/', peersDir]);

const watchdog = setTimeout(() => fail(`more than ${timeoutS} s`), timeoutS * 1000);
watchdog.unref();
const server = await startServer({ port: 0 });
// Lavapipe's Vulkan variables (the Node tests') would hide SwiftShader from Chromium.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^VK_(ICD_FILENAMES|DRIVER_FILES|ADD_DRIVER_FILES)$/.test(k)));
const browser = await chromium.launch({
  executablePath,
  env,
  timeout: 60_000,
  args: [
    '--enable-unsafe-webgpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
  ],
});
console.error(`bench:browser: ${browser.version()}, ${server.url}peers-page/?${query}`);
let result;
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.error(`  page: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`  page error: ${e.message}`));
  await page.goto(`${server.url}peers-page/?${query}`);
  await page.waitForFunction(() => globalThis.peersResult, undefined, { timeout: timeoutS * 1000, polling: 1000 });
  result = await page.evaluate(() => globalThis.peersResult);
} finally {
  await browser.close();
  await server.close();
}
if (result.error) fail(`the page failed: ${result.error}`);
result = { schema: 'ddim-webgpu-bench-browser/1', date: new Date().toISOString(), chromium: browser.version(), ...result };
const e = result.engine;
const o = result['ort-webgpu'];
const ms = (v) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(1)} ms`);
console.log(`emoji32 in Chromium ${result.chromium}, batch ${query.get('batch') ?? 1}; forwards from input array to eps array, median`);
console.log(`  this engine   forward ${ms(e.forwardMs)}   DDIM-${e.ddim.steps} ${ms(e.ddim.wallMs)}   on ${e.adapter}`);
console.log(
  `  ort-webgpu    forward ${ms(o.forwardMs)} (x${o.timesEngine.forward.toFixed(2)})   DDIM-${o.ddim.steps} ${ms(o.ddim.wallMs)} ` +
    `(x${o.timesEngine.ddim.toFixed(2)})   on ${o.adapter}; session ${ms(o.sessionMs)}; eps vs engine rel. L2 ${
      o.epsRelL2VsEngine.toExponential(2)
    }`,
);
if (jsonFile) {
  mkdirSync(dirname(jsonFile), { recursive: true });
  writeFileSync(jsonFile, JSON.stringify(result, null, 2) + '\n');
  console.error(`wrote ${jsonFile}`);
}
process.exit(0);

function fail(message, code = 1) {
  console.error(`bench:browser: ${message}`);
  process.exit(code);
}
