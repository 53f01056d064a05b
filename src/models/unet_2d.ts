/**
 * Builds the graph of diffusers' UNet2DModel from its config, module by module, with every node
 * and tensor named after the PyTorch module it comes from (so `down_blocks.1.attentions.0` in an
 * error or a profile is the module of that name).
 */
import type { Precision } from '../gpu/shader_source.ts';
import { Graph, type Tensor } from '../graph/graph.ts';
import { fromActivations, toActivations } from '../ops/cast.ts';
import { addClassEmbedding } from '../ops/class_embedding.ts';
import type { ConvKernels } from '../ops/conv2d.ts';
import {
  attention,
  type BlockContext,
  conv,
  downsample,
  norm,
  type NormSettings,
  ProjectedTimeEmbedding,
  timestepMlp,
  upsample,
} from './blocks.ts';
import type { UNetConfig } from './unet_2d_config.ts';
import type { WeightSource } from './weights.ts';

export const SAMPLE_INPUT = 'sample';
export const TIMESTEP_INPUT = 'timesteps';
/** i32 [batch]: each image's class label (class-conditional models only). */
export const CLASS_LABEL_INPUT = 'class_labels';
/** f32 ε: conv_out's output (converted from f16 in an f16 graph). */
export const EPS_OUTPUT = 'eps';

export interface UNetGraphOptions {
  batch: number;
  /** Spatial size (square); the config's sample_size by default. */
  size?: number;
  /** Height and width when they differ (latents of a non-square image); each defaults to `size`. */
  height?: number;
  width?: number;
  /** Tensor names to keep readable after a run (e.g. 'down_blocks.1' for golden checks). */
  capture?: string[];
  /** Convolution kernels (KERNEL_FAMILIES): registers* on software drivers, tiled* on GPUs; see preferredKernels. */
  kernels?: ConvKernels;
  /** The device's maxStorageBuffersPerShaderStage (the tiled kernels fold conv_shortcut in with 10). */
  maxStorageBuffers?: number;
  /** How weights and activations are stored on the GPU: 'f32' (the default), 'f16' or 'f16-packed' (Precision). */
  precision?: Precision;
}

class UNetBuilder {
  private readonly g: Graph;
  private ctx!: BlockContext;
  private temb!: Tensor;
  private timeEmbedding!: ProjectedTimeEmbedding;

  constructor(private readonly config: UNetConfig, private readonly weights: WeightSource, precision: Precision) {
    this.g = new Graph(precision);
  }

  private get norm(): NormSettings {
    return { groups: this.config.normNumGroups, eps: this.config.normEps };
  }

  /** ResnetBlock2D with this resnet's slice of the projected time embedding. */
  private resnet(prefix: string, x: Tensor, cout: number, outputScale = 1, skip?: Tensor): Tensor {
    return this.timeEmbedding.resnet(this.ctx, prefix, x, cout, { norm: this.norm, outputScale, skip });
  }

  private attention(prefix: string, x: Tensor, outputScale = 1): Tensor {
    const { config } = this;
    return attention(this.ctx, prefix, x, {
      headDim: config.attentionHeadDim,
      norm: { groups: config.attnNormNumGroups ?? config.normNumGroups, eps: config.normEps },
      outputScale,
    });
  }

  build(options: UNetGraphOptions): Graph {
    const { config, g } = this;
    this.ctx = { g, weights: this.weights, kernels: options.kernels ?? 'registers', maxStorageBuffers: options.maxStorageBuffers };
    const height = options.height ?? options.size ?? config.sampleSize;
    const width = options.width ?? options.size ?? config.sampleSize;
    const boc = config.blockOutChannels;
    const sample = g.input(SAMPLE_INPUT, [options.batch, config.inChannels, height, width]);
    const timesteps = g.input(TIMESTEP_INPUT, [options.batch], 'i32');

    const tembDim = config.timeEmbeddingDim ?? boc[0] * 4;
    const sinusoids = { dim: boc[0], embeddingDim: tembDim, flipSinToCos: config.flipSinToCos, freqShift: config.freqShift };
    this.temb = timestepMlp(this.ctx, 'time_embedding', 'time_proj', timesteps, { ...sinusoids, name: 'time_embedding' });
    if (config.classEmbedType) this.temb = this.classEmbedding(g.input(CLASS_LABEL_INPUT, [options.batch], 'i32'), tembDim);
    this.timeEmbedding = ProjectedTimeEmbedding.build(this.ctx, this.temb, resnetChannels(config));

    if (config.centerInputSample) throw new Error('center_input_sample is not supported');
    let x = conv(this.ctx, 'conv_in', toActivations(g, `${SAMPLE_INPUT}:${g.precision}`, sample), boc[0], 3);
    const skips: Tensor[] = [x];

    config.downBlockTypes.forEach((type, i) => {
      const prefix = `down_blocks.${i}`;
      const isFinal = i === boc.length - 1;
      for (let j = 0; j < config.layersPerBlock; j++) {
        x = this.resnet(`${prefix}.resnets.${j}`, x, boc[i]);
        if (type === 'AttnDownBlock2D') x = this.attention(`${prefix}.attentions.${j}`, x);
        skips.push(x);
      }
      if (!isFinal) {
        x = downsample(this.ctx, prefix, x, config.downsamplePadding, prefix);
        skips.push(x);
      } else {
        x = this.alias(prefix, x);
      }
    });

    if (config.midBlock) {
      const scale = config.midBlockScaleFactor;
      x = this.resnet('mid_block.resnets.0', x, boc[boc.length - 1], scale);
      if (config.addAttention) x = this.attention('mid_block.attentions.0', x, scale);
      x = this.resnet('mid_block.resnets.1', x, boc[boc.length - 1], scale);
      x = this.alias('mid_block', x);
    }

    const reversed = [...boc].reverse();
    config.upBlockTypes.forEach((type, i) => {
      const prefix = `up_blocks.${i}`;
      const isFinal = i === boc.length - 1;
      for (let j = 0; j < config.layersPerBlock + 1; j++) {
        x = this.resnet(`${prefix}.resnets.${j}`, x, reversed[i], 1, skips.pop()!);
        if (type === 'AttnUpBlock2D') x = this.attention(`${prefix}.attentions.${j}`, x);
      }
      if (!isFinal) x = upsample(this.ctx, prefix, x, prefix);
      else x = this.alias(prefix, x);
    });

    // GroupNorm and the final SiLU are one step named conv_norm_out (conv_out's prologue, or a
    // node whose output is SiLU(conv_norm_out) of the PyTorch module).
    const out = conv(this.ctx, 'conv_out', x, config.outChannels, 3, {
      groupNorm: norm(this.ctx, 'conv_norm_out', x.shape[1], this.norm, true),
    });
    const eps = fromActivations(g, EPS_OUTPUT, out);
    if (eps === out) g.alias(EPS_OUTPUT, out);
    g.markOutput(eps);
    for (const name of options.capture ?? []) g.markOutput(g.tensor(name));
    return g;
  }

  /** emb + class_embedding(class_labels), as diffusers' UNet2DModel.forward. */
  private classEmbedding(labels: Tensor, tembDim: number): Tensor {
    const { config, g } = this;
    if (config.classEmbedType === 'embedding') {
      const table = this.weights.take('class_embedding.weight', [config.numClassEmbeds!, tembDim]);
      return addClassEmbedding(g, 'class_embedding', this.temb, table, labels);
    }
    // 'timestep': TimestepEmbedding(time_proj(labels)), with the model's own time_proj.
    const emb = timestepMlp(this.ctx, 'class_embedding', 'class_embedding.time_proj', labels, {
      dim: config.blockOutChannels[0],
      embeddingDim: tembDim,
      flipSinToCos: config.flipSinToCos,
      freqShift: config.freqShift,
    });
    return addClassEmbedding(g, 'class_embedding', this.temb, emb, labels);
  }

  /** Gives a block's output its module name when the block's last module made it. */
  private alias(name: string, x: Tensor): Tensor {
    this.g.alias(name, x);
    return x;
  }
}

/** Every resnet's module name and output channels, in the order build() makes them. */
function resnetChannels(config: UNetConfig): [string, number][] {
  const boc = config.blockOutChannels;
  const list: [string, number][] = [];
  boc.forEach((c, i) => {
    for (let j = 0; j < config.layersPerBlock; j++) list.push([`down_blocks.${i}.resnets.${j}`, c]);
  });
  if (config.midBlock) { for (const j of [0, 1]) list.push([`mid_block.resnets.${j}`, boc[boc.length - 1]]); }
  [...boc].reverse().forEach((c, i) => {
    for (let j = 0; j < config.layersPerBlock + 1; j++) list.push([`up_blocks.${i}.resnets.${j}`, c]);
  });
  return list;
}

export function buildUNetGraph(config: UNetConfig, weights: WeightSource, options: UNetGraphOptions): Graph {
  return new UNetBuilder(config, weights, options.precision ?? 'f32').build(options);
}
