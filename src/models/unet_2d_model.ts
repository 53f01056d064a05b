/**
 * A UNet2DModel ready to run: its config and weights parsed and checked once (`readUNet`), its
 * weights uploaded once per device, compiled for a batch size (`UNet.compile`; several batch
 * sizes share the weights). `forward` is the plain epsilon prediction; samplers record
 * `compiled` into their own command encoders.
 */
import type { Gpu } from '../gpu/device.ts';
import type { CompileProgressCallback } from '../gpu/kernel.ts';
import { Readback, Recorder } from '../gpu/recorder.ts';
import type { Precision } from '../gpu/shader_source.ts';
import { CompiledGraph, type GraphLimits } from '../graph/executor.ts';
import {
  CallQueue,
  deviceKernels,
  devicePrecision,
  graphLimits,
  largestFittingBatch,
  UnsupportedFeatureError,
  UnsupportedPrecisionError,
  weightsOn,
} from './compile.ts';
import type { Graph } from '../graph/graph.ts';
import type { SafetensorsFile } from '../io/safetensors.ts';
import { parseWeightsFile } from '../io/weights_file.ts';
import { parseUNetConfig, type UNetConfig } from './unet_2d_config.ts';
import { buildUNetGraph, CLASS_LABEL_INPUT, EPS_OUTPUT, SAMPLE_INPUT, TIMESTEP_INPUT, type UNetGraphOptions } from './unet_2d.ts';
import { WeightStore } from './weights.ts';
import type { Denoiser } from './denoiser.ts';

export interface UNetFiles {
  /** config.json, parsed. */
  config: unknown;
  /** diffusion_pytorch_model.safetensors, or the .bin (a torch.save state dict) told apart by its first bytes. */
  weights: Uint8Array;
}

export interface UNetWeights {
  config: UNetConfig;
  file: SafetensorsFile;
}

/** Parses and validates a model's config and weights without touching the GPU. */
export function readUNet(files: UNetFiles): UNetWeights {
  // The weights first: a file that is not what it claims (a pickle asking to run code) is named
  // as such even when the config is refused too.
  const file = parseWeightsFile(files.weights);
  const config = parseUNetConfig(files.config);
  // Build once at batch 1 to check every weight against the config before any GPU work.
  const store = new WeightStore(file, { check: true });
  buildUNetGraph(config, store, { batch: 1 });
  store.finish();
  return { config, file };
}

export { UnsupportedFeatureError, UnsupportedPrecisionError };

export interface UNetCompileOptions extends UNetGraphOptions {
  /** Limits stricter than the device's (to leave headroom, or to test the batch split). */
  limits?: Partial<GraphLimits>;
  /** Hears the graph's programs compiled (CompiledGraph.compile's onProgress). */
  onCompileProgress?: CompileProgressCallback;
}

export class UNet implements Denoiser {
  private readonly readback: Readback;
  private readonly calls = new CallQueue();

  private constructor(
    readonly config: UNetConfig,
    readonly compiled: CompiledGraph,
    /** Images per forward: the batch asked for, or the largest part of it the adapter can hold. */
    readonly batch: number,
    /** The batch asked for at compile. */
    readonly requestedBatch: number,
    readonly height: number,
    readonly width: number,
  ) {
    this.readback = new Readback(compiled.gpu.device, 'unet.readback', compiled.buffer(EPS_OUTPUT).size);
  }

  /**
   * Compiles the model for `options.batch` images per forward. When a batch that large needs a
   * tensor or a dispatch beyond the adapter's limits, the largest batch that fits is compiled
   * instead (callers run more forwards; an image does not depend on its batch); a single image
   * that does not fit is refused with a GraphLimitError that gives the numbers.
   */
  static async compile(gpu: Gpu, model: UNetWeights, options: UNetCompileOptions): Promise<UNet> {
    if (!Number.isInteger(options.batch) || options.batch < 1) throw new Error(`batch must be a positive integer, got ${options.batch}`);
    const precision = devicePrecision(gpu, options.precision);
    const kernels = deviceKernels(gpu, options.kernels);
    const limits = graphLimits(gpu, options.limits);
    const graphOptions = {
      ...options,
      precision,
      kernels,
      // A lower limit asked for (to test the unfused path) holds; a higher one is the device's.
      maxStorageBuffers: Math.min(gpu.device.limits.maxStorageBuffersPerShaderStage, options.maxStorageBuffers ?? Infinity),
    };
    const build = (batch: number): Graph =>
      buildUNetGraph(model.config, new WeightStore(model.file, { check: false }), { ...graphOptions, batch });
    const { graph, batch } = largestFittingBatch(build, options.batch, limits);
    const compiled = await CompiledGraph.compile(gpu, graph, {
      label: 'unet',
      weights: weightsOn(model, gpu.device, precision),
      limits,
      onProgress: options.onCompileProgress,
    });
    const size = options.size ?? model.config.sampleSize;
    return new UNet(model.config, compiled, batch, options.batch, options.height ?? size, options.width ?? size);
  }

  get precision(): Precision {
    return this.compiled.graph.precision;
  }

  get sampleShape(): [number, number, number, number] {
    return [this.batch, this.config.inChannels, this.height, this.width];
  }

  get sampleBuffer(): GPUBuffer {
    return this.compiled.buffer(SAMPLE_INPUT);
  }

  get timestepBuffer(): GPUBuffer {
    return this.compiled.buffer(TIMESTEP_INPUT);
  }

  /** Class-conditional models: each image's label, i32 [batch]. */
  get classLabelBuffer(): GPUBuffer | undefined {
    return this.config.classEmbedType ? this.compiled.buffer(CLASS_LABEL_INPUT) : undefined;
  }

  get epsBuffer(): GPUBuffer {
    return this.compiled.buffer(EPS_OUTPUT);
  }

  /**
   * Runs `work` alone on this UNet's buffers: calls that overlap in time (two samples started
   * together, an eps during a sample) run one after another, in the order they were made.
   */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.calls.run(work);
  }

  /** Records one forward into `encoder` (the sampler's steps). */
  record(encoder: GPUCommandEncoder, recorder: Recorder): void {
    recorder.graph(encoder, this.compiled);
  }

  /** ε(x, t) for a whole batch: x is [N, C, H, W], t one timestep per image (and a class label each, when conditional). */
  forward(
    x: Float32Array,
    t: Int32Array,
    recorder: Recorder = new Recorder(this.compiled.gpu.device),
    classLabels?: Int32Array,
  ): Promise<Float32Array> {
    if (this.config.classEmbedType && !classLabels) throw new Error('this model is class-conditional: forward needs class labels');
    return this.exclusive(async () => {
      this.compiled.write(SAMPLE_INPUT, x);
      this.compiled.write(TIMESTEP_INPUT, t);
      if (this.config.classEmbedType) this.compiled.write(CLASS_LABEL_INPUT, classLabels!);
      await this.compiled.run(recorder);
      return await this.compiled.read(EPS_OUTPUT, this.readback);
    });
  }

  /** A captured intermediate (named in `capture` at compile) after the last run. */
  read(name: string): Promise<Float32Array> {
    return this.exclusive(() => this.compiled.read(name));
  }

  destroy(): void {
    this.readback.destroy();
    this.compiled.destroy();
  }
}
