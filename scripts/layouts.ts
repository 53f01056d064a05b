/**
 * The layouts of two public DDPM checkpoints, as diffusers' config.json gives them, for timing
 * those architectures with random weights (speed does not depend on the values), and of Stable
 * Diffusion 1.5 and 2.1 (SD_LAYOUTS, below):
 * - google/ddpm-cifar10-32: 35.7M parameters, 32x32;
 * - google/ddpm-celebahq-256: 113.7M parameters, 256x256.
 * Both use DDPM's linear betas (1e-4 to 0.02 over 1000 steps), the default schedule.
 */
import { join } from 'node:path';
import { readStableDiffusionConfigs, readTokenizerDir } from '../src/fs/config_dir.ts';
import { randomStableDiffusionFiles } from '../src/models/random_pipeline.ts';
import { randomUNetSafetensors, type RandomWeightsDtype } from '../src/models/random_weights.ts';
import type { ModelFiles } from '../src/pipeline.ts';

const COMMON = {
  _class_name: 'UNet2DModel',
  act_fn: 'silu',
  add_attention: true,
  attention_head_dim: null,
  center_input_sample: false,
  downsample_padding: 0,
  flip_sin_to_cos: false,
  freq_shift: 1,
  in_channels: 3,
  out_channels: 3,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-6,
  norm_num_groups: 32,
  resnet_time_scale_shift: 'default',
  time_embedding_type: 'positional',
};

export const LAYOUTS = {
  cifar10: {
    repo: 'google/ddpm-cifar10-32',
    params: 35.7e6,
    config: {
      ...COMMON,
      sample_size: 32,
      block_out_channels: [128, 256, 256, 256],
      down_block_types: ['DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D', 'DownBlock2D'],
      up_block_types: ['UpBlock2D', 'UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D'],
    },
  },
  celebahq: {
    repo: 'google/ddpm-celebahq-256',
    params: 113.7e6,
    config: {
      ...COMMON,
      sample_size: 256,
      block_out_channels: [128, 128, 256, 256, 512, 512],
      down_block_types: ['DownBlock2D', 'DownBlock2D', 'DownBlock2D', 'DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D'],
      up_block_types: ['UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D', 'UpBlock2D', 'UpBlock2D'],
    },
  },
} as const;

export type LayoutName = keyof typeof LAYOUTS;

export function isLayoutName(name: string): name is LayoutName {
  return Object.hasOwn(LAYOUTS, name);
}

/** The layout with random weights, as files the engine loads like a downloaded model's. */
export function layoutModel(name: LayoutName, seed = 1): ModelFiles {
  const { config } = LAYOUTS[name];
  return { config, weights: randomUNetSafetensors(config, seed) };
}

/**
 * Stable Diffusion layouts: the published component configs in ../shared/golden/sd/configs (UNet,
 * VAE, CLIP text encoder, scheduler) with random weights, and the real CLIP tokenizer files of the
 * tiny SD folder. SD 2.x pads prompts with '!' where SD 1.x pads with <|endoftext|>.
 */
export const SD_LAYOUTS = {
  sd15: { repo: 'stable-diffusion-v1-5/stable-diffusion-v1-5', configs: 'sd15', padToken: undefined },
  sd21: { repo: 'stabilityai/stable-diffusion-2-1', configs: 'sd21', padToken: '!' },
} as const;

export type SdLayoutName = keyof typeof SD_LAYOUTS;

export function isSdLayoutName(name: string): name is SdLayoutName {
  return Object.hasOwn(SD_LAYOUTS, name);
}

/** A Stable Diffusion layout's files, every weight random ('F16' as the Hub's fp16 variants: half the memory). */
export function sdLayoutModel(
  name: SdLayoutName,
  options: { goldenDir?: string; dtype?: RandomWeightsDtype; seed?: number } = {},
): ModelFiles {
  const golden = options.goldenDir ?? '../shared/golden/sd';
  const layout = SD_LAYOUTS[name];
  return randomStableDiffusionFiles(readStableDiffusionConfigs(join(golden, 'configs', layout.configs)), {
    tokenizer: readTokenizerDir(join(golden, 'tiny-sd', 'tokenizer')),
    padToken: layout.padToken,
    dtype: options.dtype,
    seed: options.seed,
  });
}
