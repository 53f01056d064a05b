/**
 * A Stable Diffusion model of any published layout with random weights, made in memory from its
 * components' config.json files (the real SD 1.5 and 2.1 configs are in ../shared/golden/sd/configs):
 * full-size memory and speed measurements without downloading a checkpoint. Random weights make
 * no pictures; the shapes, the bytes and the work are the real model's.
 */
import type { TokenizerFiles } from '../text/clip_tokenizer.ts';
import type { ModelFiles } from './model_files.ts';
import {
  randomAutoencoderSafetensors,
  randomClipTextSafetensors,
  randomConditionalUNetSafetensors,
  type RandomWeightsDtype,
} from './random_weights.ts';

/** Each component's config.json as diffusers and transformers publish them, parsed. */
export interface StableDiffusionConfigs {
  unet: unknown;
  vae: unknown;
  textEncoder: unknown;
  /** scheduler/scheduler_config.json (SD's scaled_linear betas); DDPM's defaults without it. */
  scheduler?: unknown;
}

export interface RandomStableDiffusionOptions {
  /** The CLIP tokenizer's files (any CLIP BPE vocabulary: the tiny SD folder's are the real one). */
  tokenizer: TokenizerFiles;
  /** The pad token where the layout's differs from the tokenizer files' (SD 2.x pads with '!'). */
  padToken?: string;
  /** The weights' first seed: the UNet's; the text encoder takes seed + 1, the VAE seed + 2. */
  seed?: number;
  /** How the files store the weights: 'F32', or 'F16' as the Hub's fp16 variants (half the bytes). */
  dtype?: RandomWeightsDtype;
}

/** What a folder's files are as text or a parsed object, as an object. */
function asObject(value: string | Record<string, unknown> | undefined): Record<string, unknown> {
  if (value === undefined) return {};
  return typeof value === 'string' ? JSON.parse(value) as Record<string, unknown> : value;
}

/**
 * The files of a StableDiffusionPipeline folder of these configs, every weight random: what
 * `StableDiffusionPipeline.load` and `readTextToImageModel` take from a downloaded folder. Each
 * weights file is made at its final size and filled in place (SD 1.5 at F16: 1.7 GB for the UNet).
 */
export function randomStableDiffusionFiles(configs: StableDiffusionConfigs, options: RandomStableDiffusionOptions): ModelFiles {
  const seed = options.seed ?? 1;
  const dtype = options.dtype ?? 'F32';
  let tokenizer = options.tokenizer;
  if (options.padToken !== undefined) {
    tokenizer = {
      ...tokenizer,
      tokenizerConfig: { ...asObject(tokenizer.tokenizerConfig), pad_token: options.padToken },
      specialTokensMap: { ...asObject(tokenizer.specialTokensMap), pad_token: options.padToken },
    };
  }
  return {
    config: configs.unet,
    weights: randomConditionalUNetSafetensors(configs.unet, seed, { dtype }),
    schedulerConfig: configs.scheduler,
    textEncoder: { config: configs.textEncoder, weights: randomClipTextSafetensors(configs.textEncoder, seed + 1, { dtype }) },
    tokenizer,
    autoencoder: { config: configs.vae, weights: randomAutoencoderSafetensors(configs.vae, seed + 2, { dtype }) },
    folders: { unet: 'unet', autoencoder: 'vae', textEncoder: 'text_encoder', tokenizer: 'tokenizer' },
  };
}
