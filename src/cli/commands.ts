/**
 * The subcommands. Each one first reads and checks everything it was given (the model folder,
 * input files and their tensor shapes, the output folders, the step count against the model's
 * schedule) and only then opens the GPU; outputs are made in memory and written at the very
 * end with writeFileAtomic, so a failed run leaves no file behind.
 */
import { accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isSoftwareAdapter } from '../gpu/adapter.ts';
import type { Backend } from '../gpu/device.ts';
import type { Precision } from '../gpu/shader_source.ts';
import type { RecordObserver } from '../gpu/recorder.ts';
import { gridRgba, rgbaToTensor } from '../io/image.ts';
import { decodePng, encodePng, PngError } from '../io/png.ts';
import { parseSafetensors, SafetensorsError, type SafetensorsFile, serializeSafetensors, toFloat32, toInt32 } from '../io/safetensors.ts';
import type { UNetConfig } from '../models/unet_2d_config.ts';
import { type DdimModel, type DdimPipeline, type ModelFiles, readModel } from '../pipeline.ts';
import { chromeTrace, formatProfile, type Profile, Profiler } from '../profile/profiler.ts';
import { checkClassLabels, SamplerInputError } from '../sampler/ddim.ts';
import { ddimTimesteps, type NoiseSchedule, ScheduleError, type TimestepSpacing } from '../sampler/schedule.ts';
import {
  CliError,
  type CommandArgs,
  type DecodeArgs,
  type DeviceArgs,
  type EncodeArgs,
  type EpsArgs,
  type InterpolateArgs,
  type SampleArgs,
  SPACINGS,
} from './args.ts';
import { convert } from './convert.ts';
import { sampleToFolder } from './fid.ts';
import { readFileBytes, writeFileAtomic } from './files.ts';
import { defaultModelDir, type ModelPaths, readModelDir } from './model_dir.ts';
import { type CliIo, plural, ProgressBar, rate } from './progress.ts';
import { pathKind } from '../fs/path_kind.ts';

/** A loaded pipeline and how to let go of it. */
export interface OpenedPipeline {
  pipeline: DdimPipeline;
  close(): void;
}

/** Opens the GPU and compiles the model, read and checked once before (`readModel`). */
export type OpenPipeline = (
  model: DdimModel,
  /** softwareBatch: the batch to compile instead on a software adapter (see SOFTWARE_DEFAULT_IMAGES). */
  options: { batch: number; backend: Backend; precision: Precision; softwareBatch?: number },
) => Promise<OpenedPipeline>;

export interface RunDeps {
  io: CliIo;
  /** Where the GPU work starts; tests hand in a pipeline they loaded once. */
  openPipeline: OpenPipeline;
}

export const DEFAULT_STEPS = 50;
const DEFAULT_IMAGES = 16;
/**
 * Without --n, a software adapter (llvmpipe, SwiftShader: the CPU) samples this many, so that the
 * default command ends within 90 s on two cores (26 s measured: docs/perf.md); the command says so
 * when it starts.
 */
export const SOFTWARE_DEFAULT_IMAGES = 4;
const MAX_BATCH = 16;
/** Images held in memory at once, in float32 values (1 GiB). */
const MAX_VALUES = 2 ** 28;
/** The largest PNG written: what decodePng reads by default, so outputs can be read back. */
const MAX_PIXELS = 2 ** 26;

export async function runCommand(args: CommandArgs, deps: RunDeps): Promise<void> {
  switch (args.command) {
    case 'sample':
      return await sample(args, deps);
    case 'encode':
      return await encode(args, deps);
    case 'decode':
      return await decode(args, deps);
    case 'interpolate':
      return await interpolate(args, deps);
    case 'eps':
      return await eps(args, deps);
    case 'convert':
      return await convert(args, deps.io);
  }
}

// ---------------------------------------------------------------------------------------------
// Checks made before any GPU work

export interface Model {
  dir: string;
  paths: ModelPaths;
  files: ModelFiles;
  /** Parsed and checked once; the pipeline compiles it as it is. */
  read: DdimModel;
  config: UNetConfig;
  schedule: NoiseSchedule;
  /** [C, H, W] of one image. */
  shape: [number, number, number];
  perImage: number;
}

/** Reads the model folder and checks config, weights and schedule, all on the CPU. */
export async function loadModel(dirArg: string | undefined, io: CliIo): Promise<Model> {
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
  const shape: [number, number, number] = [config.inChannels, config.sampleSize, config.sampleSize];
  return { dir, paths, files, read, config, schedule, shape, perImage: shape[0] * shape[1] * shape[2] };
}

/** --skip, else the scheduler config's timestep_spacing, else the paper's uniform. */
function spacingFor(model: Model, given: TimestepSpacing | undefined): TimestepSpacing {
  return given ?? model.schedule.timestepSpacing ?? 'uniform';
}

/** The labels of `count` images from --class, checked against the model (which may need them). */
export function classLabelsFor(model: Model, given: number[] | undefined, count: number): Int32Array | undefined {
  try {
    return checkClassLabels(model.config, given, count);
  } catch (error) {
    if (!(error instanceof SamplerInputError)) throw error;
    const hint = model.config.classEmbedType ? 'give --class K (one label for all) or --class K1,K2,... (one per image)' : undefined;
    throw new CliError(`--class: ${error.message}`, hint);
  }
}

/** The timesteps DDIM will visit, or a message naming --steps and the model's limit. */
export function timestepsFor(model: Model, steps: number, spacing: TimestepSpacing): number[] {
  const T = model.schedule.numTrainTimesteps;
  if (steps > T) throw new CliError(`--steps must be from 1 to ${T} (the model's training timesteps), got ${steps}`);
  try {
    const timesteps = ddimTimesteps(steps, spacing, T, model.schedule.stepsOffset);
    if (timesteps[timesteps.length - 1] >= T) {
      throw new ScheduleError(`steps_offset ${model.schedule.stepsOffset} takes the last timestep past ${T - 1}`);
    }
    return timesteps;
  } catch (error) {
    if (error instanceof ScheduleError) throw new CliError(`--steps ${steps} with --skip ${spacing}: ${error.message}`);
    throw error;
  }
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

function checkDistinct(outputs: [string, string | undefined][]): void {
  const seen = new Map<string, string>();
  for (const [flag, path] of outputs) {
    if (path === undefined) continue;
    const key = resolve(path);
    if (seen.has(key)) throw new CliError(`${seen.get(key)} and ${flag} both name '${path}'`);
    seen.set(key, flag);
  }
}

function checkMemory(count: number, model: Model, what: string): void {
  if (count * model.perImage > MAX_VALUES) {
    const most = Math.floor(MAX_VALUES / model.perImage);
    throw new CliError(`${plural(count, 'image')} of ${model.shape.join('x')} are too many to hold at once (${what}); at most ${most}`);
  }
}

function defaultScale(model: Model): number {
  return model.shape[1] <= 64 ? 2 : 1;
}

/** The grid's size, as gridRgba will make it, checked against the PNG limit. */
function checkGrid(model: Model, count: number, columns: number, scale: number): void {
  const [, h, w] = model.shape;
  const padding = 2;
  const cols = Math.min(columns, count);
  const rows = Math.ceil(count / cols);
  const width = (cols * (w + padding) + padding) * scale;
  const height = (rows * (h + padding) + padding) * scale;
  if (width * height > MAX_PIXELS) {
    throw new CliError(`the PNG would be ${width}x${height} pixels, more than ${MAX_PIXELS}: lower --scale or the number of images`);
  }
}

async function readSafetensorsFile(path: string, flag: string): Promise<SafetensorsFile> {
  const bytes = await readFileBytes(path, `${flag} file`);
  try {
    return parseSafetensors(bytes);
  } catch (error) {
    if (error instanceof SafetensorsError) throw new CliError(`${flag} '${path}' is not a valid safetensors file: ${error.message}`);
    throw error;
  }
}

const FLOAT_TYPES = new Set(['F32', 'F64', 'F16', 'BF16']);
const INT_TYPES = new Set(['I32', 'I64', 'I16', 'I8', 'U32', 'U16', 'U8', 'U64']);

/**
 * Tensor `key` of a file, checked for a float dtype, its shape (null: any size, which is
 * returned) and finite values.
 */
function floatTensor(
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

// ---------------------------------------------------------------------------------------------
// GPU work, timing, outputs

export async function withPipeline<T>(
  deps: RunDeps,
  model: Model,
  batch: number,
  device: DeviceArgs,
  work: (pipeline: DdimPipeline) => Promise<T>,
  softwareBatch?: number,
): Promise<T> {
  const opened = await deps.openPipeline(model.read, { batch, backend: device.backend, precision: device.precision, softwareBatch });
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

/** The adapter a summary names, and the precision when it is not the default f32. */
export function describeDevice(pipeline: DdimPipeline): string {
  return pipeline.precision === 'f32' ? pipeline.gpu.adapterName : `${pipeline.gpu.adapterName}, ${pipeline.precision}`;
}

interface StepHooks {
  onStep: ProgressBar['onStep'];
  /**
   * Deno's wgpu resolves onSubmittedWorkDone only when something waits on the device, so the
   * steps of a batch would all report at its end; a small per-step readback (the x0 preview)
   * makes them report as they finish, for the bar on a terminal and the plain lines elsewhere.
   */
  previewX0: boolean;
}

/** Runs the DDIM work with its progress shown (a bar on a terminal, plain lines elsewhere), timing it. */
async function timedSteps<T>(
  io: CliIo,
  pipeline: DdimPipeline,
  label: string,
  count: number,
  batch: number,
  steps: number,
  work: (hooks: StepHooks) => Promise<T>,
): Promise<{ result: T; seconds: number; adapter: string }> {
  const bar = new ProgressBar(io, label, count, batch, steps);
  const start = performance.now();
  try {
    const result = await work({ onStep: bar.onStep, previewX0: pipeline.gpu.implementation === 'deno-wgpu' });
    return { result, seconds: (performance.now() - start) / 1000, adapter: describeDevice(pipeline) };
  } finally {
    await bar.stop();
  }
}

/** encode, decode and interpolate: `work` on a pipeline for their batch, with progress shown and timed. */
function runSteps<T>(
  deps: RunDeps,
  model: Model,
  args: { batch?: number } & DeviceArgs,
  label: string,
  count: number,
  steps: number,
  work: (pipeline: DdimPipeline, hooks: StepHooks) => Promise<T>,
): Promise<{ result: T; seconds: number; adapter: string }> {
  const batch = batchFor(args, count);
  return withPipeline(
    deps,
    model,
    batch,
    args,
    (pipeline) => timedSteps(deps.io, pipeline, label, count, batch, steps, (hooks) => work(pipeline, hooks)),
  );
}

export async function gridPng(
  x: Float32Array,
  count: number,
  model: Model,
  columns: number | undefined,
  scale: number,
): Promise<Uint8Array> {
  const [c, h, w] = model.shape;
  const grid = gridRgba(x, count, c, h, w, { columns, scale });
  return await encodePng(grid.rgba, grid.width, grid.height);
}

export function f32Tensor(data: Float32Array, shape: number[]) {
  return { dtype: 'F32' as const, shape, data };
}

// ---------------------------------------------------------------------------------------------
// sample

async function sample(args: SampleArgs, deps: RunDeps): Promise<void> {
  const { io } = deps;
  const model = await loadModel(args.model, io);
  const spacing = spacingFor(model, args.spacing);
  const timesteps = timestepsFor(model, args.steps ?? DEFAULT_STEPS, spacing);
  if (args.outDir !== undefined) {
    return await sampleToFolder(args, deps, model, {
      steps: args.steps ?? DEFAULT_STEPS,
      spacing,
      count: args.n ?? DEFAULT_IMAGES,
      classLabels: classLabelsFor(model, args.classLabels, args.n ?? DEFAULT_IMAGES),
    });
  }
  checkOutput(args.out, '--out');
  if (args.outTensor) checkOutput(args.outTensor, '--out-tensor');
  if (args.trace) checkOutput(args.trace, '--trace');
  checkDistinct([['--out', args.out], ['--out-tensor', args.outTensor], ['--trace', args.trace]]);

  let xT: Float32Array | undefined;
  let count = args.n ?? DEFAULT_IMAGES;
  if (args.xT) {
    const file = await readSafetensorsFile(args.xT, '--xT');
    const latents = floatTensor(
      file,
      'xT',
      args.xT,
      '--xT',
      [null, ...model.shape],
      `latents: key 'xT', f32 [N, ${model.shape.join(', ')}]`,
    );
    xT = latents.data;
    if (args.n !== undefined && args.n !== latents.shape[0]) {
      throw new CliError(
        `--n ${args.n} disagrees with the ${plural(latents.shape[0], 'latent')} in --xT '${args.xT}'`,
        'leave out --n: the number of images comes from --xT',
      );
    }
    count = latents.shape[0];
  }
  checkMemory(count, model, '--n');
  const classLabels = classLabelsFor(model, args.classLabels, count);
  let noise: Float32Array | undefined;
  if (args.noise) {
    if (args.eta === 0 && !args.sigmaHat) {
      throw new CliError(
        '--noise is only used with --eta above 0 or --sigma-hat',
        'at --eta 0 DDIM adds no noise; pass --eta 1 for DDPM-like sampling',
      );
    }
    const file = await readSafetensorsFile(args.noise, '--noise');
    noise = floatTensor(
      file,
      'noise',
      args.noise,
      '--noise',
      [timesteps.length, count, ...model.shape],
      `the noise of every step: key 'noise', f32 [steps, N, ${model.shape.join(', ')}] with steps = ${timesteps.length} here`,
    ).data;
  }
  const scale = args.scale ?? defaultScale(model);
  checkGrid(model, count, Math.ceil(Math.sqrt(count)), scale);
  const batch = batchFor(args, count);
  // The count was not asked for: a software adapter takes fewer (said below, once it is known).
  const fewerOnSoftware = args.n === undefined && !xT && !noise;

  const { result, seconds, adapter, profile } = await withPipeline(
    deps,
    model,
    batch,
    args,
    (pipeline) => {
      if (fewerOnSoftware && isSoftwareAdapter(pipeline.gpu.adapter)) {
        count = SOFTWARE_DEFAULT_IMAGES;
        io.stderr(
          `note: ${pipeline.gpu.adapterName} is a software adapter (the CPU): sampling ${count} images, not ${DEFAULT_IMAGES}; --n N gives any number\n`,
        );
      }
      return profiled(
        args.profile || args.trace !== undefined,
        pipeline,
        (observers) =>
          timedSteps(io, pipeline, 'sample', count, batch, timesteps.length, (hooks) =>
            pipeline.sample({
              steps: args.steps ?? DEFAULT_STEPS,
              spacing,
              eta: args.eta,
              sigmaHat: args.sigmaHat,
              classLabels,
              clip: args.clip,
              seed: args.seed,
              ...(xT ? { xT } : { count }),
              noise,
              ...hooks,
              observers,
            })),
      );
    },
    fewerOnSoftware ? batchFor(args, SOFTWARE_DEFAULT_IMAGES) : undefined,
  );
  const png = await gridPng(result.x0, count, model, undefined, scale);
  const tensor = args.outTensor ? serializeSafetensors({ x0: f32Tensor(result.x0, [count, ...model.shape]) }) : undefined;
  const trace = profile && args.trace ? new TextEncoder().encode(JSON.stringify(chromeTrace(profile))) : undefined;
  await writeFileAtomic(args.out, png);
  if (args.outTensor) await writeFileAtomic(args.outTensor, tensor!);
  if (trace) await writeFileAtomic(args.trace!, trace);
  const outputs = [args.out, args.outTensor, args.trace].filter(Boolean).join(', ');
  if (profile) io.stderr(`${formatProfile(profile)}\n`);
  io.stdout(
    `${plural(result.timesteps.length, 'step')} x ${plural(count, 'image')} in ${rate(count, seconds)} on ${adapter} -> ${outputs}\n`,
  );
}

/**
 * Runs `work` with every UNet forward it records timed node by node (--profile, --trace): one
 * compute pass per node with timestamps, resolved once per step; the images are unchanged.
 */
async function profiled<T extends object>(
  on: boolean,
  pipeline: DdimPipeline,
  work: (observers: RecordObserver[]) => Promise<T>,
): Promise<T & { profile?: Profile }> {
  if (!on) return await work([]);
  const profiler = new Profiler(pipeline.gpu, pipeline.unet.compiled);
  try {
    const result = await work([profiler]);
    return { ...result, profile: await profiler.finish() };
  } finally {
    profiler.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// encode

async function encode(args: EncodeArgs, deps: RunDeps): Promise<void> {
  const { io } = deps;
  const model = await loadModel(args.model, io);
  const [c, h, w] = model.shape;
  if (c !== 3) throw new CliError(`model '${model.dir}' takes ${c}-channel images; encode reads RGB PNGs, which need a 3-channel model`);
  const steps = args.steps ?? DEFAULT_STEPS;
  const spacing = spacingFor(model, args.spacing);
  const timesteps = timestepsFor(model, steps, spacing);
  checkOutput(args.out, '--out');
  const count = args.images.length;
  checkMemory(count, model, '--image');
  const classLabels = classLabelsFor(model, args.classLabels, count);
  const images = new Float32Array(count * model.perImage);
  for (const [i, path] of args.images.entries()) {
    const bytes = await readFileBytes(path, 'image');
    let png;
    try {
      png = await decodePng(bytes);
    } catch (error) {
      if (error instanceof PngError) throw new CliError(`image '${path}' is not a PNG this can read: ${error.message}`);
      throw error;
    }
    if (png.width !== w || png.height !== h) {
      throw new CliError(
        `image '${path}' is ${png.width}x${png.height} but the model takes ${w}x${h} images`,
        `resize it to ${w}x${h} first`,
      );
    }
    images.set(rgbaToTensor(png.rgba, w, h), i * model.perImage);
  }
  const { result, seconds, adapter } = await runSteps(
    deps,
    model,
    args,
    'encode',
    count,
    timesteps.length,
    (pipeline, { onStep }) => pipeline.encode(images, { steps, spacing, classLabels, onStep }),
  );
  // The steps and spacing go along, so that decode can undo the encoding with the same ones.
  const file = serializeSafetensors({ xT: f32Tensor(result.x0, [count, c, h, w]) }, { ddim_steps: String(steps), ddim_spacing: spacing });
  await writeFileAtomic(args.out, file);
  io.stdout(
    `encode: ${plural(timesteps.length, 'step')} x ${plural(count, 'image')} in ${rate(count, seconds)} on ${adapter} -> ${args.out}\n`,
  );
}

// ---------------------------------------------------------------------------------------------
// decode

async function decode(args: DecodeArgs, deps: RunDeps): Promise<void> {
  const { io } = deps;
  const model = await loadModel(args.model, io);
  const file = await readSafetensorsFile(args.latent, '--latent');
  const latents = floatTensor(
    file,
    'xT',
    args.latent,
    '--latent',
    [null, ...model.shape],
    `latents: key 'xT', f32 [N, ${model.shape.join(', ')}], as encode writes them`,
  );
  const count = latents.shape[0];
  checkMemory(count, model, '--latent');
  // Unless told otherwise, decode with what the latents were encoded with (encode notes it).
  const notedSteps = Number(file.metadata.ddim_steps);
  const notedSpacing = file.metadata.ddim_spacing as TimestepSpacing;
  const steps = args.steps ?? (Number.isSafeInteger(notedSteps) && notedSteps >= 1 ? notedSteps : DEFAULT_STEPS);
  const spacing = args.spacing ?? (SPACINGS.includes(notedSpacing) ? notedSpacing : spacingFor(model, undefined));
  const timesteps = timestepsFor(model, steps, spacing);
  const classLabels = classLabelsFor(model, args.classLabels, count);
  checkOutput(args.out, '--out');
  const scale = args.scale ?? defaultScale(model);
  checkGrid(model, count, Math.ceil(Math.sqrt(count)), scale);
  const { result, seconds, adapter } = await runSteps(
    deps,
    model,
    args,
    'decode',
    count,
    timesteps.length,
    (pipeline, hooks) => pipeline.decode(latents.data, { steps, spacing, clip: args.clip, classLabels, ...hooks }),
  );
  const png = await gridPng(result.x0, count, model, undefined, scale);
  await writeFileAtomic(args.out, png);
  io.stdout(
    `decode: ${plural(timesteps.length, 'step')} (${spacing}) x ${plural(count, 'image')} in ${
      rate(count, seconds)
    } on ${adapter} -> ${args.out}\n`,
  );
}

// ---------------------------------------------------------------------------------------------
// interpolate

async function interpolate(args: InterpolateArgs, deps: RunDeps): Promise<void> {
  const { io } = deps;
  const model = await loadModel(args.model, io);
  const steps = args.steps ?? DEFAULT_STEPS;
  const spacing = spacingFor(model, args.spacing);
  const timesteps = timestepsFor(model, steps, spacing);
  checkOutput(args.out, '--out');
  const count = args.frames;
  checkMemory(count, model, '--frames');
  const classLabels = classLabelsFor(model, args.classLabels, count);
  const scale = args.scale ?? defaultScale(model);
  checkGrid(model, count, count, scale);
  const { result, seconds, adapter } = await runSteps(
    deps,
    model,
    args,
    'interpolate',
    count,
    timesteps.length,
    (pipeline, hooks) =>
      pipeline.interpolate({ seedA: args.seedA, seedB: args.seedB, frames: count, steps, spacing, classLabels, ...hooks }),
  );
  const png = await gridPng(result.x0, count, model, count, scale);
  await writeFileAtomic(args.out, png);
  io.stdout(
    `interpolate: ${plural(timesteps.length, 'step')} x ${plural(count, 'frame')} in ${
      rate(count, seconds)
    } on ${adapter} -> ${args.out}\n`,
  );
}

// ---------------------------------------------------------------------------------------------
// eps

async function eps(args: EpsArgs, deps: RunDeps): Promise<void> {
  const { io } = deps;
  const model = await loadModel(args.model, io);
  const file = await readSafetensorsFile(args.input, '--in');
  const meaning = `'x' f32 [N, ${model.shape.join(', ')}] and 't' i32 [N]`;
  const x = floatTensor(file, 'x', args.input, '--in', [null, ...model.shape], meaning);
  const count = x.shape[0];
  const tEntry = file.tensors.get('t');
  if (!tEntry) throw new CliError(`--in '${args.input}' has no tensor 't' (the timestep of each image)`, `--in takes ${meaning}`);
  if (!INT_TYPES.has(tEntry.dtype)) {
    throw new CliError(`--in '${args.input}': tensor 't' is ${tEntry.dtype}, not an integer tensor`, `--in takes ${meaning}`);
  }
  if (tEntry.shape.length !== 1 || tEntry.shape[0] !== count) {
    throw new CliError(
      `--in '${args.input}': tensor 't' has shape [${tEntry.shape.join(', ')}] but 'x' holds ${
        plural(count, 'image')
      }, so it must be [${count}]`,
    );
  }
  let t: Int32Array;
  try {
    t = toInt32(tEntry);
  } catch (error) {
    throw new CliError(`--in '${args.input}': ${(error as Error).message}`);
  }
  const T = model.schedule.numTrainTimesteps;
  const bad = t.findIndex((v) => v < 0 || v >= T);
  if (bad >= 0) throw new CliError(`--in '${args.input}': t[${bad}] = ${t[bad]} is outside the model's timesteps 0..${T - 1}`);
  const classLabels = epsClassLabels(file, args.input, model, count);
  checkMemory(count, model, '--in');
  checkOutput(args.out, '--out');
  checkDistinct([['--in', args.input], ['--out', args.out]]);
  const batch = batchFor(args, count);

  const { result, seconds, adapter } = await withPipeline(deps, model, batch, args, async (pipeline) => {
    const start = performance.now();
    const result = await pipeline.eps(x.data, t, { classLabels });
    return { result, seconds: (performance.now() - start) / 1000, adapter: describeDevice(pipeline) };
  });
  await writeFileAtomic(args.out, serializeSafetensors({ eps: f32Tensor(result, [count, ...model.shape]) }));
  io.stdout(`eps: ${plural(count, 'image')} in ${rate(count, seconds)} on ${adapter} -> ${args.out}\n`);
}

/** eps's 'class_labels' i32 [N]: needed by a class-conditional model, refused by any other. */
function epsClassLabels(file: SafetensorsFile, path: string, model: Model, count: number): Int32Array | undefined {
  const entry = file.tensors.get('class_labels');
  if (!model.config.classEmbedType) {
    if (entry) throw new CliError(`--in '${path}' holds 'class_labels' but model '${model.dir}' is not class-conditional`);
    return undefined;
  }
  const meaning = `'class_labels' i32 [${count}], one class per image`;
  if (!entry) {
    throw new CliError(`--in '${path}' has no tensor 'class_labels': model '${model.dir}' is class-conditional`, `--in takes ${meaning}`);
  }
  if (!INT_TYPES.has(entry.dtype) || entry.shape.length !== 1 || entry.shape[0] !== count) {
    throw new CliError(`--in '${path}': tensor 'class_labels' is ${entry.dtype} [${entry.shape.join(', ')}]`, `--in takes ${meaning}`);
  }
  let labels: Int32Array;
  try {
    labels = toInt32(entry);
  } catch (error) {
    throw new CliError(`--in '${path}': ${(error as Error).message}`);
  }
  try {
    return checkClassLabels(model.config, labels, count);
  } catch (error) {
    if (error instanceof SamplerInputError) throw new CliError(`--in '${path}': ${error.message}`);
    throw error;
  }
}
