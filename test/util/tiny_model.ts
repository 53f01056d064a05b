/** A small random UNet2DModel (8x8 images, two levels, attention) for tests that run it a lot. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUNetSafetensors } from '../../src/models/random_weights.ts';
import type { ModelFiles } from '../../src/pipeline.ts';

export const TINY_CONFIG = {
  _class_name: 'UNet2DModel',
  sample_size: 8,
  in_channels: 3,
  out_channels: 3,
  block_out_channels: [8, 16],
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D'],
  up_block_types: ['AttnUpBlock2D', 'UpBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 4,
  norm_eps: 1e-6,
  attention_head_dim: 8,
  flip_sin_to_cos: false,
  freq_shift: 1,
  downsample_padding: 0,
};

export function tinyModelFiles(seed = 1): ModelFiles {
  return {
    config: TINY_CONFIG,
    weights: randomUNetSafetensors(TINY_CONFIG, seed),
    schedulerConfig: { beta_schedule: 'linear', clip_sample: false },
  };
}

/** The tiny model as a user's model folder (config, weights, scheduler config) at `dir`, made here. */
export function writeTinyModel(dir: string, files: ModelFiles = tinyModelFiles()): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(files.config));
  writeFileSync(join(dir, 'diffusion_pytorch_model.safetensors'), files.weights);
  writeFileSync(join(dir, 'scheduler_config.json'), JSON.stringify(files.schedulerConfig));
  return dir;
}
