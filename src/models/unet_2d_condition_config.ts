/**
 * diffusers' UNet2DConditionModel config.json (Stable Diffusion's UNet), read as diffusers v0.21.4
 * reads it: what a file leaves out takes diffusers' default, per-block options may be one value
 * or one per block, and every option the engine does not implement is refused by name.
 */
import { flag, isPositiveInt, ModelConfigError, positiveInt } from './config_values.ts';

export type CrossAttnDownBlockType = 'CrossAttnDownBlock2D' | 'DownBlock2D';
export type CrossAttnUpBlockType = 'CrossAttnUpBlock2D' | 'UpBlock2D';

export interface ConditionalUNetConfig {
  /** The latent size it was trained at (square), or null when the file gives none (diffusers' default). */
  sampleSize: number | null;
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  downBlockTypes: CrossAttnDownBlockType[];
  upBlockTypes: CrossAttnUpBlockType[];
  /** Resnets per down block (an up block has one more), per down block. */
  layersPerBlock: number[];
  normNumGroups: number;
  normEps: number;
  /**
   * Attention heads of each down block's transformers (the up blocks take them reversed, the mid
   * block the last). diffusers' `num_attention_heads or attention_head_dim`: SD 1.x's
   * `attention_head_dim: 8` is 8 heads, SD 2.x's list [5, 10, 20, 20] 5 heads of 64 channels in the first.
   */
  numAttentionHeads: number[];
  /** The width of encoder_hidden_states each down block's cross-attention reads (reversed for the up blocks). */
  crossAttentionDim: number[];
  /** BasicTransformerBlocks per Transformer2DModel, per down block (reversed for the up blocks, the last for the mid block). */
  transformerLayersPerBlock: number[];
  /** proj_in and proj_out as nn.Linear over tokens (SD 2.x) rather than 1x1 convs (SD 1.x). */
  useLinearProjection: boolean;
  /** diffusers computes attention scores in f32 for an f16 model; the engine always does (no effect here). */
  upcastAttention: boolean;
  flipSinToCos: boolean;
  freqShift: number;
  downsamplePadding: number;
  midBlockScaleFactor: number;
  /** The time embedding's width: time_embedding_dim, or 4 * block_out_channels[0]. */
  timeEmbeddingDim: number;
}

const WHERE = 'config.json';

/**
 * Read for information only: bookkeeping, training settings, and options diffusers passes only to
 * blocks and embeddings this engine refuses (so they change nothing in a model it runs):
 * resnet_skip_time_act and resnet_out_scale_factor (ResnetDownsampleBlock2D and the SimpleCrossAttn
 * blocks), cross_attention_norm and mid_block_only_cross_attention (the SimpleCrossAttn blocks),
 * addition_time_embed_dim, addition_embed_type_num_heads and projection_class_embeddings_input_dim
 * (addition and projection embeddings). upcast_attention is kept in the config.
 */
const IGNORED = new Set([
  '_class_name',
  '_diffusers_version',
  '_name_or_path',
  'dropout',
  'resnet_skip_time_act',
  'resnet_out_scale_factor',
  'cross_attention_norm',
  'mid_block_only_cross_attention',
  'addition_time_embed_dim',
  'addition_embed_type_num_heads',
  'projection_class_embeddings_input_dim',
]);

/** Options accepted only with these values; anything else changes the forward pass in a way not implemented. */
const FIXED: Record<string, unknown[]> = {
  act_fn: ['silu', 'swish'],
  center_input_sample: [false],
  mid_block_type: ['UNetMidBlock2DCrossAttn'],
  dual_cross_attention: [false],
  class_embed_type: [null],
  num_class_embeds: [null],
  class_embeddings_concat: [false],
  addition_embed_type: [null],
  encoder_hid_dim: [null],
  encoder_hid_dim_type: [null],
  resnet_time_scale_shift: ['default'],
  time_embedding_type: ['positional'],
  time_embedding_act_fn: [null],
  timestep_post_act: [null],
  time_cond_proj_dim: [null],
  conv_in_kernel: [3],
  conv_out_kernel: [3],
  attention_type: ['default'],
};

const KNOWN = new Set([
  'sample_size',
  'in_channels',
  'out_channels',
  'flip_sin_to_cos',
  'freq_shift',
  'down_block_types',
  'up_block_types',
  'only_cross_attention',
  'block_out_channels',
  'layers_per_block',
  'downsample_padding',
  'mid_block_scale_factor',
  'norm_num_groups',
  'norm_eps',
  'cross_attention_dim',
  'transformer_layers_per_block',
  'attention_head_dim',
  'num_attention_heads',
  'use_linear_projection',
  'upcast_attention',
  'time_embedding_dim',
  ...Object.keys(FIXED),
  ...IGNORED,
]);

const DOWN_TYPES: CrossAttnDownBlockType[] = ['CrossAttnDownBlock2D', 'DownBlock2D'];
const UP_TYPES: CrossAttnUpBlockType[] = ['CrossAttnUpBlock2D', 'UpBlock2D'];

function number(c: Record<string, unknown>, key: string, fallback: number, positive: boolean): number {
  const value = c[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || (positive && !(value > 0))) {
    throw new ModelConfigError(`${WHERE}: '${key}' must be a ${positive ? 'positive ' : ''}number, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** One positive integer per block: a list of that many, or one integer for all (diffusers' `(value,) * len(blocks)`). */
function perBlock(c: Record<string, unknown>, key: string, fallback: number, blocks: number): number[] {
  const value = c[key] ?? fallback;
  if (isPositiveInt(value)) return new Array(blocks).fill(value);
  if (Array.isArray(value) && value.length === blocks && value.every(isPositiveInt)) return value;
  throw new ModelConfigError(
    `${WHERE}: '${key}' must be a positive integer or a list of ${blocks} (one per block), got ${JSON.stringify(value)}`,
  );
}

function blockTypes<T extends string>(c: Record<string, unknown>, key: string, fallback: T[], allowed: T[], blocks: number): T[] {
  const list = c[key] ?? fallback;
  if (!Array.isArray(list) || list.length !== blocks) {
    throw new ModelConfigError(`${WHERE}: '${key}' must list ${blocks} blocks (one per block_out_channels entry)`);
  }
  for (const type of list) {
    if (!allowed.includes(type)) {
      throw new ModelConfigError(
        `${WHERE}: block type ${JSON.stringify(type)} in ${key} is not supported (supported: ${allowed.join(', ')})`,
      );
    }
  }
  return list as T[];
}

export function parseConditionalUNetConfig(raw: unknown): ConditionalUNetConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ModelConfigError(`${WHERE}: expected a JSON object`);
  const c = raw as Record<string, unknown>;
  if (c._class_name !== undefined && c._class_name !== 'UNet2DConditionModel') {
    throw new ModelConfigError(
      `${WHERE}: _class_name '${c._class_name}' is not supported here; this reads diffusers' UNet2DConditionModel`,
    );
  }
  const unknown = Object.keys(c).filter((k) => !KNOWN.has(k));
  if (unknown.length) throw new ModelConfigError(`${WHERE}: unsupported option(s): ${unknown.join(', ')}`);
  for (const [key, allowed] of Object.entries(FIXED)) {
    if (key in c && !allowed.includes(c[key])) {
      throw new ModelConfigError(
        `${WHERE}: ${key} = ${JSON.stringify(c[key])} is not supported (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ')})`,
      );
    }
  }

  const blockOutChannels = c.block_out_channels ?? [320, 640, 1280, 1280];
  if (!Array.isArray(blockOutChannels) || blockOutChannels.length === 0 || !blockOutChannels.every(isPositiveInt)) {
    throw new ModelConfigError(
      `${WHERE}: 'block_out_channels' must be a list of positive integers, got ${JSON.stringify(blockOutChannels)}`,
    );
  }
  const blocks = blockOutChannels.length;
  const downBlockTypes = blockTypes(
    c,
    'down_block_types',
    ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    DOWN_TYPES,
    blocks,
  );
  const upBlockTypes = blockTypes(
    c,
    'up_block_types',
    ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    UP_TYPES,
    blocks,
  );

  const onlyCross = c.only_cross_attention ?? false;
  const onlyCrossList = Array.isArray(onlyCross) ? onlyCross : [onlyCross];
  if (!onlyCrossList.every((v) => typeof v === 'boolean') || (Array.isArray(onlyCross) && onlyCross.length !== blocks)) {
    throw new ModelConfigError(
      `${WHERE}: 'only_cross_attention' must be true, false or a list of ${blocks}, got ${JSON.stringify(onlyCross)}`,
    );
  }
  if (onlyCrossList.includes(true)) {
    throw new ModelConfigError(
      `${WHERE}: only_cross_attention = ${JSON.stringify(onlyCross)} is not supported (transformer blocks without self-attention)`,
    );
  }

  if (c.norm_num_groups === null) {
    throw new ModelConfigError(`${WHERE}: norm_num_groups = null (no GroupNorm before conv_out) is not supported`);
  }
  const normNumGroups = positiveInt(c, 'norm_num_groups', 32);
  for (const ch of blockOutChannels) {
    if (ch % normNumGroups !== 0) {
      throw new ModelConfigError(`${WHERE}: block_out_channels ${ch} is not divisible by norm_num_groups ${normNumGroups}`);
    }
  }
  // diffusers: num_attention_heads = num_attention_heads or attention_head_dim, one per block (SD
  // configs give the head count as attention_head_dim; newer configs may name it properly).
  const headsKey = c.num_attention_heads != null ? 'num_attention_heads' : 'attention_head_dim';
  if (c[headsKey] === null) {
    throw new ModelConfigError(
      `${WHERE}: attention_head_dim = null (and no num_attention_heads) leaves the transformers without a head count`,
    );
  }
  const numAttentionHeads = perBlock(c, headsKey, 8, blocks);
  const crossAttentionDim = perBlock(c, 'cross_attention_dim', 1280, blocks);
  const transformerLayersPerBlock = perBlock(c, 'transformer_layers_per_block', 1, blocks);
  const layersPerBlock = perBlock(c, 'layers_per_block', 2, blocks);
  // Each transformer's heads split its channels (diffusers floors out_channels // heads).
  const transformerChannels = [
    ...downBlockTypes.flatMap((type, i) => type === 'CrossAttnDownBlock2D' ? [[blockOutChannels[i], numAttentionHeads[i], i]] : []),
    [blockOutChannels[blocks - 1], numAttentionHeads[blocks - 1], blocks - 1],
    ...upBlockTypes.flatMap((type, i) =>
      type === 'CrossAttnUpBlock2D' ? [[blockOutChannels[blocks - 1 - i], numAttentionHeads[blocks - 1 - i], blocks - 1 - i]] : []
    ),
  ];
  // One encoder_hidden_states feeds every cross-attention: their widths must agree.
  const widths = new Set(transformerChannels.map(([, , block]) => crossAttentionDim[block]));
  if (widths.size > 1) {
    throw new ModelConfigError(
      `${WHERE}: cross_attention_dim ${JSON.stringify(c.cross_attention_dim)} gives the cross-attentions different widths ([${[
        ...widths,
      ]}]), and one encoder_hidden_states feeds them all`,
    );
  }
  for (const [channels, heads, block] of transformerChannels) {
    if (heads > channels) {
      throw new ModelConfigError(
        `${WHERE}: ${headsKey} gives block ${block} ${heads} heads (diffusers reads it as the number of heads), more than its ${channels} channels`,
      );
    }
  }

  const sampleSize = c.sample_size ?? null;
  const size = Array.isArray(sampleSize) ? sampleSize[0] : sampleSize;
  if (Array.isArray(sampleSize) && (sampleSize.length !== 2 || sampleSize[0] !== sampleSize[1])) {
    throw new ModelConfigError(`${WHERE}: only a square sample_size is supported, got ${JSON.stringify(sampleSize)}`);
  }
  const downsamplePadding = c.downsample_padding ?? 1;
  if (downsamplePadding !== 0 && downsamplePadding !== 1) {
    throw new ModelConfigError(`${WHERE}: 'downsample_padding' must be 0 or 1, got ${JSON.stringify(downsamplePadding)}`);
  }
  const inChannels = positiveInt(c, 'in_channels', 4);
  return {
    sampleSize: size === null ? null : positiveInt({ sample_size: size }, 'sample_size', 0),
    inChannels,
    outChannels: positiveInt(c, 'out_channels', 4),
    blockOutChannels,
    downBlockTypes,
    upBlockTypes,
    layersPerBlock,
    normNumGroups,
    normEps: number(c, 'norm_eps', 1e-5, true),
    numAttentionHeads,
    crossAttentionDim,
    transformerLayersPerBlock,
    useLinearProjection: flag(c, 'use_linear_projection', false),
    upcastAttention: flag(c, 'upcast_attention', false),
    flipSinToCos: flag(c, 'flip_sin_to_cos', true),
    freqShift: number(c, 'freq_shift', 0, false),
    downsamplePadding,
    midBlockScaleFactor: number(c, 'mid_block_scale_factor', 1, true),
    timeEmbeddingDim: c.time_embedding_dim == null ? 4 * blockOutChannels[0] : positiveInt(c, 'time_embedding_dim', 0),
  };
}
