/**
 * An AutoencoderKL or VQModel ready to run: config and weights parsed and checked once
 * (`readAutoencoder`), weights uploaded once per device, and its encoder and decoder compiled for
 * each image size asked (kept for later calls). A batch is split into the largest batch whose
 * tensors fit the device's limits; an image never depends on the batch it runs in.
 */
import type { Gpu } from '../gpu/device.ts';
import type { Precision } from '../gpu/shader_source.ts';
import type { MemoryNeed } from '../gpu/memory_budget.ts';
import { CompiledGraph, type GpuMemory, type GraphLimits, graphsMemory } from '../graph/executor.ts';
import type { Graph } from '../graph/graph.ts';
import type { SafetensorsFile } from '../io/safetensors.ts';
import { parseWeightsFile } from '../io/weights_file.ts';
import type { ConvKernels } from '../ops/conv2d.ts';
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
import { CallQueue, deviceKernels, devicePrecision, fitsLimits, graphLimits, largestFittingBatch, weightsOn } from './compile.ts';
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
  /** As asked: 'f16' runs as 'f16-packed' under the config's force_upcast (autoencoderPrecision). */
  precision?: Precision;
  kernels?: ConvKernels;
  /** Limits stricter than the device's (WebGPU's defaults, to check a page can run it). */
  limits?: Partial<GraphLimits>;
}

/**
 * The precision an autoencoder runs at when `precision` is asked. Under its config's force_upcast,
 * 'f16' runs as 'f16-packed': such a VAE overflows in f16 activations (black images), and
 * diffusers upcasts its fp16 weights to fp32 before decoding, so it computes in f32 on f16-rounded
 * weights, which is f16-packed, at half the weight memory of f32.
 */
export function autoencoderPrecision(config: AutoencoderConfig, precision: Precision | undefined): Precision | undefined {
  return precision === 'f16' && config.forceUpcast ? 'f16-packed' : precision;
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

/** diffusers' tile_overlap_factor: neighbouring tiles share a quarter of a tile, blended linearly. */
const TILE_OVERLAP = 0.25;

/** One image's part (or the whole), [channels, height, width]. */
export interface Tile {
  data: Float32Array;
  channels: number;
  height: number;
  width: number;
}

/** Rows [top, top + height) and columns [left, left + width) of `image`. */
function crop(image: Tile, top: number, left: number, height: number, width: number): Tile {
  const data = new Float32Array(image.channels * height * width);
  for (let c = 0; c < image.channels; c++) {
    for (let y = 0; y < height; y++) {
      const from = (c * image.height + top + y) * image.width + left;
      data.set(image.data.subarray(from, from + width), (c * height + y) * width);
    }
  }
  return { data, channels: image.channels, height, width };
}

/**
 * diffusers' tiled VAE assembly (AutoencoderKL.tiled_decode / tiled_encode): each tile's first
 * `extent` rows blend linearly with the last rows of the tile above (then its first columns with
 * the tile to its left, already blended), in place, and each tile keeps its first `limit` rows and
 * columns. The tiles are a grid, row by row.
 */
export function blendTiles(rows: Tile[][], extent: number, limit: number): Tile {
  for (const [i, row] of rows.entries()) {
    for (const [j, tile] of row.entries()) {
      const { channels, height, width } = tile;
      if (i > 0) {
        const above = rows[i - 1][j];
        const e = Math.min(above.height, height, extent);
        for (let c = 0; c < channels; c++) {
          for (let y = 0; y < e; y++) {
            const t = y / e;
            const a = (c * above.height + above.height - e + y) * above.width;
            const b = (c * height + y) * width;
            for (let x = 0; x < width; x++) tile.data[b + x] = above.data[a + x] * (1 - t) + tile.data[b + x] * t;
          }
        }
      }
      if (j > 0) {
        const left = row[j - 1];
        const e = Math.min(left.width, width, extent);
        for (let c = 0; c < channels; c++) {
          for (let y = 0; y < height; y++) {
            const a = (c * left.height + y) * left.width + left.width - e;
            const b = (c * height + y) * width;
            for (let x = 0; x < e; x++) tile.data[b + x] = left.data[a + x] * (1 - x / e) + tile.data[b + x] * (x / e);
          }
        }
      }
    }
  }
  const channels = rows[0][0].channels;
  const heights = rows.map((row) => Math.min(row[0].height, limit));
  const widths = rows[0].map((tile) => Math.min(tile.width, limit));
  const height = heights.reduce((a, b) => a + b, 0);
  const width = widths.reduce((a, b) => a + b, 0);
  const data = new Float32Array(channels * height * width);
  let top = 0;
  for (const [i, row] of rows.entries()) {
    let left = 0;
    for (const [j, tile] of row.entries()) {
      for (let c = 0; c < channels; c++) {
        for (let y = 0; y < heights[i]; y++) {
          const from = (c * tile.height + y) * tile.width;
          data.set(tile.data.subarray(from, from + widths[j]), (c * height + top + y) * width + left);
        }
      }
      left += widths[j];
    }
    top += heights[i];
  }
  return { data, channels, height, width };
}

export class Autoencoder {
  private readonly graphs = new Map<string, Compiled>();
  private readonly calls = new CallQueue();
  readonly precision: Precision;
  private readonly kernels: ConvKernels;
  private readonly limits: GraphLimits;

  private constructor(readonly gpu: Gpu, readonly model: AutoencoderWeights, private readonly options: AutoencoderOptions) {
    this.precision = devicePrecision(gpu, autoencoderPrecision(model.config, options.precision));
    this.kernels = deviceKernels(gpu, options.kernels);
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
    return this.calls.run(work);
  }

  /** The graph `compiled` makes for these arguments, and the batch it takes. */
  private graphFor(part: 'encoder' | 'decoder', wanted: number, height: number, width: number, forceNotQuantize: boolean) {
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
    return largestFittingBatch(build, wanted, this.limits);
  }

  private async compiled(part: 'encoder' | 'decoder', count: number, height: number, width: number, forceNotQuantize = false) {
    const wanted = Math.min(count, this.options.batch ?? count);
    const key = `${part}:${wanted}:${height}x${width}:${forceNotQuantize}`;
    const cached = this.graphs.get(key);
    if (cached) return cached;
    const { graph, batch } = this.graphFor(part, wanted, height, width, forceNotQuantize);
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
   * What decoding `count` latents of h x w would allocate, counted without allocating: the graph a
   * decode compiles first (a tile's, where the image is tiled; the smaller tiles at its edges
   * compile graphs of their own beside it, so then this is a lower bound). For a check before a
   * long run.
   */
  decoderMemoryNeed(count: number, h: number, w: number): MemoryNeed {
    const tile = this.tileSize('decoder', h, w);
    const wanted = tile === null ? Math.min(count, this.options.batch ?? count) : 1;
    const { graph } = this.graphFor('decoder', wanted, tile ?? h, tile ?? w, false);
    return CompiledGraph.plannedNeed(this.gpu, graph, {
      label: 'vae.decoder',
      weights: weightsOn(this.model, this.gpu.device, this.precision),
    });
  }

  /**
   * Whether one image of this size fits the limits in one pass; else the latent tile size to split
   * it into: diffusers' tile_latent_min_size (the config's sample_size over the downscale factor),
   * halved until a tile fits, a multiple of 4 so that the tiles meet exactly.
   */
  tileSize(part: 'encoder' | 'decoder', latentHeight: number, latentWidth: number): number | null {
    const f = this.downscaleFactor;
    const graphAt = (h: number, w: number) => {
      const weights = new WeightStore(this.model.file, { check: false });
      const options = { batch: 1, kernels: this.kernels, precision: this.precision };
      return part === 'encoder'
        ? buildEncoderGraph(this.model.config, weights, { ...options, height: h * f, width: w * f })
        : buildDecoderGraph(this.model.config, weights, { ...options, height: h, width: w });
    };
    if (fitsLimits(graphAt(latentHeight, latentWidth), this.limits)) return null;
    let size = Math.max(4, Math.floor(this.model.config.sampleSize / f / 4) * 4);
    while (size > 4 && !fitsLimits(graphAt(size, size), this.limits)) size = Math.max(4, Math.floor(size / 8) * 4);
    // Even the smallest tile may not fit: then the error names what one needs.
    CompiledGraph.checkLimits(graphAt(size, size), this.limits);
    return size;
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
      const tile = this.tileSize('encoder', height / f, width / f);
      const moments = tile === null
        ? (await this.runBatches(await this.compiled('encoder', n, height, width), IMAGE_INPUT, images, n, [MOMENTS_OUTPUT]))[0]
        : await this.encodeTiled(images, shape, tile);
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
      const tile = this.tileSize('decoder', h, w);
      const outputs = quantize ? [IMAGE_OUTPUT, CODE_INDICES_OUTPUT] : [IMAGE_OUTPUT];
      const [image, indices] = tile === null
        ? await this.runBatches(await this.compiled('decoder', n, h, w, !quantize), LATENT_INPUT, latents, n, outputs)
        : await this.decodeTiled(latents, shape, tile, quantize);
      const f = this.downscaleFactor;
      return {
        image,
        shape: [n, this.model.config.outChannels, h * f, w * f],
        ...(indices ? { codeIndices: new Int32Array(indices.buffer, indices.byteOffset, indices.length) } : {}),
      };
    });
  }

  /** Each image in overlapping tiles of `tile` latents, blended as diffusers' tiled_encode does: the moments [N, C, h, w]. */
  private async encodeTiled(images: Float32Array, shape: [number, number, number, number], tile: number): Promise<Float32Array> {
    const [n, c, height, width] = shape;
    const f = this.downscaleFactor;
    const sampleTile = tile * f;
    const step = Math.floor(sampleTile * (1 - TILE_OVERLAP));
    const extent = Math.floor(tile * TILE_OVERLAP);
    const parts: Float32Array[] = [];
    for (let k = 0; k < n; k++) {
      const image: Tile = { data: images.subarray(k * c * height * width, (k + 1) * c * height * width), channels: c, height, width };
      const rows: Tile[][] = [];
      for (let i = 0; i < height; i += step) {
        const row: Tile[] = [];
        for (let j = 0; j < width; j += step) {
          const part = crop(image, i, j, Math.min(sampleTile, height - i), Math.min(sampleTile, width - j));
          const compiled = await this.compiled('encoder', 1, part.height, part.width);
          const [moments] = await this.runBatches(compiled, IMAGE_INPUT, part.data, 1, [MOMENTS_OUTPUT]);
          row.push({
            data: moments,
            channels: moments.length / ((part.height / f) * (part.width / f)),
            height: part.height / f,
            width: part.width / f,
          });
        }
        rows.push(row);
      }
      parts.push(blendTiles(rows, extent, tile - extent).data);
    }
    return concat(parts);
  }

  /** Each image's latents in overlapping tiles of `tile`, decoded and blended as diffusers' tiled_decode does. */
  private async decodeTiled(
    latents: Float32Array,
    shape: [number, number, number, number],
    tile: number,
    quantize: boolean,
  ): Promise<Float32Array[]> {
    const [n, c, h, w] = shape;
    const f = this.downscaleFactor;
    const step = Math.floor(tile * (1 - TILE_OVERLAP));
    const extent = Math.floor(tile * f * TILE_OVERLAP);
    const outChannels = this.model.config.outChannels;
    const images: Float32Array[] = [];
    // Each position's code depends on its latent alone: tiles agree where they overlap.
    const indices = new Float32Array(quantize ? n * h * w : 0);
    const codes = new Int32Array(indices.buffer);
    for (let k = 0; k < n; k++) {
      const z: Tile = { data: latents.subarray(k * c * h * w, (k + 1) * c * h * w), channels: c, height: h, width: w };
      const rows: Tile[][] = [];
      for (let i = 0; i < h; i += step) {
        const row: Tile[] = [];
        for (let j = 0; j < w; j += step) {
          const part = crop(z, i, j, Math.min(tile, h - i), Math.min(tile, w - j));
          const compiled = await this.compiled('decoder', 1, part.height, part.width, !quantize);
          const outputs = quantize ? [IMAGE_OUTPUT, CODE_INDICES_OUTPUT] : [IMAGE_OUTPUT];
          const [image, tileIndices] = await this.runBatches(compiled, LATENT_INPUT, part.data, 1, outputs);
          if (tileIndices) {
            const tileCodes = new Int32Array(tileIndices.buffer, tileIndices.byteOffset, tileIndices.length);
            for (let y = 0; y < part.height; y++) {
              codes.set(tileCodes.subarray(y * part.width, (y + 1) * part.width), (k * h + i + y) * w + j);
            }
          }
          row.push({ data: image, channels: outChannels, height: part.height * f, width: part.width * f });
        }
        rows.push(row);
      }
      const blended = blendTiles(rows, extent, tile * f - extent);
      if (blended.height !== h * f || blended.width !== w * f) {
        throw new Error(`tiles of ${tile} latents make ${blended.height}x${blended.width} pixels, not ${h * f}x${w * f}`);
      }
      images.push(blended.data);
    }
    return quantize ? [concat(images), indices] : [concat(images)];
  }

  /**
   * GPU memory held now: the weights once, and the buffers of every graph compiled so far (each
   * image size and tile size keeps its own, reused by later calls); and the largest tensor any of
   * them binds.
   */
  memory(): GpuMemory & { graphs: number } {
    // The encoder's and the decoder's weights are counted once each, whatever the graphs sharing them.
    return { ...graphsMemory([...this.graphs.values()].map((compiled) => compiled.graph)), graphs: this.graphs.size };
  }

  /** Frees every compiled graph and, once no other user holds them, the weights. */
  destroy(): void {
    for (const { graph } of this.graphs.values()) graph.destroy();
    this.graphs.clear();
  }
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((total, p) => total + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
