/**
 * DDIM against the float64 reference trajectories of ../shared/golden/emoji32_ddim.safetensors.
 * On the software driver a UNet forward takes most of a second, so by default each test checks a
 * subset of the four images (every golden key is still checked); DDIM_GOLDEN_FULL=1
 * (`npm run test:golden-full`) checks all of them.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { type Gpu, requestGpu } from '../src/gpu/device.ts';
import { readUNet, UNet } from '../src/models/unet_2d_model.ts';
import { DdimSampler } from '../src/sampler/ddim.ts';
import { scheduleFromConfig } from '../src/sampler/schedule.ts';
import { expectClose, goldenF32, readGolden } from './util/compare.ts';
import { kernelsFromEnv, kernelsNote } from './util/kernels_env.ts';

const FULL = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.DDIM_GOLDEN_FULL === '1';
const IMAGE = 3 * 32 * 32;
const golden = readGolden('emoji32_ddim.safetensors');
const meta = JSON.parse(readFileSync('../shared/golden/meta.json', 'utf8')).emoji32;
const xT = goldenF32(golden, 'xT');

let gpu: Gpu;
let unet: UNet;
let sampler: DdimSampler;

/** Images [first, first + count) of a [N, 3, 32, 32] tensor. */
const images = (x: Float32Array, first: number, count: number) => x.slice(first * IMAGE, (first + count) * IMAGE);
/** Images of a [S, N, ...] tensor, for every step. */
function stepImages(x: Float32Array, steps: number, total: number, first: number, count: number): Float32Array {
  const out = new Float32Array(steps * count * IMAGE);
  for (let k = 0; k < steps; k++) out.set(x.subarray((k * total + first) * IMAGE, (k * total + first + count) * IMAGE), k * count * IMAGE);
  return out;
}

const ddim = suite('ddim golden');

ddim.before(async () => {
  gpu = await requestGpu();
  console.log(`    adapter: ${gpu.adapterName}${FULL ? ' (full golden set)' : ''}${kernelsNote()}`);
  const dir = 'weights/emoji32';
  const model = readUNet({
    config: JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')),
    weights: new Uint8Array(readFileSync(`${dir}/diffusion_pytorch_model.safetensors`)),
  });
  // Batch 1: on a software driver a larger batch brings no speed, and subsets are often one image.
  unet = await UNet.compile(gpu, model, { batch: FULL ? 4 : 1, kernels: kernelsFromEnv() });
  sampler = new DdimSampler(gpu, unet, scheduleFromConfig(JSON.parse(readFileSync(`${dir}/scheduler_config.json`, 'utf8'))));
});

ddim.after(() => {
  sampler.destroy();
  unet.destroy();
});

ddim('alphas_cumprod and the 10-step timesteps match', () => {
  expectClose('alphas_cumprod', Float32Array.from(sampler.schedule.alphasCumprod), goldenF32(golden, 'alphas_cumprod'), 1e-7);
});

ddim('10 steps, eta 0: every x_t and every x0 prediction', async () => {
  const result = await sampler.sample({ steps: 10, xT, trajectory: true });
  assert.equal(result.timesteps, meta.timesteps10);
  const xs = goldenF32(golden, 'ddim10_eta0.xs');
  const preds = goldenF32(golden, 'ddim10_eta0.x0_preds');
  for (let k = 0; k <= 10; k++) {
    expectClose(`ddim10 x after step ${k}`, result.xs![k], xs.subarray(k * 4 * IMAGE, (k + 1) * 4 * IMAGE), 2e-3);
  }
  for (let k = 0; k < 10; k++) {
    expectClose(`ddim10 x0 prediction ${k + 1}`, result.x0Preds![k], preds.subarray(k * 4 * IMAGE, (k + 1) * 4 * IMAGE), 2e-3);
  }
  expectClose('ddim10_eta0 final', result.x0, xs.subarray(10 * 4 * IMAGE), 2e-3);
});

/** The images [first, first + count) checked by a test: all four with DDIM_GOLDEN_FULL=1. */
const subset = (first: number, count: number) => (FULL ? { first: 0, count: 4 } : { first, count });

ddim('10 steps with x0 clipped to [-1, 1]', async () => {
  const { first, count } = subset(2, 2);
  const result = await sampler.sample({ steps: 10, xT: images(xT, first, count), clip: true });
  expectClose(
    `ddim10_eta0_clip.x0 (images ${first}..${first + count - 1})`,
    result.x0,
    images(goldenF32(golden, 'ddim10_eta0_clip.x0'), first, count),
    2e-3,
  );
});

ddim('50 steps, uniform and quadratic', async () => {
  const a = subset(0, 2);
  const uniform = await sampler.sample({ steps: 50, xT: images(xT, a.first, a.count) });
  expectClose(
    `ddim50_eta0.x0 (images ${a.first}..${a.first + a.count - 1})`,
    uniform.x0,
    images(goldenF32(golden, 'ddim50_eta0.x0'), a.first, a.count),
    2e-3,
  );
  const b = subset(2, 2);
  const quad = await sampler.sample({ steps: 50, spacing: 'quad', xT: images(xT, b.first, b.count) });
  assert.equal(quad.timesteps, meta.quad50);
  expectClose(
    `ddim50_quad_eta0.x0 (images ${b.first}..${b.first + b.count - 1})`,
    quad.x0,
    images(goldenF32(golden, 'ddim50_quad_eta0.x0'), b.first, b.count),
    2e-3,
  );
});

ddim('100 steps', async () => {
  const { first, count } = subset(1, 1);
  const result = await sampler.sample({ steps: 100, xT: images(xT, first, count) });
  expectClose(
    `ddim100_eta0.x0 (images ${first}..${first + count - 1})`,
    result.x0,
    images(goldenF32(golden, 'ddim100_eta0.x0'), first, count),
    5e-3,
  );
});

ddim('20 steps, eta 0.5 and 1 with the supplied noise', async () => {
  for (const [eta, first0] of [['0.5', 0], ['1', 2]] as const) {
    const { first, count } = subset(first0, 2);
    const noise = stepImages(goldenF32(golden, `ddim20_eta${eta}.noise`), 20, 4, first, count);
    const result = await sampler.sample({ steps: 20, eta: Number(eta), xT: images(xT, first, count), noise });
    expectClose(
      `ddim20_eta${eta}.x0 (images ${first}..${first + count - 1})`,
      result.x0,
      images(goldenF32(golden, `ddim20_eta${eta}.x0`), first, count),
      2e-3,
    );
  }
});

for (const steps of [10, 50, 100]) {
  ddim(`encode -> decode, ${steps} steps`, async () => {
    // All four at 10 steps (so the MSE of meta.json is checked); one image each at 50 and 100.
    const { first, count } = steps === 10 ? subset(0, 4) : subset(steps === 50 ? 3 : 2, 1);
    const x0 = images(goldenF32(golden, `invert${steps}.x0`), first, count);
    const encoded = await sampler.encode(x0, { steps });
    expectClose(
      `invert${steps}.xT (images ${first}..${first + count - 1})`,
      encoded.x0,
      images(goldenF32(golden, `invert${steps}.xT`), first, count),
      5e-3,
    );
    const decoded = await sampler.sample({ steps, xT: encoded.x0 });
    expectClose(`invert${steps}.recon`, decoded.x0, images(goldenF32(golden, `invert${steps}.recon`), first, count), 5e-3);
    let se = 0;
    for (let i = 0; i < x0.length; i++) se += (decoded.x0[i] - x0[i]) ** 2;
    const mse = se / x0.length;
    let refSe = 0;
    const refRecon = images(goldenF32(golden, `invert${steps}.recon`), first, count);
    for (let i = 0; i < x0.length; i++) refSe += (refRecon[i] - x0[i]) ** 2;
    const refMse = refSe / x0.length;
    console.log(
      `    reconstruction MSE (model space), ${steps} steps: ${mse.toFixed(5)}; reference on these images ${
        refMse.toFixed(5)
      }; meta.json (all 4) ${meta.reconstruction_mse[steps].toFixed(5)}`,
    );
    assert.ok(Math.abs(mse - refMse) <= 0.02 * refMse + 1e-5, `reconstruction MSE ${mse} differs from the reference's ${refMse}`);
    if (count === 4) assert.ok(Math.abs(mse - meta.reconstruction_mse[steps]) <= 0.02 * meta.reconstruction_mse[steps]);
  });
}

ddim('slerp between two latents, decoded in 20 steps', async () => {
  const { slerp } = await import('../src/sampler/schedule.ts');
  const alphas = goldenF32(golden, 'slerp.alphas');
  const a = images(xT, 0, 1);
  const b = images(xT, 1, 1);
  const latents = new Float32Array(alphas.length * IMAGE);
  alphas.forEach((alpha, i) => latents.set(slerp(a, b, alpha), i * IMAGE));
  expectClose('slerp.xT', latents, goldenF32(golden, 'slerp.xT'), 1e-6);
  // The two inner frames are the interpolated ones; the ends are xT[0] and xT[1] themselves.
  const first = FULL ? 0 : 1;
  const count = FULL ? 5 : 3;
  const result = await sampler.sample({ steps: 20, xT: images(latents, first, count) });
  expectClose(
    `slerp.ddim20.x0 (frames ${first}..${first + count - 1})`,
    result.x0,
    images(goldenF32(golden, 'slerp.ddim20.x0'), first, count),
    2e-3,
  );
});

ddim.run();
