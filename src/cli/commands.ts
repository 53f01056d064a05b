/**
 * The subcommands. Each one first reads and checks everything it was given (the model folder,
 * input files and their tensor shapes, the output folders, the step count against the model's
 * schedule) and only then opens the GPU; outputs are made in memory and written at the very
 * end with writeFileAtomic, so a failed run leaves no file behind.
 */
import { resolve } from 'node:path';
import type { RecordObserver } from '../gpu/recorder.ts';
import { gridRgba, rgbaToTensor } from '../io/image.ts';
import { decodePng, encodePng, PngError } from '../io/png.ts';
import { type SafetensorsFile, serializeSafetensors, toInt32 } from '../io/safetensors.ts';
import type { DdimPipeline } from '../pipeline.ts';
import { chromeTrace, formatProfile, type Profile, Profiler } from '../profile/profiler.ts';
import { checkClassLabels, SamplerInputError } from '../sampler/ddim.ts';
import { ddimTimesteps, ScheduleError, type TimestepSpacing } from '../sampler/schedule.ts';
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
import { LatentDiffusionPipeline } from '../latent_pipeline.ts';
import { vaeDecode, vaeEncode } from './vae.ts';
import { encodePromptCommand, epsText, isTextToImageDir, sampleText } from './text_to_image.ts';
import {
  batchFor,
  checkOutput,
  describeDevice,
  f32Tensor,
  floatTensor,
  INT_TYPES,
  loadModel,
  type Model,
  readSafetensorsFile,
  type RunDeps,
  withPipeline,
} from './run.ts';
import { readFileBytes, writeFileAtomic } from './files.ts';
import { type CliIo, plural, ProgressBar, rate } from './progress.ts';

export const DEFAULT_STEPS = 50;

const DEFAULT_IMAGES = 16;

/**
 * Without --n, a software adapter (llvmpipe, SwiftShader: the CPU) samples this many, so that the
 * default command ends within 90 s on two cores (26 s measured: docs/perf.md); the command says so
 * when it starts.
 */
export const SOFTWARE_DEFAULT_IMAGES = 4;

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
    case 'vae-encode':
      return await vaeEncode(args, deps.io);
    case 'vae-decode':
      return await vaeDecode(args, deps.io);
    case 'encode-prompt':
      return await encodePromptCommand(args, deps.io);
  }
}

// ---------------------------------------------------------------------------------------------
// Checks made before any GPU work

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
  return model.imageShape[1] <= 64 ? 2 : 1;
}

/** The grid's size, as gridRgba will make it, checked against the PNG limit. */
function checkGrid(model: Model, count: number, columns: number, scale: number): void {
  const [, h, w] = model.imageShape;
  const padding = 2;
  const cols = Math.min(columns, count);
  const rows = Math.ceil(count / cols);
  const width = (cols * (w + padding) + padding) * scale;
  const height = (rows * (h + padding) + padding) * scale;
  if (width * height > MAX_PIXELS) {
    throw new CliError(`the PNG would be ${width}x${height} pixels, more than ${MAX_PIXELS}: lower --scale or the number of images`);
  }
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
  const [c, h, w] = model.imageShape;
  const grid = gridRgba(x, count, c, h, w, { columns, scale });
  return await encodePng(grid.rgba, grid.width, grid.height);
}

async function sample(args: SampleArgs, deps: RunDeps): Promise<void> {
  const { io } = deps;
  if (args.prompt.length > 0 || isTextToImageDir(args.model)) return await sampleText(args, io);
  const model = await loadModel(args.model, io, { height: args.height, width: args.width });
  const spacing = spacingFor(model, args.spacing);
  const timesteps = timestepsFor(model, args.steps ?? DEFAULT_STEPS, spacing);
  if (args.outDir !== undefined) {
    pixelModelOnly(model, 'sample --out-dir');
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
  // The count was not asked for: a software adapter takes fewer, said as soon as it is known.
  const fewerOnSoftware = args.n === undefined && !xT && !noise;
  const software = fewerOnSoftware
    ? {
      batch: batchFor(args, SOFTWARE_DEFAULT_IMAGES),
      chosen(adapterName: string) {
        count = SOFTWARE_DEFAULT_IMAGES;
        io.stderr(
          `note: ${adapterName} is a software adapter (the CPU): sampling ${count} images, not ${DEFAULT_IMAGES}; --n N gives any number\n`,
        );
      },
    }
    : undefined;

  const { result, seconds, adapter, profile, images } = await withPipeline(
    deps,
    model,
    batch,
    args,
    (pipeline) =>
      profiled(
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
      ).then(async (run) => ({ ...run, images: await decodeLatents(pipeline, model, run.result.x0) })),
    software,
  );
  const png = await gridPng(images ?? result.x0, count, model, undefined, scale);
  const tensor = args.outTensor
    ? serializeSafetensors({
      x0: f32Tensor(result.x0, [count, ...model.shape]),
      ...(images ? { image: f32Tensor(images, [count, ...model.imageShape]) } : {}),
    })
    : undefined;
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

/** A latent model's sampled latents decoded into images (not clamped); undefined for a pixel model. */
async function decodeLatents(pipeline: DdimPipeline, model: Model, latents: Float32Array): Promise<Float32Array | undefined> {
  if (!model.autoencoder) return undefined;
  const latent = LatentDiffusionPipeline.compose(pipeline, model.autoencoder);
  try {
    const { images } = await latent.decodeLatents(latents);
    const bad = images.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`the decoded images hold ${images[bad]} at element ${bad}; nothing was written`);
    return images;
  } finally {
    latent.autoencoder.destroy();
  }
}

/** encode, decode and interpolate run on pixel models from the command line; the library runs them on latent models. */
function pixelModelOnly(model: Model, command: string): void {
  if (model.autoencoder) {
    throw new CliError(
      `${command} on a latent model (model '${model.dir}' has an autoencoder) is not in the command line yet`,
      'LatentDiffusionPipeline.encode and .interpolate do it from the library; vae-encode and vae-decode run the autoencoder alone',
    );
  }
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
  pixelModelOnly(model, 'encode');
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
    (pipeline, { onStep }) => pipeline.encode(images, { steps, spacing, classLabels, onStep, inversion: args.inversion }),
  );
  // The steps and spacing go along, so that decode can undo the encoding with the same ones.
  const file = serializeSafetensors({ xT: f32Tensor(result.x0, [count, c, h, w]) }, {
    ddim_steps: String(steps),
    ddim_spacing: spacing,
    ddim_inversion: args.inversion,
  });
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
  pixelModelOnly(model, 'decode');
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
  pixelModelOnly(model, 'interpolate');
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
  if (isTextToImageDir(args.model)) return await epsText(args, io);
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
