/**
 * diffusers' UNet2DModel config.json, validated: every option the engine does not implement is
 * refused by name rather than silently ignored.
 */
import { ModelConfigError, positiveInt } from './config_values.ts';

export type DownBlockType = 'DownBlock2D' | 'AttnDownBlock2D';
export type UpBlockType = 'UpBlock2D' | 'AttnUpBlock2D';

export interface UNetConfig {
  sampleSize: number;
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  downBlockTypes: DownBlockType[];
  upBlockTypes: UpBlockType[];
  midBlock: boolean;
  layersPerBlock: number;
  normNumGroups: number;
  normEps: number;
  attnNormNumGroups: number | null;
  /** null: one head with all channels; else the width of each head. */
  attentionHeadDim: number | null;
  addAttention: boolean;
  flipSinToCos: boolean;
  freqShift: number;
  downsamplePadding: number;
  midBlockScaleFactor: number;
  timeEmbeddingDim: number | null;
  centerInputSample: boolean;
  /**
   * Class conditioning: 'embedding' (num_class_embeds with class_embed_type null: an nn.Embedding
   * of `numClassEmbeds` rows) or 'timestep' (the label embedded like a timestep, then an MLP);
   * null for an unconditional model.
   */
  classEmbedType: 'embedding' | 'timestep' | null;
  numClassEmbeds: number | null;
}

export { ModelConfigError };

/** Options read for information only: they change nothing at inference. */
const IGNORED = new Set(['_class_name', '_diffusers_version', '_name_or_path', 'dropout', 'num_train_timesteps', 'attn_norm_num_groups']);

/** Options accepted only with these values. */
const FIXED: Record<string, unknown[]> = {
  act_fn: ['silu', 'swish'],
  time_embedding_type: ['positional'],
  resnet_time_scale_shift: ['default'],
  downsample_type: ['conv'],
  upsample_type: ['conv'],
  class_embed_type: [null, 'timestep'],
  mid_block_type: ['UNetMidBlock2D', null],
};

const KNOWN = new Set([
  'sample_size',
  'in_channels',
  'out_channels',
  'block_out_channels',
  'down_block_types',
  'up_block_types',
  'layers_per_block',
  'norm_num_groups',
  'norm_eps',
  'attention_head_dim',
  'add_attention',
  'flip_sin_to_cos',
  'freq_shift',
  'downsample_padding',
  'mid_block_scale_factor',
  'time_embedding_dim',
  'center_input_sample',
  'num_class_embeds',
  ...Object.keys(FIXED),
  ...IGNORED,
]);

export function parseUNetConfig(raw: unknown): UNetConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ModelConfigError('config.json: expected a JSON object');
  const c = raw as Record<string, unknown>;
  if (c._class_name !== undefined && c._class_name !== 'UNet2DModel') {
    throw new ModelConfigError(`config.json: _class_name '${c._class_name}' is not supported; the engine runs diffusers' UNet2DModel`);
  }
  const unknown = Object.keys(c).filter((k) => !KNOWN.has(k));
  if (unknown.length) throw new ModelConfigError(`config.json: unsupported option(s): ${unknown.join(', ')}`);
  for (const [key, allowed] of Object.entries(FIXED)) {
    if (key in c && !allowed.includes(c[key] as never)) {
      throw new ModelConfigError(
        `config.json: ${key} = ${JSON.stringify(c[key])} is not supported (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ')})`,
      );
    }
  }
  const blockOutChannels = c.block_out_channels ?? [224, 448, 672, 896];
  if (!Array.isArray(blockOutChannels) || blockOutChannels.length === 0 || blockOutChannels.some((v) => !Number.isInteger(v) || v <= 0)) {
    throw new ModelConfigError(
      `config.json: block_out_channels must be a list of positive integers, got ${JSON.stringify(blockOutChannels)}`,
    );
  }
  const downBlockTypes = (c.down_block_types ?? ['DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D']) as string[];
  const upBlockTypes = (c.up_block_types ?? ['AttnUpBlock2D', 'AttnUpBlock2D', 'AttnUpBlock2D', 'UpBlock2D']) as string[];
  for (
    const [key, list, allowed] of [
      ['down_block_types', downBlockTypes, ['DownBlock2D', 'AttnDownBlock2D']],
      ['up_block_types', upBlockTypes, ['UpBlock2D', 'AttnUpBlock2D']],
    ] as const
  ) {
    if (!Array.isArray(list) || list.length !== blockOutChannels.length) {
      throw new ModelConfigError(`config.json: ${key} must list ${blockOutChannels.length} blocks (one per block_out_channels entry)`);
    }
    for (const type of list) {
      if (!(allowed as readonly string[]).includes(type)) {
        throw new ModelConfigError(`config.json: block type '${type}' in ${key} is not supported (supported: ${allowed.join(', ')})`);
      }
    }
  }
  const normNumGroups = positiveInt(c, 'norm_num_groups', 32);
  const attnNormNumGroups = c.attn_norm_num_groups == null ? null : positiveInt(c, 'attn_norm_num_groups');
  for (const ch of blockOutChannels as number[]) {
    if (ch % normNumGroups !== 0) {
      throw new ModelConfigError(`config.json: block_out_channels ${ch} is not divisible by norm_num_groups ${normNumGroups}`);
    }
  }
  const attentionHeadDim = c.attention_head_dim == null ? null : positiveInt(c, 'attention_head_dim');
  const normEps = c.norm_eps ?? 1e-5;
  if (typeof normEps !== 'number' || !(normEps > 0)) throw new ModelConfigError(`config.json: norm_eps must be a positive number`);
  const freqShift = c.freq_shift ?? 0;
  if (typeof freqShift !== 'number') throw new ModelConfigError(`config.json: freq_shift must be a number`);
  const downsamplePadding = c.downsample_padding ?? 1;
  if (downsamplePadding !== 0 && downsamplePadding !== 1) {
    throw new ModelConfigError(`config.json: downsample_padding must be 0 or 1, got ${JSON.stringify(downsamplePadding)}`);
  }
  const midBlockScaleFactor = c.mid_block_scale_factor ?? 1;
  if (typeof midBlockScaleFactor !== 'number' || !(midBlockScaleFactor > 0)) {
    throw new ModelConfigError('config.json: mid_block_scale_factor must be a positive number');
  }
  if (c.attention_head_dim != null) {
    for (const [i, type] of downBlockTypes.entries()) {
      const ch = (blockOutChannels as number[])[i];
      if (type.startsWith('Attn') && ch % attentionHeadDim! !== 0) {
        throw new ModelConfigError(
          `config.json: ${ch} channels of down block ${i} do not split into heads of attention_head_dim ${attentionHeadDim}`,
        );
      }
    }
  }
  const numClassEmbeds = c.num_class_embeds == null ? null : positiveInt(c, 'num_class_embeds');
  // diffusers: an nn.Embedding when num_class_embeds is set and class_embed_type is null.
  const classEmbedType = c.class_embed_type === 'timestep' ? 'timestep' : numClassEmbeds !== null ? 'embedding' : null;
  const sampleSize = c.sample_size;
  const size = Array.isArray(sampleSize) ? sampleSize[0] : sampleSize;
  if (Array.isArray(sampleSize) && sampleSize[0] !== sampleSize[1]) {
    throw new ModelConfigError('config.json: only square sample_size is supported');
  }
  return {
    sampleSize: positiveInt({ sample_size: size }, 'sample_size'),
    inChannels: positiveInt(c, 'in_channels', 3),
    outChannels: positiveInt(c, 'out_channels', 3),
    blockOutChannels: blockOutChannels as number[],
    downBlockTypes: downBlockTypes as DownBlockType[],
    upBlockTypes: upBlockTypes as UpBlockType[],
    midBlock: c.mid_block_type !== null,
    layersPerBlock: positiveInt(c, 'layers_per_block', 2),
    normNumGroups,
    normEps,
    attnNormNumGroups,
    attentionHeadDim,
    addAttention: c.add_attention !== false,
    flipSinToCos: c.flip_sin_to_cos !== false,
    freqShift,
    downsamplePadding,
    midBlockScaleFactor,
    timeEmbeddingDim: c.time_embedding_dim == null ? null : positiveInt(c, 'time_embedding_dim'),
    centerInputSample: c.center_input_sample === true,
    classEmbedType,
    numClassEmbeds,
  };
}
