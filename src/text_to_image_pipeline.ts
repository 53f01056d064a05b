/**
 * Text-to-image (diffusers' StableDiffusionPipeline, SD 1.x and 2.x) with DDIM: the CLIP tokenizer
 * and text encoder make the prompts' embeddings, the text-conditioned UNet denoises latents under
 * classifier-free guidance inside the DDIM step (one forward over [negative, positive] per step,
 * ε = ε_neg + g·(ε_pos − ε_neg) on the GPU), and the VAE decodes latents / scaling_factor. Also the
 * DDIM paper's features on it: img2img/SDEdit from an init image (`initImage`, `strength`),
 * inversion of an image under a prompt (`encode`), and interpolation between two seeds' latents.
 *
 * Calls on one pipeline that overlap in time are queued and run one after another, each giving
 * what it gives alone; long ones take an AbortSignal.
 */
import { checkMemoryBudget } from './gpu/memory_budget.ts';
import type { Gpu } from './gpu/device.ts';
import type { Precision } from './gpu/shader_source.ts';
import { type GpuMemory, type GraphLimits, graphsMemory } from './graph/executor.ts';
import type { CompileProgressCallback } from './gpu/kernel.ts';
import { Autoencoder, type AutoencoderWeights, readAutoencoder } from './models/autoencoder_model.ts';
import { downscaleFactor } from './models/autoencoder_config.ts';
import { ClipTextEncoder, type ClipTextWeights, readClipTextModel } from './models/clip_text_encoder.ts';
import type { ClassConditioning, Denoiser } from './models/denoiser.ts';
import { GuidedDenoiser } from './models/guidance.ts';
import { CallQueue, devicePrecision } from './models/compile.ts';
import type { ModelFiles } from './models/model_files.ts';
import { ConditionalUNet, type ConditionalUNetWeights, readConditionalUNet } from './models/unet_2d_condition_model.ts';
import { ModelConfigError } from './models/unet_2d_config.ts';
import { ModelWeightsError } from './models/weights.ts';
import { type DdimEncodeOptions, type DdimResult, type DdimSampleOptions, DdimSampler, SamplerInputError } from './sampler/ddim.ts';
import { type NoiseSchedule, scheduleFromConfig, slerp } from './sampler/schedule.ts';
import { type ClipTokenizer, createClipTokenizer, type Truncation } from './text/clip_tokenizer.ts';

/** A text-to-image model's files parsed and checked once, ready to compile on any device. */
export interface TextToImageModel {
  unet: ConditionalUNetWeights;
  textEncoder: ClipTextWeights;
  tokenizer: ClipTokenizer;
  autoencoder: AutoencoderWeights;
  schedule: NoiseSchedule;
}

/** Latents or images that are not finite: reported, never written as a black picture. */
export class NonFiniteOutputError extends Error {
  override name = 'NonFiniteOutputError';
}

function inFolder<T>(folder: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof ModelConfigError || error instanceof ModelWeightsError) {
      error.message = error.message.replace(/^config\.json:/, `${folder}/config.json:`).replace(/^the weights/, `${folder}: the weights`);
    }
    throw error;
  }
}

/** Parses and checks a Stable Diffusion pipeline folder's components, all on the CPU. */
export function readTextToImageModel(files: ModelFiles): TextToImageModel {
  const folders = files.folders;
  if (!files.textEncoder || !files.tokenizer || !files.autoencoder) {
    throw new ModelConfigError('a text-to-image model needs a text_encoder, a tokenizer and a vae beside its unet (model_index.json)');
  }
  const unet = inFolder(folders?.unet ?? 'unet', () => readConditionalUNet(files));
  const textEncoder = inFolder(folders?.textEncoder ?? 'text_encoder', () => readClipTextModel(files.textEncoder!));
  const tokenizer = createClipTokenizer(files.tokenizer);
  const autoencoder = inFolder(folders?.autoencoder ?? 'vae', () => readAutoencoder(files.autoencoder!));
  const unetFolder = folders?.unet ?? 'unet';
  if (autoencoder.config.className !== 'AutoencoderKL') {
    throw new ModelConfigError(`${folders?.autoencoder ?? 'vae'}/config.json: a text-to-image pipeline decodes with an AutoencoderKL`);
  }
  if (unet.config.inChannels !== autoencoder.config.latentChannels || unet.config.outChannels !== autoencoder.config.latentChannels) {
    throw new ModelConfigError(
      `${unetFolder}/config.json: the UNet takes ${unet.config.inChannels} channels, but the VAE's latents have ${autoencoder.config.latentChannels}`,
    );
  }
  const crossAttentionDim = unet.config.crossAttentionDim.find((d) => d !== textEncoder.config.hiddenSize);
  if (crossAttentionDim !== undefined) {
    throw new ModelConfigError(
      `${unetFolder}/config.json: cross_attention_dim ${crossAttentionDim} is not the text encoder's hidden_size ${textEncoder.config.hiddenSize}`,
    );
  }
  return {
    unet,
    textEncoder,
    tokenizer,
    autoencoder,
    schedule: scheduleFromConfig(files.schedulerConfig as Record<string, unknown> | undefined),
  };
}

export interface TextToImageOptions {
  /** Images per UNet forward (the UNet sees twice that under guidance). */
  batch?: number;
  /** The image's size in pixels: the UNet's sample_size times the VAE's downscale factor by default. */
  height?: number;
  width?: number;
  precision?: Precision;
  limits?: Partial<GraphLimits>;
  /** Hears the GPU programs of the guided UNet compiled at load (k of n). */
  onCompileProgress?: CompileProgressCallback;
  /**
   * Free the text encoder's GPU memory (weights and buffers) once a call's prompts are encoded; it
   * is uploaded again for the next call's. A lower peak (the text encoder is never held beside the
   * VAE), for a slower encode.
   */
  releaseTextEncoder?: boolean;
}

/**
 * What a pipeline holds on the GPU, in bytes: each component at its largest since load (they grow
 * only when one compiles, and shrink when the text encoder is released), all of them now, and the
 * most they held at once.
 */
export interface TextToImageMemory {
  textEncoder: GpuMemory;
  unet: GpuMemory;
  vae: GpuMemory;
  /** Every component's weights and buffers now. */
  totalBytes: number;
  /** The most the components held at once since load. */
  peakBytes: number;
  /** The largest tensor any component has bound as storage: what the adapter's binding limit must hold. */
  largestBindingBytes: number;
}

const NO_MEMORY: GpuMemory = { weightBytes: 0, activationBytes: 0, largestBindingBytes: 0 };

export interface PromptOptions {
  /** One prompt for every image, or one per image. */
  prompt: string | readonly string[];
  /** One negative prompt for all, or one per prompt; empty by default. */
  negativePrompt?: string | readonly string[];
  /** Classifier-free guidance scale g (default 7.5); g ≤ 1 runs the conditional half only. */
  guidance?: number;
  /** diffusers' clip_skip: the text encoder's output N layers before the last, then its final LayerNorm. */
  clipSkip?: number;
}

export interface TextToImageSampleOptions extends PromptOptions, Omit<DdimSampleOptions, 'classLabels' | 'startStep'> {
  /** img2img/SDEdit: the init images [count, 3, H, W] in [-1, 1], encoded to the VAE's mean × scaling_factor. */
  initImage?: Float32Array;
  /** img2img: the init latents instead of an image. */
  initLatents?: Float32Array;
  /** img2img: how much of the schedule runs, (0, 1]: the last ⌊steps·strength⌋ timesteps (default 0.8). */
  strength?: number;
}

export interface TextToImageResult extends DdimResult {
  images: Float32Array;
  imageShape: [number, number, number];
  /** The prompts whose tokens past 75 were cut (diffusers warns of the same). */
  truncations: Truncation[];
  /** The same for the negative prompts (under guidance). */
  negativeTruncations: Truncation[];
}

/** The conditional UNet alone as a Denoiser: its own embeddings, written per batch of images. */
class ConditionedDenoiser implements Denoiser {
  readonly config: ClassConditioning = { classEmbedType: null, numClassEmbeds: null };
  beginBatch?: (first: number, count: number) => void;
  constructor(readonly network: ConditionalUNet) {}
  get batch() {
    return this.network.batch;
  }
  get sampleShape() {
    return this.network.sampleShape;
  }
  get sampleBuffer() {
    return this.network.sampleBuffer;
  }
  get timestepBuffer() {
    return this.network.timestepBuffer;
  }
  get epsBuffer() {
    return this.network.epsBuffer;
  }
  get compiled() {
    return this.network.compiled;
  }
  record(encoder: GPUCommandEncoder, recorder: Parameters<Denoiser['record']>[1]): void {
    this.network.record(encoder, recorder);
  }
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.network.exclusive(work);
  }
}

export class StableDiffusionPipeline {
  private readonly calls = new CallQueue();
  private readonly encoders = new Map<number, Promise<ClipTextEncoder>>();
  private readonly liveEncoders = new Set<ClipTextEncoder>();
  private peakBytes = 0;
  private readonly peaks = { textEncoder: NO_MEMORY, unet: NO_MEMORY, vae: NO_MEMORY };
  private guided?: { network: ConditionalUNet; denoiser: GuidedDenoiser; sampler: DdimSampler };
  private conditional?: { network: ConditionalUNet; denoiser: ConditionedDenoiser; sampler: DdimSampler };
  readonly autoencoder: Autoencoder;

  private constructor(
    readonly gpu: Gpu,
    readonly model: TextToImageModel,
    private readonly options: Required<Pick<TextToImageOptions, 'batch' | 'precision'>> & TextToImageOptions,
    /** [channels, height, width] of the latents. */
    readonly latentShape: [number, number, number],
  ) {
    this.autoencoder = Autoencoder.load(gpu, model.autoencoder, { limits: options.limits, precision: options.precision });
  }

  /** A Stable Diffusion folder's files (or a model read once) on `gpu`; each part compiles when first needed. */
  static async load(gpu: Gpu, source: ModelFiles | TextToImageModel, options: TextToImageOptions = {}): Promise<StableDiffusionPipeline> {
    const model = 'tokenizer' in source && 'schedule' in source ? source as TextToImageModel : readTextToImageModel(source as ModelFiles);
    const factor = downscaleFactor(model.autoencoder.config);
    const sampleSize = model.unet.config.sampleSize;
    if (sampleSize === null && (options.height === undefined || options.width === undefined)) {
      throw new SamplerInputError("the UNet's config has no sample_size: give height and width");
    }
    const height = options.height ?? sampleSize! * factor;
    const width = options.width ?? sampleSize! * factor;
    for (const [name, value] of [['height', height], ['width', width]] as const) {
      if (!Number.isInteger(value) || value <= 0 || value % factor !== 0) {
        throw new SamplerInputError(`${name} ${value} is not a positive multiple of the VAE's downscale factor ${factor}`);
      }
    }
    const pipeline = new StableDiffusionPipeline(gpu, model, {
      ...options,
      batch: options.batch ?? 1,
      precision: devicePrecision(gpu, options.precision),
    }, [
      model.unet.config.inChannels,
      height / factor,
      width / factor,
    ]);
    // The guided UNet is what sampling needs first: compiled now, so that the first call does not wait.
    await pipeline.guidedSampler();
    if (gpu.maxMemoryBytes !== undefined) {
      // The VAE compiles when the first images are decoded, after every step: a budget it would
      // break is said now instead.
      try {
        checkMemoryBudget(gpu, pipeline.autoencoder.decoderMemoryNeed(pipeline.options.batch, height / factor, width / factor));
      } catch (error) {
        pipeline.destroy();
        throw error;
      }
    }
    return pipeline;
  }

  get schedule(): NoiseSchedule {
    return this.model.schedule;
  }

  /** The precision of the UNet and text encoder as this adapter runs them ('f16' asked for may be 'f16-packed'); the VAE's is autoencoder.precision. */
  get precision(): Precision {
    return this.options.precision;
  }

  /** [channels, height, width] of one decoded image. */
  get imageShape(): [number, number, number] {
    const [, h, w] = this.latentShape;
    const f = this.autoencoder.downscaleFactor;
    return [this.autoencoder.config.outChannels, h * f, w * f];
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.calls.run(work);
  }

  private compileUNet(batch: number, onCompileProgress?: CompileProgressCallback): Promise<ConditionalUNet> {
    const [, h, w] = this.latentShape;
    return ConditionalUNet.compile(this.gpu, this.model.unet, {
      batch,
      height: h,
      width: w,
      contextLength: this.model.tokenizer.maxLength,
      precision: this.options.precision,
      limits: this.options.limits,
      onCompileProgress,
    });
  }

  private async guidedSampler() {
    if (!this.guided) {
      const network = await this.compileUNet(2 * this.options.batch, this.options.onCompileProgress);
      if (network.batch % 2 !== 0) {
        network.destroy();
        throw new SamplerInputError(`guidance needs an even batch, and only ${network.batch} images fit the adapter's limits per forward`);
      }
      const denoiser = await GuidedDenoiser.create(this.gpu, network, 7.5);
      this.guided = { network, denoiser, sampler: new DdimSampler(this.gpu, denoiser, this.model.schedule) };
      this.notePeak();
    }
    return this.guided;
  }

  private async conditionalSampler() {
    if (!this.conditional) {
      const network = await this.compileUNet(this.options.batch);
      const denoiser = new ConditionedDenoiser(network);
      this.conditional = { network, denoiser, sampler: new DdimSampler(this.gpu, denoiser, this.model.schedule) };
      this.notePeak();
    }
    return this.conditional;
  }

  private textEncoder(clipSkip: number): Promise<ClipTextEncoder> {
    let encoder = this.encoders.get(clipSkip);
    if (!encoder) {
      encoder = ClipTextEncoder.compile(this.gpu, this.model.textEncoder, {
        batch: 1,
        clipSkip,
        precision: this.options.precision,
        length: this.model.tokenizer.maxLength,
        limits: this.options.limits,
      });
      encoder.then((compiled) => {
        this.liveEncoders.add(compiled);
        this.notePeak();
      }, () => this.encoders.delete(clipSkip));
      this.encoders.set(clipSkip, encoder);
    }
    return encoder;
  }

  /** Frees the text encoder's GPU memory now; the next encoding compiles and uploads it again. */
  releaseTextEncoder(): void {
    for (const encoder of this.encoders.values()) {
      encoder.then((compiled) => {
        this.liveEncoders.delete(compiled);
        compiled.destroy();
      }, () => {});
    }
    this.encoders.clear();
  }

  /** Each component's GPU memory at its largest since load, all of it now, and the most held at once. */
  memory(): TextToImageMemory {
    const totalBytes = this.notePeak();
    const largestBindingBytes = Math.max(...Object.values(this.peaks).map((m) => m.largestBindingBytes));
    return { ...this.peaks, totalBytes, peakBytes: this.peakBytes, largestBindingBytes };
  }

  /** Takes each component's memory now into the peaks; returns all of it now. */
  private notePeak(): number {
    const vae = this.autoencoder.memory();
    const now = {
      textEncoder: graphsMemory([...this.liveEncoders].map((encoder) => encoder.compiled)),
      unet: graphsMemory([this.guided, this.conditional].flatMap((part) => (part ? [part.network.compiled] : []))),
      vae: { weightBytes: vae.weightBytes, activationBytes: vae.activationBytes, largestBindingBytes: vae.largestBindingBytes },
    };
    let totalBytes = 0;
    for (const key of ['textEncoder', 'unet', 'vae'] as const) {
      const [was, is] = [this.peaks[key], now[key]];
      this.peaks[key] = {
        weightBytes: Math.max(was.weightBytes, is.weightBytes),
        activationBytes: Math.max(was.activationBytes, is.activationBytes),
        largestBindingBytes: Math.max(was.largestBindingBytes, is.largestBindingBytes),
      };
      totalBytes += is.weightBytes + is.activationBytes;
    }
    this.peakBytes = Math.max(this.peakBytes, totalBytes);
    return totalBytes;
  }

  /**
   * The prompts' token ids [B, 77] and embeddings [B, 77, hidden] (the text encoder's
   * last_hidden_state, or with clipSkip an earlier layer's through the final LayerNorm).
   */
  async encodePrompt(
    prompts: readonly string[],
    clipSkip = 0,
  ): Promise<{ inputIds: Int32Array; embeds: Float32Array; truncations: Truncation[] }> {
    const batch = this.model.tokenizer.encodeBatch(prompts);
    const encoder = await this.textEncoder(clipSkip);
    const length = batch.length;
    const [, , hidden] = encoder.outputShape;
    const embeds = new Float32Array(prompts.length * length * hidden);
    for (let i = 0; i < prompts.length; i++) {
      embeds.set(await encoder.encode(batch.inputIds.subarray(i * length, (i + 1) * length)), i * length * hidden);
    }
    return { inputIds: batch.inputIds, embeds, truncations: batch.truncations };
  }

  /** Each image's prompt and negative prompt, one for all or one per image. */
  private promptsFor(options: PromptOptions, count: number): { positive: string[]; negative: string[] } {
    const list = (value: string | readonly string[] | undefined, name: string, fallback: string): string[] => {
      const values = value === undefined ? [fallback] : typeof value === 'string' ? [value] : [...value];
      if (values.length !== 1 && values.length !== count) {
        throw new SamplerInputError(`${values.length} ${name}s for ${count} images: give one for all or one per image`);
      }
      return values.length === count ? values : Array(count).fill(values[0]);
    };
    return { positive: list(options.prompt, 'prompt', ''), negative: list(options.negativePrompt, 'negative prompt', '') };
  }

  private countOf(options: { prompt: string | readonly string[]; count?: number; xT?: Float32Array }, perImage: number): number {
    if (options.xT) {
      if (options.xT.length === 0 || options.xT.length % perImage !== 0) {
        throw new SamplerInputError(
          `latents hold ${options.xT.length} values, not a whole number of ${this.latentShape.join('x')} latents`,
        );
      }
      return options.xT.length / perImage;
    }
    if (options.count !== undefined) return options.count;
    return typeof options.prompt === 'string' ? 1 : options.prompt.length;
  }

  /** Writes each batch's embeddings into the network before its steps: [negative, positive] under guidance. */
  private conditioning(network: ConditionalUNet, halves: Float32Array[], perImage: number) {
    return (first: number, count: number) => {
      const n = halves.length === 2 ? network.batch / 2 : network.batch;
      const states = new Float32Array(network.batch * perImage);
      halves.forEach((embeds, half) => {
        for (let i = 0; i < n; i++) {
          // A last, partial batch repeats its first image's conditioning in the unused places.
          const image = first + (i < count ? i : 0);
          states.set(embeds.subarray(image * perImage, (image + 1) * perImage), (half * n + i) * perImage);
        }
      });
      this.gpu.device.queue.writeBuffer(network.encoderHiddenStatesBuffer, 0, states);
    };
  }

  /** Text-to-image (or img2img with `initImage`/`initLatents`): DDIM under guidance, then the VAE. */
  sample(options: TextToImageSampleOptions): Promise<TextToImageResult> {
    return this.exclusive(async () => {
      const [c, h, w] = this.latentShape;
      const perLatent = c * h * w;
      const guidance = options.guidance ?? 7.5;
      if (!Number.isFinite(guidance)) throw new SamplerInputError(`guidance must be a number, got ${guidance}`);
      let init: Float32Array | undefined;
      if (options.initImage) init = await this.encodeImages(options.initImage);
      else if (options.initLatents) init = options.initLatents;
      const count = init ? this.checkedCount(init.length, perLatent, 'init latents') : this.countOf(options, perLatent);
      const { positive, negative } = this.promptsFor(options, count);
      const encoded = await this.encodePrompt(positive, options.clipSkip ?? 0);
      const hidden = encoded.embeds.length / (count * this.model.tokenizer.maxLength);
      const perImage = this.model.tokenizer.maxLength * hidden;
      let run: DdimResult;
      let negativeTruncations: Truncation[] = [];
      const sampleOptions: DdimSampleOptions = { ...options, count };
      if (init) Object.assign(sampleOptions, await this.img2imgStart(init, count, options));
      if (guidance > 1) {
        const { network, denoiser, sampler } = await this.guidedSampler();
        const encodedNegative = await this.encodePrompt(negative, options.clipSkip ?? 0);
        const negativeEmbeds = encodedNegative.embeds;
        negativeTruncations = encodedNegative.truncations;
        denoiser.setScale(guidance);
        denoiser.beginBatch = this.conditioning(network, [negativeEmbeds, encoded.embeds], perImage);
        run = await sampler.sample(sampleOptions);
      } else {
        const { network, denoiser, sampler } = await this.conditionalSampler();
        denoiser.beginBatch = this.conditioning(network, [encoded.embeds], perImage);
        run = await sampler.sample(sampleOptions);
      }
      if (this.options.releaseTextEncoder) this.releaseTextEncoder();
      options.signal?.throwIfAborted();
      checkFinite(run.x0, 'the final latents');
      const decoded = await this.decodeLatents(run.x0);
      return { ...run, ...decoded, truncations: encoded.truncations, negativeTruncations };
    });
  }

  private checkedCount(values: number, perLatent: number, what: string): number {
    if (values === 0 || values % perLatent !== 0) {
      throw new SamplerInputError(`${what} hold ${values} values, not a whole number of ${this.latentShape.join('x')} latents`);
    }
    return values / perLatent;
  }

  /**
   * img2img: the schedule's last ⌊steps·strength⌋ timesteps; the init latents noised to the first
   * of them with `xT` as the noise (else the seed's latents): √ᾱ·init + √(1−ᾱ)·noise.
   */
  private async img2imgStart(init: Float32Array, count: number, options: TextToImageSampleOptions) {
    const strength = options.strength ?? 0.8;
    if (!(strength > 0 && strength <= 1)) throw new SamplerInputError(`strength must be in (0, 1], got ${strength}`);
    const { sampler } = await this.guidedSampler();
    const timesteps = sampler.timestepsFor(options.steps, options.spacing ?? this.schedule.timestepSpacing ?? 'uniform');
    const steps = timesteps.length;
    const initSteps = Math.min(Math.floor(options.steps * strength), steps);
    if (initSteps === 0) throw new SamplerInputError(`strength ${strength} of ${options.steps} steps runs no step`);
    const startStep = steps - initSteps;
    const t = [...timesteps].sort((a, b) => b - a)[startStep];
    const noise = options.xT ?? await sampler.latents(options.seed ?? 0, count, options.firstImage ?? 0);
    if (noise.length !== init.length) {
      throw new SamplerInputError(`the noise holds ${noise.length} values, the init latents ${init.length}`);
    }
    const alpha = this.schedule.alphasCumprod[t];
    const a = Math.sqrt(alpha);
    const b = Math.sqrt(1 - alpha);
    return { xT: init.map((v, i) => a * v + b * noise[i]), startStep };
  }

  /** Images [count, 3, H, W] in [-1, 1] → latents: the VAE's mean × scaling_factor. */
  async encodeImages(images: Float32Array): Promise<Float32Array> {
    const [c, h, w] = this.imageShape;
    const count = images.length / (this.autoencoder.config.inChannels * h * w);
    if (!Number.isInteger(count) || count === 0) {
      throw new SamplerInputError(`images hold ${images.length} values, not a whole number of ${c}x${h}x${w}`);
    }
    const { latents } = await this.autoencoder.encode(images, [count, this.autoencoder.config.inChannels, h, w]);
    this.notePeak();
    const scale = this.autoencoder.config.scalingFactor;
    return latents.map((v) => v * scale);
  }

  /** Latents → images: latents / scaling_factor through the VAE's decoder (not clamped). */
  async decodeLatents(latents: Float32Array): Promise<{ images: Float32Array; imageShape: [number, number, number] }> {
    const [c, h, w] = this.latentShape;
    const count = this.checkedCount(latents.length, c * h * w, 'latents');
    const scale = this.autoencoder.config.scalingFactor;
    const { image } = await this.autoencoder.decode(latents.map((v) => v / scale), [count, c, h, w]);
    this.notePeak();
    checkFinite(image, 'the decoded images');
    return { images: image, imageShape: this.imageShape };
  }

  /**
   * The paper's inversion in latent space under a prompt, without guidance: images (encoded by
   * the VAE first) or latents → x_T.
   */
  encode(
    input: { images: Float32Array } | { latents: Float32Array },
    options: DdimEncodeOptions & Pick<PromptOptions, 'prompt' | 'clipSkip'>,
  ): Promise<DdimResult> {
    return this.exclusive(async () => {
      const latents = 'images' in input ? await this.encodeImages(input.images) : input.latents;
      const [c, h, w] = this.latentShape;
      const count = this.checkedCount(latents.length, c * h * w, 'latents');
      const { positive } = this.promptsFor(options, count);
      const encoded = await this.encodePrompt(positive, options.clipSkip ?? 0);
      const { network, denoiser, sampler } = await this.conditionalSampler();
      denoiser.beginBatch = this.conditioning(
        network,
        [encoded.embeds],
        this.model.tokenizer.maxLength * this.model.textEncoder.config.hiddenSize,
      );
      const result = await sampler.encode(latents, options);
      if (this.options.releaseTextEncoder) this.releaseTextEncoder();
      return result;
    });
  }

  /** Spherical interpolation between two seeds' starting latents, each frame sampled under the prompt and decoded. */
  async interpolate(
    options: Omit<TextToImageSampleOptions, 'xT' | 'count' | 'initImage' | 'initLatents'> & {
      seedA: number;
      seedB: number;
      frames: number;
    },
  ): Promise<TextToImageResult & { latents: Float32Array }> {
    if (!Number.isInteger(options.frames) || options.frames < 2) {
      throw new SamplerInputError(`frames must be an integer of at least 2, got ${options.frames}`);
    }
    const { sampler } = await this.guidedSampler();
    const a = await sampler.latents(options.seedA, 1);
    const b = await sampler.latents(options.seedB, 1);
    const latents = new Float32Array(options.frames * a.length);
    for (let i = 0; i < options.frames; i++) latents.set(slerp(a, b, i / (options.frames - 1)), i * a.length);
    const result = await this.sample({ ...options, xT: latents });
    return { ...result, latents };
  }

  destroy(): void {
    this.releaseTextEncoder();
    for (const part of [this.guided, this.conditional]) {
      part?.sampler.destroy();
      part?.network.destroy();
    }
    this.guided?.denoiser.destroy();
    this.autoencoder.destroy();
  }
}

function checkFinite(values: Float32Array, what: string): void {
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    throw new NonFiniteOutputError(
      `${what} hold ${values[bad]} at element ${bad} (in f16 activations a VAE can overflow: its config's force_upcast keeps them f32)`,
    );
  }
}
