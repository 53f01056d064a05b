/**
 * ddim-webgpu for Node and Deno: everything `src/index.ts` exports (the browser bundle's API),
 * plus what needs the file system, which the browser bundle must never import.
 *
 * ```ts
 * import { DdimPipeline, loadModelDir, requestGpu } from './src/node.ts';
 * const pipeline = await DdimPipeline.load(await requestGpu(), await loadModelDir('weights/emoji32'), { batch: 4 });
 * ```
 */
export * from './index.ts';

// A model folder on disk, in either layout, with safetensors or .bin weights.
export { loadModelDir, ModelDirError, type ModelPaths } from './fs/model_dir.ts';

// Checkpoints of the DDIM paper's code as a diffusers model (what `sample.ts convert` writes).
export { CheckpointError, type ConvertedModel, convertPaperCheckpoint } from './model/paper_checkpoint.ts';
export { readTorchFile } from './io/torch.ts';
