/**
 * Type-checked by `scripts/build-web.mjs` (never run): a TypeScript user of the bundle gets the
 * engine's real types through dist/ddim-webgpu.d.ts, not `any`.
 */
import {
  DdimPipeline,
  type DdimResult,
  GpuUnavailableError,
  loadModel,
  type ModelFiles,
  requestGpu,
  StableDiffusionPipeline,
  type TextToImageResult,
  type TimestepSpacing,
} from '../../dist/ddim-webgpu.js';

export async function typedUse(): Promise<DdimResult> {
  const gpu = await requestGpu();
  const files: ModelFiles = await loadModel('/weights/emoji32/', {
    onProgress: (loaded: number, total: number | undefined, file: string) => void [loaded, total, file],
  });
  const pipeline = await DdimPipeline.load(gpu, files, { batch: 2 });
  const spacing: TimestepSpacing = 'trailing';
  // @ts-expect-error: steps is a number; were the types `any`, this line would be an unused directive
  await pipeline.sample({ steps: 'ten' });
  // @ts-expect-error: 'cosine' is no timestep spacing
  await pipeline.sample({ steps: 10, spacing: 'cosine' });
  if (!(new GpuUnavailableError('x') instanceof Error)) throw new Error('unreachable');
  return pipeline.sample({ steps: 10, spacing, seed: 3, count: 2 });
}

export async function typedTextToImage(): Promise<TextToImageResult> {
  const gpu = await requestGpu();
  const sd = await StableDiffusionPipeline.load(gpu, await loadModel('/sd15/'), { batch: 1 });
  // @ts-expect-error: a prompt is text (or one text per image)
  await sd.sample({ prompt: 3, steps: 10 });
  const [channels, height, width] = sd.latentShape;
  return sd.sample({
    prompt: 'a fox',
    negativePrompt: 'blurry',
    guidance: 7.5,
    steps: 10,
    previewX0: true,
    onStep: (progress) => void (progress.x0?.length === channels * height * width),
  });
}
