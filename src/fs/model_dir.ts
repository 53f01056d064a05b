/**
 * Model folders on disk, for Node and Deno (node:fs; never part of the browser bundle): the
 * layouts of `src/models/model_files.ts`, found and read into the `ModelFiles` that
 * `DdimPipeline.load` takes. Exported from `src/node.ts` as `loadModelDir`.
 *
 * ```ts
 * import { DdimPipeline, loadModelDir, requestGpu } from './src/mod.ts';
 * const pipeline = await DdimPipeline.load(await requestGpu(), await loadModelDir('weights/emoji32'));
 * ```
 */

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  MODEL_INDEX,
  MODEL_LAYOUTS,
  type ModelFiles,
  modelFiles,
  PICKLE_WEIGHTS,
  readPipelineFolder,
  SAFETENSORS_WEIGHTS,
} from '../models/model_files.ts';
import { ModelLoadError } from '../web/load_model.ts';
import { pathKind } from './path_kind.ts';

/** A model folder that cannot be read; `hint` says what a model folder holds or what to do. */
export class ModelDirError extends ModelLoadError {
  override name = 'ModelDirError';
  constructor(message: string, readonly hint?: string) {
    super(message);
  }
}

export interface ModelPaths {
  dir: string;
  layout: 'flat' | 'pipeline';
  config: string;
  weights: string;
  /** undefined: the model has no scheduler config, and DDPM's default schedule is used. */
  scheduler?: string;
  /** A latent model's autoencoder (vae/ or vqvae/ of a pipeline folder). */
  autoencoder?: { config: string; weights: string };
}

const LAYOUT_HINT = `a model folder holds config.json + ${SAFETENSORS_WEIGHTS} (or ${PICKLE_WEIGHTS}) ` +
  '(+ scheduler_config.json), or a diffusers pipeline: model_index.json with unet/, scheduler/ and, for a latent model, vae/ or vqvae/';

/** Finds a model's files in either layout, or says exactly what is missing. */
export function findModelDir(dir: string): ModelPaths {
  const what = pathKind(dir);
  if (what === 'missing') throw new ModelDirError(`model folder '${dir}' does not exist`, LAYOUT_HINT);
  if (what !== 'dir') throw new ModelDirError(`model path '${dir}' is not a folder`, LAYOUT_HINT);
  for (const layout of MODEL_LAYOUTS) {
    const config = join(dir, layout.config);
    if (pathKind(config) !== 'file') continue;
    const weights = layout.weights.map((file) => join(dir, file)).find((path) => pathKind(path) === 'file');
    if (!weights) {
      throw new ModelDirError(`model folder '${dir}' has ${layout.config} but no ${layout.weights.join(' nor ')}`, LAYOUT_HINT);
    }
    const scheduler = join(dir, layout.scheduler);
    return { dir, layout: layout.layout, config, weights, scheduler: pathKind(scheduler) === 'file' ? scheduler : undefined };
  }
  throw new ModelDirError(`model folder '${dir}' has no config.json (nor unet/config.json)`, LAYOUT_HINT);
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    const buffer = await readFile(path);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    throw new ModelDirError(`cannot read ${what} '${path}': ${(error as Error).message}`);
  }
}

async function readJson(path: string, what: string): Promise<unknown> {
  const text = new TextDecoder().decode(await readBytes(path, what));
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ModelDirError(`${what} '${path}' is not valid JSON: ${(error as Error).message}`);
  }
}

/** Reads a pipeline folder by its model_index.json (LDMPipeline, DDPMPipeline, ...). */
async function readPipelineDir(dir: string): Promise<{ paths: ModelPaths; files: ModelFiles }> {
  const { files, paths } = await readPipelineFolder({
    read: async (path) => pathKind(join(dir, path)) === 'file' ? await readBytes(join(dir, path), 'model file') : undefined,
    where: (path) => join(dir, path),
    fail: (message) => new ModelDirError(message),
  });
  return {
    files,
    paths: {
      dir,
      layout: 'pipeline',
      config: join(dir, paths.config),
      weights: join(dir, paths.weights),
      scheduler: paths.scheduler && join(dir, paths.scheduler),
      ...(paths.autoencoder
        ? { autoencoder: { config: join(dir, paths.autoencoder.config), weights: join(dir, paths.autoencoder.weights) } }
        : {}),
    },
  };
}

/** Reads a model folder, and says where each file came from. */
export async function readModelDir(dir: string): Promise<{ paths: ModelPaths; files: ModelFiles }> {
  if (pathKind(dir) === 'dir' && pathKind(join(dir, MODEL_INDEX)) === 'file') return await readPipelineDir(dir);
  const paths = findModelDir(dir);
  const config = await readJson(paths.config, 'model config');
  const weights = await readBytes(paths.weights, 'model weights');
  const schedulerConfig = paths.scheduler ? await readJson(paths.scheduler, 'scheduler config') : undefined;
  try {
    return { paths, files: await modelFiles(config, weights, schedulerConfig) };
  } catch (error) {
    throw new ModelDirError(`model weights '${paths.weights}' cannot be read: ${(error as Error).message}`);
  }
}

/**
 * A model folder on disk (either layout; safetensors or .bin weights) as the files
 * `DdimPipeline.load` takes. Throws ModelDirError (a ModelLoadError) naming the folder and file.
 */
export async function loadModelDir(dir: string): Promise<ModelFiles> {
  return (await readModelDir(dir)).files;
}
