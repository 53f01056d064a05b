/**
 * An AutoencoderKL or VQModel ready to run: config and weights parsed and checked once
 * (`readAutoencoder`), weights uploaded once per device, and its encoder and decoder compiled for
 * each image size asked (kept for later calls). A batch is split into the largest batch whose
 * tensors fit the device's limits; an image never depends on the batch it runs in.
 */
import type { Gpu } from '../gpu/device.ts';
import { type Precision, PRECISIONS } from '../gpu/shader_source.ts';
import { CompiledGraph, type GraphLimits } from '../graph/executor.ts';
import type { Graph } from '../graph/graph.ts';
import type { SafetensorsFile } from '../io/safetensors.ts';
import { parseWeightsFile } from '../io/weights_file.ts';
import { type ConvKernels, kernelsMissingFeatures, preferredKernels } from '../ops/conv2d.ts';
import {
  type AutoencoderGraphOptions,
  buildDecoderGraph,
  buildEncoderGraph,
  CODE_INDICES_OUTPUT,
  IMAGE_INPUT,
  IMAGE_OUTPUT,
  LATENT_INPUT,
  MOMENTS_OUTPUT,
} from './autoencoder.ts';
import { type AutoencoderConfig, downscaleFactor, parseAutoencoderConfig } from './autoencoder_config.ts';
import { graphLimits, largestFittingBatch, weightsOn } from './compile.ts';
import { UnsupportedFeatureError, UnsupportedPrecisionError } from './unet_2d_model.ts';
import { WeightStore } from './weights.ts';

export interface AutoencoderFiles {
  /** config.json, parsed. */
  config: unknown;
  /** diffusion_pytorch_model.safetensors, or the .bin (a torch.save state dict) told apart by its first bytes. */
  weights: Uint8Array;
}

export interface AutoencoderWeights {
  config: AutoencoderConfig;
  file: SafetensorsFile;
}

/** Latents that do not fit this autoencoder, an image whose size it cannot encode. */
export class AutoencoderInputError extends Error {
  override name = 'AutoencoderInputError';
}

/** Parses and validates an autoencoder's config and weights without touching the GPU. */
export function readAutoencoder(files: AutoencoderFiles): AutoencoderWeights {
  const file = parseWeightsFile(files.weights);
  const config = parseAutoencoderConfig(files.config);
  // Build both halves once to check every weight against the config before any GPU work.
  const store = new WeightStore(file, { check: true });
  const size = downscaleFactor(config);
  buildEncoderGraph(config, store, { batch: 1, height: size, width: size });
  buildDecoderGraph(config, store, { batch: 1, height: 1, width: 1 });
  store.finish();
  return { config, file };
}

export interface AutoencoderOptions {
  /** Images per pass at most (a batch is also split where it would not fit the limits). */
  batch?: number;
  precision?: Precision;
  kernels?: ConvKernels;
  /** Limits stricter than the device's (WebGPU's defaults, to check a page can run it). */
  limits?: Partial<GraphLimits>;
}

export interface EncodeResult {
  /** KL: the latent distribution's mean [N, C, h, w]. VQ: the latents before quantization. */
  latents: Float32Array;
  /** KL only: its log-variance, clamped to [-30, 20] as diffusers does. */
  logvar?: Float32Array;
  shape: [number, number, number, number];
}

export interface DecodeResult {
  /** [N, out_channels, H, W], not clamped. */
  image: Float32Array;
  shape: [number, number, number, number];
  /** VQ with quantization: each position's codebook index [N, h, w]. */
  codeIndices?: Int32Array;
}

interface Compiled {
  graph: CompiledGraph;
  batch: number;
}

export class Autoencoder {
  private readonly graphs = new Map<string, Compiled>();
  private queue: Promise<unknown> = Promise.resolve();
  readonly precision: Precision;
  private readonly kernels: ConvKernels;
  private readonly limits: GraphLimits;

  private constructor(readonly gpu: Gpu, readonly model: AutoencoderWeights, private readonly options: AutoencoderOptions) {
    this.precision = options.precision ?? 'f32';
    if (!PRECISIONS.includes(this.precision)) throw new Error(`precision must be one of ${PRECISIONS.join(', ')}, got '${this.precision}'`);
    if (this.precision === 'f16' && !gpu.device.features.has('shader-f16')) {
      throw new UnsupportedPrecisionError(`precision 'f16' needs an adapter with the shader-f16 feature, and ${gpu.adapterName} has none`);
    }
    this.kernels = options.kernels ?? preferredKernels(gpu.adapter);
    const missing = kernelsMissingFeatures(this.kernels, gpu.device);
    if (missing.length) throw new UnsupportedFeatureError(`kernels '${this.kernels}' need the adapter feature '${missing[0]}'`);
    this.limits = graphLimits(gpu, options.limits);
  }

  /** Nothing is compiled until an image size is asked for. */
  static load(gpu: Gpu, model: AutoencoderWeights, options: AutoencoderOptions = {}): Autoencoder {
    return new Autoencoder(gpu, model, options);
  }

  get config(): AutoencoderConfig {
    return this.model.config;
  }

  /** Image pixels per latent position along each side. */
  get downscaleFactor(): number {
    return downscaleFactor(this.model.config);
  }

  /** Channels of the latents the encoder gives and the decoder takes. */
  get latentChannels(): number {
    return this.model.config.className === 'AutoencoderKL' ? this.model.config.latentChannels : this.model.config.vqEmbedDim;
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => {});
    return run;
  }

  private async compiled(part: 'encoder' | 'decoder', count: number, height: number, width: number, forceNotQuantize = false) {
    const wanted = Math.min(count, this.options.batch ?? count);
    const key = `${part}:${wanted}:${height}x${width}:${forceNotQuantize}`;
    const cached = this.graphs.get(key);
    if (cached) return cached;
    const builder = part === 'encoder' ? buildEncoderGraph : buildDecoderGraph;
    const graphOptions: Omit<AutoencoderGraphOptions, 'batch'> = {
      height,
      width,
      precision: this.precision,
      kernels: this.kernels,
      maxStorageBuffers: this.gpu.device.limits.maxStorageBuffersPerShaderStage,
      forceNotQuantize,
    };
    const build = (batch: number): Graph =>
      builder(this.model.config, new WeightStore(this.model.file, { check: false }), { ...graphOptions, batch });
    const { graph, batch } = largestFittingBatch(build, wanted, this.limits);
    const compiled = {
      graph: await CompiledGraph.compile(this.gpu, graph, {
        label: `vae.${part}`,
        weights: weightsOn(this.model, this.gpu.device, this.precision),
        limits: this.limits,
      }),
      batch,
    };
    this.graphs.set(key, compiled);
    return compiled;
  }

  /**
   * Runs `part` over `count` items of `perItem` values from `input`, `batch` at a time; returns
   * each named output's values for all items.
   */
  private async runBatches(
    compiled: Compiled,
    inputName: string,
    input: Float32Array,
    count: number,
    outputs: string[],
  ): Promise<Float32Array[]> {
    const { graph, batch } = compiled;
    const perItem = input.length / count;
    const results: Float32Array[] = [];
    for (let first = 0; first < count; first += batch) {
      const n = Math.min(batch, count - first);
      const part = new Float32Array(batch * perItem);
      part.set(input.subarray(first * perItem, (first + n) * perItem));
      graph.write(inputName, part);
      await graph.run();
      for (const [i, name] of outputs.entries()) {
        const values = await graph.read(name);
        const perOut = values.length / batch;
        results[i] ??= new Float32Array(count * perOut);
        results[i].set(values.subarray(0, n * perOut), first * perOut);
      }
    }
    return results;
  }

  /** Images [N, C, H, W] in [-1, 1] → the latent distribution (KL) or the latents before quantization (VQ). */
  encode(images: Float32Array, shape: [number, number, number, number]): Promise<EncodeResult> {
    const [n, c, height, width] = shape;
    const { config } = this.model;
    const f = this.downscaleFactor;
    if (c !== config.inChannels) {
      throw new AutoencoderInputError(`the autoencoder encodes images of ${config.inChannels} channels, not ${c}`);
    }
    if (height % f !== 0 || width % f !== 0) {
      throw new AutoencoderInputError(`image size ${height}x${width} is not a multiple of the autoencoder's downscale factor ${f}`);
    }
    if (images.length !== n * c * height * width) {
      throw new AutoencoderInputError(`the images hold ${images.length} values, not ${shape.join('x')}`);
    }
    return this.exclusive(async () => {
      const compiled = await this.compiled('encoder', n, height, width);
      const [moments] = await this.runBatches(compiled, IMAGE_INPUT, images, n, [MOMENTS_OUTPUT]);
      const latentShapeOut: [number, number, number, number] = [n, this.latentChannels, height / f, width / f];
      if (config.className === 'VQModel') return { latents: moments, shape: latentShapeOut };
      // mean and log-variance are the two halves of each image's channels.
      const plane = (height / f) * (width / f) * config.latentChannels;
      const latents = new Float32Array(n * plane);
      const logvar = new Float32Array(n * plane);
      for (let i = 0; i < n; i++) {
        latents.set(moments.subarray(2 * i * plane, (2 * i + 1) * plane), i * plane);
        logvar.set(moments.subarray((2 * i + 1) * plane, (2 * i + 2) * plane), i * plane);
      }
      for (let i = 0; i < logvar.length; i++) logvar[i] = Math.min(20, Math.max(-30, logvar[i]));
      return { latents, logvar, shape: latentShapeOut };
    });
  }

  /**
   * Latents [N, C, h, w], exactly what post_quant_conv (VQ: the quantizer) receives → images, not
   * clamped. `forceNotQuantize`: VQ without snapping to the codebook.
   */
  decode(
    latents: Float32Array,
    shape: [number, number, number, number],
    options: { forceNotQuantize?: boolean } = {},
  ): Promise<DecodeResult> {
    const [n, c, h, w] = shape;
    if (c !== this.latentChannels) {
      throw new AutoencoderInputError(`the autoencoder decodes latents of ${this.latentChannels} channels, not ${c}`);
    }
    if (latents.length !== n * c * h * w) {
      throw new AutoencoderInputError(`the latents hold ${latents.length} values, not ${shape.join('x')}`);
    }
    const quantize = this.model.config.className === 'VQModel' && !options.forceNotQuantize;
    return this.exclusive(async () => {
      const compiled = await this.compiled('decoder', n, h, w, !quantize);
      const outputs = quantize ? [IMAGE_OUTPUT, CODE_INDICES_OUTPUT] : [IMAGE_OUTPUT];
      const [image, indices] = await this.runBatches(compiled, LATENT_INPUT, latents, n, outputs);
      const f = this.downscaleFactor;
      return {
        image,
        shape: [n, this.model.config.outChannels, h * f, w * f],
        ...(indices ? { codeIndices: new Int32Array(indices.buffer, indices.byteOffset, indices.length) } : {}),
      };
    });
  }

  /** Frees every compiled graph and, once no other user holds them, the weights. */
  destroy(): void {
    for (const { graph } of this.graphs.values()) graph.destroy();
    this.graphs.clear();
  }
}
