/**
 * What the subcommands share: the model folder read and checked on the CPU (`loadModel`), input
 * files read and checked tensor by tensor, outputs checked before any GPU work, and the GPU
 * pipeline opened, run and closed (`withPipeline`).
 */
import { accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Backend } from '../gpu/device.ts';
import type { CompileProgressCallback } from '../gpu/kernel.ts';
import type { Precision } from '../gpu/shader_source.ts';
import { parseSafetensors, SafetensorsError, type SafetensorsFile, toFloat32 } from '../io/safetensors.ts';
import type { UNetConfig } from '../models/unet_2d_config.ts';
import type { AutoencoderWeights } from '../models/autoencoder_model.ts';
import { downscaleFactor } from '../models/autoencoder_config.ts';
import { type DdimModel, type DdimPipeline, type ModelFiles, readModel } from '../pipeline.ts';
import { type NoiseSchedule, ScheduleError } from '../sampler/schedule.ts';
import { pathKind } from '../fs/path_kind.ts';
import { CliError, type DeviceArgs } from './args.ts';
import { readFileBytes } from './files.ts';
import { defaultModelDir, type ModelPaths, readModelDir } from './model_dir.ts';
import { type CliIo, CompileProgressLine, plural } from './progress.ts';

/** A loaded pipeline and how to let go of it. */
export interface OpenedPipeline {
  pipeline: DdimPipeline;
  close(): void;
}

/** Opens the GPU and compiles the model, read and checked once before (`readModel`). */
export type OpenPipeline = (
  model: DdimModel,
  /**
   * softwareBatch: the batch to compile instead on a software adapter (see SOFTWARE_DEFAULT_IMAGES);
   * onSoftwareAdapter: to be called with its name when the adapter is a software one, before anything
   *   compiles (the sample's note on fewer images comes from it);
   * onCompileProgress: DdimPipeline.load's, for the line shown while the GPU programs compile.
   */
  options: {
    batch: number;
    backend: Backend;
    precision: Precision;
    /** --gpu-memory: the budget in bytes. */
    gpuMemory?: number;
    /** --verbose: where the adapter's report goes (adapterReport). */
    verbose?: (text: string) => void;
    softwareBatch?: number;
    onSoftwareAdapter?: (adapterName: string) => void;
    height?: number;
    width?: number;
    onCompileProgress?: CompileProgressCallback;
  },
) => Promise<OpenedPipeline>;

export interface RunDeps {
  io: CliIo;
  /** Where the GPU work starts; tests hand in a pipeline they loaded once. */
  openPipeline: OpenPipeline;
}

const MAX_BATCH = 16;

export interface Model {
  dir: string;
  paths: ModelPaths;
  files: ModelFiles;
  /** Parsed and checked once; the pipeline compiles it as it is. */
  read: DdimModel;
  config: UNetConfig;
  schedule: NoiseSchedule;
  /** [C, H, W] of what the UNet samples: one image, or a latent model's latents. */
  shape: [number, number, number];
  perImage: number;
  /** [C, H, W] of one image: the decoded latents of a latent model, else `shape`. */
  imageShape: [number, number, number];
  /** A latent model's autoencoder. */
  autoencoder?: AutoencoderWeights;
}

/** Reads the model folder and checks config, weights and schedule, all on the CPU. */
export async function loadModel(dirArg: string | undefined, io: CliIo, size: { height?: number; width?: number } = {}): Promise<Model> {
  const dir = dirArg ?? defaultModelDir();
  const { paths, files } = await readModelDir(dir);
  let read: DdimModel;
  try {
    read = readModel(files);
  } catch (error) {
    // Only the scheduler config can give a ScheduleError.
    const where = error instanceof ScheduleError ? `model '${dir}', ${paths.scheduler}` : `model '${dir}'`;
    throw new CliError(`${where}: ${(error as Error).message}`);
  }
  const { schedule } = read;
  const config = read.unet.config;
  if (!paths.scheduler) {
    io.stderr(
      `note: model '${dir}' has no scheduler config; using DDPM's default schedule (linear betas 1e-4 to 0.02 over 1000 steps, clip_sample on)\n`,
    );
  }
  if (config.outChannels !== config.inChannels) {
    throw new CliError(
      `model '${dir}' predicts ${config.outChannels} channels from ${config.inChannels}: DDIM needs eps of the sample's shape`,
    );
  }
  const autoencoder = read.autoencoder;
  if (!autoencoder) {
    if (size.height !== undefined || size.width !== undefined) {
      throw new CliError(
        `--height and --width are for latent models; model '${dir}' makes images of ${config.sampleSize}x${config.sampleSize}`,
      );
    }
    const shape: [number, number, number] = [config.inChannels, config.sampleSize, config.sampleSize];
    return { dir, paths, files, read, config, schedule, shape, perImage: shape[0] * shape[1] * shape[2], imageShape: shape };
  }
  const factor = downscaleFactor(autoencoder.config);
  const height = size.height ?? config.sampleSize * factor;
  const width = size.width ?? config.sampleSize * factor;
  for (const [flag, value] of [['--height', height], ['--width', width]] as const) {
    if (value % factor !== 0) {
      throw new CliError(`${flag} ${value} is not a multiple of ${factor}, the downscale factor of model '${dir}'s autoencoder`);
    }
  }
  const shape: [number, number, number] = [config.inChannels, height / factor, width / factor];
  const imageShape: [number, number, number] = [autoencoder.config.outChannels, height, width];
  return { dir, paths, files, read, config, schedule, shape, perImage: shape[0] * shape[1] * shape[2], imageShape, autoencoder };
}

/** The output's folder exists and is writable, and the output itself is not a folder. */
export function checkOutput(path: string, flag: string): void {
  const folder = dirname(resolve(path));
  const kind = pathKind(folder);
  if (kind === 'missing') {
    throw new CliError(`cannot write ${flag} '${path}': folder '${folder}' does not exist`, 'create it first, or pick another --out');
  }
  if (kind !== 'dir') throw new CliError(`cannot write ${flag} '${path}': '${folder}' is not a folder`);
  if (pathKind(path) === 'dir') throw new CliError(`cannot write ${flag} '${path}': it is a folder`);
  try {
    accessSync(folder, constants.W_OK);
  } catch {
    throw new CliError(`cannot write ${flag} '${path}': folder '${folder}' is not writable`);
  }
}

export async function readSafetensorsFile(path: string, flag: string): Promise<SafetensorsFile> {
  const bytes = await readFileBytes(path, `${flag} file`);
  try {
    return parseSafetensors(bytes);
  } catch (error) {
    if (error instanceof SafetensorsError) throw new CliError(`${flag} '${path}' is not a valid safetensors file: ${error.message}`);
    throw error;
  }
}

const FLOAT_TYPES = new Set(['F32', 'F64', 'F16', 'BF16']);

export const INT_TYPES = new Set(['I32', 'I64', 'I16', 'I8', 'U32', 'U16', 'U8', 'U64']);

/**
 * Tensor `key` of a file, checked for a float dtype, its shape (null: any size, which is
 * returned) and finite values.
 */
export function floatTensor(
  file: SafetensorsFile,
  key: string,
  path: string,
  flag: string,
  expected: (number | null)[],
  meaning: string,
): { data: Float32Array; shape: number[] } {
  const entry = file.tensors.get(key);
  if (!entry) {
    const names = [...file.tensors.keys()];
    throw new CliError(
      `${flag} '${path}' has no tensor '${key}' (${
        names.length ? `it has ${names.map((n) => `'${n}'`).join(', ')}` : 'it holds no tensors'
      })`,
      `${flag} takes ${meaning}`,
    );
  }
  if (!FLOAT_TYPES.has(entry.dtype)) {
    throw new CliError(`${flag} '${path}': tensor '${key}' is ${entry.dtype}, not a float tensor`, `${flag} takes ${meaning}`);
  }
  const shapeOk = entry.shape.length === expected.length &&
    expected.every((d, i) => (d === null ? entry.shape[i] >= 1 : entry.shape[i] === d));
  if (!shapeOk) {
    const want = `[${expected.map((d) => d ?? 'N').join(', ')}]`;
    throw new CliError(
      `${flag} '${path}': tensor '${key}' has shape [${entry.shape.join(', ')}] but this model needs ${want}`,
      `${flag} takes ${meaning}`,
    );
  }
  const data = toFloat32(entry);
  const bad = data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new CliError(`${flag} '${path}': tensor '${key}' holds ${data[bad]} at element ${bad}; every value must be finite`);
  return { data, shape: entry.shape };
}

export function batchFor(args: { batch?: number }, count: number): number {
  return Math.min(args.batch ?? MAX_BATCH, count);
}

export async function withPipeline<T>(
  deps: RunDeps,
  model: Model,
  batch: number,
  device: DeviceArgs,
  work: (pipeline: DdimPipeline) => Promise<T>,
  /** On a software adapter: compile `batch` instead, and call `chosen` as soon as the adapter is known. */
  software?: { batch: number; chosen: (adapterName: string) => void },
): Promise<T> {
  const compiling = new CompileProgressLine(deps.io);
  let opened: OpenedPipeline;
  try {
    opened = await deps.openPipeline(model.read, {
      batch,
      backend: device.backend,
      precision: device.precision,
      gpuMemory: device.gpuMemory,
      verbose: device.verbose ? deps.io.stderr : undefined,
      softwareBatch: software?.batch,
      onSoftwareAdapter: software?.chosen,
      ...(model.autoencoder ? { height: model.shape[1], width: model.shape[2] } : {}),
      onCompileProgress: compiling.onProgress,
    });
  } finally {
    await compiling.stop();
  }
  const fallback = precisionNote(device.precision, opened.pipeline.precision, opened.pipeline.gpu.adapterName);
  if (fallback) deps.io.stderr(fallback);
  try {
    const [c, h, w] = opened.pipeline.imageShape;
    if (c !== model.shape[0] || h !== model.shape[1] || w !== model.shape[2]) {
      throw new Error(`the pipeline makes ${c}x${h}x${w} images but model '${model.dir}' makes ${model.shape.join('x')}`);
    }
    // Validation errors of the GPU arrive out of band; results made alongside one are not trusted.
    const errorsBefore = opened.pipeline.gpu.uncapturedErrors.length;
    const result = await work(opened.pipeline);
    const errors = opened.pipeline.gpu.uncapturedErrors.slice(errorsBefore);
    if (errors.length) throw new Error(`the GPU reported ${plural(errors.length, 'error')}; nothing was written:\n${errors.join('\n')}`);
    return result;
  } finally {
    opened.close();
  }
}

/** The note that `asked` runs as `ran` on this adapter ('f16' as 'f16-packed' without shader-f16), or null. */
export function precisionNote(asked: Precision, ran: Precision, adapterName: string): string | null {
  if (asked === ran) return null;
  return `note: ${adapterName} has no shader-f16: precision ${asked} runs as ${ran} (f16 weights, f32 activations: half the weight memory)\n`;
}

/** The adapter a summary names, and the precision when it is not the default f32. */
export function describeDevice(pipeline: DdimPipeline): string {
  return pipeline.precision === 'f32' ? pipeline.gpu.adapterName : `${pipeline.gpu.adapterName}, ${pipeline.precision}`;
}

export function f32Tensor(data: Float32Array, shape: number[]) {
  return { dtype: 'F32' as const, shape, data };
}
