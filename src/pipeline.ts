/**
 * The engine's front door: a pretrained UNet2DModel with its noise schedule, compiled for a batch
 * size on a device, and what users do with it: sample, encode an image into its latent, decode a
 * latent, interpolate between two seeds, or just predict ε.
 *
 * Safe to call from anywhere: calls on one pipeline that overlap in time (a double click, two
 * requests of a server) are queued and run one after another in the order they were made, so each
 * gives bit for bit what it gives alone. Long calls take an `AbortSignal` (`signal`) and stop
 * between steps with an `AbortError`; the pipeline stays usable.
 */
import type { Gpu } from './gpu/device.ts';
import { type CompileProgressCallback, CompileProgressSum, countPrograms } from './gpu/kernel.ts';
import type { Precision } from './gpu/shader_source.ts';
import type { RecordObserver } from './gpu/recorder.ts';
import type { GraphLimits } from './graph/executor.ts';
import type { ModelFiles } from './models/model_files.ts';
import { readUNet, UNet, type UNetWeights } from './models/unet_2d_model.ts';
import { type AutoencoderWeights, readAutoencoder } from './models/autoencoder_model.ts';
import { ModelConfigError } from './models/unet_2d_config.ts';
import { ModelWeightsError } from './models/weights.ts';
import {
  checkClassLabels,
  type DdimEncodeOptions,
  type DdimResult,
  type DdimSampleOptions,
  DdimSampler,
  SamplerInputError,
  type StepProgress,
} from './sampler/ddim.ts';
import { type NoiseSchedule, scheduleFromConfig, slerp, type TimestepSpacing } from './sampler/schedule.ts';

export type { ModelFiles } from './models/model_files.ts';

export interface PipelineOptions {
  /**
   * Images per UNet forward; more images are run in batches of this size. A batch the adapter
   * cannot hold (a tensor over its binding limit, a dispatch over its workgroup limit) is run as
   * the largest batch that fits (`pipeline.batch`); an image does not depend on its batch.
   */
  batch?: number;
  /** Limits stricter than the adapter's, to leave headroom (or to test the split). */
  limits?: Partial<GraphLimits>;
  /**
   * How the UNet's weights and activations are stored on the GPU: 'f32' (the default), or 'f16'
   * on adapters with `shader-f16` (half the memory; arithmetic and the sampler stay f32). Where the
   * adapter lacks it, 'f16' runs as 'f16-packed': f16 weights in u32 words, f32 activations (half
   * the weight memory on any adapter); `precision` says which ran.
   */
  precision?: Precision;
  /** The UNet's input size (a latent model's latents), when not its config's sample_size; may differ in height and width. */
  height?: number;
  width?: number;
  /**
   * Hears how far compiling has got, before `load` resolves: `{ compiled: 0, total }` first,
   * then once per GPU program (the UNet's and the sampler's). Each program is made and run once
   * here, so the first step compiles nothing; a software adapter with a cold shader cache takes
   * most of a minute for this (docs/perf.md).
   */
  onCompileProgress?: CompileProgressCallback;
}

/** A model's files parsed and checked once, ready to compile on any device and batch size. */
export interface DdimModel {
  unet: UNetWeights;
  schedule: NoiseSchedule;
  /** A latent model's autoencoder: the UNet's samples are its latents. */
  autoencoder?: AutoencoderWeights;
}

/** A pipeline folder's components do not fit together (the UNet's channels and the autoencoder's latents). */
export class PipelineMismatchError extends Error {
  override name = 'PipelineMismatchError';
}

/** Runs `read`, naming the component's folder in a config or weights error ('vqvae/config.json: ...'). */
function inFolder<T>(folder: string | undefined, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (folder && (error instanceof ModelConfigError || error instanceof ModelWeightsError)) {
      error.message = error.message.replace(/^config\.json:/, `${folder}/config.json:`).replace(/^the weights/, `${folder}: the weights`);
    }
    throw error;
  }
}

/** Parses and checks a model's config, weights and schedule, all on the CPU. */
export function readModel(files: ModelFiles): DdimModel {
  if (files.textEncoder) {
    throw new ModelConfigError(
      `${
        files.folders?.unet ?? 'unet'
      }/config.json: a text-conditioned model (it has a text encoder): load it with StableDiffusionPipeline`,
    );
  }
  const unet = inFolder(files.folders?.unet, () => readUNet(files));
  const autoencoder = files.autoencoder && inFolder(files.folders?.autoencoder ?? 'vae', () => readAutoencoder(files.autoencoder!));
  if (autoencoder) {
    const { config } = autoencoder;
    const latents = config.className === 'VQModel' ? config.vqEmbedDim : config.latentChannels;
    const folder = files.folders?.autoencoder ?? 'vae';
    if (unet.config.inChannels !== latents || unet.config.outChannels !== latents) {
      throw new PipelineMismatchError(
        `${
          files.folders?.unet ?? 'unet'
        }/config.json: the UNet takes ${unet.config.inChannels} channels and predicts ${unet.config.outChannels}, ` +
          `but ${folder}/config.json has latents of ${latents} channels`,
      );
    }
  }
  return {
    unet,
    schedule: scheduleFromConfig(files.schedulerConfig as Record<string, unknown> | undefined),
    ...(autoencoder ? { autoencoder } : {}),
  };
}

export interface InterpolateOptions {
  seedA: number;
  seedB: number;
  /** Images along the path, both ends included. */
  frames: number;
  steps: number;
  spacing?: TimestepSpacing;
  /** Class-conditional models: the label of every frame. */
  classLabels?: DdimSampleOptions['classLabels'];
  onStep?: (progress: StepProgress) => void | Promise<void>;
  previewX0?: boolean;
  signal?: AbortSignal;
  observers?: RecordObserver[];
}

export class DdimPipeline {
  private constructor(
    readonly gpu: Gpu,
    readonly model: DdimModel,
    readonly unet: UNet,
    readonly sampler: DdimSampler,
  ) {}

  /**
   * The model compiled for `options.batch` images per forward on `gpu`. `source` is the model's
   * files, or a model already read with `readModel` (to compile it again without re-parsing).
   */
  static async load(gpu: Gpu, source: ModelFiles | DdimModel, options: PipelineOptions = {}): Promise<DdimPipeline> {
    const model = 'unet' in source && 'schedule' in source ? source : readModel(source);
    // One count over the UNet's programs and the sampler's, which are compiled after them.
    const progress = new CompileProgressSum(options.onCompileProgress);
    const samplerProgress = progress.part(countPrograms(DdimSampler.shaders(model.schedule)));
    const unet = await UNet.compile(gpu, model.unet, {
      batch: options.batch ?? 1,
      limits: options.limits,
      precision: options.precision,
      height: options.height,
      width: options.width,
      onCompileProgress: progress.part(),
    });
    const sampler = new DdimSampler(gpu, unet, model.schedule);
    try {
      await sampler.compile(samplerProgress);
    } catch (error) {
      sampler.destroy();
      unet.destroy();
      throw error;
    }
    return new DdimPipeline(gpu, model, unet, sampler);
  }

  /** The same model for another batch size on the same device, sharing its weights on the GPU. */
  withBatch(batch: number, options: Omit<PipelineOptions, 'batch'> = {}): Promise<DdimPipeline> {
    return DdimPipeline.load(this.gpu, this.model, {
      precision: this.precision,
      height: this.unet.height,
      width: this.unet.width,
      ...options,
      batch,
    });
  }

  get schedule(): NoiseSchedule {
    return this.model.schedule;
  }

  /** How the UNet's weights and activations are stored on the GPU. */
  get precision(): Precision {
    return this.unet.precision;
  }

  /** Images per UNet forward. */
  get batch(): number {
    return this.unet.batch;
  }

  /** [channels, height, width] of one image. */
  get imageShape(): [number, number, number] {
    return this.sampler.imageShape;
  }

  sample(options: DdimSampleOptions): Promise<DdimResult> {
    return this.sampler.sample(options);
  }

  /** Encodes images (model space, [-1, 1]) into latents x_T with the deterministic ODE. */
  encode(images: Float32Array, options: DdimEncodeOptions): Promise<DdimResult> {
    return this.sampler.encode(images, options);
  }

  /** Decodes latents back into images with deterministic DDIM (η = 0). */
  decode(
    latents: Float32Array,
    options: Omit<DdimSampleOptions, 'xT' | 'eta' | 'noise' | 'count' | 'sigmaHat' | 'firstImage'>,
  ): Promise<DdimResult> {
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
    options.signal?.throwIfAborted();
    const size = a.length;
    const latents = new Float32Array(options.frames * size);
    for (let i = 0; i < options.frames; i++) latents.set(slerp(a, b, i / (options.frames - 1)), i * size);
    const result = await this.decode(latents, {
      steps: options.steps,
      spacing: options.spacing,
      classLabels: options.classLabels,
      onStep: options.onStep,
      previewX0: options.previewX0,
      signal: options.signal,
      observers: options.observers,
    });
    return { ...result, latents };
  }

  /**
   * The model's output (ε for an ε model) for any number of images: x is [N, C, H, W] in model
   * space, t one timestep each, and for a class-conditional model a class label each (or one for all).
   */
  async eps(
    x: Float32Array,
    t: Int32Array,
    options: { signal?: AbortSignal; classLabels?: DdimSampleOptions['classLabels'] } = {},
  ): Promise<Float32Array> {
    const [c, h, w] = this.imageShape;
    const perImage = c * h * w;
    if (x.length !== t.length * perImage) {
      throw new SamplerInputError(`x holds ${x.length} values but ${t.length} timesteps need ${t.length} images of ${c}x${h}x${w}`);
    }
    const labels = checkClassLabels(this.unet.config, options.classLabels, t.length);
    const batch = this.unet.batch;
    const out = new Float32Array(x.length);
    for (let first = 0; first < t.length; first += batch) {
      options.signal?.throwIfAborted();
      const n = Math.min(batch, t.length - first);
      const xs = new Float32Array(batch * perImage);
      xs.set(x.subarray(first * perImage, (first + n) * perImage));
      const ts = new Int32Array(batch);
      ts.set(t.subarray(first, first + n));
      const batchLabels = labels ? new Int32Array(batch) : undefined;
      batchLabels?.set(labels!.subarray(first, first + n));
      const eps = await this.unet.forward(xs, ts, undefined, batchLabels);
      out.set(eps.subarray(0, n * perImage), first * perImage);
    }
    return out;
  }

  /** Frees the compiled graph and the sampler's buffers; the weights once no other batch size uses them. */
  destroy(): void {
    this.sampler.destroy();
    this.unet.destroy();
  }
}
