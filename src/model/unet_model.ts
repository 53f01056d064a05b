/**
 * A UNet2DModel ready to run: its parsed config and weights (checked once), compiled for a batch
 * size on a device. `forward` is the plain epsilon prediction; samplers record `compiled`
 * directly into their own command encoders.
 */
import type { Gpu } from '../gpu/device.ts';
import { CompiledGraph } from '../graph/executor.ts';
import { preferredKernels } from '../ops/kernels.ts';
import type { SafetensorsFile } from '../io/safetensors.ts';
import { parseWeightsFile } from '../io/weights_file.ts';
import { parseUNetConfig, type UNetConfig } from './config.ts';
import { buildUNetGraph, EPS_OUTPUT, SAMPLE_INPUT, TIMESTEP_INPUT, type UNetGraphOptions } from './unet.ts';
import { WeightStore } from './weights.ts';

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
  const store = new WeightStore(file);
  buildUNetGraph(config, store, { batch: 1 });
  store.finish();
  return { config, file };
}

export class UNet {
  private constructor(readonly config: UNetConfig, readonly compiled: CompiledGraph, readonly batch: number, readonly size: number) {}

  static async compile(gpu: Gpu, model: UNetWeights, options: UNetGraphOptions): Promise<UNet> {
    if (!Number.isInteger(options.batch) || options.batch < 1) throw new Error(`batch must be a positive integer, got ${options.batch}`);
    const store = new WeightStore(model.file);
    // Register-blocked kernels on software adapters, workgroup tiles on GPUs, unless asked.
    const graph = buildUNetGraph(model.config, store, { ...options, kernels: options.kernels ?? preferredKernels(gpu.adapter) });
    store.finish();
    const compiled = await CompiledGraph.compile(gpu, graph, 'unet');
    return new UNet(model.config, compiled, options.batch, options.size ?? model.config.sampleSize);
  }

  get sampleShape(): [number, number, number, number] {
    return [this.batch, this.config.inChannels, this.size, this.size];
  }

  get sampleBuffer(): GPUBuffer {
    return this.compiled.buffer(SAMPLE_INPUT);
  }

  get timestepBuffer(): GPUBuffer {
    return this.compiled.buffer(TIMESTEP_INPUT);
  }

  get epsBuffer(): GPUBuffer {
    return this.compiled.buffer(EPS_OUTPUT);
  }

  /** ε(x, t) for a whole batch: x is [N, C, H, W], t one timestep per image. */
  async forward(x: Float32Array, t: Int32Array): Promise<Float32Array> {
    this.compiled.write(SAMPLE_INPUT, x);
    this.compiled.write(TIMESTEP_INPUT, t);
    await this.compiled.run();
    return this.compiled.read(EPS_OUTPUT);
  }

  /** A captured intermediate (named in `capture` at compile) after the last run. */
  read(name: string): Promise<Float32Array> {
    return this.compiled.read(name);
  }

  destroy(): void {
    this.compiled.destroy();
  }
}
