/**
 * Builds the graph of diffusers' UNet2DConditionModel (Stable Diffusion's UNet) from its config,
 * module by module, every node and tensor named after the PyTorch module it comes from. The
 * convolutional parts are UNet2DModel's (blocks.ts); each CrossAttn block adds a Transformer2DModel
 * after each resnet, whose BasicTransformerBlocks run on the token-major ops over the feature map
 * turned into tokens, with cross-attention over `encoder_hidden_states` (the text encoder's output).
 */
import type { Precision } from '../gpu/shader_source.ts';
import { Graph, type Tensor } from '../graph/graph.ts';
import { fromActivations, toActivations } from '../ops/cast.ts';
import { conv2d, type ConvKernels } from '../ops/conv2d.ts';
import { layerNorm } from '../ops/layer_norm.ts';
import { multiHeadAttention, type Projection } from '../ops/token_attention.ts';
import { tokenGeglu } from '../ops/token_geglu.ts';
import { tokenLinear } from '../ops/token_linear.ts';
import { channelsToTokens, tokensToChannels } from '../ops/transpose.ts';
import type { WeightArray } from '../ops/weights.ts';
import {
  type BlockContext,
  conv,
  downsample,
  norm,
  type NormSettings,
  normWeights,
  ProjectedTimeEmbedding,
  timestepMlp,
  upsample,
} from './blocks.ts';
import type { ConditionalUNetConfig } from './unet_2d_condition_config.ts';
import { EPS_OUTPUT, SAMPLE_INPUT, TIMESTEP_INPUT } from './unet_2d.ts';
import type { WeightSource } from './weights.ts';

export { EPS_OUTPUT, SAMPLE_INPUT, TIMESTEP_INPUT };
/** f32 [batch, tokens, cross_attention_dim]: what every cross-attention reads keys and values from (the prompt embeddings). */
export const ENCODER_HIDDEN_STATES_INPUT = 'encoder_hidden_states';
/** Stable Diffusion's text encoder gives 77 tokens (CLIP's max_position_embeddings). */
export const DEFAULT_CONTEXT_LENGTH = 77;

/** Transformer2DModel's GroupNorm eps (fixed in diffusers, whatever norm_eps says). */
const TRANSFORMER_NORM_EPS = 1e-6;
/** BasicTransformerBlock's LayerNorms: torch's default eps. */
const LAYER_NORM_EPS = 1e-5;
/** FeedForward's mult: the GEGLU's inner width is 4x the transformer's. */
const FEED_FORWARD_MULT = 4;

/** Raised for a size the UNet cannot take (the down and up paths must meet). */
export class ConditionalUNetInputError extends Error {
  override name = 'ConditionalUNetInputError';
}

export interface ConditionalUNetGraphOptions {
  batch: number;
  /** Latent height and width: each the config's sample_size unless told (required when it has none). */
  height?: number;
  width?: number;
  /** Tokens of encoder_hidden_states per image: 77 (DEFAULT_CONTEXT_LENGTH) unless told. */
  contextLength?: number;
  /** Tensor names to keep readable after a run (e.g. 'down_blocks.0.attentions.0'). */
  capture?: string[];
  /** Convolution kernels (KERNEL_FAMILIES): registers* on software drivers, tiled* on GPUs; see preferredKernels. */
  kernels?: ConvKernels;
  /** The device's maxStorageBuffersPerShaderStage (the tiled kernels fold conv_shortcut in with 10). */
  maxStorageBuffers?: number;
  /** How weights and activations are stored on the GPU: 'f32' (the default), 'f16' or 'f16-packed' (Precision). */
  precision?: Precision;
}

/** A Transformer2DModel's settings: its heads, the context width it cross-attends to, its BasicTransformerBlocks. */
interface TransformerSettings {
  heads: number;
  crossAttentionDim: number;
  layers: number;
}

class ConditionalUNetBuilder {
  private readonly g: Graph;
  private ctx!: BlockContext;
  /** encoder_hidden_states as the graph's activations. */
  private context!: Tensor;
  private timeEmbedding!: ProjectedTimeEmbedding;

  constructor(private readonly config: ConditionalUNetConfig, private readonly weights: WeightSource, precision: Precision) {
    this.g = new Graph(precision);
  }

  private get norm(): NormSettings {
    return { groups: this.config.normNumGroups, eps: this.config.normEps };
  }

  private resnet(prefix: string, x: Tensor, cout: number, outputScale = 1, skip?: Tensor): Tensor {
    return this.timeEmbedding.resnet(this.ctx, prefix, x, cout, { norm: this.norm, outputScale, skip });
  }

  private linearWeights(prefix: string, outFeatures: number, inFeatures: number, bias: boolean): Projection {
    return {
      weight: this.weights.take(`${prefix}.weight`, [outFeatures, inFeatures]),
      bias: bias ? this.weights.take(`${prefix}.bias`, [outFeatures]) : null,
    };
  }

  /** proj_in / proj_out: an nn.Linear [out, in] with use_linear_projection, else a 1x1 conv [out, in, 1, 1]. */
  private projectionWeights(prefix: string, outFeatures: number, inFeatures: number): { weight: WeightArray; bias: WeightArray } {
    const shape = this.config.useLinearProjection ? [outFeatures, inFeatures] : [outFeatures, inFeatures, 1, 1];
    return { weight: this.weights.take(`${prefix}.weight`, shape), bias: this.weights.take(`${prefix}.bias`, [outFeatures]) };
  }

  private layerNorm(prefix: string, x: Tensor): Tensor {
    const w = normWeights(this.ctx, prefix, x.shape[2]);
    return layerNorm(this.g, prefix, x, w.weight, w.bias, { eps: LAYER_NORM_EPS });
  }

  /**
   * Transformer2DModel over an NCHW map: GroupNorm and proj_in (one 1x1 conv, the norm its
   * prologue where the kernels fuse it; a linear proj_in over tokens is the same product), the
   * map as tokens, the BasicTransformerBlocks, back to NCHW, proj_out + the input. proj_out's node
   * is the module's output, named after it.
   */
  private transformer(prefix: string, x: Tensor, settings: TransformerSettings): Tensor {
    const { g } = this;
    const [, channels, height, width] = x.shape;
    // diffusers: heads of out_channels // heads channels each.
    const inner = settings.heads * Math.floor(channels / settings.heads);
    const projIn = this.projectionWeights(`${prefix}.proj_in`, inner, channels);
    const projected = conv2d(g, `${prefix}.proj_in`, x, projIn.weight, projIn.bias, {
      kernels: this.ctx.kernels,
      groupNorm: { ...norm(this.ctx, `${prefix}.norm`, channels, this.norm, false), eps: TRANSFORMER_NORM_EPS },
    });
    let tokens = channelsToTokens(g, `${prefix}.tokens`, projected);
    for (let i = 0; i < settings.layers; i++) {
      tokens = this.transformerBlock(`${prefix}.transformer_blocks.${i}`, tokens, settings);
    }
    const projOut = this.projectionWeights(`${prefix}.proj_out`, channels, inner);
    return conv2d(g, prefix, tokensToChannels(g, `${prefix}.channels`, tokens, height, width), projOut.weight, projOut.bias, {
      kernels: this.ctx.kernels,
      residual: x,
    });
  }

  /**
   * BasicTransformerBlock: x + attn1(norm1(x)) (self-attention), + attn2(norm2(x), context)
   * (cross-attention), + ff(norm3(x)) (GEGLU, then ff.net.2). The residuals are the output
   * projections' epilogues; the block's output is ff.net.2's node, also named after the block.
   */
  private transformerBlock(prefix: string, x: Tensor, settings: TransformerSettings): Tensor {
    const { g } = this;
    const dim = x.shape[2];
    const attentionWeights = (name: string, contextDim: number) => ({
      q: this.linearWeights(`${name}.to_q`, dim, dim, false),
      k: this.linearWeights(`${name}.to_k`, dim, contextDim, false),
      v: this.linearWeights(`${name}.to_v`, dim, contextDim, false),
      out: this.linearWeights(`${name}.to_out.0`, dim, dim, true),
    });
    const attn1 = `${prefix}.attn1`;
    x = multiHeadAttention(g, attn1, this.layerNorm(`${prefix}.norm1`, x), null, attentionWeights(attn1, dim), {
      heads: settings.heads,
      residual: x,
      outputName: `${attn1}.to_out.0`,
      kernels: this.ctx.kernels,
    });
    const attn2 = `${prefix}.attn2`;
    x = multiHeadAttention(
      g,
      attn2,
      this.layerNorm(`${prefix}.norm2`, x),
      this.context,
      attentionWeights(attn2, settings.crossAttentionDim),
      {
        heads: settings.heads,
        residual: x,
        outputName: `${attn2}.to_out.0`,
        kernels: this.ctx.kernels,
      },
    );
    const ffInner = FEED_FORWARD_MULT * dim;
    const geglu = this.linearWeights(`${prefix}.ff.net.0.proj`, 2 * ffInner, dim, true);
    const hidden = tokenGeglu(g, `${prefix}.ff.net.0`, this.layerNorm(`${prefix}.norm3`, x), geglu.weight, geglu.bias!);
    const ff2 = this.linearWeights(`${prefix}.ff.net.2`, dim, ffInner, true);
    const out = tokenLinear(g, `${prefix}.ff.net.2`, hidden, ff2.weight, ff2.bias, { residual: x });
    return this.alias(prefix, out);
  }

  build(options: ConditionalUNetGraphOptions): Graph {
    const { config, g } = this;
    this.ctx = { g, weights: this.weights, kernels: options.kernels ?? 'registers', maxStorageBuffers: options.maxStorageBuffers };
    const { height, width } = conditionalUNetSize(config, options);
    const contextLength = options.contextLength ?? DEFAULT_CONTEXT_LENGTH;
    if (!Number.isInteger(contextLength) || contextLength < 1) {
      throw new ConditionalUNetInputError(`the context length must be a positive integer, got ${contextLength}`);
    }
    const boc = config.blockOutChannels;
    const last = boc.length - 1;
    const sample = g.input(SAMPLE_INPUT, [options.batch, config.inChannels, height, width]);
    const timesteps = g.input(TIMESTEP_INPUT, [options.batch], 'i32');
    // The config parser has checked that every cross-attention reads this width.
    const contextWidth = config.crossAttentionDim[last];
    const encoderHiddenStates = g.input(ENCODER_HIDDEN_STATES_INPUT, [options.batch, contextLength, contextWidth]);
    this.context = toActivations(g, `${ENCODER_HIDDEN_STATES_INPUT}:${g.precision}`, encoderHiddenStates);

    // time_proj, then TimestepEmbedding: linear_1, SiLU, linear_2.
    const temb = timestepMlp(this.ctx, 'time_embedding', 'time_proj', timesteps, {
      dim: boc[0],
      embeddingDim: config.timeEmbeddingDim,
      flipSinToCos: config.flipSinToCos,
      freqShift: config.freqShift,
      name: 'time_embedding',
    });
    this.timeEmbedding = ProjectedTimeEmbedding.build(this.ctx, temb, conditionalResnetChannels(config));

    let x = conv(this.ctx, 'conv_in', toActivations(g, `${SAMPLE_INPUT}:${g.precision}`, sample), boc[0], 3);
    const skips: Tensor[] = [x];

    config.downBlockTypes.forEach((type, i) => {
      const prefix = `down_blocks.${i}`;
      for (let j = 0; j < config.layersPerBlock[i]; j++) {
        x = this.resnet(`${prefix}.resnets.${j}`, x, boc[i]);
        if (type === 'CrossAttnDownBlock2D') x = this.transformer(`${prefix}.attentions.${j}`, x, this.transformerSettings(i));
        skips.push(x);
      }
      if (i !== last) {
        x = downsample(this.ctx, prefix, x, config.downsamplePadding, prefix);
        skips.push(x);
      } else {
        x = this.alias(prefix, x);
      }
    });

    // UNetMidBlock2DCrossAttn: the resnets scaled by mid_block_scale_factor, the transformer not.
    const scale = config.midBlockScaleFactor;
    x = this.resnet('mid_block.resnets.0', x, boc[last], scale);
    x = this.transformer('mid_block.attentions.0', x, this.transformerSettings(last));
    x = this.resnet('mid_block.resnets.1', x, boc[last], scale);
    x = this.alias('mid_block', x);

    config.upBlockTypes.forEach((type, i) => {
      const prefix = `up_blocks.${i}`;
      const block = last - i;
      for (let j = 0; j < config.layersPerBlock[block] + 1; j++) {
        const skip = skips.pop();
        if (!skip) throw new Error(`${prefix}.resnets.${j}: no skip connection left (layers_per_block do not pair down and up blocks)`);
        x = this.resnet(`${prefix}.resnets.${j}`, x, boc[block], 1, skip);
        if (type === 'CrossAttnUpBlock2D') x = this.transformer(`${prefix}.attentions.${j}`, x, this.transformerSettings(block));
      }
      if (i !== last) x = upsample(this.ctx, prefix, x, prefix);
      else x = this.alias(prefix, x);
    });

    // conv_norm_out and conv_act are conv_out's prologue (or a node of their own, named conv_norm_out).
    const out = conv(this.ctx, 'conv_out', x, config.outChannels, 3, {
      groupNorm: norm(this.ctx, 'conv_norm_out', x.shape[1], this.norm, true),
    });
    const eps = fromActivations(g, EPS_OUTPUT, out);
    if (eps === out) g.alias(EPS_OUTPUT, out);
    g.markOutput(eps);
    for (const name of options.capture ?? []) g.markOutput(g.tensor(name));
    return g;
  }

  /** The transformers of down block `block`, of the up block that mirrors it, and (the last block's) of the mid block. */
  private transformerSettings(block: number): TransformerSettings {
    const { config } = this;
    return {
      heads: config.numAttentionHeads[block],
      crossAttentionDim: config.crossAttentionDim[block],
      layers: config.transformerLayersPerBlock[block],
    };
  }

  /** Gives a block's output its module name when the block's last module made it. */
  private alias(name: string, x: Tensor): Tensor {
    this.g.alias(name, x);
    return x;
  }
}

/** Every resnet's module name and output channels, in the order build() makes them. */
function conditionalResnetChannels(config: ConditionalUNetConfig): [string, number][] {
  const boc = config.blockOutChannels;
  const last = boc.length - 1;
  const list: [string, number][] = [];
  boc.forEach((c, i) => {
    for (let j = 0; j < config.layersPerBlock[i]; j++) list.push([`down_blocks.${i}.resnets.${j}`, c]);
  });
  for (const j of [0, 1]) list.push([`mid_block.resnets.${j}`, boc[last]]);
  boc.forEach((_, i) => {
    for (let j = 0; j < config.layersPerBlock[last - i] + 1; j++) list.push([`up_blocks.${i}.resnets.${j}`, boc[last - i]]);
  });
  return list;
}

/**
 * The latent size a graph is built for: the options', else the config's sample_size. Each side
 * must halve evenly at every downsampler, so the up path's skips meet the down path's (diffusers
 * interpolates to odd sizes there; this engine does not).
 */
export function conditionalUNetSize(
  config: ConditionalUNetConfig,
  options: { height?: number; width?: number },
): { height: number; width: number } {
  const height = options.height ?? config.sampleSize;
  const width = options.width ?? config.sampleSize;
  if (height === null || width === null) {
    throw new ConditionalUNetInputError('config.json gives no sample_size: the latent height and width must be given');
  }
  const factor = 2 ** (config.blockOutChannels.length - 1);
  for (const [side, value] of [['height', height], ['width', width]] as const) {
    if (!Number.isInteger(value) || value < 1 || value % factor !== 0) {
      throw new ConditionalUNetInputError(
        `latent ${side} ${value} is not a positive multiple of ${factor} (the UNet halves it ${config.blockOutChannels.length - 1} times)`,
      );
    }
  }
  return { height, width };
}

export function buildConditionalUNetGraph(
  config: ConditionalUNetConfig,
  weights: WeightSource,
  options: ConditionalUNetGraphOptions,
): Graph {
  return new ConditionalUNetBuilder(config, weights, options.precision ?? 'f32').build(options);
}

/**
 * Every weight the model has, name and shape, in the order the graph asks for them, from the
 * config alone: no GPU and no weight allocated (the graph is built for the smallest latent).
 */
export function conditionalUNetWeightShapes(config: ConditionalUNetConfig): { name: string; shape: number[] }[] {
  const seen: { name: string; shape: number[] }[] = [];
  const recorder: WeightSource = {
    take(name: string, ...shapes: number[][]): WeightArray {
      seen.push({ name, shape: shapes[0] });
      return { name, shape: shapes[0], data: new Float32Array(0) };
    },
  };
  const size = 2 ** (config.blockOutChannels.length - 1);
  // Storage-read kernels: the uniform windows would slice (allocate) the large convs' weights.
  buildConditionalUNetGraph(config, recorder, { batch: 1, height: size, width: size, contextLength: 1, kernels: 'registers-storage' });
  return seen;
}
