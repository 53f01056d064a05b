/**
 * The config.json of diffusers' AutoencoderKL (Stable Diffusion's VAE) and VQModel (LDM's), validated:
 * diffusers' defaults for what a file leaves out, every option the engine does not implement refused
 * by name.
 */
import { flag, ModelConfigError, positiveInt } from './config_values.ts';

export type AutoencoderClass = 'AutoencoderKL' | 'VQModel';

export interface AutoencoderConfig {
  className: AutoencoderClass;
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  latentChannels: number;
  normNumGroups: number;
  sampleSize: number;
  /** KL: latents are the VAE mean times this; VQ: kept for information (LDMPipeline does not scale). */
  scalingFactor: number;
  midBlockAddAttention: boolean;
  useQuantConv: boolean;
  usePostQuantConv: boolean;
  /** VQModel: the codebook's size and width (vq_embed_dim, latent_channels by default). */
  numVqEmbeddings: number;
  vqEmbedDim: number;
  forceUpcast: boolean;
}

/** The eps of every GroupNorm in diffusers' Encoder and Decoder (fixed there, not in the config). */
export const AUTOENCODER_NORM_EPS = 1e-6;

/** Read for information only: nothing at inference depends on them. */
const IGNORED = new Set(['_class_name', '_diffusers_version', '_name_or_path', 'sample_size', 'lookup_from_codebook']);

const FIXED: Record<string, unknown[]> = {
  act_fn: ['silu', 'swish'],
  norm_type: ['group'],
  // Only the mean is used; these are SD 3 / SDXL refinements the engine does not apply.
  shift_factor: [null],
  latents_mean: [null],
  latents_std: [null],
};

const KNOWN = new Set([
  'in_channels',
  'out_channels',
  'down_block_types',
  'up_block_types',
  'block_out_channels',
  'layers_per_block',
  'latent_channels',
  'norm_num_groups',
  'scaling_factor',
  'force_upcast',
  'mid_block_add_attention',
  'use_quant_conv',
  'use_post_quant_conv',
  'num_vq_embeddings',
  'vq_embed_dim',
  ...Object.keys(FIXED),
  ...IGNORED,
]);

export function parseAutoencoderConfig(raw: unknown): AutoencoderConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ModelConfigError('config.json: expected a JSON object');
  const c = raw as Record<string, unknown>;
  const className = c._class_name;
  if (className !== 'AutoencoderKL' && className !== 'VQModel') {
    throw new ModelConfigError(
      `config.json: _class_name ${JSON.stringify(className)} is not an autoencoder the engine builds (AutoencoderKL, VQModel)`,
    );
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
  const blockOutChannels = c.block_out_channels ?? [64];
  if (!Array.isArray(blockOutChannels) || blockOutChannels.length === 0 || blockOutChannels.some((v) => !Number.isInteger(v) || v <= 0)) {
    throw new ModelConfigError(
      `config.json: block_out_channels must be a list of positive integers, got ${JSON.stringify(blockOutChannels)}`,
    );
  }
  const levels = blockOutChannels.length;
  for (
    const [key, expected] of [['down_block_types', 'DownEncoderBlock2D'], ['up_block_types', 'UpDecoderBlock2D']] as const
  ) {
    const list = c[key] ?? Array(levels).fill(expected);
    if (!Array.isArray(list) || list.length !== levels) {
      throw new ModelConfigError(`config.json: ${key} must list ${levels} blocks (one per block_out_channels entry)`);
    }
    const other = list.find((type) => type !== expected);
    if (other !== undefined) {
      throw new ModelConfigError(`config.json: block type ${JSON.stringify(other)} in ${key} is not supported (supported: ${expected})`);
    }
  }
  const normNumGroups = positiveInt(c, 'norm_num_groups', 32);
  for (const ch of blockOutChannels as number[]) {
    if (ch % normNumGroups !== 0) {
      throw new ModelConfigError(`config.json: block_out_channels ${ch} is not divisible by norm_num_groups ${normNumGroups}`);
    }
  }
  const scalingFactor = c.scaling_factor ?? 0.18215;
  if (typeof scalingFactor !== 'number' || !(scalingFactor > 0)) {
    throw new ModelConfigError(`config.json: scaling_factor must be a positive number, got ${JSON.stringify(scalingFactor)}`);
  }
  const sampleSize = Array.isArray(c.sample_size) ? c.sample_size[0] : c.sample_size;
  const isVq = className === 'VQModel';
  const latentChannels = positiveInt(c, 'latent_channels', isVq ? 3 : 4);
  return {
    className,
    inChannels: positiveInt(c, 'in_channels', 3),
    outChannels: positiveInt(c, 'out_channels', 3),
    blockOutChannels: blockOutChannels as number[],
    layersPerBlock: positiveInt(c, 'layers_per_block', 1),
    latentChannels,
    normNumGroups,
    sampleSize: positiveInt({ sample_size: sampleSize }, 'sample_size', 32),
    scalingFactor,
    midBlockAddAttention: flag(c, 'mid_block_add_attention', true),
    useQuantConv: flag(c, 'use_quant_conv', true),
    usePostQuantConv: flag(c, 'use_post_quant_conv', true),
    numVqEmbeddings: isVq ? positiveInt(c, 'num_vq_embeddings', 256) : 0,
    vqEmbedDim: isVq ? positiveInt(c, 'vq_embed_dim', latentChannels) : 0,
    // diffusers' defaults: AutoencoderKL upcasts, VQModel does not.
    forceUpcast: flag(c, 'force_upcast', !isVq),
  };
}

/** Image pixels per latent position along each side: 2 for every down block but the last. */
export function downscaleFactor(config: AutoencoderConfig): number {
  return 2 ** (config.blockOutChannels.length - 1);
}
