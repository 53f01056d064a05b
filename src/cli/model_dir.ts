/**
 * Model folders on disk. Two layouts are read:
 *   - flat (what scripts/fetch-model.ts writes, and weights/emoji32): config.json,
 *     diffusion_pytorch_model.safetensors and, optionally, scheduler_config.json;
 *   - a diffusers pipeline (DDPMPipeline.save_pretrained): unet/config.json,
 *     unet/diffusion_pytorch_model.safetensors and, optionally, scheduler/scheduler_config.json.
 * Every problem is a one-line CliError that names the folder and the file.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelFiles } from '../pipeline.ts';
import { CliError } from './args.ts';
import { readFileBytes } from './files.ts';

/** The bundled model, relative to the project root. */
export const DEFAULT_MODEL = join('weights', 'emoji32');

const WEIGHTS = 'diffusion_pytorch_model.safetensors';
const PICKLE = 'diffusion_pytorch_model.bin';
const FETCH_HINT = 'a model folder holds config.json + diffusion_pytorch_model.safetensors (+ scheduler_config.json), ' +
  'or unet/ + scheduler/ of a diffusers pipeline; get one with: npm run fetch-model -- google/ddpm-cifar10-32';

export interface ModelPaths {
  dir: string;
  layout: 'flat' | 'pipeline';
  config: string;
  weights: string;
  /** undefined: the model has no scheduler config, and DDPM's default schedule is used. */
  scheduler?: string;
}

/**
 * The bundled model's folder: found by walking up from this module, so it does not depend on the
 * working directory, and works both from the .ts files (Deno) and from esbuild's bundle in
 * build/ (Node). Falls back to weights/emoji32 under the working directory.
 */
export function defaultModelDir(): string {
  if (import.meta.url.startsWith('file:')) {
    let dir = dirname(fileURLToPath(import.meta.url));
    for (;;) {
      const candidate = join(dir, DEFAULT_MODEL);
      if (existsSync(join(candidate, 'config.json'))) return candidate;
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return resolve(DEFAULT_MODEL);
}

function kind(path: string): 'file' | 'dir' | 'missing' | 'other' {
  try {
    const s = statSync(path);
    return s.isFile() ? 'file' : s.isDirectory() ? 'dir' : 'other';
  } catch {
    return 'missing';
  }
}

/** Finds a model's files in either layout, or says exactly what is missing. */
export function findModelFiles(dir: string): ModelPaths {
  const what = kind(dir);
  if (what === 'missing') throw new CliError(`model folder '${dir}' does not exist`, FETCH_HINT);
  if (what !== 'dir') throw new CliError(`model path '${dir}' is not a folder`, FETCH_HINT);
  const layouts = [
    { layout: 'flat' as const, base: dir, scheduler: join(dir, 'scheduler_config.json') },
    { layout: 'pipeline' as const, base: join(dir, 'unet'), scheduler: join(dir, 'scheduler', 'scheduler_config.json') },
  ];
  for (const { layout, base, scheduler } of layouts) {
    const config = join(base, 'config.json');
    if (kind(config) !== 'file') continue;
    const weights = join(base, WEIGHTS);
    if (kind(weights) !== 'file') {
      const hint = kind(join(base, PICKLE)) === 'file'
        ? `it has ${PICKLE} (a PyTorch pickle), which the engine does not read; convert it with: python -c "import torch; ` +
          `from safetensors.torch import save_file; save_file(torch.load('${join(base, PICKLE)}'), '${weights}')"`
        : FETCH_HINT;
      throw new CliError(
        `model folder '${dir}' has ${layout === 'flat' ? 'config.json' : 'unet/config.json'} but no ${
          layout === 'flat' ? WEIGHTS : `unet/${WEIGHTS}`
        }`,
        hint,
      );
    }
    return { dir, layout, config, weights, scheduler: kind(scheduler) === 'file' ? scheduler : undefined };
  }
  throw new CliError(`model folder '${dir}' has no config.json (nor unet/config.json)`, FETCH_HINT);
}

async function readJson(path: string, what: string): Promise<unknown> {
  const text = new TextDecoder().decode(await readFileBytes(path, what));
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new CliError(`${what} '${path}' is not valid JSON: ${(error as Error).message}`);
  }
}

/** Reads a model folder into the files DdimPipeline.load takes. */
export async function readModelDir(dir: string): Promise<{ paths: ModelPaths; files: ModelFiles }> {
  const paths = findModelFiles(dir);
  const files: ModelFiles = {
    config: await readJson(paths.config, 'model config'),
    weights: await readFileBytes(paths.weights, 'model weights'),
    schedulerConfig: paths.scheduler ? await readJson(paths.scheduler, 'scheduler config') : undefined,
  };
  return { paths, files };
}
