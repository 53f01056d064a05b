/**
 * Random weights for any UNet2DModel or autoencoder config, as a safetensors file: for timing the real model
 * layouts without their checkpoints, and for tests that need a model of a given shape.
 */
import { serializeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import type { WeightArray } from '../ops/weights.ts';
import { parseUNetConfig } from './unet_2d_config.ts';
import { buildUNetGraph } from './unet_2d.ts';
import type { WeightSource } from './weights.ts';
import { buildDecoderGraph, buildEncoderGraph } from './autoencoder.ts';
import { downscaleFactor, parseAutoencoderConfig } from './autoencoder_config.ts';

/** Every weight name and shape a config needs, in the order the graph asks for them. */
export function requiredWeights(rawConfig: unknown): { name: string; shape: number[] }[] {
  const config = parseUNetConfig(rawConfig);
  const seen: { name: string; shape: number[] }[] = [];
  const recorder: WeightSource = {
    take(name: string, ...shapes: number[][]): WeightArray {
      seen.push({ name, shape: shapes[0] });
      return { name, shape: shapes[0], data: new Float32Array(shapes[0].reduce((a, b) => a * b, 1)) };
    },
  };
  buildUNetGraph(config, recorder, { batch: 1 });
  return seen;
}

/** Every weight name and shape an AutoencoderKL or VQModel config needs (encoder, then decoder). */
export function requiredAutoencoderWeights(rawConfig: unknown): { name: string; shape: number[] }[] {
  const config = parseAutoencoderConfig(rawConfig);
  const seen = new Map<string, number[]>();
  const recorder: WeightSource = {
    take(name: string, ...shapes: number[][]): WeightArray {
      seen.set(name, shapes[0]);
      return { name, shape: shapes[0], data: new Float32Array(shapes[0].reduce((a, b) => a * b, 1)) };
    },
  };
  const f = downscaleFactor(config);
  buildEncoderGraph(config, recorder, { batch: 1, height: f, width: f });
  buildDecoderGraph(config, recorder, { batch: 1, height: 1, width: 1 });
  return [...seen].map(([name, shape]) => ({ name, shape }));
}

/** A safetensors file of random weights for the config of a UNet2DModel. */
export function randomUNetSafetensors(rawConfig: unknown, seed = 1): Uint8Array {
  return randomSafetensors(requiredWeights(rawConfig), seed);
}

/** A safetensors file of random weights for the config of an AutoencoderKL or VQModel. */
export function randomAutoencoderSafetensors(rawConfig: unknown, seed = 1): Uint8Array {
  return randomSafetensors(requiredAutoencoderWeights(rawConfig), seed);
}

/**
 * A safetensors file of random weights of these names and shapes: uniform in ±1/√fan_in
 * (PyTorch's default initialisation scale, so activations stay in range), norms at weight 1 and
 * bias 0.
 */
export function randomSafetensors(weights: { name: string; shape: number[] }[], seed = 1): Uint8Array {
  let state = seed >>> 0 || 1;
  const next = () => {
    // xorshift32: reproducible and fast; quality does not matter here.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  const tensors: Record<string, TensorToWrite> = {};
  for (const { name, shape } of weights) {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    const isNorm = /norm[^.]*\.weight$/.test(name);
    const isNormBias = /norm[^.]*\.bias$/.test(name);
    if (isNorm) data.fill(1);
    else if (!isNormBias) {
      const fanIn = shape.length > 1 ? size / shape[0] : shape[0];
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < size; i++) data[i] = (2 * next() - 1) * bound;
    }
    tensors[name] = { dtype: 'F32', shape, data };
  }
  return serializeSafetensors(tensors);
}
