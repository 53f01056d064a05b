/**
 * A UNet2DConditionModel (Stable Diffusion's UNet) ready to run, as `UNet` is for UNet2DModel:
 * config and weights parsed and checked once without a GPU (`readConditionalUNet`), weights
 * uploaded once per device and precision, compiled for a batch, latent size and context length
 * (`ConditionalUNet.compile`); `forward(x, t, encoderHiddenStates)` is ε.
 *
 * For a sampler, it offers UNet's buffers (sampleBuffer, timestepBuffer, epsBuffer, `compiled`,
 * `record`, `exclusive`) plus encoderHiddenStatesBuffer: f32 [batch, contextLength,
 * cross_attention_dim], written once per batch of prompts, not per step. It is the
 * ConditionalNetwork that GuidedDenoiser (guidance.ts) drives: classifier-free guidance as
 * StableDiffusionPipeline does it is a compile at twice the images (batch = 2N), the negative
 * prompts' embeddings in images 0 .. N-1 of encoderHiddenStatesBuffer and the prompts' in N .. 2N-1.
 */
import type { Gpu } from '../gpu/device.ts';
import type { CompileProgressCallback } from '../gpu/kernel.ts';
import { Readback, Recorder } from '../gpu/recorder.ts';
import type { Precision } from '../gpu/shader_source.ts';
import { CompiledGraph, type GraphLimits } from '../graph/executor.ts';
import type { Graph } from '../graph/graph.ts';
import type { SafetensorsFile } from '../io/safetensors.ts';
import { parseWeightsFile } from '../io/weights_file.ts';
import { CallQueue, deviceKernels, devicePrecision, graphLimits, largestFittingBatch, weightsOn } from './compile.ts';
import {
  buildConditionalUNetGraph,
  type ConditionalUNetGraphOptions,
  ConditionalUNetInputError,
  conditionalUNetSize,
  DEFAULT_CONTEXT_LENGTH,
  ENCODER_HIDDEN_STATES_INPUT,
  EPS_OUTPUT,
  SAMPLE_INPUT,
  TIMESTEP_INPUT,
} from './unet_2d_condition.ts';
import { type ConditionalUNetConfig, parseConditionalUNetConfig } from './unet_2d_condition_config.ts';
import { WeightStore } from './weights.ts';
import type { ConditionalNetwork } from './guidance.ts';

export interface ConditionalUNetFiles {
  /** unet/config.json, parsed. */
  config: unknown;
  /** diffusion_pytorch_model.safetensors, or the .bin (a torch.save state dict), told apart by content. */
  weights: Uint8Array;
}

export interface ConditionalUNetWeights {
  config: ConditionalUNetConfig;
  file: SafetensorsFile;
}

/** Parses and validates a conditional UNet's config and weights without touching the GPU. */
export function readConditionalUNet(files: ConditionalUNetFiles): ConditionalUNetWeights {
  // The weights first: a file that is not what it claims is named as such even when the config is refused too.
  const file = parseWeightsFile(files.weights);
  const config = parseConditionalUNetConfig(files.config);
  // Build once at the smallest size to check every weight against the config before any GPU work
  // (storage-read kernels: the uniform windows would copy the large convs' weights to slice them).
  const store = new WeightStore(file, { check: true });
  const size = 2 ** (config.blockOutChannels.length - 1);
  buildConditionalUNetGraph(config, store, { batch: 1, height: size, width: size, contextLength: 1, kernels: 'registers-storage' });
  store.finish();
  return { config, file };
}

export interface ConditionalUNetCompileOptions extends ConditionalUNetGraphOptions {
  /** Limits stricter than the device's (to leave headroom, or to test the batch split). */
  limits?: Partial<GraphLimits>;
  /** Hears the graph's programs compiled (CompiledGraph.compile's onProgress). */
  onCompileProgress?: CompileProgressCallback;
}

export class ConditionalUNet implements ConditionalNetwork {
  private readonly readback: Readback;
  private readonly calls = new CallQueue();

  private constructor(
    readonly config: ConditionalUNetConfig,
    readonly compiled: CompiledGraph,
    /** Images per forward: the batch asked for, or the largest part of it the adapter can hold. */
    readonly batch: number,
    /** The batch asked for at compile. */
    readonly requestedBatch: number,
    readonly height: number,
    readonly width: number,
    /** Tokens of encoder_hidden_states per image. */
    readonly contextLength: number,
  ) {
    this.readback = new Readback(compiled.gpu.device, 'unet.readback', compiled.buffer(EPS_OUTPUT).size);
  }

  /**
   * Compiles the model for `options.batch` images per forward (each with its own timestep and
   * encoder_hidden_states). When that batch needs a tensor or a dispatch beyond the adapter's
   * limits, the largest batch that fits is compiled instead; a single image that does not fit is
   * refused with a GraphLimitError that gives the numbers.
   */
  static async compile(gpu: Gpu, model: ConditionalUNetWeights, options: ConditionalUNetCompileOptions): Promise<ConditionalUNet> {
    if (!Number.isInteger(options.batch) || options.batch < 1) {
      throw new ConditionalUNetInputError(`batch must be a positive integer, got ${options.batch}`);
    }
    const precision = devicePrecision(gpu, options.precision);
    const { height, width } = conditionalUNetSize(model.config, options);
    const kernels = deviceKernels(gpu, options.kernels);
    const limits = graphLimits(gpu, options.limits);
    const contextLength = options.contextLength ?? DEFAULT_CONTEXT_LENGTH;
    const graphOptions = {
      ...options,
      height,
      width,
      contextLength,
      precision,
      kernels,
      // A lower limit asked for (to test the unfused path) holds; a higher one is the device's.
      maxStorageBuffers: Math.min(gpu.device.limits.maxStorageBuffersPerShaderStage, options.maxStorageBuffers ?? Infinity),
    };
    const build = (batch: number): Graph =>
      buildConditionalUNetGraph(model.config, new WeightStore(model.file, { check: false }), { ...graphOptions, batch });
    const { graph, batch } = largestFittingBatch(build, options.batch, limits);
    const compiled = await CompiledGraph.compile(gpu, graph, {
      label: 'unet',
      weights: weightsOn(model, gpu.device, precision),
      limits,
      onProgress: options.onCompileProgress,
    });
    return new ConditionalUNet(model.config, compiled, batch, options.batch, height, width, contextLength);
  }

  get precision(): Precision {
    return this.compiled.graph.precision;
  }

  get sampleShape(): [number, number, number, number] {
    return [this.batch, this.config.inChannels, this.height, this.width];
  }

  /** [batch, tokens, cross_attention_dim]: what encoderHiddenStatesBuffer holds. */
  get encoderHiddenStatesShape(): [number, number, number] {
    return [this.batch, this.contextLength, this.compiled.graph.tensor(ENCODER_HIDDEN_STATES_INPUT).shape[2]];
  }

  get sampleBuffer(): GPUBuffer {
    return this.compiled.buffer(SAMPLE_INPUT);
  }

  get timestepBuffer(): GPUBuffer {
    return this.compiled.buffer(TIMESTEP_INPUT);
  }

  /** f32 [batch, tokens, cross_attention_dim]: each image's prompt embeddings (a text encoder's outputBuffer can be copied in). */
  get encoderHiddenStatesBuffer(): GPUBuffer {
    return this.compiled.buffer(ENCODER_HIDDEN_STATES_INPUT);
  }

  get epsBuffer(): GPUBuffer {
    return this.compiled.buffer(EPS_OUTPUT);
  }

  /**
   * Runs `work` alone on this UNet's buffers: calls that overlap in time run one after another,
   * in the order they were made.
   */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.calls.run(work);
  }

  /** Records one forward into `encoder` (a sampler's steps). */
  record(encoder: GPUCommandEncoder, recorder: Recorder): void {
    recorder.graph(encoder, this.compiled);
  }

  /**
   * ε(x, t, encoder_hidden_states) for a whole batch: x [N, C, H, W], one timestep per image, and
   * each image's encoder_hidden_states [N, tokens, cross_attention_dim].
   */
  forward(
    x: Float32Array,
    t: Int32Array,
    encoderHiddenStates: Float32Array,
    recorder: Recorder = new Recorder(this.compiled.gpu.device),
  ): Promise<Float32Array> {
    const expect = (what: string, data: ArrayLike<number>, shape: number[]) => {
      const count = shape.reduce((a, b) => a * b, 1);
      if (data.length !== count) {
        throw new ConditionalUNetInputError(`forward takes ${what} of [${shape}] (${count} values), got ${data.length}`);
      }
    };
    expect('a sample', x, this.sampleShape);
    expect('timesteps', t, [this.batch]);
    expect('encoder_hidden_states', encoderHiddenStates, this.encoderHiddenStatesShape);
    return this.exclusive(async () => {
      this.compiled.write(SAMPLE_INPUT, x);
      this.compiled.write(TIMESTEP_INPUT, t);
      this.compiled.write(ENCODER_HIDDEN_STATES_INPUT, encoderHiddenStates);
      await this.compiled.run(recorder);
      return await this.compiled.read(EPS_OUTPUT, this.readback);
    });
  }

  /** A captured intermediate (named in `capture` at compile) after the last run, as f32. */
  read(name: string): Promise<Float32Array> {
    return this.exclusive(() => this.compiled.read(name));
  }

  destroy(): void {
    this.readback.destroy();
    this.compiled.destroy();
  }
}
