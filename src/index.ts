/**
 * ddim-webgpu's public API: what `dist/ddim-webgpu.js` (the browser ESM bundle, built by
 * `npm run build`) exports, and what Deno and Node users import from `src/index.ts`.
 *
 * ```ts
 * import { DdimPipeline, loadModel, requestGpu, gridRgba } from './ddim-webgpu.js';
 *
 * const gpu = await requestGpu();                          // GpuUnavailableError without WebGPU
 * const pipeline = await DdimPipeline.load(gpu, await loadModel('/weights/emoji32/'), { batch: 4 });
 * const { x0 } = await pipeline.sample({ steps: 50, seed: 1, count: 4 });
 * const [c, h, w] = pipeline.imageShape;
 * const { rgba, width, height } = gridRgba(x0, 4, c, h, w, { scale: 4 });
 * canvas.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
 * ```
 *
 * Images are float tensors in model space ([-1, 1], NCHW); the image helpers convert to and from
 * 8-bit RGBA.
 */

// The device.
export { type Backend, type Gpu, type GpuOptions, GpuUnavailableError, requestGpu } from './gpu/device.ts';

// The model and what it does: sample, encode, decode, interpolate, predict ε.
export {
  type DdimModel,
  DdimPipeline,
  type InterpolateOptions,
  type ModelFiles,
  PipelineMismatchError,
  type PipelineOptions,
  readModel,
} from './pipeline.ts';
export { LatentDiffusionPipeline, type LatentPipelineOptions, type LatentResult } from './latent_pipeline.ts';
export {
  NonFiniteOutputError,
  type PromptOptions,
  readTextToImageModel,
  StableDiffusionPipeline,
  type TextToImageModel,
  type TextToImageOptions,
  type TextToImageResult,
  type TextToImageSampleOptions,
} from './text_to_image_pipeline.ts';
export { type ClipTokenizer, createClipTokenizer, TokenizerError, type Truncation, truncationMessage } from './text/clip_tokenizer.ts';
export type { InversionMode, NoiseSchedule } from './sampler/schedule.ts';
export { Autoencoder, AutoencoderInputError, type AutoencoderOptions, readAutoencoder } from './models/autoencoder_model.ts';
export { type DdimEncodeOptions, type DdimResult, type DdimSampleOptions, SamplerInputError, type StepProgress } from './sampler/ddim.ts';
export type { RecordObserver } from './gpu/recorder.ts';
export { ScheduleError, type TimestepSpacing } from './sampler/schedule.ts';
export { ModelConfigError } from './models/unet_2d_config.ts';
export { ModelWeightsError } from './models/weights.ts';
// A PyTorch .bin that cannot be read, or asks to run code (refused by the global's name).
export { TorchFileError } from './io/torch.ts';
export { GraphLimitError } from './graph/executor.ts';
// A model over the GPU memory budget (GpuOptions.maxMemoryBytes) or the device's memory, with the numbers.
export { ModelTooLargeError } from './gpu/memory_budget.ts';
// f16 storage (PipelineOptions.precision): f16 with shader-f16, else f16-packed weights; an unknown precision is an UnsupportedPrecisionError.
export { type Precision, PRECISIONS } from './gpu/shader_source.ts';
export { UnsupportedFeatureError, UnsupportedPrecisionError } from './models/unet_2d_model.ts';

// Getting a model: over HTTP (browsers, Deno, Node) as diffusers lays it out.
export { loadModel, type LoadModelOptions, ModelLoadError } from './web/load_model.ts';

// Images: model-space tensors <-> RGBA, and PNG files.
export { type GridOptions, gridRgba, rgbaToTensor, tensorToRgba } from './io/image.ts';
export { type DecodedPng, decodePng, encodePng, PngError } from './io/png.ts';

// Tensors in files: safetensors, as diffusers writes them.
export {
  type DType,
  parseSafetensors,
  SafetensorsError,
  type SafetensorsFile,
  serializeSafetensors,
  type TensorEntry,
  type TensorToWrite,
  toFloat32,
  toInt32,
} from './io/safetensors.ts';
