/**
 * DDIM sampling and encoding on the GPU. Every step is recorded as: copy the step's timesteps
 * into the UNet's input, the UNet's dispatches, fresh noise (η > 0), and the DDIM update in place
 * on the sample. The step scalars are written into one uniform buffer up front, so the CPU only
 * records and submits (one command buffer per step, for progress) and reads back at the end.
 */
import { type Gpu, unlessLost } from '../gpu/device.ts';
import { readBuffer } from '../graph/executor.ts';
import { alignTo, computePipeline, kernelBindGroupLayout, writeParams } from '../gpu/kernel.ts';
import type { UNet } from '../model/unet_model.ts';
import { SHADERS } from '../shaders.gen.ts';
import { seedWords } from './noise.ts';
import {
  ddimInversionSteps,
  type DdimStep,
  ddimStepCoefficients,
  ddimTimesteps,
  type NoiseSchedule,
  type TimestepSpacing,
} from './schedule.ts';

/** Noise streams: 0 draws the starting latents, k + 1 the z of step k (see noise.wgsl). */
const LATENT_STREAM = 0;

export interface StepProgress {
  /** 1-based step number. */
  step: number;
  total: number;
  /** The timestep this step started from. */
  t: number;
  /** First image of the batch that this step belongs to. */
  firstImage: number;
  /** The step's x0 prediction for the batch, when `previewX0` is set. */
  x0?: Float32Array;
}

export interface DdimSampleOptions {
  steps: number;
  /** 0: deterministic DDIM; 1: DDPM-like. */
  eta?: number;
  spacing?: TimestepSpacing;
  /** Clip each x0 prediction to the schedule's range; the scheduler config decides by default. */
  clip?: boolean;
  /** Seeds the starting latents and the per-step noise. */
  seed?: number;
  /** Number of images; taken from xT when given. */
  count?: number;
  /** Starting latents [count, C, H, W]; drawn from the seed when absent. */
  xT?: Float32Array;
  /** The z of every step [steps, count, C, H, W] (first step first), instead of the seeded noise. */
  noise?: Float32Array;
  /** Hand each step's x0 prediction to onStep (a readback per step). */
  previewX0?: boolean;
  /** Record x after every step and every x0 prediction (for exact comparisons). */
  trajectory?: boolean;
  onStep?: (progress: StepProgress) => void | Promise<void>;
}

export interface DdimResult {
  /** The final images [count, C, H, W], in model space. */
  x0: Float32Array;
  timesteps: number[];
  /** With `trajectory`: x_T, then x after each step, each [count, C, H, W]. */
  xs?: Float32Array[];
  /** With `trajectory`: each step's x0 prediction. */
  x0Preds?: Float32Array[];
}

export class SamplerInputError extends Error {
  override name = 'SamplerInputError';
}

export class DdimSampler {
  private readonly noiseBuffer: GPUBuffer;
  private readonly x0Buffer: GPUBuffer;
  private readonly perImage: number;

  constructor(readonly gpu: Gpu, readonly unet: UNet, readonly schedule: NoiseSchedule) {
    const [batch, c, h, w] = unet.sampleShape;
    this.perImage = c * h * w;
    const bytes = batch * this.perImage * 4;
    this.noiseBuffer = gpu.device.createBuffer({
      label: 'ddim.noise',
      size: bytes,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    this.x0Buffer = gpu.device.createBuffer({
      label: 'ddim.x0_pred',
      size: bytes,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
    });
  }

  get imageShape(): [number, number, number] {
    const [, c, h, w] = this.unet.sampleShape;
    return [c, h, w];
  }

  /** The seeded starting latents of images [first, first + count) (as sample() draws them). */
  async latents(seed: number, count: number, first = 0): Promise<Float32Array> {
    const out = new Float32Array(count * this.perImage);
    const batch = this.unet.batch;
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      const encoder = this.gpu.device.createCommandEncoder({ label: 'latents' });
      const noise = await this.noiseRecorders(seed, [LATENT_STREAM], first + start, this.unet.sampleBuffer);
      noise.recorders[0](encoder);
      this.gpu.device.queue.submit([encoder.finish()]);
      out.set(await readBuffer(this.gpu.device, this.unet.sampleBuffer, n * this.perImage * 4), start * this.perImage);
      noise.release();
    }
    return out;
  }

  /** Generates images: DDIM with the paper's generalized process (eq. 12). */
  async sample(options: DdimSampleOptions): Promise<DdimResult> {
    const eta = options.eta ?? 0;
    if (!(eta >= 0 && eta <= 1)) throw new SamplerInputError(`eta must be in [0, 1], got ${eta}`);
    const timesteps = ddimTimesteps(options.steps, options.spacing ?? 'uniform', this.schedule.numTrainTimesteps);
    const steps = ddimStepCoefficients(this.schedule, timesteps, eta);
    const count = this.countOf(options);
    if (options.noise && options.noise.length !== steps.length * count * this.perImage) {
      throw new SamplerInputError(
        `noise holds ${options.noise.length} values; ${steps.length} steps x ${count} images x ${this.imageShape.join('x')} need ${
          steps.length * count * this.perImage
        }`,
      );
    }
    const clip = options.clip ?? this.schedule.clipSample;
    return this.run(steps, timesteps, count, options, { clip, useNoise: eta > 0 });
  }

  /** Encodes images [count, C, H, W] in model space into their x_T: the η = 0 ODE run forward. */
  async encode(
    x0: Float32Array,
    options: { steps: number; spacing?: TimestepSpacing; onStep?: DdimSampleOptions['onStep'] },
  ): Promise<DdimResult> {
    const timesteps = ddimTimesteps(options.steps, options.spacing ?? 'uniform', this.schedule.numTrainTimesteps);
    const steps = ddimInversionSteps(this.schedule, timesteps);
    const count = this.countOf({ xT: x0, steps: options.steps });
    return this.run(steps, timesteps, count, { steps: options.steps, xT: x0, onStep: options.onStep }, { clip: false, useNoise: false });
  }

  private countOf(options: Pick<DdimSampleOptions, 'xT' | 'count' | 'steps'>): number {
    if (options.xT) {
      if (options.xT.length === 0 || options.xT.length % this.perImage !== 0) {
        throw new SamplerInputError(`latents hold ${options.xT.length} values, not a whole number of ${this.imageShape.join('x')} images`);
      }
      const count = options.xT.length / this.perImage;
      if (options.count !== undefined && options.count !== count) {
        throw new SamplerInputError(`count ${options.count} disagrees with the ${count} latents given`);
      }
      return count;
    }
    const count = options.count ?? this.unet.batch;
    if (!Number.isInteger(count) || count < 1) throw new SamplerInputError(`the number of images must be a positive integer, got ${count}`);
    return count;
  }

  private async run(
    steps: DdimStep[],
    timesteps: number[],
    count: number,
    options: DdimSampleOptions,
    mode: { clip: boolean; useNoise: boolean },
  ): Promise<DdimResult> {
    const { device } = this.gpu;
    const batch = this.unet.batch;
    const seed = options.seed ?? 0;
    const batchValues = batch * this.perImage;
    const result: DdimResult = { x0: new Float32Array(count * this.perImage), timesteps };
    if (options.trajectory) {
      result.xs = Array.from({ length: steps.length + 1 }, () => new Float32Array(count * this.perImage));
      result.x0Preds = Array.from({ length: steps.length }, () => new Float32Array(count * this.perImage));
    }

    // Per-step uniforms and timesteps, the same for every batch.
    const stepKernel = SHADERS.ddim_step;
    const stride = alignTo(stepKernel.params!.size, device.limits.minUniformBufferOffsetAlignment);
    const uniforms = device.createBuffer({
      label: 'ddim.step_params',
      size: stride * steps.length,
      usage: GPUBufferUsage.UNIFORM,
      mappedAtCreation: true,
    });
    const view = new DataView(uniforms.getMappedRange());
    steps.forEach((s, k) =>
      writeParams(
        stepKernel,
        {
          count: batchValues,
          inv_sqrt_alpha: s.invSqrtAlphaT,
          sqrt_one_minus_alpha: s.sqrtOneMinusAlphaT,
          coef_x0: s.coefX0,
          dir_coef: s.dirCoef,
          sigma: s.sigma,
          clip: mode.clip ? 1 : 0,
          clip_range: this.schedule.clipSampleRange,
        },
        view,
        k * stride,
        `ddim step ${k}`,
      )
    );
    uniforms.unmap();
    const timestepTable = device.createBuffer({
      label: 'ddim.timesteps',
      size: 4 * batch * steps.length,
      usage: GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
    });
    const table = new Int32Array(timestepTable.getMappedRange());
    steps.forEach((s, k) => table.fill(s.modelTimestep, k * batch, (k + 1) * batch));
    timestepTable.unmap();
    const pipeline = await computePipeline(device, stepKernel);
    const layout = kernelBindGroupLayout(device, stepKernel);
    const bindGroups = steps.map((_, k) =>
      device.createBindGroup({
        label: `ddim step ${k}`,
        layout,
        entries: [
          { binding: 0, resource: { buffer: this.unet.epsBuffer } },
          { binding: 1, resource: { buffer: this.noiseBuffer } },
          { binding: 2, resource: { buffer: this.unet.sampleBuffer } },
          { binding: 3, resource: { buffer: this.x0Buffer } },
          { binding: 4, resource: { buffer: uniforms, offset: k * stride, size: stepKernel.params!.size } },
        ],
      })
    );
    const suppliedNoise = options.noise
      ? device.createBuffer({
        label: 'ddim.supplied_noise',
        size: 4 * steps.length * batchValues,
        usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      })
      : undefined;
    const transient: { destroy(): void }[] = [uniforms, timestepTable, ...(suppliedNoise ? [suppliedNoise] : [])];
    const groups = Math.ceil(batchValues / 64);
    const dispatch: [number, number] = [Math.min(groups, 32768), Math.ceil(groups / 32768)];

    try {
      for (let first = 0; first < count; first += batch) {
        const n = Math.min(batch, count - first);
        const values = n * this.perImage;
        const stepNoise = mode.useNoise && !suppliedNoise
          ? await this.noiseRecorders(seed, steps.map((_, k) => k + 1), first, this.noiseBuffer)
          : undefined;
        if (stepNoise) transient.push({ destroy: stepNoise.release });
        // Starting state: the given latents (or images, when encoding), else seeded noise.
        if (options.xT) {
          const start = new Float32Array(batchValues);
          start.set(options.xT.subarray(first * this.perImage, first * this.perImage + values));
          device.queue.writeBuffer(this.unet.sampleBuffer, 0, start);
        } else {
          const latentNoise = await this.noiseRecorders(seed, [LATENT_STREAM], first, this.unet.sampleBuffer);
          transient.push({ destroy: latentNoise.release });
          const encoder = device.createCommandEncoder({ label: 'ddim.latents' });
          latentNoise.recorders[0](encoder);
          device.queue.submit([encoder.finish()]);
        }
        if (suppliedNoise) {
          const chunk = new Float32Array(steps.length * batchValues);
          for (let k = 0; k < steps.length; k++) {
            const from = (k * count + first) * this.perImage;
            chunk.set(options.noise!.subarray(from, from + values), k * batchValues);
          }
          device.queue.writeBuffer(suppliedNoise, 0, chunk);
        }
        if (result.xs) result.xs[0].set(await readBuffer(device, this.unet.sampleBuffer, values * 4), first * this.perImage);

        const pending: Promise<void>[] = [];
        for (let k = 0; k < steps.length; k++) {
          const encoder = device.createCommandEncoder({ label: `ddim step ${k + 1}/${steps.length}` });
          encoder.copyBufferToBuffer(timestepTable, 4 * batch * k, this.unet.timestepBuffer, 0, 4 * batch);
          this.unet.compiled.record(encoder);
          if (mode.useNoise) {
            if (suppliedNoise) encoder.copyBufferToBuffer(suppliedNoise, 4 * k * batchValues, this.noiseBuffer, 0, 4 * batchValues);
            else stepNoise!.recorders[k](encoder);
          }
          const pass = encoder.beginComputePass({ label: `ddim step ${k + 1}` });
          pass.setPipeline(pipeline);
          pass.setBindGroup(0, bindGroups[k]);
          pass.dispatchWorkgroups(...dispatch);
          pass.end();
          device.queue.submit([encoder.finish()]);
          if (result.xs) {
            result.xs[k + 1].set(await readBuffer(device, this.unet.sampleBuffer, values * 4), first * this.perImage);
            result.x0Preds![k].set(await readBuffer(device, this.x0Buffer, values * 4), first * this.perImage);
          }
          if (options.onStep) {
            const progress: StepProgress = { step: k + 1, total: steps.length, t: steps[k].t, firstImage: first };
            if (options.previewX0) {
              progress.x0 = await readBuffer(device, this.x0Buffer, values * 4);
              await options.onStep(progress);
            } else {
              pending.push(unlessLost(device, device.queue.onSubmittedWorkDone()).then(() => options.onStep!(progress)));
            }
          }
        }
        await Promise.all(pending);
        result.x0.set(await readBuffer(device, this.unet.sampleBuffer, values * 4), first * this.perImage);
      }
    } finally {
      for (const b of transient) b.destroy();
    }
    return result;
  }

  /**
   * Recorders of seeded noise into `target` for a batch starting at global image `firstImage`,
   * one per stream; all their params share one uniform buffer, destroyed by `release`.
   */
  private async noiseRecorders(seed: number, streams: number[], firstImage: number, target: GPUBuffer) {
    const { device } = this.gpu;
    const shader = SHADERS.noise;
    const { seedLo, seedHi } = seedWords(seed);
    const stride = alignTo(shader.params!.size, device.limits.minUniformBufferOffsetAlignment);
    const count = this.unet.batch * this.perImage;
    const params = device.createBuffer({
      label: 'noise params',
      size: stride * streams.length,
      usage: GPUBufferUsage.UNIFORM,
      mappedAtCreation: true,
    });
    const view = new DataView(params.getMappedRange());
    streams.forEach((stream, i) =>
      writeParams(
        shader,
        { count, seed_lo: seedLo, seed_hi: seedHi, stream, per_image: this.perImage, first_image: firstImage },
        view,
        i * stride,
        'noise',
      )
    );
    params.unmap();
    const pipeline = await computePipeline(device, shader);
    const layout = kernelBindGroupLayout(device, shader);
    const groups = Math.ceil(count / 64);
    const recorders = streams.map((stream, i) => {
      const bindGroup = device.createBindGroup({
        label: `noise stream ${stream}`,
        layout,
        entries: [{ binding: 0, resource: { buffer: target } }, {
          binding: 1,
          resource: { buffer: params, offset: i * stride, size: shader.params!.size },
        }],
      });
      return (encoder: GPUCommandEncoder) => {
        const pass = encoder.beginComputePass({ label: `noise stream ${stream}` });
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(Math.min(groups, 32768), Math.ceil(groups / 32768));
        pass.end();
      };
    });
    return { recorders, release: () => params.destroy() };
  }

  destroy(): void {
    this.noiseBuffer.destroy();
    this.x0Buffer.destroy();
  }
}
