/**
 * ddim-webgpu for Node and Deno: everything the browser bundle exports (src/index.ts), plus what
 * needs a file system. This is the package's main entry (`import ... from 'ddim-webgpu'` in Node,
 * the JSR package's default export in Deno); browsers get dist/ddim-webgpu.js through the
 * `browser` export condition instead, which never touches node:fs.
 *
 * ```ts
 * import { DdimPipeline, defaultModelDir, loadModelDir, requestGpu } from 'ddim-webgpu';
 *
 * const gpu = await requestGpu();
 * const files = await loadModelDir(defaultModelDir()); // or any diffusers UNet2DModel folder
 * const pipeline = await DdimPipeline.load(gpu, files, { batch: 4 });
 * const { x0 } = await pipeline.sample({ steps: 50, seed: 1, count: 4 });
 * ```
 */
export * from './index.ts';

// A model folder on disk, in either layout (flat, or a diffusers pipeline's unet/ + scheduler/),
// with safetensors or .bin weights; ModelDirError names the folder and file when one is missing.
export { findModelDir, loadModelDir, ModelDirError, type ModelPaths, readModelDir } from './fs/model_dir.ts';
// The package's own model (weights/emoji32), wherever the package is installed.
export { defaultModelDir } from './cli/model_dir.ts';

// Checkpoints of the DDIM paper's code as a diffusers model (what `sample.ts convert` writes).
export { CheckpointError, type ConvertedModel, convertPaperCheckpoint } from './models/paper_checkpoint.ts';
export { readTorchFile } from './io/torch.ts';
