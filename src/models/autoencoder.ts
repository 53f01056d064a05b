/**
 * Builds diffusers' AutoencoderKL and VQModel from their config: the encoder (image → the latent
 * distribution's moments, or VQ latents before quantization) and the decoder (latents → image) as
 * two graphs, every node named after the PyTorch module it comes from. Both are made of the
 * blocks the UNet uses (src/models/blocks.ts), without a time embedding.
 */
import { Graph, type Tensor } from '../graph/graph.ts';
import type { Precision } from '../gpu/shader_source.ts';
import { fromActivations, toActivations } from '../ops/cast.ts';
import type { ConvKernels } from '../ops/conv2d.ts';
import { vectorQuantize } from '../ops/vector_quantize.ts';
import { AUTOENCODER_NORM_EPS, type AutoencoderConfig } from './autoencoder_config.ts';
import { attention, type BlockContext, conv, downsample, norm, type NormSettings, resnet, upsample } from './blocks.ts';
import type { WeightSource } from './weights.ts';

/** f32 [N, in_channels, H, W]: the encoder's input, in [-1, 1]. */
export const IMAGE_INPUT = 'image';
/** f32: KL's mean and log-variance side by side in channels (quant_conv's output), or VQ's latents before quantization. */
export const MOMENTS_OUTPUT = 'moments';
/** f32 [N, C, h, w]: the decoder's input, exactly what post_quant_conv (or VQ's quantizer) receives. */
export const LATENT_INPUT = 'z';
/** f32 [N, out_channels, H, W]: the decoded image, not clamped. */
export const IMAGE_OUTPUT = 'decoded';
/** i32 [N, h, w]: VQ only, each position's codebook index. */
export const CODE_INDICES_OUTPUT = 'code_indices';

export interface AutoencoderGraphOptions {
  batch: number;
  /** The image's size (encoder) or the latents' (decoder). */
  height: number;
  width: number;
  kernels?: ConvKernels;
  maxStorageBuffers?: number;
  precision?: Precision;
  /** VQModel's decoder without its quantizer (diffusers' force_not_quantize). */
  forceNotQuantize?: boolean;
  /** Tensor names to keep readable after a run (golden checks of intermediates). */
  capture?: string[];
}

function context(weights: WeightSource, options: AutoencoderGraphOptions): BlockContext {
  return {
    g: new Graph(options.precision ?? 'f32'),
    weights,
    kernels: options.kernels ?? 'registers',
    maxStorageBuffers: options.maxStorageBuffers,
  };
}

const normSettings = (config: AutoencoderConfig): NormSettings => ({ groups: config.normNumGroups, eps: AUTOENCODER_NORM_EPS });

/** UNetMidBlock2D without a time embedding: resnet, attention (one head of all channels), resnet. */
function midBlock(ctx: BlockContext, config: AutoencoderConfig, prefix: string, x: Tensor): Tensor {
  const c = x.shape[1];
  const settings = normSettings(config);
  x = resnet(ctx, `${prefix}.resnets.0`, x, c, { norm: settings });
  if (config.midBlockAddAttention) x = attention(ctx, `${prefix}.attentions.0`, x, { headDim: null, norm: settings });
  x = resnet(ctx, `${prefix}.resnets.1`, x, c, { norm: settings });
  ctx.g.alias(prefix, x);
  return x;
}

/** The channels of the encoder's output and of the decoder's input. */
export function latentShape(config: AutoencoderConfig): { moments: number; decoderInput: number } {
  if (config.className === 'AutoencoderKL') return { moments: 2 * config.latentChannels, decoderInput: config.latentChannels };
  return { moments: config.vqEmbedDim, decoderInput: config.vqEmbedDim };
}

/** Encoder + quant_conv: image [N, 3, H, W] → moments (KL: mean and log-variance, unclamped) or VQ latents. */
export function buildEncoderGraph(config: AutoencoderConfig, weights: WeightSource, options: AutoencoderGraphOptions): Graph {
  const ctx = context(weights, options);
  const { g } = ctx;
  const boc = config.blockOutChannels;
  const settings = normSettings(config);
  const image = g.input(IMAGE_INPUT, [options.batch, config.inChannels, options.height, options.width]);
  let x = conv(ctx, 'encoder.conv_in', toActivations(g, `${IMAGE_INPUT}:${g.precision}`, image), boc[0], 3);
  boc.forEach((channels, i) => {
    const prefix = `encoder.down_blocks.${i}`;
    for (let j = 0; j < config.layersPerBlock; j++) x = resnet(ctx, `${prefix}.resnets.${j}`, x, channels, { norm: settings });
    // Downsample2D with padding 0: diffusers pads one row and column at the bottom and right.
    if (i < boc.length - 1) x = downsample(ctx, prefix, x, 0, prefix);
    else g.alias(prefix, x);
  });
  x = midBlock(ctx, config, 'encoder.mid_block', x);
  const encoderOut = config.className === 'AutoencoderKL' ? 2 * config.latentChannels : config.latentChannels;
  x = conv(ctx, 'encoder.conv_out', x, encoderOut, 3, { groupNorm: norm(ctx, 'encoder.conv_norm_out', x.shape[1], settings, true) });
  if (config.useQuantConv) x = conv(ctx, 'quant_conv', x, latentShape(config).moments, 1);
  const moments = fromActivations(g, MOMENTS_OUTPUT, x);
  if (moments === x) g.alias(MOMENTS_OUTPUT, x);
  g.markOutput(moments);
  for (const name of options.capture ?? []) g.markOutput(g.tensor(name));
  return g;
}

/** (VQ's quantizer +) post_quant_conv + decoder: latents [N, C, h, w] → image [N, 3, h·f, w·f], not clamped. */
export function buildDecoderGraph(config: AutoencoderConfig, weights: WeightSource, options: AutoencoderGraphOptions): Graph {
  const ctx = context(weights, options);
  const { g } = ctx;
  const boc = config.blockOutChannels;
  const settings = normSettings(config);
  const channels = latentShape(config).decoderInput;
  const z = g.input(LATENT_INPUT, [options.batch, channels, options.height, options.width]);
  let x = toActivations(g, `${LATENT_INPUT}:${g.precision}`, z);
  if (config.className === 'VQModel') {
    // The codebook is taken even when the quantizer is skipped: it is part of the model's weights.
    const codebook = weights.take('quantize.embedding.weight', [config.numVqEmbeddings, config.vqEmbedDim]);
    if (!options.forceNotQuantize) {
      const { quantized, indices } = vectorQuantize(g, 'quantize', x, codebook);
      g.alias(CODE_INDICES_OUTPUT, g.markOutput(indices));
      x = quantized;
    }
  }
  if (config.usePostQuantConv) x = conv(ctx, 'post_quant_conv', x, config.latentChannels, 1);
  x = conv(ctx, 'decoder.conv_in', x, boc[boc.length - 1], 3);
  x = midBlock(ctx, config, 'decoder.mid_block', x);
  const reversed = [...boc].reverse();
  reversed.forEach((out, i) => {
    const prefix = `decoder.up_blocks.${i}`;
    for (let j = 0; j < config.layersPerBlock + 1; j++) x = resnet(ctx, `${prefix}.resnets.${j}`, x, out, { norm: settings });
    if (i < reversed.length - 1) x = upsample(ctx, prefix, x, prefix);
    else g.alias(prefix, x);
  });
  const out = conv(ctx, 'decoder.conv_out', x, config.outChannels, 3, {
    groupNorm: norm(ctx, 'decoder.conv_norm_out', x.shape[1], settings, true),
  });
  const image = fromActivations(g, IMAGE_OUTPUT, out);
  if (image === out) g.alias(IMAGE_OUTPUT, out);
  g.markOutput(image);
  for (const name of options.capture ?? []) g.markOutput(g.tensor(name));
  return g;
}
