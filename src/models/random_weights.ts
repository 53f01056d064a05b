/**
 * Random weights for any UNet2DModel, UNet2DConditionModel, autoencoder or CLIP text encoder config,
 * as a safetensors file: for timing the real model layouts without their checkpoints, and for tests
 * that need a model of a given shape.
 */
import { float32ToFloat16 } from '../io/half.ts';
import type { WeightArray } from '../ops/weights.ts';
import { parseUNetConfig } from './unet_2d_config.ts';
import { buildUNetGraph } from './unet_2d.ts';
import type { WeightSource } from './weights.ts';
import { buildDecoderGraph, buildEncoderGraph } from './autoencoder.ts';
import { downscaleFactor, parseAutoencoderConfig } from './autoencoder_config.ts';
import { conditionalUNetWeightShapes } from './unet_2d_condition.ts';
import { parseConditionalUNetConfig } from './unet_2d_condition_config.ts';
import { clipTextWeightShapes } from './clip_text_model.ts';
import { parseClipTextConfig } from './clip_text_config.ts';

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
export function randomUNetSafetensors(rawConfig: unknown, seed = 1, options: RandomWeightsOptions = {}): Uint8Array {
  return randomSafetensors(requiredWeights(rawConfig), seed, options);
}

/** A safetensors file of random weights for the config of an AutoencoderKL or VQModel. */
export function randomAutoencoderSafetensors(rawConfig: unknown, seed = 1, options: RandomWeightsOptions = {}): Uint8Array {
  return randomSafetensors(requiredAutoencoderWeights(rawConfig), seed, options);
}

/** How a random weights file stores its values: f32, or f16 as the fp16 variants on the Hub do. */
export type RandomWeightsDtype = 'F32' | 'F16';

export interface RandomWeightsOptions {
  /** 'F32' (the default) or 'F16': the same values rounded to half, half the bytes. */
  dtype?: RandomWeightsDtype;
}

/** Every weight name and shape a UNet2DConditionModel config needs (Stable Diffusion's UNet). */
export function requiredConditionalUNetWeights(rawConfig: unknown): { name: string; shape: number[] }[] {
  return conditionalUNetWeightShapes(parseConditionalUNetConfig(rawConfig));
}

/** Every weight name and shape a CLIPTextModel config needs (transformers' names, under `text_model.`). */
export function requiredClipTextWeights(rawConfig: unknown): { name: string; shape: number[] }[] {
  return clipTextWeightShapes(parseClipTextConfig(rawConfig));
}

/** A safetensors file of random weights for the config of a UNet2DConditionModel. */
export function randomConditionalUNetSafetensors(rawConfig: unknown, seed = 1, options: RandomWeightsOptions = {}): Uint8Array {
  return randomSafetensors(requiredConditionalUNetWeights(rawConfig), seed, options);
}

/** A safetensors file (model.safetensors) of random weights for the config of a CLIPTextModel. */
export function randomClipTextSafetensors(rawConfig: unknown, seed = 1, options: RandomWeightsOptions = {}): Uint8Array {
  return randomSafetensors(requiredClipTextWeights(rawConfig), seed, options);
}

/**
 * A safetensors file of random weights of these names and shapes: uniform in ±1/√fan_in
 * (PyTorch's default initialisation scale, so activations stay in range), norms at weight 1 and
 * bias 0. The file is allocated once and each tensor drawn straight into it, so making a model of
 * gigabytes takes its size in memory and no more. Reproducible: a seed gives the same values at
 * either dtype (F16 holds them rounded to nearest).
 */
export function randomSafetensors(
  weights: { name: string; shape: number[] }[],
  seed = 1,
  options: RandomWeightsOptions = {},
): Uint8Array {
  const dtype = options.dtype ?? 'F32';
  const elementBytes = dtype === 'F16' ? 2 : 4;
  // The layout serializeSafetensors writes: tensors in code-point order of their names, the
  // header padded with spaces to a multiple of 8 bytes so that the data section is aligned.
  const sizes = new Map(weights.map(({ name, shape }) => [name, shape.reduce((a, b) => a * b, 1)]));
  if (sizes.size !== weights.length) throw new Error('randomSafetensors: a weight name is listed twice');
  const shapes = new Map(weights.map(({ name, shape }) => [name, shape]));
  const names = [...sizes.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const offsets = new Map<string, number>();
  const entries: string[] = [];
  let offset = 0;
  for (const name of names) {
    const end = offset + sizes.get(name)! * elementBytes;
    entries.push(`${JSON.stringify(name)}:{"dtype":"${dtype}","shape":[${shapes.get(name)!.join(',')}],"data_offsets":[${offset},${end}]}`);
    offsets.set(name, offset);
    offset = end;
  }
  const header = new TextEncoder().encode(`{${entries.join(',')}}`);
  const headerLength = Math.ceil(header.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLength % 2 ** 32, true);
  view.setUint32(4, Math.floor(headerLength / 2 ** 32), true);
  out.set(header, 8);
  out.fill(0x20, 8 + header.length, 8 + headerLength);
  const dataStart = 8 + headerLength;

  let state = seed >>> 0 || 1;
  for (const { name, shape } of weights) {
    const size = sizes.get(name)!;
    const at = dataStart + offsets.get(name)!;
    const isNorm = /norm[^.]*\.weight$/.test(name);
    const isNormBias = /norm[^.]*\.bias$/.test(name);
    const fanIn = shape.length > 1 ? size / shape[0] : shape[0];
    const bound = isNorm || isNormBias ? 0 : 1 / Math.sqrt(fanIn);
    if (dtype === 'F16') {
      const data = new Uint16Array(out.buffer, at, size);
      if (isNorm) data.fill(ONE_F16);
      else if (!isNormBias) state = drawUniformF16(data, bound, state);
    } else {
      const data = new Float32Array(out.buffer, at, size);
      if (isNorm) data.fill(1);
      else if (!isNormBias) state = drawUniform(data, bound, state);
    }
  }
  return out;
}

const ONE_F16 = 0x3c00;

/**
 * One xorshift32 step: reproducible and fast; quality does not matter here. The draws are
 * (2u - 1)·bound with u = state / 2³², the same at either dtype.
 */
function drawUniform(out: Float32Array, bound: number, seedState: number): number {
  let state = seedState;
  for (let i = 0; i < out.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = (2 * ((state >>> 0) / 4294967296) - 1) * bound;
  }
  return state;
}

/** drawUniform's values as half bit patterns, rounded to nearest even (|value| < 1: never past the half range). */
function drawUniformF16(out: Uint16Array, bound: number, seedState: number): number {
  const single = new Float32Array(1);
  const bits = new Uint32Array(single.buffer);
  let state = seedState;
  for (let i = 0; i < out.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    single[0] = (2 * ((state >>> 0) / 4294967296) - 1) * bound;
    const b = bits[0];
    const exponent = (b >>> 23) & 0xff;
    if (exponent < 113) {
      // Below the smallest normal half (2^-14): the general conversion, subnormals and all.
      out[i] = float32ToFloat16(single[0]);
    } else {
      const mantissa = b & 0x7fffff;
      // A carry out of the rounded mantissa bumps the exponent, as it should.
      out[i] = ((b >>> 16) & 0x8000) | (((exponent - 112) << 10) + ((mantissa + 0xfff + ((mantissa >>> 13) & 1)) >>> 13));
    }
  }
  return state;
}
