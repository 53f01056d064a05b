/**
 * DDIM sampling and encoding on the GPU. Every step is recorded as: copy the step's timesteps
 * into the UNet's input, the UNet's dispatches, fresh noise (η > 0), and the DDIM update in place
 * on the sample (after finding each image's dynamic-thresholding s, when the config asks for it).
 * What a run needs is made once per (steps, spacing, η or σ̂, clip, thresholding) as a
 * `SamplingPlan` and kept: the step scalars in one uniform buffer, the timestep table, every bind group. A step
 * then only records and submits (one command buffer per step, for progress); reads go through
 * one reused staging buffer.
 *
 * Calls may overlap in time (two samples started together, an eps meanwhile): each runs alone on
 * the UNet's buffers, in the order the calls were made (`UNet.exclusive`), so each gives what it
 * would give by itself.
 */
import type { Gpu } from '../gpu/device.ts';
import { type CompileProgressCallback, type Kernel, loadKernels, ParamsBuffer } from '../gpu/kernel.ts';
import type { ShaderSource } from '../gpu/shader_source.ts';
import { Readback, Recorder, type RecordObserver } from '../gpu/recorder.ts';
import type { ClassConditioning, Denoiser } from '../models/denoiser.ts';
import { SHADERS } from '../shaders.gen.ts';
import { seedWords } from './noise.ts';
import {
  ddimInversionSteps,
  type DdimStep,
  ddimStepCoefficients,
  ddimTimesteps,
  INVERSION_MODES,
  type InversionMode,
  type NoiseSchedule,
  quantileRanks,
  sigmaHatStepCoefficients,
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
  /** The paper's σ̂ sampler (x0 clipped, the posterior mean, variance 1 − ᾱ/ᾱ') instead of DDIM; η is then unused. */
  sigmaHat?: boolean;
  /** The config's `timestep_spacing` when it names one, else the paper's `uniform`. */
  spacing?: TimestepSpacing;
  /** Class-conditional models: one label per image [count], or one for all. */
  classLabels?: Int32Array | readonly number[];
  /** Clip each x0 prediction to the schedule's range; the scheduler config decides by default. */
  clip?: boolean;
  /** Seeds the starting latents and the per-step noise. */
  seed?: number;
  /** Number of images; taken from xT when given. */
  count?: number;
  /**
   * The index of the first image in the seed's sequence (default 0): images [firstImage,
   * firstImage + count) get the latents and noise they get in one run from 0 (resumed or sharded runs).
   */
  firstImage?: number;
  /** Starting latents [count, C, H, W]; drawn from the seed when absent. */
  xT?: Float32Array;
  /**
   * Skip the first `startStep` steps of the `steps`-step schedule and start from `xT` at the
   * timestep of the first step left (img2img/SDEdit: diffusers' timesteps[t_start:], each step
   * as in the full schedule). 0 by default.
   */
  startStep?: number;
  /** The z of every step [steps, count, C, H, W] (first step first), instead of the seeded noise. */
  noise?: Float32Array;
  /** Hand each step's x0 prediction to onStep (a readback per step). */
  previewX0?: boolean;
  /** Record x after every step and every x0 prediction (for exact comparisons). */
  trajectory?: boolean;
  onStep?: (progress: StepProgress) => void | Promise<void>;
  /** Stops the call between steps with an AbortError; the pipeline stays usable. */
  signal?: AbortSignal;
  /** Handed every pass, dispatch and submit (the profiler, call counters). */
  observers?: RecordObserver[];
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

/** The options of one encode call. */
export interface DdimEncodeOptions {
  steps: number;
  spacing?: TimestepSpacing;
  /** Clip each x0 prediction, as DDIMInverseScheduler does with `clip_sample`; the config decides by default. */
  clip?: boolean;
  /**
   * 'paper' (the default): the DDIM paper's encoding, ε at the current state and timestep.
   * 'diffusers': diffusers' DDIMInverseScheduler, ε at the timestep each step moves to (docs/samplers.md).
   */
  inversion?: InversionMode;
  classLabels?: DdimSampleOptions['classLabels'];
  /** Record every state and x0 prediction, as for sampling. */
  trajectory?: boolean;
  onStep?: DdimSampleOptions['onStep'];
  signal?: AbortSignal;
  observers?: RecordObserver[];
}

/** What the GPU side of a run with given steps needs, made once and reused by later runs. */
interface SamplingPlan {
  steps: DdimStep[];
  timesteps: number[];
  /** The model timestep of every image, step after step, copied into the UNet's input per step. */
  timestepTable: GPUBuffer;
  stepParams: ParamsBuffer;
  stepBindGroups: GPUBindGroup[];
  /** Record 0 draws the starting latents, record k + 1 the z of step k (seed and batch are rewritten per run). */
  noiseParams: ParamsBuffer;
  noiseBindGroups: GPUBindGroup[];
  /** With dynamic thresholding: each step's search for the images' s, before its update. */
  thresholdParams?: ParamsBuffer;
  thresholdBindGroups?: GPUBindGroup[];
}

/** `threshold` only where the schedule asks for dynamic thresholding. */
type SamplerKernels = { step: Kernel; noise: Kernel; threshold?: Kernel };

/** Plans kept per sampler; the least recently used beyond this many is freed. */
const MAX_PLANS = 6;

function abortError(signal: AbortSignal): Error {
  const reason = signal.reason;
  if (reason instanceof Error && reason.name === 'AbortError') return reason;
  return new DOMException(reason === undefined ? 'the call was aborted' : String(reason?.message ?? reason), 'AbortError');
}

export class DdimSampler {
  private readonly noiseBuffer: GPUBuffer;
  private readonly x0Buffer: GPUBuffer;
  /** Each image's dynamic-thresholding s (threshold.wgsl); bound, unused, without thresholding. */
  private readonly scalesBuffer: GPUBuffer;
  private readonly readback: Readback;
  private readonly perImage: number;
  private readonly plans = new Map<string, SamplingPlan>();
  private kernels?: Promise<SamplerKernels>;

  constructor(readonly gpu: Gpu, readonly unet: Denoiser, readonly schedule: NoiseSchedule) {
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
    this.scalesBuffer = gpu.device.createBuffer({ label: 'ddim.threshold_scales', size: 4 * batch, usage: GPUBufferUsage.STORAGE });
    this.readback = new Readback(gpu.device, 'ddim.readback', bytes);
  }

  get imageShape(): [number, number, number] {
    const [, c, h, w] = this.unet.sampleShape;
    return [c, h, w];
  }

  /** The shaders a sampler for `schedule` runs: the update, the noise, and the thresholding search where the config asks for it. */
  static shaders(schedule: NoiseSchedule): ShaderSource[] {
    return [SHADERS.ddim_step, SHADERS.noise, ...(schedule.thresholding ? [SHADERS.threshold] : [])];
  }

  /**
   * Makes the sampler's kernels and runs each once (`loadKernels`), so that the first step
   * compiles nothing; `onProgress` as for CompiledGraph.compile. Calls after the first share it.
   */
  compile(onProgress?: CompileProgressCallback): Promise<void> {
    this.kernels ??= this.makeKernels(onProgress);
    return this.kernels.then(() => {});
  }

  private async makeKernels(onProgress?: CompileProgressCallback): Promise<SamplerKernels> {
    const { device } = this.gpu;
    const shaders = DdimSampler.shaders(this.schedule);
    // The first runs read all-zero params: zero values to update or draw, an empty image to search.
    const zeros = new ParamsBuffer(device, 'ddim.first_run_params', shaders, shaders.length);
    zeros.upload();
    const buffers: Record<string, GPUBuffer> = {
      eps: this.unet.epsBuffer,
      x: this.unet.sampleBuffer,
      noise: this.noiseBuffer,
      x0_pred: this.x0Buffer,
      scales: this.scalesBuffer,
    };
    const firstRun = (kernel: Kernel, index: number) =>
      kernel.bind(`${kernel.name} first run`, {
        ...Object.fromEntries(kernel.shader.bindings.slice(0, -1).map((b) => [b.name, buffers[b.name]])),
        params: zeros.binding(index, kernel.shader),
      });
    try {
      const [step, noise, threshold] = await loadKernels(device, shaders, firstRun, onProgress);
      return { step, noise, threshold };
    } finally {
      zeros.destroy();
    }
  }

  private kernelsReady(): Promise<SamplerKernels> {
    this.kernels ??= this.makeKernels();
    return this.kernels;
  }

  /** The seeded starting latents of images [first, first + count) (as sample() draws them). */
  latents(seed: number, count: number, first = 0, options: { observers?: RecordObserver[] } = {}): Promise<Float32Array> {
    return this.unet.exclusive(async () => {
      const plan = await this.plan('latents', [], [], false);
      const recorder = new Recorder(this.gpu.device, options.observers);
      const out = new Float32Array(count * this.perImage);
      const batch = this.unet.batch;
      for (let start = 0; start < count; start += batch) {
        const n = Math.min(batch, count - start);
        this.writeNoiseParams(plan, seed, first + start);
        const encoder = recorder.encoder('latents');
        await this.recordNoise(recorder, encoder, plan, 0);
        recorder.submit(encoder);
        out.set(await this.readback.read(recorder, this.unet.sampleBuffer, n * this.perImage * 4), start * this.perImage);
      }
      return out;
    });
  }

  /** Generates images: DDIM with the paper's generalized process (eq. 12). */
  async sample(options: DdimSampleOptions): Promise<DdimResult> {
    const eta = options.eta ?? 0;
    if (!(eta >= 0 && eta <= 1)) throw new SamplerInputError(`eta must be in [0, 1], got ${eta}`);
    const sigmaHat = options.sigmaHat === true;
    if (sigmaHat && eta !== 0) throw new SamplerInputError('sigmaHat is its own sampler: give it without eta');
    const spacing = options.spacing ?? this.schedule.timestepSpacing ?? 'uniform';
    const allTimesteps = this.timestepsFor(options.steps, spacing);
    const start = options.startStep ?? 0;
    if (!Number.isInteger(start) || start < 0 || start >= allTimesteps.length) {
      throw new SamplerInputError(`startStep must be an integer from 0 to ${allTimesteps.length - 1}, got ${start}`);
    }
    if (start > 0 && !options.xT) throw new SamplerInputError('startStep needs xT: the state at the timestep sampling starts from');
    // Ascending: the steps left are those of the smallest timesteps.
    const timesteps = allTimesteps.slice(0, allTimesteps.length - start);
    const count = this.countOf(options);
    const labels = checkClassLabels(this.unet.config, options.classLabels, count);
    const stepCount = timesteps.length;
    if (options.noise && options.noise.length !== stepCount * count * this.perImage) {
      throw new SamplerInputError(
        `noise holds ${options.noise.length} values; ${stepCount} steps x ${count} images x ${this.imageShape.join('x')} need ${
          stepCount * count * this.perImage
        }`,
      );
    }
    // σ̂ always clips x0 (the paper's code clamps it to [-1, 1]).
    const clip = sigmaHat || (options.clip ?? this.schedule.clipSample);
    // As DDIMScheduler: thresholding, when the config sets it, in place of clipping; `clip: false` turns it off.
    const threshold = this.schedule.thresholding !== undefined && options.clip !== false;
    return await this.unet.exclusive(async () => {
      const plan = await this.plan(
        `sample ${spacing} ${options.steps} from ${start} ${sigmaHat ? 'sigma-hat' : `eta=${eta}`} clip=${clip} threshold=${threshold}`,
        timesteps,
        (sigmaHat
          ? sigmaHatStepCoefficients(this.schedule, allTimesteps, spacing)
          : ddimStepCoefficients(this.schedule, allTimesteps, eta, spacing)).slice(start),
        clip,
        threshold,
      );
      return await this.run(plan, count, { ...options, classLabels: labels }, { useNoise: sigmaHat || eta > 0 });
    });
  }

  /** The ascending timesteps of a run of `steps` with `spacing`. */
  timestepsFor(steps: number, spacing: TimestepSpacing): number[] {
    return ddimTimesteps(steps, spacing, this.schedule.numTrainTimesteps, this.schedule.stepsOffset);
  }

  /** Encodes images [count, C, H, W] in model space into their x_T: the η = 0 ODE run forward. */
  async encode(x0: Float32Array, options: DdimEncodeOptions): Promise<DdimResult> {
    const spacing = options.spacing ?? this.schedule.timestepSpacing ?? 'uniform';
    const timesteps = this.timestepsFor(options.steps, spacing);
    const count = this.countOf({ xT: x0, steps: options.steps });
    const labels = checkClassLabels(this.unet.config, options.classLabels, count);
    const clip = options.clip ?? this.schedule.clipSample;
    const inversion = options.inversion ?? 'paper';
    if (!INVERSION_MODES.includes(inversion)) {
      throw new SamplerInputError(`inversion must be one of ${INVERSION_MODES.join(', ')}, got '${inversion}'`);
    }
    return await this.unet.exclusive(async () => {
      const plan = await this.plan(
        `encode ${spacing} ${options.steps} clip=${clip} ${inversion}`,
        timesteps,
        ddimInversionSteps(this.schedule, timesteps, inversion),
        clip,
      );
      return await this.run(plan, count, { ...options, xT: x0, classLabels: labels }, { useNoise: false });
    });
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

  /** The plan for `key`, made the first time and kept (the least recently used beyond MAX_PLANS is freed). */
  private async plan(key: string, timesteps: number[], steps: DdimStep[], clip: boolean, threshold = false): Promise<SamplingPlan> {
    const known = this.plans.get(key);
    if (known) {
      this.plans.delete(key);
      this.plans.set(key, known);
      return known;
    }
    const { device } = this.gpu;
    const kernels = await this.kernelsReady();
    const batch = this.unet.batch;
    const batchValues = batch * this.perImage;
    const stepShader = kernels.step.shader;
    const stepParams = new ParamsBuffer(device, `ddim.step_params (${key})`, [stepShader], steps.length);
    steps.forEach((s, k) =>
      stepParams.set(k, stepShader, {
        count: batchValues,
        x0_from_x: s.x0FromX,
        x0_from_out: s.x0FromOut,
        x0_scale: s.x0Scale,
        eps_from_x: s.epsFromX,
        eps_from_out: s.epsFromOut,
        coef_x0: s.coefX0,
        dir_coef: s.dirCoef,
        coef_x: s.coefX,
        sigma: s.sigma,
        clip: clip ? 1 : 0,
        clip_range: this.schedule.clipSampleRange,
        threshold: threshold ? 1 : 0,
        per_image: this.perImage,
      }, `ddim step ${k}`)
    );
    stepParams.upload();
    const timestepTable = device.createBuffer({
      label: `ddim.timesteps (${key})`,
      size: Math.max(4, 4 * batch * steps.length),
      usage: GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
    });
    const table = new Int32Array(timestepTable.getMappedRange());
    steps.forEach((s, k) => table.fill(s.modelTimestep, k * batch, (k + 1) * batch));
    timestepTable.unmap();
    const stepBindGroups = steps.map((_, k) =>
      kernels.step.bind(`ddim step ${k + 1}`, {
        eps: this.unet.epsBuffer,
        noise: this.noiseBuffer,
        scales: this.scalesBuffer,
        x: this.unet.sampleBuffer,
        x0_pred: this.x0Buffer,
        params: stepParams.binding(k, stepShader),
      })
    );
    const noiseShader = kernels.noise.shader;
    const noiseParams = new ParamsBuffer(device, `noise params (${key})`, [noiseShader], steps.length + 1);
    const noiseBindGroups = Array.from({ length: steps.length + 1 }, (_, stream) =>
      kernels.noise.bind(`noise stream ${stream}`, {
        noise: stream === LATENT_STREAM ? this.unet.sampleBuffer : this.noiseBuffer,
        params: noiseParams.binding(stream, noiseShader),
      }));
    const plan: SamplingPlan = { steps, timesteps, timestepTable, stepParams, stepBindGroups, noiseParams, noiseBindGroups };
    if (threshold) this.planThreshold(plan, kernels.threshold!, key);
    this.plans.set(key, plan);
    if (this.plans.size > MAX_PLANS) {
      const [oldest, evicted] = this.plans.entries().next().value!;
      this.plans.delete(oldest);
      destroyPlan(evicted);
    }
    return plan;
  }

  /** Per step: the search for each image's s over the x0 that step's update will form. */
  private planThreshold(plan: SamplingPlan, kernel: Kernel, key: string): void {
    const { ratio, maxValue } = this.schedule.thresholding!;
    const { lo, hi, weight } = quantileRanks(ratio, this.perImage);
    const params = new ParamsBuffer(this.gpu.device, `ddim.threshold_params (${key})`, [kernel.shader], plan.steps.length);
    plan.steps.forEach((s, k) =>
      params.set(k, kernel.shader, {
        per_image: this.perImage,
        rank_lo: lo,
        rank_hi: hi,
        weight,
        max_value: maxValue,
        x0_from_x: s.x0FromX,
        x0_from_out: s.x0FromOut,
        x0_scale: s.x0Scale,
      }, `threshold ${k}`)
    );
    params.upload();
    plan.thresholdParams = params;
    plan.thresholdBindGroups = plan.steps.map((_, k) =>
      kernel.bind(`threshold ${k + 1}`, {
        eps: this.unet.epsBuffer,
        x: this.unet.sampleBuffer,
        scales: this.scalesBuffer,
        params: params.binding(k, kernel.shader),
      })
    );
  }

  /** Points the plan's noise records at `seed` and the batch starting at global image `firstImage`. */
  private writeNoiseParams(plan: SamplingPlan, seed: number, firstImage: number): void {
    const { seedLo, seedHi } = seedWords(seed);
    for (let stream = 0; stream < plan.noiseParams.count; stream++) {
      plan.noiseParams.set(stream, SHADERS.noise, {
        count: this.unet.batch * this.perImage,
        seed_lo: seedLo,
        seed_hi: seedHi,
        stream,
        per_image: this.perImage,
        first_image: firstImage,
      });
    }
    plan.noiseParams.upload();
  }

  private async recordNoise(recorder: Recorder, encoder: GPUCommandEncoder, plan: SamplingPlan, stream: number): Promise<void> {
    const { noise } = await this.kernelsReady();
    const workgroups = noise.workgroups({ invocations: [this.unet.batch * this.perImage], flat: true });
    recorder.dispatchAlone(encoder, `noise stream ${stream}`, noise, plan.noiseBindGroups[stream], workgroups);
  }

  private async run(plan: SamplingPlan, count: number, options: DdimSampleOptions, mode: { useNoise: boolean }): Promise<DdimResult> {
    const { device } = this.gpu;
    const { steps, timesteps } = plan;
    const kernels = await this.kernelsReady();
    const recorder = new Recorder(device, options.observers);
    const signal = options.signal;
    const batch = this.unet.batch;
    const seed = options.seed ?? 0;
    const offset = options.firstImage ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new SamplerInputError(`firstImage must be an integer ≥ 0, got ${offset}`);
    const batchValues = batch * this.perImage;
    const result: DdimResult = { x0: new Float32Array(count * this.perImage), timesteps };
    if (options.trajectory) {
      result.xs = Array.from({ length: steps.length + 1 }, () => new Float32Array(count * this.perImage));
      result.x0Preds = Array.from({ length: steps.length }, () => new Float32Array(count * this.perImage));
    }
    const stepWorkgroups = kernels.step.workgroups({ invocations: [batchValues], flat: true });
    // One workgroup per image.
    const thresholdWorkgroups = kernels.threshold?.workgroups({ invocations: [batch * kernels.threshold.shader.workgroupSize[0]] });
    const read = (buffer: GPUBuffer, values: number) => this.readback.read(recorder, buffer, values * 4);
    /** Between steps: a requested stop waits for the work already submitted, then ends the call. */
    const stopIfAborted = async () => {
      if (!signal?.aborted) return;
      await recorder.done();
      throw abortError(signal);
    };
    // The caller's noise for every step of a batch, the one buffer a call makes (freed at its end).
    const suppliedNoise = options.noise
      ? device.createBuffer({
        label: 'ddim.supplied_noise',
        size: 4 * steps.length * batchValues,
        usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      })
      : undefined;

    try {
      for (let first = 0; first < count; first += batch) {
        await stopIfAborted();
        const n = Math.min(batch, count - first);
        const values = n * this.perImage;
        this.writeNoiseParams(plan, seed, offset + first);
        const labelBuffer = this.unet.classLabelBuffer;
        if (labelBuffer) {
          // Written per batch like the starting state; every step of the batch reads it.
          const labels = new Int32Array(batch);
          labels.set((options.classLabels as Int32Array).subarray(first, first + n));
          device.queue.writeBuffer(labelBuffer, 0, labels);
        }
        this.unet.beginBatch?.(first, n);
        // Starting state: the given latents (or images, when encoding), else seeded noise.
        if (options.xT) {
          const start = new Float32Array(batchValues);
          start.set(options.xT.subarray(first * this.perImage, first * this.perImage + values));
          device.queue.writeBuffer(this.unet.sampleBuffer, 0, start);
        } else {
          const encoder = recorder.encoder('ddim.latents');
          await this.recordNoise(recorder, encoder, plan, LATENT_STREAM);
          recorder.submit(encoder);
        }
        if (suppliedNoise) {
          const chunk = new Float32Array(steps.length * batchValues);
          for (let k = 0; k < steps.length; k++) {
            const from = (k * count + first) * this.perImage;
            chunk.set(options.noise!.subarray(from, from + values), k * batchValues);
          }
          device.queue.writeBuffer(suppliedNoise, 0, chunk);
        }
        if (result.xs) result.xs[0].set(await read(this.unet.sampleBuffer, values), first * this.perImage);

        const pending: Promise<void>[] = [];
        for (let k = 0; k < steps.length; k++) {
          await stopIfAborted();
          const encoder = recorder.encoder(`ddim step ${k + 1}/${steps.length}`);
          encoder.copyBufferToBuffer(plan.timestepTable, 4 * batch * k, this.unet.timestepBuffer, 0, 4 * batch);
          this.unet.record(encoder, recorder);
          if (mode.useNoise) {
            if (suppliedNoise) encoder.copyBufferToBuffer(suppliedNoise, 4 * k * batchValues, this.noiseBuffer, 0, 4 * batchValues);
            else await this.recordNoise(recorder, encoder, plan, k + 1);
          }
          if (plan.thresholdBindGroups) {
            recorder.dispatchAlone(encoder, `threshold ${k + 1}`, kernels.threshold!, plan.thresholdBindGroups[k], thresholdWorkgroups!);
          }
          recorder.dispatchAlone(encoder, `ddim step ${k + 1}`, kernels.step, plan.stepBindGroups[k], stepWorkgroups);
          recorder.submit(encoder);
          await recorder.afterSubmit();
          if (result.xs) {
            result.xs[k + 1].set(await read(this.unet.sampleBuffer, values), first * this.perImage);
            result.x0Preds![k].set(await read(this.x0Buffer, values), first * this.perImage);
          }
          if (options.onStep) {
            const progress: StepProgress = { step: k + 1, total: steps.length, t: steps[k].t, firstImage: first };
            if (options.previewX0) {
              progress.x0 = await read(this.x0Buffer, values);
              await options.onStep(progress);
            } else {
              pending.push(recorder.done().then(() => options.onStep!(progress)));
            }
          }
        }
        await Promise.all(pending);
        result.x0.set(await read(this.unet.sampleBuffer, values), first * this.perImage);
      }
    } finally {
      suppliedNoise?.destroy();
    }
    return result;
  }

  destroy(): void {
    for (const plan of this.plans.values()) destroyPlan(plan);
    this.plans.clear();
    this.noiseBuffer.destroy();
    this.x0Buffer.destroy();
    this.scalesBuffer.destroy();
    this.readback.destroy();
  }
}

function destroyPlan(plan: SamplingPlan): void {
  plan.stepParams.destroy();
  plan.noiseParams.destroy();
  plan.timestepTable.destroy();
  plan.thresholdParams?.destroy();
}

/**
 * Class labels for `count` images, as an i32 per image: one label given for all is repeated.
 * A class-conditional model needs them; an unconditional one refuses them (as diffusers does).
 */
export function checkClassLabels(
  config: ClassConditioning,
  given: Int32Array | readonly number[] | undefined,
  count: number,
): Int32Array | undefined {
  if (!config.classEmbedType) {
    if (given !== undefined) throw new SamplerInputError('this model is not class-conditional: it takes no class labels');
    return undefined;
  }
  if (given === undefined || given.length === 0) {
    throw new SamplerInputError(`this model is class-conditional${classRange(config)}: give a class label`);
  }
  if (given.length !== 1 && given.length !== count) {
    throw new SamplerInputError(`${given.length} class labels for ${count} images: give one for all or one per image`);
  }
  // 'timestep' labels are embedded like timesteps, exact below 4096 (see timestep_embedding.wgsl).
  const limit = config.classEmbedType === 'embedding' ? config.numClassEmbeds! : 4096;
  for (const label of given) {
    if (!Number.isInteger(label) || label < 0 || label >= limit) {
      throw new SamplerInputError(`class label ${label} is outside 0..${limit - 1}${classRange(config)}`);
    }
  }
  return given.length === count ? Int32Array.from(given) : new Int32Array(count).fill(given[0]);
}

function classRange(config: ClassConditioning): string {
  return config.classEmbedType === 'embedding' ? ` (${config.numClassEmbeds} classes: 0..${config.numClassEmbeds! - 1})` : '';
}
