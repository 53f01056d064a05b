#!/usr/bin/env node
// The browser test: the engine's ESM bundle (dist/, `node scripts/build-web.mjs` first; `npm run
// test:browser` does both) in headless Chromium, served by scripts/serve.mjs on a free 127.0.0.1
// port. Chromium's WebGPU here is SwiftShader (no GPU, no shader-f16, slow): the runs are small.
//   1. golden: the emoji32 UNet forward on diffusers' golden input (web/test.html), rel. L2 ≤ 2e-4
//   2. the demo (web/index.html) loads the model and draws a 4-step sample, step by step
//   3. the sample on the page is a picture: a screenshot, decoded, has many colours and contrast
//   4. the demo encodes a PNG picked in its file input and decodes it back
//   5. without navigator.gpu the demo says so
//   6. golden: the tiny LDM folder (../shared/golden/sd/tiny-ldm, served under /golden/), loaded by
//      URL and sampled from ldm.xT (web/test.html?check=ldm): latents and images rel. L2 ≤ 2e-3,
//      code indices equal
//   7. the demo loads the tiny LDM folder by URL (?model=) and draws decoded samples; its round trip
//      runs through the autoencoder
//   8. golden: the tiny Stable Diffusion folder (../shared/golden/sd/tiny-sd), loaded by URL and
//      sampled from t2i.xT with the reference's prompt, negative prompt and guidance
//      (web/test.html?check=sd): latents and image rel. L2 ≤ 2e-3, prompt embeddings ≤ 1e-4
//   9. the demo loads the tiny SD folder by URL, samples from a prompt too long for CLIP (the page
//      notes the cut), previews every step from its latents, draws the decoded images; then an
//      interpolation and a round trip under the prompt
// Before the browser: loadModel in Node (it only needs fetch), against the same server and a fake
// fetch for the pipeline layout and the failures.
// Ends with "N passed, N failed"; exits non-zero on any failure.
//
//   node test/browser/run.mjs [--screenshot PATH]   (also writes the page's screenshot to PATH,
//                                                     e.g. docs/screenshot.png for the README)
//   node test/browser/run.mjs --only WORDS          (only the tests whose name holds WORDS)
// Environment: CHROMIUM (default /usr/bin/chromium), BROWSER_TEST_TIMEOUT_S (default 1500).
import { build } from 'esbuild';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from '../../scripts/serve.mjs';
import { loadModelChecks } from './load_model_checks.mjs';

const root = resolve(import.meta.dirname, '..', '..');
const outDir = resolve(root, 'build', 'browser');
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const overallTimeoutS = Number(process.env.BROWSER_TEST_TIMEOUT_S ?? 1500);
const screenshotArg = process.argv.indexOf('--screenshot');
const extraScreenshot = screenshotArg >= 0 ? resolve(process.argv[screenshotArg + 1] ?? '') : undefined;
const onlyArg = process.argv.indexOf('--only');
const only = onlyArg >= 0 ? process.argv[onlyArg + 1] : undefined;
if (onlyArg >= 0 && !only) fatal('--only needs the words a test name must hold');
const GOLDEN_TOLERANCE = 2e-4;
const SAMPLE_STEPS = 4;
const ROUNDTRIP_STEPS = 2;
const LDM_TOLERANCE = 2e-3;
// 'uniform' spacing steps by ⌊1000 / steps⌋ from 0, as the DDIM paper's code does: 4 steps are 0, 250, 500, 750.
const LDM_SAMPLE_STEPS = 4;
const LDM_SAMPLE_COUNT = 2;
/** The tiny LDM folder as the demo server serves it (../shared/golden/sd/tiny-ldm). */
const LDM_URL = 'golden/sd/tiny-ldm/';
const T2I_TOLERANCE = 2e-3;
const EMBEDS_TOLERANCE = 1e-4;
/** The tiny Stable Diffusion folder as the demo server serves it (../shared/golden/sd/tiny-sd). */
const SD_URL = 'golden/sd/tiny-sd/';
const SD_SAMPLE_STEPS = 4;
const SD_SAMPLE_COUNT = 2;
// Past CLIP's 75 tokens: the page must note that its end was cut.
const SD_PROMPT = 'a photograph of an astronaut riding a horse' +
  ', in the style of an old oil painting with soft golden light and long shadows'.repeat(5) + ', under a violet sky';
// SwiftShader on two busy cores: each of the page's actions took 30-40 s alone, 180 s beside
// other test runs.
const ACTION_TIMEOUT_MS = 600_000;
const started = performance.now();
const seconds = () => ((performance.now() - started) / 1000).toFixed(1);

// Chromium's flags: WebGPU on (SwiftShader without a GPU), no sandbox as root, and none of the
// background traffic a fresh profile starts (there is no network here).
const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
];

mkdirSync(outDir, { recursive: true });
for (const needed of ['dist/ddim-webgpu.js', 'dist/demo.js', 'dist/golden_check.js']) {
  if (!existsSync(resolve(root, needed))) {
    fatal(`${needed} is missing: run \`node scripts/build-web.mjs\` first (npm run test:browser does)`);
  }
}
if (!existsSync(executablePath)) {
  fatal(`no Chromium at ${executablePath}: apt-get install -y --no-install-recommends chromium (or set CHROMIUM)`);
}
const goldenFile = resolve(root, '..', 'shared', 'golden', 'emoji32_unet.safetensors');
if (!existsSync(goldenFile)) fatal(`${goldenFile} is missing: the golden check needs ../shared/golden`);
for (const needed of ['tiny-ldm/model_index.json', 'ldm.safetensors', 'tiny-sd/model_index.json', 'sd.safetensors']) {
  const file = resolve(root, '..', 'shared', 'golden', 'sd', needed);
  if (!existsSync(file)) fatal(`${file} is missing: the latent diffusion checks need ../shared/golden/sd`);
}

// The whole run is bounded: a hung browser must not hold CI.
const watchdog = setTimeout(() => fatal(`the browser test took more than ${overallTimeoutS} s`), overallTimeoutS * 1000);
watchdog.unref();

const { decodePng, loadModel, parseSafetensors } = await importEngineParts();
const server = await startServer({ port: 0 });
// The Vulkan driver variables the Node tests use for lavapipe hide SwiftShader from Chromium.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^VK_(ICD_FILENAMES|DRIVER_FILES|ADD_DRIVER_FILES)$/.test(k)));
const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, env, timeout: 60_000 });
console.log(`browser test: ${browser.version()} (${executablePath}), serving ${server.url}`);

const results = [];
/** Runs one test with a fresh page (a Node-only test simply ignores it); records and prints the outcome. */
async function test(name, body) {
  if (only && !name.includes(only)) return;
  const testStart = performance.now();
  const context = await browser.newContext({ viewport: { width: 1000, height: 1100 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !isPipelineConfigProbe(m)) pageErrors.push(`console: ${m.text()}`);
  });
  try {
    await body(page);
    if (pageErrors.length > 0) throw new Error(`the page reported errors:\n      ${pageErrors.join('\n      ')}`);
    results.push(true);
    console.log(`  ok    ${name} (${((performance.now() - testStart) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push(false);
    console.log(
      `  FAIL  ${name} (${((performance.now() - testStart) / 1000).toFixed(1)} s)\n      ${e.message.split('\n').join('\n      ')}`,
    );
    await page.screenshot({ path: resolve(outDir, `failed-${results.length}.png`), fullPage: true }).catch(() => {});
  } finally {
    await context.close();
  }
}

/**
 * loadModel asks a folder for a bare model's config.json first; a pipeline folder (the tiny LDM)
 * has none, and Chromium logs that 404 as an error.
 */
function isPipelineConfigProbe(message) {
  return /status of 404/.test(message.text()) && /\/golden\/sd\/[^/]+\/config\.json$/.test(message.location().url);
}

/** Waits until the demo's action drawing into `canvas` has finished, or has failed. */
async function finished(page, canvas) {
  await page.waitForFunction(
    (selector) =>
      document.querySelector(selector)?.dataset.runs === '1' || document.body.dataset.state === 'failed' ||
      /failed/.test(document.querySelector('#status')?.textContent ?? ''),
    canvas,
    { timeout: ACTION_TIMEOUT_MS, polling: 500 },
  );
  const runs = await page.getAttribute(canvas, 'data-runs');
  check(runs === '1', `${canvas} was not drawn: ${await page.textContent('#status')} ${await page.textContent('#fatal')}`.trim());
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** The demo's round trip of an emoji through the loaded model: it finishes with a finite error. */
async function roundTrip(page) {
  await page.setInputFiles('#image-file', resolve(root, '..', 'shared', 'golden', 'images', 'emoji0.png'));
  await page.fill('#roundtrip-steps', String(ROUNDTRIP_STEPS));
  await page.click('#roundtrip');
  await finished(page, '#roundtrip-output');
  const mse = Number(await page.getAttribute('#roundtrip-output', 'data-mse'));
  check(Number.isFinite(mse), `the reconstruction error is ${mse}`);
  console.log(`      ${await page.textContent('#roundtrip-info')}`);
}

try {
  await loadModelChecks(test, check, server.url, { loadModel, parseSafetensors });

  await test('without navigator.gpu the demo says so and disables its buttons', async (page) => {
    await page.addInitScript(() => {
      delete Object.getPrototypeOf(navigator).gpu;
    });
    await page.goto(server.url);
    await page.waitForSelector('body[data-state="failed"]', { timeout: 30_000 });
    const message = await page.textContent('#fatal');
    check(/navigator\.gpu/.test(message ?? ''), `the message does not mention navigator.gpu: ${message}`);
    check(await page.isDisabled('#sample'), 'the Sample button is enabled');
  });

  let demoPng;
  await test(`the demo loads emoji32 and draws a ${SAMPLE_STEPS}-step sample, then encodes and decodes a picked PNG; Stop stops a sample`, async (page) => {
    await page.goto(server.url);
    await page.waitForSelector('body[data-state="ready"], body[data-state="failed"]', { timeout: ACTION_TIMEOUT_MS });
    check(await page.getAttribute('body', 'data-state') === 'ready', `the page failed: ${await page.textContent('#fatal')}`);
    console.log(`      ${await page.textContent('#status')}`);
    check(!(await page.isVisible('#class-label')), 'the class picker is shown for a model without classes');
    await page.fill('#n', '1');
    await page.fill('#steps', String(SAMPLE_STEPS));
    await page.fill('#seed', '3');
    await page.click('#sample');
    await finished(page, '#samples');
    const lastStep = await page.getAttribute('#samples', 'data-step');
    check(
      lastStep === `${SAMPLE_STEPS}/${SAMPLE_STEPS}`,
      `the last preview drawn was step ${lastStep}, not ${SAMPLE_STEPS}/${SAMPLE_STEPS}`,
    );
    console.log(`      ${await page.textContent('#sample-info')}`);
    const sample = await page.locator('#samples').screenshot({ path: resolve(outDir, 'sample.png') });
    demoPng = { sample: new Uint8Array(sample) };

    // Encode and decode one of the golden emoji, picked through the file input.
    await roundTrip(page);
    demoPng.decoded = new Uint8Array(await page.locator('#roundtrip-output').screenshot());
    demoPng.page = new Uint8Array(await page.screenshot({ path: resolve(outDir, 'demo.png'), fullPage: true }));
    if (extraScreenshot) writeFileSync(extraScreenshot, demoPng.page);

    // Stop: a long sample is stopped after a step or two, and the page is ready again.
    await page.fill('#steps', '50');
    await page.click('#sample');
    await page.waitForFunction(() => /^\d+\/50$/.test(document.querySelector('#samples')?.dataset.step ?? ''), null, {
      timeout: ACTION_TIMEOUT_MS,
      polling: 200,
    });
    check(!(await page.isDisabled('#stop')), 'Stop is disabled while sampling');
    await page.click('#stop');
    await page.waitForSelector('body[data-state="ready"], body[data-state="failed"]', { timeout: ACTION_TIMEOUT_MS });
    const status = await page.textContent('#status');
    const stoppedAt = await page.getAttribute('#samples', 'data-step');
    console.log(`      Stop pressed: '${status}' after step ${stoppedAt}`);
    check(/stopped/.test(status ?? ''), `the page does not say the sample stopped: ${status}`);
    check(stoppedAt !== '50/50', 'the sample ran to its end');
    check(await page.getAttribute('#samples', 'data-runs') === '1', 'a stopped sample was counted as finished');
    check(await page.isDisabled('#stop'), 'Stop stays enabled after the sample stopped');
  });

  await test('the pictures on the page are images, not blank or one colour', async () => {
    check(demoPng?.page, 'no screenshot: the demo test did not get that far');
    for (
      const [what, png, minColours, minDeviation] of [
        ['the sample canvas', demoPng.sample, 30, 20],
        ['the decoded image', demoPng.decoded, 30, 20],
        ['the whole page', demoPng.page, 60, 20],
      ]
    ) {
      const { width, height, rgba } = await decodePng(png);
      const stats = pixelStats(rgba);
      console.log(`      ${what}: ${width}x${height}, ${stats.colours} colours, luminance σ ${stats.deviation.toFixed(1)}`);
      check(stats.colours >= minColours, `${what} has only ${stats.colours} distinct colours`);
      check(stats.deviation >= minDeviation, `${what} is nearly flat: luminance σ ${stats.deviation.toFixed(1)}`);
    }
  });

  await test(`golden: the emoji32 UNet forward in Chromium matches diffusers (rel. L2 ≤ ${GOLDEN_TOLERANCE}; f16 ≤ 3e-3)`, async (page) => {
    await page.goto(`${server.url}test.html`);
    await page.waitForSelector('#result[data-done]', { timeout: ACTION_TIMEOUT_MS });
    const result = JSON.parse(await page.textContent('#result'));
    check(!result.error, result.error);
    console.log(`      adapter: ${result.adapter}`);
    console.log(
      `      output.eps rel L2 ${result.relL2.toExponential(2)} (limit ${GOLDEN_TOLERANCE})  max |diff| ${result.maxAbs.toExponential(2)}` +
        `  load+compile ${(result.loadMs / 1000).toFixed(1)} s, forward ${(result.forwardMs / 1000).toFixed(1)} s`,
    );
    check(result.relL2 <= GOLDEN_TOLERANCE, `rel L2 ${result.relL2} > ${GOLDEN_TOLERANCE}; worst element ${result.worstIndex}`);
    // precision 'f16': f16 where the adapter has shader-f16, else f16-packed (f16 weights, f32 activations).
    check(result.f16, 'no f16 result');
    const f16 = result.f16;
    console.log(
      `      ${f16.precision} output.eps rel L2 ${f16.relL2.toExponential(2)} (limit ${f16.tolerance})  max |diff| ${
        f16.maxAbs.toExponential(2)
      }  forward ${(f16.forwardMs / 1000).toFixed(1)} s`,
    );
    check(f16.relL2 <= f16.tolerance, `${f16.precision} rel L2 ${f16.relL2} > ${f16.tolerance}`);
  });

  await test(`golden: the tiny LDM folder loaded by URL in Chromium, DDIM-10 from ldm.xT and decoded, matches diffusers (rel. L2 ≤ ${LDM_TOLERANCE})`, async (page) => {
    await page.goto(`${server.url}test.html?check=ldm`);
    await page.waitForSelector('#result[data-done]', { timeout: ACTION_TIMEOUT_MS });
    const result = JSON.parse(await page.textContent('#result'));
    check(!result.error, result.error);
    console.log(`      adapter: ${result.adapter}; images ${result.imageShape.join('x')}`);
    for (const [name, measured] of [['ldm.latent', result.latent], ['ldm.image', result.image]]) {
      console.log(
        `      ${name} rel L2 ${measured.relL2.toExponential(2)} (limit ${LDM_TOLERANCE})  max |diff| ${measured.maxAbs.toExponential(2)}`,
      );
    }
    console.log(
      `      ldm.code_indices: ${result.codeIndices.equal} of ${result.codeIndices.total} equal` +
        `  load+compile ${(result.loadMs / 1000).toFixed(1)} s, sample+decode ${(result.sampleMs / 1000).toFixed(1)} s`,
    );
    check(result.latent.relL2 <= LDM_TOLERANCE, `latent rel L2 ${result.latent.relL2} > ${LDM_TOLERANCE}`);
    check(result.image.relL2 <= LDM_TOLERANCE, `image rel L2 ${result.image.relL2} > ${LDM_TOLERANCE}`);
    check(
      result.codeIndices.equal === result.codeIndices.total,
      `${result.codeIndices.total - result.codeIndices.equal} code indices differ from ldm.code_indices`,
    );
    check(
      result.timesteps.actual.join() === result.timesteps.expected.join(),
      `timesteps ${result.timesteps.actual.join(' ')}, not ${result.timesteps.expected.join(' ')}`,
    );
    check(result.ok, 'the page judged its result a failure');
  });

  await test(`the demo loads the tiny LDM folder by URL and draws ${LDM_SAMPLE_COUNT} decoded ${LDM_SAMPLE_STEPS}-step samples, then a round trip through the autoencoder`, async (page) => {
    await page.goto(`${server.url}?model=${LDM_URL}&n=${LDM_SAMPLE_COUNT}`);
    await page.waitForSelector('body[data-state="ready"], body[data-state="failed"]', { timeout: ACTION_TIMEOUT_MS });
    check(await page.getAttribute('body', 'data-state') === 'ready', `the page failed: ${await page.textContent('#fatal')}`);
    check(await page.inputValue('#model-url') === LDM_URL, `the model field shows '${await page.inputValue('#model-url')}'`);
    const modelLine = await page.textContent('#model-line');
    console.log(`      ${modelLine}`);
    check(/32×32 images.*3×8×8 latents of a VQModel/.test(modelLine ?? ''), 'the model line does not describe the latent model');
    check(await page.isVisible('#latent-note'), 'the note on latent models is not shown');
    check(!(await page.isVisible('#class-label')), 'the class picker is shown for a model without classes');
    await page.fill('#n', String(LDM_SAMPLE_COUNT));
    await page.fill('#steps', String(LDM_SAMPLE_STEPS));
    await page.fill('#seed', '4');
    await page.click('#sample');
    await finished(page, '#samples');
    const lastStep = await page.getAttribute('#samples', 'data-step');
    check(
      lastStep === `${LDM_SAMPLE_STEPS}/${LDM_SAMPLE_STEPS}`,
      `the last step counted was ${lastStep}, not ${LDM_SAMPLE_STEPS}/${LDM_SAMPLE_STEPS}`,
    );
    console.log(`      ${await page.textContent('#sample-info')}`);
    const [width, height] = await page.$eval('#samples', (c) => [c.width, c.height]);
    check(
      width >= LDM_SAMPLE_COUNT * 32 && width > height,
      `the sample canvas is ${width}x${height}, not ${LDM_SAMPLE_COUNT} images of 32x32 in a row`,
    );
    const sample = new Uint8Array(await page.locator('#samples').screenshot({ path: resolve(outDir, 'ldm-sample.png') }));
    // Random weights: the images are noise, but decoded noise of many colours, not blank.
    const stats = pixelStats((await decodePng(sample)).rgba);
    console.log(`      the sample canvas: ${stats.colours} colours, luminance σ ${stats.deviation.toFixed(1)}`);
    check(stats.colours >= 30 && stats.deviation >= 5, 'the decoded samples are blank or flat');

    await roundTrip(page);
    await page.screenshot({ path: resolve(outDir, 'demo-ldm.png'), fullPage: true });
  });

  await test(`golden: the tiny SD folder loaded by URL in Chromium, t2i from t2i.xT (the reference's prompt, guidance, DDIM-10) and decoded, matches diffusers (rel. L2 ≤ ${T2I_TOLERANCE})`, async (page) => {
    await page.goto(`${server.url}test.html?check=sd`);
    await page.waitForSelector('#result[data-done]', { timeout: ACTION_TIMEOUT_MS });
    const result = JSON.parse(await page.textContent('#result'));
    check(!result.error, result.error);
    const { prompt, negative, guidance, steps } = result.settings;
    console.log(
      `      adapter: ${result.adapter}; images ${result.imageShape.join('x')}; prompt '${prompt}', negative '${negative}', ` +
        `guidance ${guidance}, ${steps} steps`,
    );
    for (
      const [name, measured, limit] of [
        ['t2i.prompt_embeds', result.promptEmbeds, EMBEDS_TOLERANCE],
        ['t2i.negative_prompt_embeds', result.negativePromptEmbeds, EMBEDS_TOLERANCE],
        ['t2i.latent', result.latent, T2I_TOLERANCE],
        ['t2i.image', result.image, T2I_TOLERANCE],
      ]
    ) {
      console.log(
        `      ${name} rel L2 ${measured.relL2.toExponential(2)} (limit ${limit})  max |diff| ${measured.maxAbs.toExponential(2)}`,
      );
      check(measured.relL2 <= limit, `${name}: rel L2 ${measured.relL2} > ${limit}`);
    }
    console.log(`      load+compile ${(result.loadMs / 1000).toFixed(1)} s, sample+decode ${(result.sampleMs / 1000).toFixed(1)} s`);
    check(
      result.timesteps.actual.join() === result.timesteps.expected.join(),
      `timesteps ${result.timesteps.actual.join(' ')}, not ${result.timesteps.expected.join(' ')}`,
    );
    check(result.truncations === 0, `the reference prompt was reported cut ${result.truncations} times`);
    check(result.ok, 'the page judged its result a failure');
  });

  await test(`the demo loads the tiny SD folder by URL and samples ${SD_SAMPLE_COUNT} images from a prompt, previewing each of ${SD_SAMPLE_STEPS} steps from its latents; then an interpolation and a round trip under the prompt`, async (page) => {
    const query = new URLSearchParams({ model: SD_URL, n: String(SD_SAMPLE_COUNT), steps: String(SD_SAMPLE_STEPS), seed: '5' });
    await page.goto(`${server.url}?${query}`);
    await page.waitForSelector('body[data-state="ready"], body[data-state="failed"]', { timeout: ACTION_TIMEOUT_MS });
    check(await page.getAttribute('body', 'data-state') === 'ready', `the page failed: ${await page.textContent('#fatal')}`);
    const modelLine = await page.textContent('#model-line');
    console.log(`      ${modelLine}`);
    check(
      /text-to-image: 64×64 images from 4×8×8 latents of an AutoencoderKL/.test(modelLine ?? ''),
      'the model line does not describe the SD model',
    );
    for (const id of ['#prompt', '#negative-prompt', '#guidance', '#latent-note', '#interpolate-prompt-note', '#roundtrip-prompt-note']) {
      check(await page.isVisible(id), `${id} is not shown for a text-to-image model`);
    }
    check(!(await page.isVisible('#class-label')), 'the class picker is shown for a model without classes');
    check(await page.inputValue('#guidance') === '7.5', `the guidance field holds '${await page.inputValue('#guidance')}', not 7.5`);
    check(await page.inputValue('#spacing') === 'leading', "the timestep spacing is not the scheduler config's 'leading'");
    await page.fill('#prompt', SD_PROMPT);
    await page.fill('#negative-prompt', 'blurry');

    // Every step's preview, taken from inside the page as it is drawn (the observer runs right after
    // the step's callback, before the next step can draw).
    await page.evaluate(() => {
      const canvas = document.querySelector('#samples');
      globalThis.previews = [];
      new MutationObserver(() => {
        if (canvas.dataset.view === 'latent-preview') globalThis.previews.push({ step: canvas.dataset.step, png: canvas.toDataURL() });
      }).observe(canvas, { attributes: true, attributeFilter: ['data-step'] });
    });
    await page.click('#sample');
    await finished(page, '#samples');
    console.log(`      ${await page.textContent('#sample-info')}`);
    check(await page.getAttribute('#samples', 'data-view') === 'decoded', 'the sample canvas does not show the decoded images');
    const previews = await page.evaluate(() => globalThis.previews);
    const expectedSteps = Array.from(
      { length: SD_SAMPLE_COUNT },
      () => Array.from({ length: SD_SAMPLE_STEPS }, (_, k) => `${k + 1}/${SD_SAMPLE_STEPS}`),
    )
      .flat();
    check(
      previews.map((p) => p.step).join() === expectedSteps.join(),
      `the latent previews drawn were of steps ${previews.map((p) => p.step).join(' ')}, not ${expectedSteps.join(' ')}`,
    );
    const lastPreview = Buffer.from(previews.at(-1).png.replace(/^data:image\/png;base64,/, ''), 'base64');
    writeFileSync(resolve(outDir, 'sd-preview.png'), lastPreview);
    const decoded = new Uint8Array(await page.locator('#samples').screenshot({ path: resolve(outDir, 'sd-sample.png') }));
    const [width, height] = await page.$eval('#samples', (c) => [c.width, c.height]);
    check(
      width >= SD_SAMPLE_COUNT * 64 && width > height,
      `the sample canvas is ${width}x${height}, not ${SD_SAMPLE_COUNT} images of 64x64 in a row`,
    );
    for (const [what, png] of [['the last latent preview', new Uint8Array(lastPreview)], ['the decoded samples', decoded]]) {
      // Random weights: noise-like pictures, but of many colours, not blank.
      const stats = pixelStats((await decodePng(png)).rgba);
      console.log(`      ${what}: ${stats.colours} colours, luminance σ ${stats.deviation.toFixed(1)}`);
      check(stats.colours >= 30 && stats.deviation >= 5, `${what} are blank or flat`);
    }
    const finalPng = await page.$eval('#samples', (c) => c.toDataURL());
    check(finalPng !== previews.at(-1).png, 'the decoded images are the last preview');
    check(await page.isVisible('#truncation-note'), 'no note says the long prompt was cut');
    const note = await page.textContent('#truncation-note');
    console.log(`      ${note}`);
    check(
      /the prompt lost its last \d+ tokens .*under a violet sky/.test(note ?? ''),
      `the note does not name the cut end of the prompt: ${note}`,
    );
    check(!/negative prompt/.test(note ?? ''), 'the short negative prompt is reported cut');

    await page.fill('#frames', '2');
    await page.fill('#interpolate-steps', '2');
    await page.click('#interpolate');
    await finished(page, '#strip');
    console.log(`      ${await page.textContent('#interpolate-info')}`);

    await roundTrip(page);
    await page.screenshot({ path: resolve(outDir, 'demo-sd.png'), fullPage: true });
  });
} finally {
  await browser.close();
  await server.close();
}

const passed = results.filter(Boolean).length;
const failed = results.length - passed;
console.log(`browser test: ${seconds()} s; screenshots in ${outDir}${extraScreenshot ? ` and ${extraScreenshot}` : ''}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);

/** Distinct RGB colours and the standard deviation of luminance (0-255) of an RGBA image. */
function pixelStats(rgba) {
  const colours = new Set();
  let sum = 0, sum2 = 0;
  const pixels = rgba.length / 4;
  for (let p = 0; p < pixels; p++) {
    const r = rgba[4 * p], g = rgba[4 * p + 1], b = rgba[4 * p + 2];
    colours.add((r << 16) | (g << 8) | b);
    const y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    sum += y;
    sum2 += y * y;
  }
  const mean = sum / pixels;
  return { colours: colours.size, deviation: Math.sqrt(Math.max(0, sum2 / pixels - mean * mean)) };
}

/** The engine's PNG decoder, model loader and safetensors reader, bundled for Node: only what the checks need. */
async function importEngineParts() {
  const outfile = resolve(outDir, 'engine-parts.mjs');
  await build({
    stdin: {
      contents: [
        "export { decodePng } from './src/io/png.ts';",
        "export { loadModel } from './src/web/load_model.ts';",
        "export { parseSafetensors } from './src/io/safetensors.ts';",
      ].join('\n'),
      resolveDir: root,
      loader: 'ts',
    },
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    logLevel: 'warning',
  });
  return import(pathToFileURL(outfile).href);
}

function fatal(message) {
  console.error(`browser test: ${message}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
