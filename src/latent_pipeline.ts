/**
 * Latent diffusion (diffusers' LDMPipeline; the first half of Stable Diffusion): DDIM runs on the
 * UNet in an autoencoder's latent space, and the final latents are decoded into images. Composed
 * the way a pipeline folder's model_index.json composes it: the DdimPipeline of the UNet and
 * scheduler, and the autoencoder (VQModel or AutoencoderKL).
 *
 * Latents follow diffusers: a VQ latent is decoded as it is (LDMPipeline applies no scaling
 * factor); a KL latent is divided by the VAE's scaling_factor before decoding, and an image
 * encodes to the VAE's mean times scaling_factor.
 */
import type { Gpu } from './gpu/device.ts';
import { Autoencoder, AutoencoderInputError, type AutoencoderWeights } from './models/autoencoder_model.ts';
import { downscaleFactor } from './models/autoencoder_config.ts';
import { type DdimModel, DdimPipeline, type InterpolateOptions, type ModelFiles, type PipelineOptions, readModel } from './pipeline.ts';
import type { DdimEncodeOptions, DdimResult, DdimSampleOptions } from './sampler/ddim.ts';

export interface LatentPipelineOptions extends Omit<PipelineOptions, 'height' | 'width'> {
  /** The image's size in pixels (a multiple of the autoencoder's downscale factor): the UNet's sample_size times that factor by default. */
  height?: number;
  width?: number;
}

/** Sampled latents and the images they decode to. */
export interface LatentResult extends DdimResult {
  /** The decoded images [count, C, H, W], not clamped (about [-1, 1]). */
  images: Float32Array;
  imageShape: [number, number, number];
  /** VQ: each latent position's codebook index [count, h, w]. */
  codeIndices?: Int32Array;
}

export class LatentDiffusionPipeline {
  private constructor(readonly ddim: DdimPipeline, readonly autoencoder: Autoencoder) {}

  /**
   * The latent pipeline of a DdimPipeline already compiled for the latents of `autoencoder`, on
   * the same device (the autoencoder's graphs compile on first use).
   */
  static compose(
    ddim: DdimPipeline,
    autoencoder: AutoencoderWeights,
    options: Pick<LatentPipelineOptions, 'batch' | 'limits'> = {},
  ): LatentDiffusionPipeline {
    return new LatentDiffusionPipeline(ddim, Autoencoder.load(ddim.gpu, autoencoder, options));
  }

  /** A latent model (a pipeline folder with vae/ or vqvae/) compiled on `gpu`; the decoder compiles on first use. */
  static async load(gpu: Gpu, source: ModelFiles | DdimModel, options: LatentPipelineOptions = {}): Promise<LatentDiffusionPipeline> {
    const model = 'unet' in source && 'schedule' in source ? source : readModel(source);
    if (!model.autoencoder) throw new AutoencoderInputError('this model has no autoencoder (vae/ or vqvae/): load it with DdimPipeline');
    const factor = downscaleFactor(model.autoencoder.config);
    const sampleSize = model.unet.config.sampleSize;
    const height = options.height ?? sampleSize * factor;
    const width = options.width ?? sampleSize * factor;
    for (const [name, value] of [['height', height], ['width', width]] as const) {
      if (!Number.isInteger(value) || value <= 0 || value % factor !== 0) {
        throw new AutoencoderInputError(`${name} ${value} is not a positive multiple of the autoencoder's downscale factor ${factor}`);
      }
    }
    const ddim = await DdimPipeline.load(gpu, model, { ...options, height: height / factor, width: width / factor });
    return LatentDiffusionPipeline.compose(ddim, model.autoencoder, options);
  }

  /** [channels, height, width] of one latent. */
  get latentShape(): [number, number, number] {
    return this.ddim.imageShape;
  }

  /** [channels, height, width] of one decoded image. */
  get imageShape(): [number, number, number] {
    const [, h, w] = this.latentShape;
    const f = this.autoencoder.downscaleFactor;
    return [this.autoencoder.config.outChannels, h * f, w * f];
  }

  /** The factor between the UNet's latents and what the decoder takes (KL: 1 / scaling_factor; VQ: 1). */
  private get latentScale(): number {
    const { config } = this.autoencoder;
    return config.className === 'AutoencoderKL' ? config.scalingFactor : 1;
  }

  /** Decodes the UNet's latents [count, C, h, w] into images (KL: divided by scaling_factor first). */
  async decodeLatents(latents: Float32Array): Promise<Pick<LatentResult, 'images' | 'imageShape' | 'codeIndices'>> {
    const [c, h, w] = this.latentShape;
    const count = latents.length / (c * h * w);
    if (!Number.isInteger(count)) {
      throw new AutoencoderInputError(`latents hold ${latents.length} values, not a whole number of ${c}x${h}x${w}`);
    }
    const scale = this.latentScale;
    const z = scale === 1 ? latents : latents.map((v) => v / scale);
    const decoded = await this.autoencoder.decode(z, [count, c, h, w]);
    return { images: decoded.image, imageShape: this.imageShape, ...(decoded.codeIndices ? { codeIndices: decoded.codeIndices } : {}) };
  }

  /** Images [count, C, H, W] in [-1, 1] → the UNet's latents (KL: mean × scaling_factor; VQ: before quantization). */
  async encodeImages(images: Float32Array): Promise<Float32Array> {
    const [c, h, w] = this.imageShape;
    const count = images.length / (c * h * w);
    if (!Number.isInteger(count)) {
      throw new AutoencoderInputError(`images hold ${images.length} values, not a whole number of ${c}x${h}x${w}`);
    }
    const { latents } = await this.autoencoder.encode(images, [count, this.autoencoder.config.inChannels, h, w]);
    const scale = this.latentScale;
    return scale === 1 ? latents : latents.map((v) => v * scale);
  }

  /** DDIM in latent space, then the decoder: `x0` holds the final latents, `images` what they decode to. */
  async sample(options: DdimSampleOptions): Promise<LatentResult> {
    const result = await this.ddim.sample(options);
    options.signal?.throwIfAborted();
    return { ...result, ...(await this.decodeLatents(result.x0)) };
  }

  /**
   * The paper's inversion in latent space: images (`{ images }`, encoded by the autoencoder first)
   * or latents as they are (`{ latents }`) → x_T.
   */
  async encode(input: { images: Float32Array } | { latents: Float32Array }, options: DdimEncodeOptions): Promise<DdimResult> {
    const latents = 'images' in input ? await this.encodeImages(input.images) : input.latents;
    return await this.ddim.encode(latents, options);
  }

  /** Spherical interpolation between two seeds' starting latents, each frame sampled and decoded. */
  async interpolate(options: InterpolateOptions): Promise<LatentResult & { latents: Float32Array }> {
    const result = await this.ddim.interpolate(options);
    options.signal?.throwIfAborted();
    return { ...result, ...(await this.decodeLatents(result.x0)) };
  }

  destroy(): void {
    this.autoencoder.destroy();
    this.ddim.destroy();
  }
}
