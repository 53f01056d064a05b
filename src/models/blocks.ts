/**
 * The blocks diffusers' convolutional networks share — ResnetBlock2D, the spatial self-attention
 * block, Downsample2D and Upsample2D — built from the op library into a graph, each node named
 * after its PyTorch module. The UNet and the autoencoders compose these; they differ only in
 * their configs (a time embedding or none, the norms' eps and groups).
 */
import type { Graph, Tensor } from '../graph/graph.ts';
import { spatialAttention } from '../ops/attention.ts';
import { conv2d, type Conv2dOptions, type ConvGroupNorm, type ConvKernels } from '../ops/conv2d.ts';
import { linear } from '../ops/linear.ts';
import { timestepEmbedding } from '../ops/timestep_embedding.ts';
import { concatenated } from '../ops/weights.ts';
import type { WeightSource } from './weights.ts';

/** What a block builds into: the graph, where its weights come from, and the device's kernel choice. */
export interface BlockContext {
  readonly g: Graph;
  readonly weights: WeightSource;
  readonly kernels: ConvKernels;
  /** The device's maxStorageBuffersPerShaderStage (the tiled kernels fold conv_shortcut in with 10). */
  readonly maxStorageBuffers?: number;
}

export interface NormSettings {
  groups: number;
  eps: number;
}

export function convWeights(ctx: BlockContext, prefix: string, cout: number, cin: number, k: number) {
  const weight = k === 1
    ? ctx.weights.take(`${prefix}.weight`, [cout, cin, 1, 1], [cout, cin])
    : ctx.weights.take(`${prefix}.weight`, [cout, cin, k, k]);
  return { weight, bias: ctx.weights.take(`${prefix}.bias`, [cout]) };
}

export function normWeights(ctx: BlockContext, prefix: string, c: number) {
  return { weight: ctx.weights.take(`${prefix}.weight`, [c]), bias: ctx.weights.take(`${prefix}.bias`, [c]) };
}

/** Conv `prefix` (its weights by that name) over x; a 3x3 conv pads by 1 unless told otherwise. */
export function conv(
  ctx: BlockContext,
  prefix: string,
  x: Tensor,
  cout: number,
  k: number,
  options: Conv2dOptions = {},
  name = prefix,
): Tensor {
  const w = convWeights(ctx, prefix, cout, x.shape[1] + (options.concat?.shape[1] ?? 0), k);
  const pad = k === 3 && options.padding === undefined ? { padding: [1, 1, 1, 1] as [number, number, number, number] } : {};
  return conv2d(ctx.g, name, x, w.weight, w.bias, { ...pad, kernels: ctx.kernels, maxStorageBuffers: ctx.maxStorageBuffers, ...options });
}

/** GroupNorm `prefix` over c channels, for a conv to apply to its input (a node of its own where it cannot). */
export function norm(ctx: BlockContext, prefix: string, c: number, settings: NormSettings, silu: boolean): ConvGroupNorm {
  const w = normWeights(ctx, prefix, c);
  return { name: prefix, gamma: w.weight, beta: w.bias, groups: settings.groups, eps: settings.eps, silu };
}

export interface ResnetOptions {
  norm: NormSettings;
  /** out = (shortcut(x) + h) / outputScale (diffusers' output_scale_factor). */
  outputScale?: number;
  /** The up blocks' skip: the input is the concatenation [x, skip], read in place. */
  skip?: Tensor;
  /** The projected time embedding [N, ≥ cout] and where this resnet's channels start in it (UNets only). */
  timeEmbedding?: { tensor: Tensor; offset: number };
}

/**
 * ResnetBlock2D with the default time-embedding shift (or none): out = (shortcut(x) + h) / scale.
 * The norms are their convs' prologues and conv_shortcut part of conv2 where the kernels can (the
 * tiled family; conv2d says when).
 */
export function resnet(ctx: BlockContext, prefix: string, x: Tensor, cout: number, options: ResnetOptions): Tensor {
  const { skip, timeEmbedding } = options;
  const cin = x.shape[1] + (skip?.shape[1] ?? 0);
  if (skip && cin === cout) throw new Error(`${prefix}: a skip input needs a conv_shortcut to read it`);
  const h = conv(ctx, `${prefix}.conv1`, x, cout, 3, {
    concat: skip,
    groupNorm: norm(ctx, `${prefix}.norm1`, cin, options.norm, true),
    ...(timeEmbedding ? { channelAdd: timeEmbedding.tensor, channelAddOffset: timeEmbedding.offset } : {}),
  });
  // Without a conv_shortcut (cin === cout) there is no skip: the up blocks' inputs are wider.
  const shortcut = cin !== cout
    ? {
      shortcut: { name: `${prefix}.conv_shortcut`, input: x, concat: skip, ...convWeights(ctx, `${prefix}.conv_shortcut`, cout, cin, 1) },
    }
    : { residual: x };
  return conv(ctx, `${prefix}.conv2`, h, cout, 3, {
    groupNorm: norm(ctx, `${prefix}.norm2`, cout, options.norm, true),
    ...shortcut,
    outputScale: 1 / (options.outputScale ?? 1),
  }, prefix);
}

/**
 * The spatial self-attention block (diffusers' Attention over an image's positions, residual
 * included): `headDim` null is one head of all channels. Its projections may be stored as linear
 * [C, C] or, in original checkpoints, 1x1-conv [C, C, 1, 1] weights, under today's names or the
 * legacy query/key/value/proj_attn (WeightStore resolves those).
 */
export function attention(
  ctx: BlockContext,
  prefix: string,
  x: Tensor,
  options: { headDim: number | null; norm: NormSettings; outputScale?: number },
): Tensor {
  const c = x.shape[1];
  const heads = options.headDim === null ? 1 : c / options.headDim;
  const proj = (name: string) => ({
    weight: ctx.weights.take(`${prefix}.${name}.weight`, [c, c], [c, c, 1, 1]),
    bias: ctx.weights.take(`${prefix}.${name}.bias`, [c]),
  });
  return spatialAttention(ctx.g, prefix, x, {
    norm: normWeights(ctx, `${prefix}.group_norm`, c),
    query: proj('to_q'),
    key: proj('to_k'),
    value: proj('to_v'),
    out: proj('to_out.0'),
  }, {
    heads,
    groups: options.norm.groups,
    eps: options.norm.eps,
    rescaleOutputFactor: options.outputScale ?? 1,
    kernels: ctx.kernels,
  });
}

/**
 * Downsample2D with a conv: stride 2, padded by 1 all round, or with `padding` 0 by one row and
 * column at the bottom and right only (diffusers pads (0, 1, 0, 1) itself before the conv).
 */
export function downsample(ctx: BlockContext, prefix: string, x: Tensor, padding: number, name: string): Tensor {
  const pad: [number, number, number, number] = padding === 0 ? [0, 0, 1, 1] : [1, 1, 1, 1];
  return conv(ctx, `${prefix}.downsamplers.0.conv`, x, x.shape[1], 3, { stride: 2, padding: pad }, name);
}

/** Upsample2D with a conv: nearest-neighbour x2, then a 3x3 conv (read through the upsampling, not stored). */
export function upsample(ctx: BlockContext, prefix: string, x: Tensor, name: string): Tensor {
  return conv(ctx, `${prefix}.upsamplers.0.conv`, x, x.shape[1], 3, { upsample: true }, name);
}

/**
 * diffusers' TimestepEmbedding over a sinusoidal projection: `projectionPrefix` (time_proj, the
 * sinusoids of `timesteps` over `dim` channels), then `${prefix}.linear_1`, SiLU, `${prefix}.linear_2`
 * to `embeddingDim` (the UNets' time embedding, and a class embedding of type 'timestep').
 */
export function timestepMlp(
  ctx: BlockContext,
  prefix: string,
  projectionPrefix: string,
  timesteps: Tensor,
  options: { dim: number; embeddingDim: number; flipSinToCos: boolean; freqShift: number; name?: string },
): Tensor {
  const proj = timestepEmbedding(ctx.g, projectionPrefix, timesteps, options);
  const take = (name: string, cin: number) => ({
    weight: ctx.weights.take(`${prefix}.${name}.weight`, [options.embeddingDim, cin]),
    bias: ctx.weights.take(`${prefix}.${name}.bias`, [options.embeddingDim]),
  });
  const l1 = take('linear_1', options.dim);
  const l2 = take('linear_2', options.embeddingDim);
  const hidden = linear(ctx.g, `${prefix}.linear_1`, proj, l1.weight, l1.bias, { siluOutput: true });
  return linear(ctx.g, options.name ?? `${prefix}.linear_2`, hidden, l2.weight, l2.bias);
}

/**
 * Every resnet's time_emb_proj(silu(temb)) depends only on the time embedding, so all of them are
 * one linear node (one dispatch, not one per resnet) over their weights stacked; each resnet's
 * conv1 reads its own slice. Each output is the same dot product as a separate projection's.
 */
export class ProjectedTimeEmbedding {
  private constructor(private readonly tensor: Tensor, private readonly offsets: ReadonlyMap<string, number>) {}

  /** The projections of `resnets` ([module name, output channels], in any order) of `temb`. */
  static build(ctx: BlockContext, temb: Tensor, resnets: [prefix: string, channels: number][]): ProjectedTimeEmbedding {
    const tembDim = temb.shape[1];
    const weights = resnets.map(([prefix, cout]) => ctx.weights.take(`${prefix}.time_emb_proj.weight`, [cout, tembDim]));
    const biases = resnets.map(([prefix, cout]) => ctx.weights.take(`${prefix}.time_emb_proj.bias`, [cout]));
    const offsets = new Map<string, number>();
    let total = 0;
    for (const [prefix, cout] of resnets) {
      offsets.set(prefix, total);
      total += cout;
    }
    const weight = concatenated('time_emb_proj.weight', weights, [total, tembDim]);
    const bias = concatenated('time_emb_proj.bias', biases, [total]);
    return new ProjectedTimeEmbedding(linear(ctx.g, 'time_emb_proj', temb, weight, bias, { siluInput: true }), offsets);
  }

  /** ResnetBlock2D `prefix` with its slice of the projected time embedding. */
  resnet(ctx: BlockContext, prefix: string, x: Tensor, cout: number, options: Omit<ResnetOptions, 'timeEmbedding'>): Tensor {
    const offset = this.offsets.get(prefix);
    if (offset === undefined) throw new Error(`${prefix}: not in the list of resnets whose time embeddings are projected`);
    return resnet(ctx, prefix, x, cout, { ...options, timeEmbedding: { tensor: this.tensor, offset } });
  }
}
