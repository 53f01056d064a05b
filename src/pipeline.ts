/**
 * The engine's front door: a pretrained UNet2DModel with its noise schedule, compiled for a batch
 * size on a device, and what users do with it: sample, encode an image into its latent, decode a
 * latent, interpolate between two seeds, or just predict ε.
 */
import type { Gpu } from './gpu/device.ts';
import type { ModelFiles } from './model/model_files.ts';
import { readUNet, UNet, type UNetWeights } from './model/unet_model.ts';
import { type DdimResult, type DdimSampleOptions, DdimSampler, SamplerInputError, type StepProgress } from './sampler/ddim.ts';
import { type NoiseSchedule, scheduleFromConfig, slerp, type TimestepSpacing } from './sampler/schedule.ts';

export type { ModelFiles } from './model/model_files.ts';

export interface PipelineOptions {
  /** Images per UNet forward; more images are run in batches of this size. */
  batch?: number;
}

export interface InterpolateOptions {
  seedA: number;
  seedB: number;
  /** Images along the path, both ends included. */
  frames: number;
  steps: number;
  spacing?: TimestepSpacing;
  onStep?: (progress: StepProgress) => void | Promise<void>;
  previewX0?: boolean;
}

export class DdimPipeline {
  private constructor(
    readonly gpu: Gpu,
    readonly model: UNetWeights,
    readonly schedule: NoiseSchedule,
    readonly unet: UNet,
    readonly sampler: DdimSampler,
  ) {}

  static async load(gpu: Gpu, files: ModelFiles, options: PipelineOptions = {}): Promise<DdimPipeline> {
    const model = readUNet(files);
    const schedule = scheduleFromConfig(files.schedulerConfig as Record<string, unknown> | undefined);
    const unet = await UNet.compile(gpu, model, { batch: options.batch ?? 1 });
    return new DdimPipeline(gpu, model, schedule, unet, new DdimSampler(gpu, unet, schedule));
  }

  /** [channels, height, width] of one image. */
  get imageShape(): [number, number, number] {
    return this.sampler.imageShape;
  }

  sample(options: DdimSampleOptions): Promise<DdimResult> {
    return this.sampler.sample(options);
  }

  /** Encodes images (model space, [-1, 1]) into latents x_T with the deterministic ODE. */
  encode(
    images: Float32Array,
    options: { steps: number; spacing?: TimestepSpacing; onStep?: DdimSampleOptions['onStep'] },
  ): Promise<DdimResult> {
    return this.sampler.encode(images, options);
  }

  /** Decodes latents back into images with deterministic DDIM (η = 0). */
  decode(latents: Float32Array, options: Omit<DdimSampleOptions, 'xT' | 'eta' | 'noise' | 'count'>): Promise<DdimResult> {
    return this.sampler.sample({ ...options, xT: latents, eta: 0 });
  }

  /** The seeded latents that sample() starts image `index` from. */
  latents(seed: number, count = 1, first = 0): Promise<Float32Array> {
    return this.sampler.latents(seed, count, first);
  }

  /** Spherical interpolation between the first latents of two seeds, decoded frame by frame. */
  async interpolate(options: InterpolateOptions): Promise<DdimResult & { latents: Float32Array }> {
    if (!Number.isInteger(options.frames) || options.frames < 2) {
      throw new SamplerInputError(`frames must be an integer of at least 2, got ${options.frames}`);
    }
    const a = await this.latents(options.seedA);
    const b = await this.latents(options.seedB);
    const size = a.length;
    const latents = new Float32Array(options.frames * size);
    for (let i = 0; i < options.frames; i++) latents.set(slerp(a, b, i / (options.frames - 1)), i * size);
    const result = await this.decode(latents, {
      steps: options.steps,
      spacing: options.spacing,
      onStep: options.onStep,
      previewX0: options.previewX0,
    });
    return { ...result, latents };
  }

  /**
   * The same latents decoded with several step counts (the DDIM paper's consistency figure: with
   * η = 0 the image is mostly fixed by x_T). Returns one row of `count` images per step count.
   */
  async consistency(
    options: { seed: number; steps: number[]; count?: number; spacing?: TimestepSpacing; onStep?: DdimSampleOptions['onStep'] },
  ): Promise<{ rows: DdimResult[]; latents: Float32Array }> {
    if (options.steps.length === 0) throw new SamplerInputError('consistency needs at least one step count');
    const latents = await this.latents(options.seed, options.count ?? 1);
    const rows: DdimResult[] = [];
    for (const steps of options.steps) rows.push(await this.decode(latents, { steps, spacing: options.spacing, onStep: options.onStep }));
    return { rows, latents };
  }

  /** ε(x, t) for any number of images: x is [N, C, H, W] in model space, t one timestep each. */
  async eps(x: Float32Array, t: Int32Array): Promise<Float32Array> {
    const [c, h, w] = this.imageShape;
    const perImage = c * h * w;
    if (x.length !== t.length * perImage) {
      throw new SamplerInputError(`x holds ${x.length} values but ${t.length} timesteps need ${t.length} images of ${c}x${h}x${w}`);
    }
    const batch = this.unet.batch;
    const out = new Float32Array(x.length);
    for (let first = 0; first < t.length; first += batch) {
      const n = Math.min(batch, t.length - first);
      const xs = new Float32Array(batch * perImage);
      xs.set(x.subarray(first * perImage, (first + n) * perImage));
      const ts = new Int32Array(batch);
      ts.set(t.subarray(first, first + n));
      const eps = await this.unet.forward(xs, ts);
      out.set(eps.subarray(0, n * perImage), first * perImage);
    }
    return out;
  }

  destroy(): void {
    this.sampler.destroy();
    this.unet.destroy();
  }
}
