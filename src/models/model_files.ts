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
import { prepareWeights } from '../io/weights_file.ts';

export interface ModelFiles {
  /** config.json of the UNet, parsed. */
  config: unknown;
  /** diffusion_pytorch_model.safetensors, or diffusion_pytorch_model.bin (told apart by content). */
  weights: Uint8Array;
  /** scheduler_config.json, parsed, when the model has one (else DDPM's linear schedule). */
  schedulerConfig?: unknown;
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
