/**
 * ddim-webgpu for Node and Deno: everything the browser bundle exports (src/index.ts), plus what
 * needs a file system. This is the package's main entry (`import ... from 'ddim-webgpu'` in Node,
 * the JSR package's default export in Deno); browsers get dist/ddim-webgpu.js through the
 * `browser` export condition instead, which never touches node:fs.
 *
 * ```ts
 * import { DdimPipeline, defaultModelDir, readModelDir, requestGpu } from 'ddim-webgpu';
 *
 * const gpu = await requestGpu();
 * const { files } = await readModelDir(defaultModelDir()); // or any diffusers UNet2DModel folder
 * const pipeline = await DdimPipeline.load(gpu, files, { batch: 4 });
 * const { x0 } = await pipeline.sample({ steps: 50, seed: 1, count: 4 });
 * ```
 */
export * from './index.ts';

// Model folders on disk, in diffusers' flat or pipeline layout; the package's bundled model.
export { defaultModelDir, findModelFiles, type ModelPaths, readModelDir } from './cli/model_dir.ts';
// What readModelDir throws for a missing or unreadable folder or file (one line, naming it).
export { UserError } from './cli/errors.ts';
