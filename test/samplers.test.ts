/**
 * The sampler options of issue 13: every DDIMScheduler option of ../shared/golden/checkpoints/
 * scheduler_configs against diffusers' own float64 runs (schedulers.safetensors), the paper code's
 * DDIM and σ̂ trajectories on its converted checkpoints, and the class-conditional .bin's eps.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { requestGpu } from '../src/gpu/device.ts';
import { convertPaperCheckpoint } from '../src/models/paper_checkpoint.ts';
import { readUNet, UNet } from '../src/models/unet_2d_model.ts';
import { DdimPipeline } from '../src/pipeline.ts';
import { DdimSampler, SamplerInputError } from '../src/sampler/ddim.ts';
import { ddimEncodeCpu, ddimSampleCpu } from '../src/sampler/reference.ts';
import {
  ddimInversionSteps,
  ddimStepCoefficients,
  ddimTimesteps,
  quantileRanks,
  ScheduleError,
  scheduleFromConfig,
  sigmaHatStepCoefficients,
} from '../src/sampler/schedule.ts';
import { loadModelDir } from '../src/fs/model_dir.ts';
import { compare, expectClose, goldenF32, goldenI32, readGolden } from './util/compare.ts';
import { TINY_CONFIG } from './util/tiny_model.ts';
import { randomUNetSafetensors } from '../src/models/random_weights.ts';
import { philoxNormals } from '../src/sampler/noise.ts';

const DIR = '../shared/golden/checkpoints';
const CASES = ['diffusers_defaults', 'sample_prediction', 'sd_style', 'trailing_v', 'v_prediction'];
const FULL = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.DDIM_GOLDEN_FULL === '1';
const schedulerConfig = (name: string) => JSON.parse(readFileSync(`${DIR}/scheduler_configs/${name}.json`, 'utf8'));
const bytesOf = (path: string) => new Uint8Array(readFileSync(path));

// ---------------------------------------------------------------------------------------------
// On the CPU: the options as diffusers reads them

const options = suite('scheduler options');

options('each case reads, and set_timesteps chooses the golden timesteps', () => {
  const golden = readGolden('checkpoints/schedulers.safetensors');
  for (const name of CASES) {
    const schedule = scheduleFromConfig(schedulerConfig(name));
    // diffusers' DDIMScheduler spaces 'leading' unless the config names a spacing.
    const expected = [...goldenI32(golden, `${name}.timesteps`)].reverse();
    const ts = ddimTimesteps(expected.length, schedule.timestepSpacing ?? 'leading', 1000, schedule.stepsOffset);
    console.log(`    ${name.padEnd(20)} ${schedule.predictionType.padEnd(12)} timesteps ${ts.join(',')}`);
    assert.equal(ts, expected, name);
  }
  const sd = scheduleFromConfig(schedulerConfig('sd_style'));
  assert.is(sd.finalAlphaCumprod, sd.alphasCumprod[0], 'set_alpha_to_one: false ends at ᾱ_0');
  assert.is(sd.stepsOffset, 1);
  assert.is(scheduleFromConfig(undefined).finalAlphaCumprod, 1);
  assert.is(scheduleFromConfig(schedulerConfig('trailing_v')).timestepSpacing, 'trailing');
  assert.is(scheduleFromConfig(undefined).timestepSpacing, undefined, "no spacing named: the paper's uniform stays the default");
});

options('refusals name the option', () => {
  const refuses = (config: Record<string, unknown>, word: string) => {
    try {
      scheduleFromConfig(config);
      assert.unreachable(`${JSON.stringify(config)} was accepted`);
    } catch (error) {
      assert.instance(error, ScheduleError);
      assert.ok((error as Error).message.includes(word), (error as Error).message);
    }
  };
  refuses({ prediction_type: 'flow' }, 'prediction_type');
  refuses({ thresholding: true, dynamic_thresholding_ratio: 1.5 }, 'dynamic_thresholding_ratio');
  refuses({ thresholding: 1 }, 'thresholding');
  refuses({ timestep_spacing: 'karras' }, 'timestep_spacing');
  refuses({ steps_offset: -1 }, 'steps_offset');
  refuses({ set_alpha_to_one: 'yes' }, 'set_alpha_to_one');
  // Leading timesteps plus an offset may pass the last training timestep.
  const offset = scheduleFromConfig({ steps_offset: 1 });
  assert.throws(() => ddimStepCoefficients(offset, ddimTimesteps(1000, 'leading', 1000, 1), 0, 'leading'), /outside 0\.\.999/);
});

options("σ̂ steps: the posterior mean and variance of the paper's code, no noise at the end", () => {
  const schedule = scheduleFromConfig({ clip_sample: false });
  const ts = ddimTimesteps(10, 'uniform');
  const steps = sigmaHatStepCoefficients(schedule, ts);
  for (const s of steps) {
    const beta = 1 - s.alphaT / s.alphaPrev;
    // The mean's weights of x0 and x_t: the DDPM posterior q(x_prev | x_t, x0).
    assert.ok(Math.abs(s.coefX0 - Math.sqrt(s.alphaPrev) * beta / (1 - s.alphaT)) < 1e-15);
    assert.ok(Math.abs(s.coefX - Math.sqrt(1 - beta) * (1 - s.alphaPrev) / (1 - s.alphaT)) < 1e-15);
    assert.is(s.dirCoef, 0);
  }
  assert.ok(Math.abs(steps[0].sigma - Math.sqrt(1 - schedule.alphasCumprod[900] / schedule.alphasCumprod[800])) < 1e-15);
  assert.is(steps[steps.length - 1].sigma, 0);
});

options("the paper's jsd schedule (last beta 1): read, and only a timestep with ᾱ = 0 is refused", () => {
  const T = 1000;
  const jsd = scheduleFromConfig({ trained_betas: Array.from({ length: T }, (_, i) => 1 / (T - i)), clip_sample: false });
  assert.is(jsd.alphasCumprod[T - 1], 0);
  assert.is(ddimStepCoefficients(jsd, ddimTimesteps(10, 'uniform'), 0).length, 10);
  assert.throws(() => ddimStepCoefficients(jsd, ddimTimesteps(10, 'trailing'), 0, 'trailing'), /ᾱ = 0 .* gives an epsilon model no x0/);
  // A v model has its x0 there (x0 = −v).
  const v = scheduleFromConfig({ trained_betas: Array.from({ length: T }, (_, i) => 1 / (T - i)), prediction_type: 'v_prediction' });
  assert.is(ddimStepCoefficients(v, ddimTimesteps(10, 'trailing'), 0, 'trailing')[0].x0FromOut, -1);
});

options("inversion follows steps_offset; the paper's starts at ᾱ = 1, diffusers' where set_alpha_to_one says", () => {
  const sd = scheduleFromConfig(schedulerConfig('sd_style'));
  const ts = ddimTimesteps(10, 'leading', 1000, sd.stepsOffset);
  const steps = ddimInversionSteps(sd, ts);
  assert.equal(steps.map((s) => s.tPrev), ts);
  assert.is(steps[0].alphaT, 1, "the paper's code: ᾱ(−1) = 1");
  assert.is(steps[0].modelTimestep, 0);
  const diffusers = ddimInversionSteps(sd, ts, 'diffusers');
  assert.is(diffusers[0].alphaT, sd.alphasCumprod[0], 'from ᾱ_0, as DDIMInverseScheduler with set_alpha_to_one false');
  assert.is(diffusers[0].modelTimestep, ts[0]);
  assert.is(ddimInversionSteps(scheduleFromConfig(undefined), ts, 'diffusers')[0].alphaT, 1);
  // An x0 model has no ε at ᾱ = 1: refused by name rather than dividing by zero.
  const x0Model = { prediction_type: 'sample', set_alpha_to_one: false };
  assert.throws(() => ddimInversionSteps(scheduleFromConfig(x0Model), ts), /use inversion 'diffusers' with set_alpha_to_one false/);
  assert.ok(ddimInversionSteps(scheduleFromConfig(x0Model), ts, 'diffusers')[0].x0FromOut === 1);
});

options("thresholding: torch.quantile's ranks; with sample_max_value 1 it is clipping to ±1", () => {
  assert.equal(quantileRanks(0.995, 3072), { lo: 3055, hi: 3056, weight: Math.fround(Math.fround(Math.fround(0.995) * 3071) - 3055) });
  assert.equal(quantileRanks(1, 10), { lo: 9, hi: 9, weight: 0 });
  const xT = philoxNormals(2, 0, 96).map((v) => 2 * v);
  const ts = ddimTimesteps(5, 'uniform');
  const eps = (x: Float32Array) => x.map((v, i) => 0.5 * Math.sin(v + i));
  const thresholded = ddimSampleCpu(scheduleFromConfig({ thresholding: true, clip_sample: false }), xT, ts, eps, { perImage: 48 });
  const clipped = ddimSampleCpu(scheduleFromConfig({ clip_sample: true }), xT, ts, eps);
  assert.equal(thresholded.x, clipped.x);
  // A larger sample_max_value scales each image by its own s in [1, max].
  const wide = ddimSampleCpu(scheduleFromConfig({ thresholding: true, sample_max_value: 3 }), xT, ts, eps, { perImage: 48 });
  for (const x0 of wide.x0Preds) for (const v of x0) assert.ok(Math.abs(v) <= 1);
  assert.not.equal(wide.x, clipped.x);
});

options.run();

// ---------------------------------------------------------------------------------------------
// On the GPU: diffusers' DDIMScheduler over emoji32

const gpuRuns = suite('sampler options on the GPU');

gpuRuns('every schedulers.safetensors case within 2e-3, with the timesteps diffusers chose', async () => {
  const golden = readGolden('checkpoints/schedulers.safetensors');
  const dir = 'weights/emoji32';
  const model = readUNet({
    config: JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')),
    weights: bytesOf(`${dir}/diffusion_pytorch_model.safetensors`),
  });
  const gpu = await requestGpu();
  const unet = await UNet.compile(gpu, model, { batch: FULL ? 2 : 1 });
  const image = 3 * 32 * 32;
  try {
    for (const [index, name] of CASES.entries()) {
      const schedule = scheduleFromConfig(schedulerConfig(name));
      const sampler = new DdimSampler(gpu, unet, schedule);
      // One image per case on the software driver (both images over the cases); both with DDIM_GOLDEN_FULL=1.
      const first = FULL ? 0 : index % 2;
      const count = FULL ? 2 : 1;
      const xT = goldenF32(golden, 'xT').slice(first * image, (first + count) * image);
      try {
        const steps = goldenI32(golden, `${name}.timesteps`).length;
        const result = await sampler.sample({ steps, xT, spacing: schedule.timestepSpacing ? undefined : 'leading' });
        assert.equal(result.timesteps, [...goldenI32(golden, `${name}.timesteps`)].reverse(), `${name} timesteps`);
        const expected = goldenF32(golden, `${name}.x0`).slice(first * image, (first + count) * image);
        expectClose(`${name}.x0 (image ${first}${count > 1 ? '-1' : ''})`, result.x0, expected, 2e-3);
      } finally {
        sampler.destroy();
      }
    }
  } finally {
    unet.destroy();
    gpu.device.destroy();
  }
});

// ---------------------------------------------------------------------------------------------
// The paper's own samplers on its converted checkpoints

gpuRuns("the paper code's DDIM and σ̂ trajectories (10 uniform steps) within 2e-3", async () => {
  const golden = readGolden('checkpoints/checkpoints.safetensors');
  const gpu = await requestGpu();
  try {
    for (const [folder, file] of [['paper_training', 'ckpt.pth'], ['paper_bare', 'model.ckpt']]) {
      const converted = await convertPaperCheckpoint(
        bytesOf(`${DIR}/${folder}/${file}`),
        readFileSync(`${DIR}/${folder}/config.yml`, 'utf8'),
      );
      const pipeline = await DdimPipeline.load(gpu, {
        config: converted.config,
        weights: converted.weights,
        schedulerConfig: converted.schedulerConfig,
      }, { batch: 2 });
      try {
        const xT = goldenF32(golden, `${folder}.xT`);
        const ddim = await pipeline.sample({ steps: 10, spacing: 'uniform', xT });
        expectClose(`${folder}.ddim10_uniform.x0`, ddim.x0, goldenF32(golden, `${folder}.ddim10_uniform.x0`), 2e-3);
        const noise = goldenF32(golden, `${folder}.sigmahat10_uniform.noise`);
        const sigmaHat = await pipeline.sample({ steps: 10, spacing: 'uniform', xT, sigmaHat: true, noise });
        expectClose(`${folder}.sigmahat10_uniform.x0`, sigmaHat.x0, goldenF32(golden, `${folder}.sigmahat10_uniform.x0`), 2e-3);
      } finally {
        pipeline.destroy();
      }
    }
  } finally {
    gpu.device.destroy();
  }
});

// ---------------------------------------------------------------------------------------------
// Class-conditional models

gpuRuns('classcond/ (.bin, num_class_embeds 10): eps within 2e-4; labels checked', async () => {
  const golden = readGolden('checkpoints/checkpoints.safetensors');
  const gpu = await requestGpu();
  const pipeline = await DdimPipeline.load(gpu, await loadModelDir(`${DIR}/classcond`), { batch: 3 });
  try {
    const labels = goldenI32(golden, 'classcond.class_labels');
    const t = goldenI32(golden, 'classcond.t');
    const x = goldenF32(golden, 'classcond.x');
    const eps = await pipeline.eps(x, t, { classLabels: labels });
    console.log(`    labels ${[...labels].join(', ')}, t ${[...t].join(', ')}`);
    expectClose('classcond.eps', eps, goldenF32(golden, 'classcond.eps'), 2e-4);
    await assertRejects(() => pipeline.eps(x, t), /class-conditional \(10 classes: 0\.\.9\)/);
    await assertRejects(() => pipeline.eps(x, t, { classLabels: [10] }), /class label 10 is outside 0\.\.9/);
    await assertRejects(() => pipeline.eps(x, t, { classLabels: [1, 2] }), /2 class labels for 3 images/);
    // One label for all is the same as that label given per image, in sampling too.
    const one = await pipeline.sample({ steps: 2, seed: 5, count: 3, classLabels: [4] });
    const each = await pipeline.sample({ steps: 2, seed: 5, count: 3, classLabels: Int32Array.of(4, 4, 4) });
    assert.equal(one.x0, each.x0);
    const other = await pipeline.sample({ steps: 2, seed: 5, count: 3, classLabels: Int32Array.of(4, 7, 4) });
    const image = 3 * 16 * 16;
    assert.equal(other.x0.subarray(0, image), one.x0.subarray(0, image), 'image 0 keeps its label');
    assert.not.equal(other.x0.subarray(image, 2 * image), one.x0.subarray(image, 2 * image), 'image 1 follows its label');
    // The class embedding's f16 variant, where the adapter has shader-f16.
    if (gpu.device.features.has('shader-f16')) {
      const half = await pipeline.withBatch(3, { precision: 'f16' });
      try {
        expectClose(
          'classcond.eps at precision f16',
          await half.eps(x, t, { classLabels: labels }),
          goldenF32(golden, 'classcond.eps'),
          3e-3,
        );
      } finally {
        half.destroy();
      }
    }
  } finally {
    pipeline.destroy();
    gpu.device.destroy();
  }
});

gpuRuns("class_embed_type 'timestep': the label embedded like a timestep, added to the time embedding", async () => {
  const config = { ...TINY_CONFIG, class_embed_type: 'timestep' };
  const gpu = await requestGpu();
  const pipeline = await DdimPipeline.load(gpu, { config, weights: randomUNetSafetensors(config, 4) }, { batch: 2 });
  const unconditional = await DdimPipeline.load(gpu, { config: TINY_CONFIG, weights: randomUNetSafetensors(TINY_CONFIG, 4) }, { batch: 2 });
  try {
    const x = Float32Array.from({ length: 2 * 3 * 8 * 8 }, (_, i) => Math.sin(i));
    const t = Int32Array.of(500, 20);
    const a = await pipeline.eps(x, t, { classLabels: [3, 900] });
    const b = await pipeline.eps(x, t, { classLabels: [3, 3] });
    const image = 3 * 8 * 8;
    assert.equal(a.subarray(0, image), b.subarray(0, image));
    assert.not.equal(a.subarray(image), b.subarray(image));
    await assertRejects(() => unconditional.eps(x, t, { classLabels: [1] }), /not class-conditional/);
  } finally {
    pipeline.destroy();
    unconditional.destroy();
    gpu.device.destroy();
  }
});

gpuRuns('dynamic thresholding on the GPU follows the CPU reference (per-image quantile, a tiny model)', async () => {
  const weights = randomUNetSafetensors(TINY_CONFIG, 3);
  const gpu = await requestGpu();
  const schedulerConfig = { thresholding: true, dynamic_thresholding_ratio: 0.9, sample_max_value: 2.5, clip_sample: false };
  const pipeline = await DdimPipeline.load(gpu, { config: TINY_CONFIG, weights, schedulerConfig }, { batch: 2 });
  try {
    const xT = await pipeline.latents(4, 3);
    const ts = ddimTimesteps(5, 'uniform');
    const run = await pipeline.sample({ steps: 5, xT, trajectory: true });
    const outputs: Float32Array[] = [];
    for (const [k, x] of run.xs!.slice(0, -1).entries()) outputs.push(await pipeline.eps(x, new Int32Array(3).fill(ts[ts.length - 1 - k])));
    let call = 0;
    const cpu = ddimSampleCpu(pipeline.schedule, xT, ts, () => outputs[call++], { perImage: 3 * 8 * 8 });
    // Each image's s at each step, as the CPU finds it: the test means something only when some lie inside (1, max).
    const perImage = 3 * 8 * 8;
    const { lo, hi, weight } = quantileRanks(0.9, perImage);
    const scales = ddimStepCoefficients(pipeline.schedule, ts, 0).flatMap((step, k) =>
      [0, 1, 2].map((image) => {
        const raw = Float32Array.from({ length: perImage }, (_, i) => {
          const j = image * perImage + i;
          return Math.abs((step.x0FromX * run.xs![k][j] + step.x0FromOut * outputs[k][j]) * step.x0Scale);
        }).sort();
        return Math.min(2.5, Math.max(1, raw[lo] + weight * (raw[hi] - raw[lo])));
      })
    );
    console.log(`    s per step and image: ${scales.map((v) => v.toFixed(2)).join(' ')}`);
    assert.ok(scales.some((v) => v > 1 && v < 2.5), 'some s strictly between 1 and sample_max_value');
    assert.ok(scales.some((v) => v === 2.5), 'some s at sample_max_value');
    for (const [k, x0] of run.x0Preds!.entries()) expectClose(`thresholded x0, step ${k + 1}`, x0, cpu.x0Preds[k], 1e-5);
    expectClose('thresholded sample vs CPU replay', run.x0, cpu.x, 1e-5);
    // clip: false turns thresholding off.
    const off = await pipeline.sample({ steps: 5, xT, clip: false });
    assert.not.equal(off.x0, run.x0);
  } finally {
    pipeline.destroy();
    gpu.device.destroy();
  }
});

gpuRuns('v and x0 prediction on the GPU follow the CPU reference (a tiny model, σ̂ and η = 1 with given noise)', async () => {
  const weights = randomUNetSafetensors(TINY_CONFIG, 2);
  const gpu = await requestGpu();
  try {
    for (const prediction of ['v_prediction', 'sample'] as const) {
      const schedulerConfig = { prediction_type: prediction, clip_sample: false, set_alpha_to_one: false, timestep_spacing: 'trailing' };
      const pipeline = await DdimPipeline.load(gpu, { config: TINY_CONFIG, weights, schedulerConfig }, { batch: 2 });
      try {
        const xT = await pipeline.latents(8, 2);
        const ts = ddimTimesteps(4, 'trailing');
        const noise = Float32Array.from({ length: ts.length * xT.length }, (_, i) => Math.cos(i * 0.37));
        for (const sigmaHat of [false, true]) {
          const run = await pipeline.sample({ steps: 4, xT, sigmaHat, eta: sigmaHat ? 0 : 1, noise, trajectory: true });
          assert.equal(run.timesteps, ts);
          // Replay on the CPU with the GPU's model outputs at each visited state.
          const outputs: Float32Array[] = [];
          for (const [k, x] of run.xs!.slice(0, -1).entries()) {
            outputs.push(await pipeline.eps(x, new Int32Array(2).fill(ts[ts.length - 1 - k])));
          }
          let call = 0;
          const cpu = ddimSampleCpu(pipeline.schedule, xT, ts, () => outputs[call++], {
            eta: sigmaHat ? 0 : 1,
            sigmaHat,
            spacing: 'trailing',
            noise: (k) => noise.subarray(k * xT.length, (k + 1) * xT.length),
          });
          expectClose(`${prediction} ${sigmaHat ? 'σ̂' : 'η = 1'} x0 vs CPU replay`, run.x0, cpu.x, 1e-5);
        }
        // Inversion, x0 clipped: the paper's from ᾱ = 1 for v; an x0 model has no ε there, so it
        // takes DDIMInverseScheduler's (from ᾱ_0 with set_alpha_to_one false, ε at the target timestep).
        const inversion = prediction === 'sample' ? 'diffusers' : 'paper';
        const images = xT.map((v) => Math.tanh(v));
        const encoded = await pipeline.encode(images, { steps: 4, clip: true, trajectory: true, inversion });
        const outputs: Float32Array[] = [];
        for (const [k, x] of encoded.xs!.slice(0, -1).entries()) {
          const t = inversion === 'diffusers' ? ts[k] : Math.max(0, k === 0 ? -1 : ts[k - 1]);
          outputs.push(await pipeline.eps(x, new Int32Array(2).fill(t)));
        }
        let call = 0;
        const cpu = ddimEncodeCpu(pipeline.schedule, images, ts, () => outputs[call++], { clip: true, inversion });
        assert.is(cpu.xs.length, 5);
        expectClose(`${prediction} encode (${inversion}) vs CPU replay`, encoded.x0, cpu.x, 1e-5);
      } finally {
        pipeline.destroy();
      }
    }
  } finally {
    gpu.device.destroy();
  }
});

async function assertRejects(call: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await call();
  } catch (error) {
    assert.instance(error, SamplerInputError);
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`resolved; expected ${pattern}`);
}

gpuRuns("inversion: 'diffusers' follows DDIMInverseScheduler.step (ε at the target timestep), 'paper' does not", async () => {
  const gpu = await requestGpu();
  // SD's schedule: leading spacing with steps_offset 1, set_alpha_to_one false.
  const schedulerConfig = {
    beta_schedule: 'scaled_linear',
    beta_start: 0.00085,
    beta_end: 0.012,
    clip_sample: false,
    set_alpha_to_one: false,
    steps_offset: 1,
    timestep_spacing: 'leading',
  };
  const pipeline = await DdimPipeline.load(gpu, { config: TINY_CONFIG, weights: randomUNetSafetensors(TINY_CONFIG, 5), schedulerConfig }, {
    batch: 2,
  });
  try {
    const steps = 5;
    const x0 = new Float32Array(2 * 3 * 8 * 8).map((_, i) => Math.sin(i * 0.7) * 0.8);
    const encoded = await pipeline.encode(x0, { steps, inversion: 'diffusers' });
    // DDIMInverseScheduler (set_timesteps, leading; step), written out in float64 from diffusers' source.
    const T = 1000;
    const ratio = Math.floor(T / steps);
    const timesteps = Array.from({ length: steps }, (_, k) => k * ratio + 1);
    assert.equal(encoded.timesteps, timesteps);
    const alphas = pipeline.schedule.alphasCumprod;
    const initialAlpha = alphas[0]; // set_alpha_to_one false
    let x = Float64Array.from(x0);
    for (const t of timesteps) {
      const eps = await pipeline.eps(Float32Array.from(x), new Int32Array(2).fill(t));
      const current = Math.min(t - ratio, T - 1);
      const alphaT = current >= 0 ? alphas[current] : initialAlpha;
      const alphaPrev = alphas[t];
      x = x.map((v, i) => {
        const predX0 = (v - Math.sqrt(1 - alphaT) * eps[i]) / Math.sqrt(alphaT);
        return Math.sqrt(alphaPrev) * predX0 + Math.sqrt(1 - alphaPrev) * eps[i];
      });
    }
    expectClose("encode, inversion 'diffusers' vs DDIMInverseScheduler", encoded.x0, Float32Array.from(x), 1e-5);
    const paper = await pipeline.encode(x0, { steps });
    const apart = compare(paper.x0, Float32Array.from(x));
    console.log(`    the paper's inversion vs DDIMInverseScheduler's: rel L2 ${apart.relL2.toExponential(2)}`);
    assert.ok(apart.relL2 > 1e-3, 'the two inversions differ');
    await assertRejects(() => pipeline.encode(x0, { steps, inversion: 'forward' as never }), /inversion must be one of paper, diffusers/);
  } finally {
    pipeline.destroy();
  }
});

gpuRuns("startStep: a run from step k of the schedule, started at the full run's state there, ends where the full run ends", async () => {
  const gpu = await requestGpu();
  const pipeline = await DdimPipeline.load(gpu, { config: TINY_CONFIG, weights: randomUNetSafetensors(TINY_CONFIG, 7) }, { batch: 2 });
  try {
    const full = await pipeline.sample({ steps: 6, spacing: 'leading', seed: 4, count: 2, trajectory: true });
    assert.is(full.timesteps.length, 6);
    const later = await pipeline.sample({ steps: 6, spacing: 'leading', startStep: 4, xT: full.xs![4] });
    assert.equal(later.timesteps, full.timesteps.slice(0, 2));
    assert.equal([...later.x0], [...full.x0]);
    await assertRejects(
      () => pipeline.sample({ steps: 6, spacing: 'leading', startStep: 6, xT: full.xs![4] }),
      /startStep must be an integer from 0 to 5/,
    );
    await assertRejects(() => pipeline.sample({ steps: 6, startStep: 2, count: 2 }), /startStep needs xT/);
  } finally {
    pipeline.destroy();
  }
});

gpuRuns.run();
