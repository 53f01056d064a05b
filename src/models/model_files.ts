/**
 * What a model is made of (`ModelFiles`) and where its files lie in a model folder, shared by the
 * folder readers on disk (`src/cli/model_dir.ts`, `loadModelDir`) and over HTTP (`loadModel`).
 *
 * Two layouts, tried in this order:
 *   - flat (weights/emoji32, scripts/fetch-model.ts): config.json, the weights and, optionally,
 *     scheduler_config.json;
 *   - a diffusers pipeline (DDPMPipeline.save_pretrained): unet/config.json, unet/ weights and,
 *     optionally, scheduler/scheduler_config.json.
 * The weights are diffusion_pytorch_model.safetensors or, when a folder has only that, the
 * PyTorch pickle diffusion_pytorch_model.bin (read without running it).
 */
import { parseWeightsFile, prepareWeights } from '../io/weights_file.ts';
import { checkComponentClass, parseModelIndex, type PipelineComponent } from './model_index.ts';
import { ModelConfigError } from './unet_2d_config.ts';
import type { TokenizerFiles } from '../text/clip_tokenizer.ts';

export interface ModelFiles {
  /** config.json of the UNet, parsed. */
  config: unknown;
  /** diffusion_pytorch_model.safetensors, or diffusion_pytorch_model.bin (told apart by content). */
  weights: Uint8Array;
  /** scheduler_config.json, parsed, when the model has one (else DDPM's linear schedule). */
  schedulerConfig?: unknown;
  /** A latent model's autoencoder (a pipeline folder's vae/ or vqvae/): its config.json and weights. */
  autoencoder?: { config: unknown; weights: Uint8Array };
  /** A text-to-image model's text encoder (text_encoder/: transformers' config.json and weights). */
  textEncoder?: { config: unknown; weights: Uint8Array };
  /** A text-to-image model's tokenizer files (tokenizer/), as text. */
  tokenizer?: TokenizerFiles;
  /** A pipeline folder's component sub-folders, for messages that name a file ('unet', 'vqvae'). */
  folders?: { unet: string; autoencoder?: string; textEncoder?: string; tokenizer?: string };
}

/** The model index of a diffusers pipeline folder (LDMPipeline, ...): its components in sub-folders. */
export const MODEL_INDEX = 'model_index.json';

/**
 * A component's weights files, preferred first: safetensors, its fp16 variant, then the pickles;
 * diffusers' names, or transformers' for a transformers component (the text encoder).
 */
export function componentWeights(folder: string, library = 'diffusers'): string[] {
  const stem = library === 'transformers' ? 'model' : 'diffusion_pytorch_model';
  const pickle = library === 'transformers' ? 'pytorch_model' : 'diffusion_pytorch_model';
  return [`${stem}.safetensors`, `${stem}.fp16.safetensors`, `${pickle}.bin`, `${pickle}.fp16.bin`].map((file) => `${folder}/${file}`);
}

/** A tokenizer folder's files: the vocabulary and merges, and the optional configs. */
const TOKENIZER_FILES = {
  vocab: 'vocab.json',
  merges: 'merges.txt',
  tokenizerConfig: 'tokenizer_config.json',
  specialTokensMap: 'special_tokens_map.json',
};

/** Where a folder's files come from: disk (src/fs/model_dir.ts) or HTTP (src/web/load_model.ts). */
export interface FolderReader {
  /** The file's bytes, or undefined when it does not exist. */
  read(path: string): Promise<Uint8Array | undefined>;
  /** The file as a message names it (a path on disk, a URL). */
  where(path: string): string;
  /** The error to throw for a problem with the folder's files. */
  fail(message: string): Error;
}

/** The files a pipeline folder's model was read from, relative to the folder. */
export interface PipelinePaths {
  config: string;
  weights: string;
  scheduler?: string;
  autoencoder?: { config: string; weights: string };
}

async function readJson(reader: FolderReader, path: string, read?: Uint8Array): Promise<unknown> {
  const bytes = read ?? await reader.read(path);
  if (!bytes) throw reader.fail(`${reader.where(path)} is missing`);
  const text = new TextDecoder().decode(bytes);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw reader.fail(`${reader.where(path)} is not valid JSON: ${(error as Error).message}`);
  }
}

async function readComponent(reader: FolderReader, component: PipelineComponent) {
  const configPath = `${component.name}/config.json`;
  const configBytes = await reader.read(configPath);
  if (!configBytes) {
    throw reader.fail(`${reader.where(configPath)} is missing (${MODEL_INDEX} lists '${component.name}', a ${component.className})`);
  }
  const config = await readJson(reader, configPath, configBytes);
  try {
    checkComponentClass(component, config, reader.where(configPath));
  } catch (error) {
    throw reader.fail((error as Error).message);
  }
  for (const path of componentWeights(component.name, component.library)) {
    const bytes = await reader.read(path);
    if (!bytes) continue;
    try {
      const weights = await prepareWeights(bytes);
      // The header is checked here, so that a truncated or malformed file is named by its path.
      parseWeightsFile(weights);
      return { config, configPath, weights, weightsPath: path };
    } catch (error) {
      throw reader.fail(`${reader.where(path)} cannot be read: ${(error as Error).message}`);
    }
  }
  throw reader.fail(
    `${reader.where(component.name)}/ has no weights (${componentWeights(component.name).map((p) => p.split('/')[1]).join(', ')})`,
  );
}

async function readTokenizer(reader: FolderReader, component: PipelineComponent): Promise<TokenizerFiles> {
  const text = async (file: string, required: boolean) => {
    const path = `${component.name}/${file}`;
    const bytes = await reader.read(path);
    if (!bytes && required) {
      throw reader.fail(`${reader.where(path)} is missing (${MODEL_INDEX} lists '${component.name}', a ${component.className})`);
    }
    return bytes && new TextDecoder().decode(bytes);
  };
  return {
    vocab: (await text(TOKENIZER_FILES.vocab, true))!,
    merges: (await text(TOKENIZER_FILES.merges, true))!,
    tokenizerConfig: await text(TOKENIZER_FILES.tokenizerConfig, false),
    specialTokensMap: await text(TOKENIZER_FILES.specialTokensMap, false),
  };
}

/**
 * Reads a diffusers pipeline folder by its model_index.json: the UNet, the autoencoder of a latent
 * model and the scheduler config, each from the sub-folder the index names.
 */
export async function readPipelineFolder(reader: FolderReader): Promise<{ files: ModelFiles; paths: PipelinePaths }> {
  const raw = await readJson(reader, MODEL_INDEX);
  let index;
  try {
    index = parseModelIndex(raw, reader.where(MODEL_INDEX));
  } catch (error) {
    if (error instanceof ModelConfigError) throw reader.fail(error.message);
    throw error;
  }
  const unet = await readComponent(reader, index.unet);
  const autoencoder = index.autoencoder ? await readComponent(reader, index.autoencoder) : undefined;
  const textEncoder = index.textEncoder ? await readComponent(reader, index.textEncoder) : undefined;
  const tokenizer = index.tokenizer ? await readTokenizer(reader, index.tokenizer) : undefined;
  let schedulerConfig: unknown;
  let scheduler: string | undefined;
  if (index.scheduler) {
    scheduler = `${index.scheduler.name}/scheduler_config.json`;
    schedulerConfig = await readJson(reader, scheduler);
  }
  return {
    files: {
      config: unet.config,
      weights: unet.weights,
      schedulerConfig,
      ...(autoencoder ? { autoencoder: { config: autoencoder.config, weights: autoencoder.weights } } : {}),
      ...(textEncoder ? { textEncoder: { config: textEncoder.config, weights: textEncoder.weights } } : {}),
      ...(tokenizer ? { tokenizer } : {}),
      folders: {
        unet: index.unet.name,
        autoencoder: index.autoencoder?.name,
        textEncoder: index.textEncoder?.name,
        tokenizer: index.tokenizer?.name,
      },
    },
    paths: {
      config: unet.configPath,
      weights: unet.weightsPath,
      scheduler,
      ...(autoencoder ? { autoencoder: { config: autoencoder.configPath, weights: autoencoder.weightsPath } } : {}),
    },
  };
}

export const SAFETENSORS_WEIGHTS = 'diffusion_pytorch_model.safetensors';
export const PICKLE_WEIGHTS = 'diffusion_pytorch_model.bin';

export interface ModelLayout {
  layout: 'flat' | 'pipeline';
  /** Paths relative to the model folder, '/'-separated. */
  config: string;
  /** The weights files, preferred first. */
  weights: readonly string[];
  scheduler: string;
}

export const MODEL_LAYOUTS: readonly ModelLayout[] = [
  { layout: 'flat', config: 'config.json', weights: [SAFETENSORS_WEIGHTS, PICKLE_WEIGHTS], scheduler: 'scheduler_config.json' },
  {
    layout: 'pipeline',
    config: 'unet/config.json',
    weights: [`unet/${SAFETENSORS_WEIGHTS}`, `unet/${PICKLE_WEIGHTS}`],
    scheduler: 'scheduler/scheduler_config.json',
  },
];

/** The ModelFiles of a folder's contents, its weights made ready for the synchronous readers. */
export async function modelFiles(config: unknown, weights: Uint8Array, schedulerConfig: unknown): Promise<ModelFiles> {
  return { config, weights: await prepareWeights(weights), schedulerConfig };
}
