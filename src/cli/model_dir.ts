/**
 * Model folders for the command line: the bundled default model, and the folder readers of
 * `src/fs/model_dir.ts` (both layouts; safetensors or .bin weights) with their problems as
 * one-line CliErrors that name the folder and the file, and say how to get a model.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findModelDir, ModelDirError, type ModelPaths, readModelDir as readDir } from '../fs/model_dir.ts';
import type { ModelFiles } from '../models/model_files.ts';
import { CliError } from './args.ts';

export type { ModelPaths } from '../fs/model_dir.ts';

/** The bundled model, relative to the project root. */
export const DEFAULT_MODEL = join('weights', 'emoji32');

const FETCH_HINT = 'a model folder holds config.json + diffusion_pytorch_model.safetensors or .bin (+ scheduler_config.json), ' +
  'or unet/ + scheduler/ of a diffusers pipeline; get one with: npm run fetch-model -- google/ddpm-cifar10-32 ' +
  '(or make one from a DDIM paper checkpoint with: sample.ts convert)';

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

function asCliError(error: unknown): unknown {
  if (error instanceof ModelDirError) return new CliError(error.message, error.hint ? FETCH_HINT : undefined);
  return error;
}

/** Finds a model's files in either layout, or says exactly what is missing. */
export function findModelFiles(dir: string): ModelPaths {
  try {
    return findModelDir(dir);
  } catch (error) {
    throw asCliError(error);
  }
}

/** Reads a model folder into the files DdimPipeline.load takes. */
export async function readModelDir(dir: string): Promise<{ paths: ModelPaths; files: ModelFiles }> {
  try {
    return await readDir(dir);
  } catch (error) {
    throw asCliError(error);
  }
}
