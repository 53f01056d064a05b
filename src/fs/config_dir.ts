/**
 * The component configs of a Stable Diffusion folder without its weights (unet/, vae/,
 * text_encoder/ and scheduler/ as diffusers lays them out: ../shared/golden/sd/configs/sd15), and a
 * tokenizer folder's files, read from disk for `randomStableDiffusionFiles` (Node and Deno, node:fs).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StableDiffusionConfigs } from '../models/random_pipeline.ts';
import type { TokenizerFiles } from '../text/clip_tokenizer.ts';
import { pathKind } from './path_kind.ts';
import { ModelDirError } from './model_dir.ts';

function readJson(path: string): unknown {
  if (pathKind(path) !== 'file') throw new ModelDirError(`'${path}' is missing`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ModelDirError(`'${path}' is not valid JSON: ${(error as Error).message}`);
  }
}

/** unet/config.json, vae/config.json, text_encoder/config.json and, when present, scheduler/scheduler_config.json. */
export function readStableDiffusionConfigs(dir: string): StableDiffusionConfigs {
  const scheduler = join(dir, 'scheduler', 'scheduler_config.json');
  return {
    unet: readJson(join(dir, 'unet', 'config.json')),
    vae: readJson(join(dir, 'vae', 'config.json')),
    textEncoder: readJson(join(dir, 'text_encoder', 'config.json')),
    scheduler: pathKind(scheduler) === 'file' ? readJson(scheduler) : undefined,
  };
}

/** A tokenizer folder's vocab.json and merges.txt and, when present, its two config files. */
export function readTokenizerDir(dir: string): TokenizerFiles {
  const text = (file: string, required: boolean) => {
    const path = join(dir, file);
    if (pathKind(path) !== 'file') {
      if (required) throw new ModelDirError(`'${path}' is missing`);
      return undefined;
    }
    return readFileSync(path, 'utf8');
  };
  return {
    vocab: text('vocab.json', true)!,
    merges: text('merges.txt', true)!,
    tokenizerConfig: text('tokenizer_config.json', false),
    specialTokensMap: text('special_tokens_map.json', false),
  };
}
